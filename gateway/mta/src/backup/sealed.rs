//! The sealed form of a backup: bytes kept secret and unaltered by a passphrase, so a backup
//! can be stored off the machine. The key is drawn from the passphrase by Argon2id (memory-hard:
//! a stolen file resists guessing) and seals with SM4-GCM, the national cipher, in chunks of
//! [`CHUNK`] bytes, each with its own nonce; the last chunk is marked in its associated data,
//! so a file cut short at any point (even between two chunks) or with chunks reordered fails
//! to open instead of yielding part of a backup.
//!
//! Layout: `MAGIC` · Argon2 memory (KiB, u32 BE) · passes (u32 BE) · lanes (u32 BE) · salt (16)
//! · nonce prefix (8) · chunks (each its ciphertext and 16-byte tag). The whole header is the
//! associated data of every chunk.

use argon2::{Algorithm, Argon2, Params, Version};
use jianmen_gm::sm4::{KEY_LEN, NONCE_LEN, Sm4Gcm, TAG_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// The first bytes of every sealed backup (and its format's version).
pub const MAGIC: &[u8; 8] = b"JMBKUP1\n";
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const SALT_LEN: usize = 16;
const PREFIX_LEN: usize = NONCE_LEN - 4;
const HEADER_LEN: usize = MAGIC.len() + 12 + SALT_LEN + PREFIX_LEN;
/// Argon2id's cost when sealing: 64 MiB, three passes (RFC 9106's second recommendation).
const MEMORY_KIB: u32 = 64 * 1024;
const PASSES: u32 = 3;
const LANES: u32 = 1;
/// The most a file may ask of Argon2 when it is opened: a hostile header must not make the
/// gateway spend gigabytes or minutes before the passphrase is even checked.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_PASSES: u32 = 10;
const MAX_LANES: u32 = 8;
/// The shortest passphrase a backup is sealed with.
pub const MIN_PASSPHRASE: usize = 12;

/// Why a backup could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The passphrase is too short to protect keys.
    #[error("the passphrase needs at least {MIN_PASSPHRASE} characters")]
    WeakPassphrase,
    /// Not a sealed backup of this format.
    #[error("not a Jianmen backup (or one of a newer format)")]
    NotABackup,
    /// The header asks for more work than any backup made here does.
    #[error("the backup's key derivation asks for more than this gateway allows")]
    Costly,
    /// Wrong passphrase, or the file was changed or cut short.
    #[error("the backup does not open: wrong passphrase, or the file was changed or cut short")]
    DoesNotOpen,
    /// The plaintext is larger than the caller allows.
    #[error("the backup holds more than {0} bytes")]
    TooLarge(usize),
    /// The system's random source or Argon2 failed.
    #[error("{0}")]
    Internal(String),
}

fn derive(
    passphrase: &str,
    memory: u32,
    passes: u32,
    lanes: u32,
    salt: &[u8],
) -> Result<Sm4Gcm, SealError> {
    let params = Params::new(memory, passes, lanes, Some(KEY_LEN))
        .map_err(|e| SealError::Internal(format!("argon2: {e}")))?;
    let mut key = [0u8; KEY_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| SealError::Internal(format!("argon2: {e}")))?;
    Ok(Sm4Gcm::new(&key))
}

fn nonce(prefix: &[u8], index: u32) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..PREFIX_LEN].copy_from_slice(prefix);
    nonce[PREFIX_LEN..].copy_from_slice(&index.to_be_bytes());
    nonce
}

fn chunk_aad(header: &[u8], last: bool) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.push(u8::from(last));
    aad
}

/// Seals `plain` under `passphrase`.
pub fn seal(passphrase: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(SealError::WeakPassphrase);
    }
    let mut random = [0u8; SALT_LEN + PREFIX_LEN];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| SealError::Internal("no randomness".into()))?;
    let (salt, prefix) = random.split_at(SALT_LEN);
    let mut out =
        Vec::with_capacity(HEADER_LEN + plain.len() + (plain.len() / CHUNK + 1) * TAG_LEN);
    out.extend_from_slice(MAGIC);
    for n in [MEMORY_KIB, PASSES, LANES] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(salt);
    out.extend_from_slice(prefix);
    let cipher = derive(passphrase, MEMORY_KIB, PASSES, LANES, salt)?;
    let header = out.clone();
    let chunks: Vec<&[u8]> = if plain.is_empty() {
        vec![&[][..]]
    } else {
        plain.chunks(CHUNK).collect()
    };
    let count = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let index = u32::try_from(i).map_err(|_| SealError::TooLarge(plain.len()))?;
        let aad = chunk_aad(&header, i + 1 == count);
        out.extend_from_slice(&cipher.seal(&nonce(prefix, index), &aad, chunk));
    }
    Ok(out)
}

