//! National cryptography (国密) for Jianmen, and everything built on it that holds no mail:
//! SM3 hashing and HMAC-SM3, SM4 in GCM and CBC modes, and SM2 signatures, encryption and keys
//! — one small API over the RustCrypto implementations, so the rest of the gateway (audit chain,
//! signed exports, sealed spool, TLS) never touches their generics — plus SM certificates
//! ([`cert`]), the RFC 8998 `CryptoProvider` for rustls ([`rfc8998`]), TLCP (GB/T 38636,
//! [`tlcp`]), the gateway's TLS configurations ([`tls`]) with DANE's server checks ([`dane`]), the SM2 signers of upgrade packages
//! and audit exports ([`signing`]) and secret key files ([`keyfile`]).
//!
//! It hands on keys, signers and TLS configurations; it knows nothing of SMTP, queues, scanning
//! or the console (no actix-web, sqlx or tract-onnx below this crate).
//!
//! SM4 runs in constant time on x86-64 with AES-NI and on aarch64 with the AES instructions
//! (`sm4::Sm4Cipher`); elsewhere (LoongArch) it falls back to RustCrypto's `sm4`, whose S-box
//! table look-ups are not constant time against an attacker who shares the CPU cache. SM2 and
//! SM3 are constant time.

#![warn(missing_docs)]

pub mod cert;
pub mod certinfo;
pub mod dane;
pub mod keyfile;
pub mod pair;
pub mod rfc8998;
pub mod signing;
pub mod sm2;
pub mod sm3;
pub mod sm4;
pub mod tlcp;
pub mod tls;

/// Lower-case hex of `bytes` (digests, keys and signatures as the audit log, exports and
/// upgrade manifests print them).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a national-cipher operation failed (never more detail: it could help an attacker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GmError {
    /// A key is malformed or not on the curve.
    #[error("invalid SM2 key")]
    BadKey,
    /// A signature is malformed or does not verify.
    #[error("SM2 signature does not verify")]
    BadSignature,
    /// Ciphertext is malformed, truncated or altered.
    #[error("decryption failed")]
    Decrypt,
    /// Input length not allowed (e.g. CBC data not a whole number of blocks).
    #[error("input length not allowed")]
    Length,
    /// The system's random number generator failed.
    #[error("no randomness")]
    Random,
    /// An encrypted key asks for more password-derivation work or memory than is allowed.
    #[error("the key's password derivation asks for too much work")]
    KeyCost,
}

/// Most PBKDF2 iterations an encrypted key may ask for (OpenSSL writes 2,048; about a second
/// of work at this bound).
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;
/// Most memory scrypt may be asked for (128·N·r bytes; OpenSSL's default is 16 MiB).
pub const MAX_SCRYPT_BYTES: u64 = 64 * 1024 * 1024;

/// The plain PKCS#8 document inside an encrypted one (`ENCRYPTED PRIVATE KEY` PEM, PBES2 with
/// PBKDF2 or scrypt and AES, as OpenSSL and Tongsuo write them) — for any key algorithm. A
/// wrong password or a damaged file is [`GmError::Decrypt`]. The file names its own derivation
/// cost, so a cost past [`MAX_PBKDF2_ITERATIONS`] or [`MAX_SCRYPT_BYTES`] is refused before any
/// work ([`GmError::KeyCost`]): an uploaded key must not stall or exhaust the gateway.
pub fn decrypt_pkcs8_pem(pem: &str, password: &[u8]) -> Result<Vec<u8>, GmError> {
    use pkcs8::der::Decode;
    let (label, der) = pkcs8::der::pem::decode_vec(pem.as_bytes()).map_err(|_| GmError::BadKey)?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(GmError::BadKey);
    }
    let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der).map_err(|_| GmError::BadKey)?;
    use pkcs8::pkcs5::{EncryptionScheme, pbes2::Kdf};
    if let EncryptionScheme::Pbes2(params) = &info.encryption_algorithm {
        let affordable = match &params.kdf {
            Kdf::Pbkdf2(p) => p.iteration_count <= MAX_PBKDF2_ITERATIONS,
            Kdf::Scrypt(s) => {
                s.parallelization <= 2
                    && s.cost_parameter
                        .checked_mul(u64::from(s.block_size))
                        .and_then(|n| n.checked_mul(128))
                        .is_some_and(|bytes| bytes <= MAX_SCRYPT_BYTES)
            }
            // A derivation unknown here cannot be judged: not attempted.
            _ => false,
        };
        if !affordable {
            return Err(GmError::KeyCost);
        }
    }
    info.decrypt(password)
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|_| GmError::Decrypt)
}

#[cfg(test)]
pub(crate) mod tests {
    /// Bytes from hex (test vectors).
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
