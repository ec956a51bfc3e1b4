//! TLCP records (GB/T 38636-2020 §6.3): the 5-byte header, and the protection of one
//! direction — nothing before ChangeCipherSpec, then SM4-CBC with HMAC-SM3 (MAC-then-encrypt,
//! explicit IV, as TLS 1.1) or SM4-GCM (4-byte implicit ‖ 8-byte explicit nonce, as RFC 5288).
//! Pure functions over bytes, so the fuzzer reaches every check.

use subtle::ConstantTimeEq;

use super::TlcpError;
use crate::sm3::{DIGEST_LEN, Sm3Hasher, hmac_sm3_parts};
use crate::sm4::{self, BLOCK_LEN, KEY_LEN, Sm4Gcm, TAG_LEN};

/// The protocol version in every TLCP record and hello.
pub const VERSION: u16 = 0x0101;
/// Record header length.
pub const HEADER_LEN: usize = 5;
/// Largest plaintext fragment (2^14).
pub const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest protected fragment accepted: plaintext plus IV, MAC and padding (2^14 + 2048).
pub const MAX_FRAGMENT: usize = MAX_PLAINTEXT + 2048;

/// Record content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// Switches the direction to the negotiated keys.
    ChangeCipherSpec,
    /// Warnings and fatal errors.
    Alert,
    /// Handshake messages.
    Handshake,
    /// The protected payload.
    ApplicationData,
}

impl ContentType {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            ContentType::ChangeCipherSpec => 20,
            ContentType::Alert => 21,
            ContentType::Handshake => 22,
            ContentType::ApplicationData => 23,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            20 => ContentType::ChangeCipherSpec,
            21 => ContentType::Alert,
            22 => ContentType::Handshake,
            23 => ContentType::ApplicationData,
            _ => return None,
        })
    }
}

/// A parsed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the fragment carries.
    pub content: ContentType,
    /// Fragment length (bounded by [`MAX_FRAGMENT`]).
    pub len: usize,
}

/// Parses a record header; refuses unknown types, other versions and oversized fragments.
pub fn parse_header(bytes: &[u8; HEADER_LEN]) -> Result<Header, TlcpError> {
    let content = ContentType::from_byte(bytes[0]).ok_or(TlcpError::Decode("record type"))?;
    if u16::from_be_bytes([bytes[1], bytes[2]]) != VERSION {
        return Err(TlcpError::Version);
    }
    let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    if len > MAX_FRAGMENT {
        return Err(TlcpError::RecordOverflow);
    }
    Ok(Header { content, len })
}

/// Whether the first bytes a client sent start a TLCP handshake (a handshake record of
/// version 0x0101), rather than TLS (0x0301–0x0303).
pub fn starts_tlcp(first: &[u8]) -> bool {
    first.len() >= 3 && first[0] == 22 && u16::from_be_bytes([first[1], first[2]]) == VERSION
}

fn header(content: ContentType, len: usize) -> [u8; HEADER_LEN] {
    let [v0, v1] = VERSION.to_be_bytes();
    let [l0, l1] = (len as u16).to_be_bytes();
    [content.byte(), v0, v1, l0, l1]
}

/// The keys of one direction, from the key block.
pub enum Keys {
    /// ECC_SM4_CBC_SM3 (0xE013).
    Cbc {
        /// HMAC-SM3 key.
        mac: [u8; DIGEST_LEN],
        /// SM4 key.
        key: [u8; KEY_LEN],
    },
    /// ECC_SM4_GCM_SM3 (0xE053).
    Gcm {
        /// SM4 key.
        key: [u8; KEY_LEN],
        /// The implicit (salt) part of the nonce.
        salt: [u8; 4],
    },
}

enum Cipher {
    Null,
    Cbc {
        mac: [u8; DIGEST_LEN],
        key: [u8; KEY_LEN],
    },
    Gcm {
        aead: Box<Sm4Gcm>,
        salt: [u8; 4],
    },
}

/// One direction of a connection: its cipher and record sequence number.
pub struct Direction {
    cipher: Cipher,
    seq: u64,
}

impl Default for Direction {
    fn default() -> Self {
        Direction {
            cipher: Cipher::Null,
            seq: 0,
        }
    }
}

