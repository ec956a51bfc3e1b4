//! SM3 (GB/T 32905-2016) and HMAC-SM3 (RFC 2104 over SM3).

use hmac::{KeyInit, Mac};
use sm3::{Digest, Sm3};

/// Length of an SM3 digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// SM3 of `data`.
pub fn sm3(data: &[u8]) -> [u8; DIGEST_LEN] {
    Sm3::digest(data).into()
}

/// An SM3 computation fed in pieces (e.g. a TLS transcript).
#[derive(Clone, Default)]
pub struct Sm3Hasher(Sm3);

impl Sm3Hasher {
    /// An empty computation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything added so far (the computation can go on).
    pub fn current(&self) -> [u8; DIGEST_LEN] {
        self.0.clone().finalize().into()
    }

    /// The digest of everything added.
    pub fn finish(self) -> [u8; DIGEST_LEN] {
        self.0.finalize().into()
    }
}

/// HMAC-SM3 of `data` under `key` (any length).
pub fn hmac_sm3(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sm3_parts(key, &[data])
}

/// HMAC-SM3 of the concatenation of `parts`.
pub fn hmac_sm3_parts(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of every length (long ones are hashed first).
    let Ok(mut mac) = <hmac::Hmac<Sm3> as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC takes any key length")
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Checks an HMAC-SM3 tag in constant time.
pub fn hmac_sm3_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let Ok(mut mac) = <hmac::Hmac<Sm3> as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::hex;

    #[test]
    fn gb_t_32905_examples() {
        // Appendix A.1: "abc".
        assert_eq!(
            sm3(b"abc").to_vec(),
            hex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
        );
        // Appendix A.2: "abcd" × 16.
        assert_eq!(
            sm3(&b"abcd".repeat(16)).to_vec(),
            hex("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")
        );
        let mut h = Sm3Hasher::new();
        h.update(b"ab");
        let _ = h.current();
        h.update(b"c");
        assert_eq!(h.finish(), sm3(b"abc"));
    }

    #[test]
    fn agrees_with_the_independent_implementation() {
        for len in [0usize, 1, 55, 56, 63, 64, 65, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(
                sm3(&data).to_vec(),
                sm_crypto::sm3::sm3_hash_raw(&data),
                "len {len}"
            );
        }
    }

    #[test]
    fn hmac_matches_its_definition_and_verifies() {
        // RFC 2104 by hand: H((K ^ opad) || H((K ^ ipad) || m)), block size 64.
        for key in [b"key".to_vec(), vec![0x0b; 64], vec![0xaa; 131]] {
            let mut k = if key.len() > 64 {
                sm3(&key).to_vec()
            } else {
                key.clone()
            };
            k.resize(64, 0);
            let inner: Vec<u8> = k
                .iter()
                .map(|b| b ^ 0x36)
                .chain(b"message".iter().copied())
                .collect();
            let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(sm3(&inner)).collect();
            let tag = hmac_sm3(&key, b"message");
            assert_eq!(tag, sm3(&outer));
            assert_eq!(hmac_sm3_parts(&key, &[b"mess", b"age"]), tag);
            assert!(hmac_sm3_verify(&key, b"message", &tag));
            assert!(!hmac_sm3_verify(&key, b"messagf", &tag));
        }
    }
}
