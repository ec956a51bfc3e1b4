//! SM4 (GB/T 32907-2016): GCM for sealing data (RFC 8998's TLS_SM4_GCM_SM3, storage at rest)
//! and raw CBC without padding (TLCP's CBC suites pad and MAC the record themselves), over
//! [`Sm4Cipher`]: constant time where the CPU allows ([`Sm4Cipher::constant_time`]).

use aes_gcm::AesGcm;
use aes_gcm::aead::array::typenum::{U12, U16};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use cbc::cipher::array::Array;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};

use super::GmError;

#[cfg(target_arch = "x86_64")]
mod aesni;
mod cipher;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod lanes;
#[cfg(target_arch = "aarch64")]
mod neon;

pub use cipher::Sm4Cipher;

/// SM4 key length in bytes.
pub const KEY_LEN: usize = 16;
/// GCM nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;
/// SM4 block length in bytes.
pub const BLOCK_LEN: usize = 16;

/// SM4-GCM under one key.
pub struct Sm4Gcm(AesGcm<Sm4Cipher, U12>);

impl Sm4Gcm {
    /// The cipher for `key`.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Sm4Gcm(AesGcm::new(key.into()))
    }

    /// Encrypts `plaintext` and authenticates it with `aad`: ciphertext followed by the tag.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        match self.0.encrypt(nonce.into(), payload) {
            Ok(sealed) => sealed,
            // Only inputs over 64 GiB fail; nothing here seals that much at once.
            Err(_) => unreachable!("SM4-GCM input over its size limit"),
        }
    }

    /// Checks and decrypts what [`Sm4Gcm::seal`] made; any change to it, the nonce or `aad`
    /// is refused.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, GmError> {
        if sealed.len() < TAG_LEN {
            return Err(GmError::Decrypt);
        }
        self.0
            .decrypt(nonce.into(), Payload { msg: sealed, aad })
            .map_err(|_| GmError::Decrypt)
    }
}

/// SM4-CBC encryption of whole blocks (no padding).
pub fn cbc_encrypt(
    key: &[u8; KEY_LEN],
    iv: &[u8; BLOCK_LEN],
    data: &[u8],
) -> Result<Vec<u8>, GmError> {
    blockwise(data, |blocks| {
        cbc::Encryptor::<Sm4Cipher>::new(key.into(), iv.into()).encrypt_blocks(blocks)
    })
}

/// SM4-CBC decryption of whole blocks (no padding).
pub fn cbc_decrypt(
    key: &[u8; KEY_LEN],
    iv: &[u8; BLOCK_LEN],
    data: &[u8],
) -> Result<Vec<u8>, GmError> {
    blockwise(data, |blocks| {
        cbc::Decryptor::<Sm4Cipher>::new(key.into(), iv.into()).decrypt_blocks(blocks)
    })
}

/// A copy of `data`, which must be whole blocks, transformed block by block by `mode`.
fn blockwise(data: &[u8], mode: impl FnOnce(&mut [Array<u8, U16>])) -> Result<Vec<u8>, GmError> {
    if !data.len().is_multiple_of(BLOCK_LEN) {
        return Err(GmError::Length);
    }
    let mut out = data.to_vec();
    let (blocks, _) = Array::slice_as_chunks_mut(&mut out);
    mode(blocks);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::hex;

    const KEY: [u8; 16] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32,
        0x10,
    ];

    #[test]
    fn gb_t_32907_example_one_block() {
        // With CBC and a zero IV, one block is plain SM4.
        let c = cbc_encrypt(&KEY, &[0; 16], &KEY).unwrap();
        assert_eq!(c, hex("681edf34d206965e86b3e94f536e4246"));
        assert_eq!(cbc_decrypt(&KEY, &[0; 16], &c).unwrap(), KEY);
    }

    #[test]
    fn rfc_8998_a1_sm4_gcm() {
        let gcm = Sm4Gcm::new(&KEY);
        let nonce: [u8; 12] = hex("00001234567800000000ABCD").try_into().unwrap();
        let aad = hex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let plain = hex(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        );
        let sealed = gcm.seal(&nonce, &aad, &plain);
        let expected = hex(
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
             D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D\
             83DE3541E4C2B58177E065A9BF7B62EC",
        );
        assert_eq!(sealed, expected);
        assert_eq!(gcm.open(&nonce, &aad, &sealed).unwrap(), plain);
        // Any change is refused: ciphertext, tag, AAD, nonce, truncation.
        for i in [0, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(gcm.open(&nonce, &aad, &bad), Err(GmError::Decrypt));
        }
        assert!(gcm.open(&nonce, b"other", &sealed).is_err());
        let mut other = nonce;
        other[0] ^= 1;
        assert!(gcm.open(&other, &aad, &sealed).is_err());
        assert!(gcm.open(&nonce, &aad, &sealed[..10]).is_err());
    }

    #[test]
    fn cbc_agrees_with_the_independent_implementation() {
        let iv = [7u8; 16];
        let data: Vec<u8> = (0..80u8).collect();
        let ours = cbc_encrypt(&KEY, &iv, &data).unwrap();
        // sm-crypto pads with PKCS#7: a whole extra block after ours.
        let theirs = sm_crypto::sm4::CryptSM4CBC::new(&KEY, &iv).encrypt_cbc(&data);
        assert_eq!(ours, theirs[..80]);
        assert_eq!(cbc_decrypt(&KEY, &iv, &ours).unwrap(), data);
        assert_eq!(cbc_encrypt(&KEY, &iv, &data[..15]), Err(GmError::Length));
    }
}