impl Direction {
    /// Starts protecting with `keys` (after ChangeCipherSpec); the sequence restarts at 0.
    pub fn protect(&mut self, keys: Keys) {
        self.cipher = match keys {
            Keys::Cbc { mac, key } => Cipher::Cbc { mac, key },
            Keys::Gcm { key, salt } => Cipher::Gcm {
                aead: Box::new(Sm4Gcm::new(&key)),
                salt,
            },
        };
        self.seq = 0;
    }

    /// Whether records are protected yet.
    pub fn is_protected(&self) -> bool {
        !matches!(self.cipher, Cipher::Null)
    }

    fn next_seq(&mut self) -> Result<[u8; 8], TlcpError> {
        let seq = self.seq;
        // Wrapping would reuse a nonce; end the connection first.
        self.seq = seq.checked_add(1).ok_or(TlcpError::SequenceExhausted)?;
        Ok(seq.to_be_bytes())
    }

    /// One whole record (header included) carrying `plaintext` (at most [`MAX_PLAINTEXT`]).
    pub fn seal(&mut self, content: ContentType, plaintext: &[u8]) -> Result<Vec<u8>, TlcpError> {
        debug_assert!(plaintext.len() <= MAX_PLAINTEXT);
        let seq = self.next_seq()?;
        let inner = header(content, plaintext.len());
        let fragment = match &self.cipher {
            Cipher::Null => plaintext.to_vec(),
            Cipher::Cbc { mac, key } => {
                let tag = hmac_sm3_parts(mac, &[&seq, &inner, plaintext]);
                let unpadded = plaintext.len() + DIGEST_LEN;
                let pad = (BLOCK_LEN - (unpadded + 1) % BLOCK_LEN) % BLOCK_LEN;
                let mut data = Vec::with_capacity(unpadded + pad + 1);
                data.extend_from_slice(plaintext);
                data.extend_from_slice(&tag);
                data.resize(unpadded + pad + 1, pad as u8);
                let mut iv = [0u8; BLOCK_LEN];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut iv)
                    .map_err(|_| TlcpError::Random)?;
                let mut out = iv.to_vec();
                out.extend(sm4::cbc_encrypt(key, &iv, &data).map_err(|_| TlcpError::Internal)?);
                out
            }
            Cipher::Gcm { aead, salt } => {
                let nonce = gcm_nonce(salt, &seq);
                let mut out = seq.to_vec();
                out.extend(aead.seal(&nonce, &[&seq[..], &inner].concat(), plaintext));
                out
            }
        };
        let mut record = header(content, fragment.len()).to_vec();
        record.extend(fragment);
        Ok(record)
    }

    /// The plaintext of a received fragment, authenticated; any alteration is `BadRecordMac`.
    pub fn open(&mut self, content: ContentType, fragment: &[u8]) -> Result<Vec<u8>, TlcpError> {
        let seq = self.next_seq()?;
        let plaintext = match &self.cipher {
            Cipher::Null => fragment.to_vec(),
            Cipher::Cbc { mac, key } => open_cbc(mac, key, &seq, content, fragment)?,
            Cipher::Gcm { aead, salt } => {
                if fragment.len() < 8 + TAG_LEN {
                    return Err(TlcpError::BadRecordMac);
                }
                let (explicit, sealed) = fragment.split_at(8);
                let mut nonce_seq = [0u8; 8];
                nonce_seq.copy_from_slice(explicit);
                let nonce = gcm_nonce(salt, &nonce_seq);
                let aad = [&seq[..], &header(content, sealed.len() - TAG_LEN)].concat();
                aead.open(&nonce, &aad, sealed)
                    .map_err(|_| TlcpError::BadRecordMac)?
            }
        };
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(TlcpError::RecordOverflow);
        }
        Ok(plaintext)
    }
}

fn gcm_nonce(salt: &[u8; 4], explicit: &[u8; 8]) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(explicit);
    nonce
}

