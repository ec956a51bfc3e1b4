//! Signatures on packages that leave or enter the appliance — audit exports for the
//! authorities now, offline upgrade packages later — behind one trait, so SM2 (GB/T 32918)
//! replaces Ed25519 with the national-cipher work without touching the package formats.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Why signing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The key file could not be read or written.
    #[error("signing key {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold a usable key.
    #[error("signing key {0} is not a valid PKCS#8 key")]
    BadKey(String),
    /// The signature does not verify with the key.
    #[error("signature does not verify")]
    BadSignature,
    /// A signature algorithm this build does not know.
    #[error("unknown signature algorithm {0}")]
    UnknownAlgorithm(String),
}

/// Signs packages.
pub trait PackageSigner: Send + Sync {
    /// Algorithm name recorded in the package (`ed25519`, later `sm2-sm3`).
    fn algorithm(&self) -> &'static str;
    /// The public key, as recorded in the package and registered with whoever checks it.
    fn public_key(&self) -> Vec<u8>;
    /// Signature over `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

/// Ed25519 (ring), until SM2 is available.
pub struct Ed25519Signer {
    pair: Ed25519KeyPair,
}

impl Ed25519Signer {
    /// Loads the PKCS#8 key at `path`, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Ed25519Signer, SigningError> {
        let key_file = |source| SigningError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let der = match std::fs::read(path) {
            Ok(der) => der,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| SigningError::BadKey(path.display().to_string()))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(key_file)?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(key_file)?;
                f.write_all(doc.as_ref()).map_err(key_file)?;
                f.sync_all().map_err(key_file)?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(key_file(e)),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|_| SigningError::BadKey(path.display().to_string()))?;
        Ok(Ed25519Signer { pair })
    }
}

impl PackageSigner for Ed25519Signer {
    fn algorithm(&self) -> &'static str {
        "ed25519"
    }
    fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// Checks `signature` over `message` with `public_key` under the named algorithm.
pub fn verify(
    algorithm: &str,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), SigningError> {
    match algorithm {
        "ed25519" => UnparsedPublicKey::new(&ED25519, public_key)
            .verify(message, signature)
            .map_err(|_| SigningError::BadSignature),
        other => Err(SigningError::UnknownAlgorithm(other.to_owned())),
    }
}

/// A short, readable fingerprint of a public key (SHA-256, first 16 bytes, grouped), for
/// comparing over the phone with the copy the authorities registered.
pub fn fingerprint(public_key: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, public_key);
    d.as_ref()[..16]
        .chunks(2)
        .map(crate::audit::hex)
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_signs_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/k.pk8");
        let a = Ed25519Signer::load_or_create(&path).unwrap();
        let b = Ed25519Signer::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let sig = a.sign(b"manifest");
        assert!(verify("ed25519", &b.public_key(), b"manifest", &sig).is_ok());
        assert!(verify("ed25519", &b.public_key(), b"manifesT", &sig).is_err());
        assert!(verify("rsa", &b.public_key(), b"manifest", &sig).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fingerprint(&a.public_key()).len(), 39);
    }
}