/// Checks and opens what [`seal`] made, refusing a plaintext over `max` bytes.
pub fn open(passphrase: &str, sealed: &[u8], max: usize) -> Result<Vec<u8>, SealError> {
    if sealed.len() < HEADER_LEN + TAG_LEN || &sealed[..MAGIC.len()] != MAGIC {
        return Err(SealError::NotABackup);
    }
    let (header, body) = sealed.split_at(HEADER_LEN);
    let number = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&header[at..at + 4]);
        u32::from_be_bytes(b)
    };
    let at = MAGIC.len();
    let (memory, passes, lanes) = (number(at), number(at + 4), number(at + 8));
    if memory > MAX_MEMORY_KIB || passes > MAX_PASSES || lanes > MAX_LANES {
        return Err(SealError::Costly);
    }
    let salt = &header[at + 12..at + 12 + SALT_LEN];
    let prefix = &header[at + 12 + SALT_LEN..];
    // The size check comes before the costly derivation.
    let chunks = body.len().div_ceil(CHUNK + TAG_LEN);
    if body.len().saturating_sub(chunks * TAG_LEN) > max {
        return Err(SealError::TooLarge(max));
    }
    let cipher =
        derive(passphrase, memory, passes, lanes, salt).map_err(|_| SealError::DoesNotOpen)?;
    let mut plain = Vec::with_capacity(body.len());
    for (i, chunk) in body.chunks(CHUNK + TAG_LEN).enumerate() {
        let index = u32::try_from(i).map_err(|_| SealError::TooLarge(max))?;
        let aad = chunk_aad(header, i + 1 == chunks);
        let opened = cipher
            .open(&nonce(prefix, index), &aad, chunk)
            .map_err(|_| SealError::DoesNotOpen)?;
        plain.extend_from_slice(&opened);
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery";

    #[test]
    fn what_is_sealed_opens_with_its_passphrase_only() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let sealed = seal(PASS, &plain).unwrap();
            assert_eq!(open(PASS, &sealed, 1 << 20).unwrap(), plain, "{len} bytes");
            assert_eq!(
                open("correct horse battery!", &sealed, 1 << 20),
                Err(SealError::DoesNotOpen)
            );
        }
    }

    #[test]
    fn changed_cut_or_reordered_files_do_not_open() {
        let plain = vec![42u8; 2 * CHUNK + 5];
        let sealed = seal(PASS, &plain).unwrap();
        // A flipped bit anywhere: header, any chunk, any tag.
        for at in [
            9,
            HEADER_LEN - 1,
            HEADER_LEN + 3,
            HEADER_LEN + CHUNK + TAG_LEN + 1,
            sealed.len() - 1,
        ] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(open(PASS, &bad, 1 << 20).is_err(), "bit flipped at {at}");
        }
        // Cut at a chunk boundary: what is left is whole chunks, but the last is not marked last.
        let boundary = HEADER_LEN + 2 * (CHUNK + TAG_LEN);
        assert_eq!(
            open(PASS, &sealed[..boundary], 1 << 20),
            Err(SealError::DoesNotOpen)
        );
        assert_eq!(
            open(PASS, &sealed[..boundary - 7], 1 << 20),
            Err(SealError::DoesNotOpen)
        );
        // The first two chunks swapped.
        let mut swapped = sealed[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&sealed[HEADER_LEN + CHUNK + TAG_LEN..boundary]);
        swapped.extend_from_slice(&sealed[HEADER_LEN..HEADER_LEN + CHUNK + TAG_LEN]);
        swapped.extend_from_slice(&sealed[boundary..]);
        assert_eq!(open(PASS, &swapped, 1 << 20), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn hostile_headers_and_sizes_are_refused_before_any_work() {
        assert_eq!(open(PASS, b"hello", 100), Err(SealError::NotABackup));
        let sealed = seal(PASS, &[1u8; 1000]).unwrap();
        let mut costly = sealed.clone();
        costly[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(open(PASS, &costly, 1 << 20), Err(SealError::Costly));
        assert_eq!(open(PASS, &sealed, 999), Err(SealError::TooLarge(999)));
        assert_eq!(seal("short", b"x"), Err(SealError::WeakPassphrase));
    }
}