/// CBC: explicit IV, decrypt, check padding and MAC without revealing which failed.
fn open_cbc(
    mac_key: &[u8; DIGEST_LEN],
    key: &[u8; KEY_LEN],
    seq: &[u8; 8],
    content: ContentType,
    fragment: &[u8],
) -> Result<Vec<u8>, TlcpError> {
    // IV, then at least MAC + one padding byte rounded up to whole blocks.
    let min = BLOCK_LEN + (DIGEST_LEN + 1).div_ceil(BLOCK_LEN) * BLOCK_LEN;
    if fragment.len() < min || !fragment.len().is_multiple_of(BLOCK_LEN) {
        return Err(TlcpError::BadRecordMac);
    }
    let (iv, body) = fragment.split_at(BLOCK_LEN);
    let mut iv_block = [0u8; BLOCK_LEN];
    iv_block.copy_from_slice(iv);
    let data = sm4::cbc_decrypt(key, &iv_block, body).map_err(|_| TlcpError::BadRecordMac)?;
    let last = data.len() - 1;
    let pad = usize::from(data[last]);
    // Padding bytes all equal the pad length; checked over the longest possible padding so
    // the time does not depend on where a wrong byte sits.
    let mut good = subtle::Choice::from(u8::from(pad + 1 + DIGEST_LEN <= data.len()));
    let span = data.len().min(256);
    for i in 0..span {
        let in_pad = subtle::Choice::from(u8::from(i <= pad));
        let matches = data[last - i].ct_eq(&(pad as u8));
        good &= !in_pad | matches;
    }
    // With bad padding, MAC as if there were none.
    let pad_len = if bool::from(good) { pad + 1 } else { 0 };
    let plain_len = data.len().saturating_sub(pad_len + DIGEST_LEN);
    let (plaintext, rest) = data.split_at(plain_len);
    let inner = header(content, plain_len);
    let expected = hmac_sm3_parts(mac_key, &[seq, &inner, plaintext]);
    // Lucky13: the MAC's cost follows the plaintext's length, which the padding decides. Spend
    // the compressions a longer plaintext would have cost, up to the longest this record can
    // hold, so the time taken does not tell the padding.
    let longest = data.len() - DIGEST_LEN;
    spend_compressions(mac_compressions(longest) - mac_compressions(plain_len));
    let mac_ok = expected.ct_eq(&rest[..DIGEST_LEN]);
    if bool::from(good & mac_ok) {
        Ok(plaintext.to_vec())
    } else {
        Err(TlcpError::BadRecordMac)
    }
}

/// SM3's block length.
const SM3_BLOCK: usize = 64;

/// SM3 compressions HMAC-SM3 spends on the inner hash of a record MAC over `plain_len` bytes
/// of plaintext: the key block, sequence number and header, the plaintext, then SM3's final
/// padding (at least 9 bytes). The outer hash costs the same for every record.
fn mac_compressions(plain_len: usize) -> usize {
    (SM3_BLOCK + 8 + HEADER_LEN + plain_len + 9).div_ceil(SM3_BLOCK)
}

