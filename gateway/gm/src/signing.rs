//! Signatures on packages that leave or enter the appliance — audit exports for the
//! authorities now, offline upgrade packages later — behind one trait. SM2 with SM3
//! (GB/T 32918, [`Sm2Signer`]) signs what the gateway makes; Ed25519 stays verifiable for
//! packages signed before the national-cipher keys.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::sm2::{self, Sm2PrivateKey, Sm2PublicKey};

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
    /// Algorithm name recorded in the package (`sm2-sm3`, `ed25519`).
    fn algorithm(&self) -> &'static str;
    /// The public key, as recorded in the package and registered with whoever checks it.
    fn public_key(&self) -> Vec<u8>;
    /// Signature over `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

/// Reads the PKCS#8 key at `path`, or creates it with `generate` (mode 0600, fsync'd) when
/// there is none.
fn load_or_create_pkcs8(
    path: &Path,
    generate: impl FnOnce() -> Option<Vec<u8>>,
) -> Result<Vec<u8>, SigningError> {
    let key_file = |source| SigningError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(der) => Ok(der),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let der = generate().ok_or_else(|| SigningError::BadKey(path.display().to_string()))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(key_file)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(key_file)?;
            f.write_all(&der).map_err(key_file)?;
            f.sync_all().map_err(key_file)?;
            Ok(der)
        }
        Err(e) => Err(key_file(e)),
    }
}

/// SM2 signatures over SM3 with the standard ID `1234567812345678`; the public key is the
/// uncompressed point (65 bytes).
pub struct Sm2Signer {
    key: Sm2PrivateKey,
}

impl Sm2Signer {
    /// Loads the PKCS#8 (DER) key at `path`, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Sm2Signer, SigningError> {
        let der = load_or_create_pkcs8(path, || Sm2PrivateKey::generate().to_pkcs8_der().ok())?;
        let key = Sm2PrivateKey::from_pkcs8_der(&der)
            .map_err(|_| SigningError::BadKey(path.display().to_string()))?;
        Ok(Sm2Signer { key })
    }
}

impl PackageSigner for Sm2Signer {
    fn algorithm(&self) -> &'static str {
        "sm2-sm3"
    }
    fn public_key(&self) -> Vec<u8> {
        self.key.public_key().to_sec1()
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        // A key that loaded always signs; an empty signature would only fail verification.
        self.key.sign(sm2::DEFAULT_ID, message).unwrap_or_default()
    }
}

/// Ed25519 (ring): packages signed before SM2 keys, and peers that cannot use SM2.
pub struct Ed25519Signer {
    pair: Ed25519KeyPair,
}

impl Ed25519Signer {
    /// Loads the PKCS#8 key at `path`, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Ed25519Signer, SigningError> {
        let der = load_or_create_pkcs8(path, || {
            Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .ok()
                .map(|d| d.as_ref().to_vec())
        })?;
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
        "sm2-sm3" => Sm2PublicKey::from_sec1(public_key)
            .and_then(|k| k.verify(sm2::DEFAULT_ID, message, signature))
            .map_err(|_| SigningError::BadSignature),
        "ed25519" => UnparsedPublicKey::new(&ED25519, public_key)
            .verify(message, signature)
            .map_err(|_| SigningError::BadSignature),
        other => Err(SigningError::UnknownAlgorithm(other.to_owned())),
    }
}

/// A short, readable fingerprint of a public key (SM3, first 16 bytes, grouped), for
/// comparing over the phone with the copy the authorities registered.
pub fn fingerprint(public_key: &[u8]) -> String {
    crate::sm3::sm3(public_key)[..16]
        .chunks(2)
        .map(crate::hex)
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sm2_key_signs_reloads_and_refuses_other_messages_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/sm2.pk8");
        let a = Sm2Signer::load_or_create(&path).unwrap();
        let b = Sm2Signer::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.public_key().len(), 65);
        let sig = a.sign(b"manifest");
        assert!(verify("sm2-sm3", &b.public_key(), b"manifest", &sig).is_ok());
        assert!(verify("sm2-sm3", &b.public_key(), b"manifesT", &sig).is_err());
        let other = Sm2Signer::load_or_create(&dir.path().join("other.pk8")).unwrap();
        assert!(verify("sm2-sm3", &other.public_key(), b"manifest", &sig).is_err());
        assert!(verify("ed25519", &b.public_key(), b"manifest", &sig).is_err());
        std::fs::write(dir.path().join("bad.pk8"), b"not a key").unwrap();
        assert!(matches!(
            Sm2Signer::load_or_create(&dir.path().join("bad.pk8")),
            Err(SigningError::BadKey(_))
        ));
    }

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