/// Runs `n` SM3 compressions whose result nobody uses (kept from being optimised away).
fn spend_compressions(n: usize) {
    let mut hasher = Sm3Hasher::new();
    for _ in 0..n {
        hasher.update(&[0u8; SM3_BLOCK]);
    }
    std::hint::black_box(hasher.current());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 10 of the hardening review (Lucky13): the MAC over a CBC record cost one
    /// compression more or less depending on the padding. Real plus spent compressions are
    /// now the same for every padding a record of a given size can carry, bad padding
    /// included.
    #[test]
    fn the_mac_costs_the_same_whatever_the_padding() {
        let mut varied = 0;
        for blocks in 3..40 {
            let data_len = blocks * BLOCK_LEN;
            let longest = data_len - DIGEST_LEN;
            let costs: std::collections::BTreeSet<usize> = (0..=256)
                .map(|pad_len| longest.saturating_sub(pad_len))
                .map(|plain| {
                    mac_compressions(plain) + (mac_compressions(longest) - mac_compressions(plain))
                })
                .collect();
            assert_eq!(costs.len(), 1, "{data_len}: {costs:?}");
            let unpadded: std::collections::BTreeSet<usize> = (0..=256)
                .map(|pad_len| mac_compressions(longest.saturating_sub(pad_len)))
                .collect();
            varied += usize::from(unpadded.len() > 1);
        }
        assert!(
            varied > 30,
            "the real MAC's cost does vary with the padding"
        );
    }

    fn pair(keys: impl Fn() -> Keys) -> (Direction, Direction) {
        let mut sender = Direction::default();
        let mut receiver = Direction::default();
        sender.protect(keys());
        receiver.protect(keys());
        (sender, receiver)
    }

    fn cbc() -> Keys {
        Keys::Cbc {
            mac: [7; DIGEST_LEN],
            key: [9; KEY_LEN],
        }
    }

    fn gcm() -> Keys {
        Keys::Gcm {
            key: [9; KEY_LEN],
            salt: [1, 2, 3, 4],
        }
    }

    fn fragment(record: &[u8]) -> (Header, &[u8]) {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&record[..HEADER_LEN]);
        (parse_header(&h).unwrap(), &record[HEADER_LEN..])
    }

    #[test]
    fn records_round_trip_in_both_modes_and_every_length() {
        for keys in [cbc as fn() -> Keys, gcm] {
            let (mut tx, mut rx) = pair(keys);
            for len in [0, 1, 15, 16, 17, 31, 32, 33, 1000, MAX_PLAINTEXT] {
                let data = vec![0x5a; len];
                let record = tx.seal(ContentType::ApplicationData, &data).unwrap();
                let (h, body) = fragment(&record);
                assert_eq!(h.content, ContentType::ApplicationData);
                assert_eq!(rx.open(h.content, body).unwrap(), data, "length {len}");
            }
        }
    }

    #[test]
    fn any_flipped_bit_reordering_or_type_change_is_refused() {
        for keys in [cbc as fn() -> Keys, gcm] {
            let (mut tx, _) = pair(keys);
            let record = tx
                .seal(ContentType::ApplicationData, b"MAIL FROM:<a@b>")
                .unwrap();
            let body = &record[HEADER_LEN..];
            for i in 0..body.len() {
                let mut bad = body.to_vec();
                bad[i] ^= 0x01;
                let (_, mut rx) = pair(keys);
                assert_eq!(
                    rx.open(ContentType::ApplicationData, &bad),
                    Err(TlcpError::BadRecordMac),
                    "byte {i}"
                );
            }
            // Right bytes under another content type or sequence number.
            let (_, mut rx) = pair(keys);
            assert!(rx.open(ContentType::Handshake, body).is_err());
            let (_, mut rx) = pair(keys);
            let _ = rx.open(ContentType::ApplicationData, body);
            assert!(rx.open(ContentType::ApplicationData, body).is_err());
            // Truncated.
            let (_, mut rx) = pair(keys);
            assert!(
                rx.open(ContentType::ApplicationData, &body[..body.len() - 1])
                    .is_err()
            );
            assert!(rx.open(ContentType::ApplicationData, &[]).is_err());
        }
    }

    #[test]
    fn cbc_records_use_a_fresh_explicit_iv() {
        let (mut tx, _) = pair(cbc);
        let a = tx.seal(ContentType::ApplicationData, b"same").unwrap();
        let b = tx.seal(ContentType::ApplicationData, b"same").unwrap();
        assert_ne!(
            a[HEADER_LEN..HEADER_LEN + 16],
            b[HEADER_LEN..HEADER_LEN + 16]
        );
        // IV + (4 + 32 MAC + padding to 48) = 64.
        assert_eq!(a.len(), HEADER_LEN + 16 + 48);
    }

    #[test]
    fn headers_are_checked() {
        assert_eq!(
            parse_header(&[23, 1, 1, 0x40, 0x00]).unwrap(),
            Header {
                content: ContentType::ApplicationData,
                len: 0x4000
            }
        );
        assert_eq!(parse_header(&[23, 3, 3, 0, 1]), Err(TlcpError::Version));
        assert!(parse_header(&[99, 1, 1, 0, 1]).is_err());
        assert_eq!(
            parse_header(&[23, 1, 1, 0xff, 0xff]),
            Err(TlcpError::RecordOverflow)
        );
        assert!(starts_tlcp(&[22, 1, 1, 0, 100]));
        assert!(!starts_tlcp(&[22, 3, 1, 0, 100]));
        assert!(!starts_tlcp(&[22, 1]));
    }
}
