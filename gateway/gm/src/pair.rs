//! Certificate and key pairs offered for the gateway to serve (uploaded in the console as PEM
//! or PKCS#12, or issued for a request made here). An administrator's mistake must be refused
//! before it is served, not discovered when clients fail: the key must belong to the
//! certificate, the certificate must be in date and suit its use (an SM2 key for the national
//! roles, encryption for TLCP's second certificate). A name that does not cover the host name
//! is only a warning, since many sites serve their MX under another name.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use x509_parser::prelude::*;

use crate::cert;
use crate::sm2::{Sm2PrivateKey, Sm2PublicKey};
use crate::tls::Identity;

/// Largest upload accepted (PEM text or PKCS#12), far above any real chain.
pub const MAX_UPLOAD: usize = 256 * 1024;
/// Most certificates in a chain.
pub const MAX_CHAIN: usize = 10;
/// Days before expiry from which an offered certificate earns a warning.
const SHORT_VALIDITY_DAYS: i64 = 30;

/// What a served certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertRole {
    /// The international (RSA/ECDSA) certificate of TLS 1.2/1.3.
    International,
    /// The SM2 signing certificate of RFC 8998 and TLCP.
    Sm2Signing,
    /// TLCP's SM2 encryption certificate.
    Sm2Encryption,
}

impl CertRole {
    /// Every role, in the order the console lists them.
    pub const ALL: [CertRole; 3] = [
        CertRole::International,
        CertRole::Sm2Signing,
        CertRole::Sm2Encryption,
    ];

    /// The role's name in files, URLs and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            CertRole::International => "international",
            CertRole::Sm2Signing => "sm2-signing",
            CertRole::Sm2Encryption => "sm2-encryption",
        }
    }

    /// The role called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        CertRole::ALL.into_iter().find(|r| r.as_str() == name)
    }

    fn wants_sm2(self) -> bool {
        self != CertRole::International
    }
}

/// Why an offered pair was refused.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// The upload is larger than [`MAX_UPLOAD`] or the chain longer than [`MAX_CHAIN`].
    #[error("too large: at most {MAX_CHAIN} certificates and {MAX_UPLOAD} bytes")]
    TooLarge,
    /// The certificate text held no certificate, or one that is not X.509.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The key could not be read.
    #[error("private key: {0}")]
    Key(String),
    /// The PKCS#12 file could not be opened.
    #[error("PKCS#12: {0}")]
    Pkcs12(String),
    /// The key is not the certificate's.
    #[error("the private key does not belong to the certificate")]
    Mismatch,
    /// The certificate is outside its validity period.
    #[error("the certificate is not valid now (valid from {from} until {until}, Unix time)")]
    OutOfDate {
        /// notBefore.
        from: i64,
        /// notAfter.
        until: i64,
    },
    /// The certificate does not suit its role.
    #[error("{0}")]
    Unsuitable(String),
    /// A key for a request could not be made.
    #[error("request: {0}")]
    Request(String),
}

/// Something worth telling the administrator about a pair that was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum PairWarning {
    /// The names do not cover the gateway's host name.
    NameMismatch {
        /// The host name.
        hostname: String,
    },
    /// It expires within 30 days.
    ExpiresSoon {
        /// Whole days left.
        days: i64,
    },
    /// Issuer and subject are the same.
    SelfSigned,
    /// The certificates after the first do not each issue the one before.
    ChainOrder,
}

/// Reads a PEM chain and a PEM key (PKCS#8, encrypted PKCS#8 with `password`, PKCS#1 or SEC1);
/// the key may follow the chain in the same text (`key_pem` then repeats it or is that text).
pub fn from_pem(
    chain_pem: &[u8],
    key_pem: &[u8],
    password: Option<&[u8]>,
) -> Result<Identity, PairError> {
    if chain_pem.len() + key_pem.len() > MAX_UPLOAD {
        return Err(PairError::TooLarge);
    }
    let chain = chain_from_pem(chain_pem)?;
    let text = std::str::from_utf8(key_pem).map_err(|_| PairError::Key("not PEM text".into()))?;
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let key = if let Some(start) = text.find(BEGIN) {
        let password = password
            .filter(|p| !p.is_empty())
            .ok_or_else(|| PairError::Key("the key is encrypted: give its password".into()))?;
        let block = text[start..]
            .find(END)
            .map(|end| &text[start..start + end + END.len()])
            .ok_or_else(|| PairError::Key("the encrypted key is cut short".into()))?;
        let der = crate::decrypt_pkcs8_pem(block, password)
            .map_err(|e| PairError::Key(format!("cannot decrypt: {e}")))?;
        PrivateKeyDer::Pkcs8(der.into())
    } else {
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| PairError::Key(e.to_string()))?
    };
    Ok(Identity { chain, key })
}

/// Reads a PEM certificate chain, leaf first.
pub fn chain_from_pem(chain_pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PairError> {
    if chain_pem.len() > MAX_UPLOAD {
        return Err(PairError::TooLarge);
    }
    let mut chain = Vec::new();
    for c in CertificateDer::pem_slice_iter(chain_pem) {
        if chain.len() == MAX_CHAIN {
            return Err(PairError::TooLarge);
        }
        chain.push(c.map_err(|e| PairError::Certificate(e.to_string()))?);
    }
    if chain.is_empty() {
        return Err(PairError::Certificate("no certificate found".into()));
    }
    Ok(chain)
}

/// Opens a PKCS#12 (.p12/.pfx) file: its key and the certificates that go with it.
pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Identity, PairError> {
    if der.len() > MAX_UPLOAD {
        return Err(PairError::TooLarge);
    }
    let store = p12_keystore::KeyStore::from_pkcs12(
        der,
        password,
        p12_keystore::Pkcs12ImportPolicy::default(),
    )
    .map_err(|e| PairError::Pkcs12(e.to_string()))?;
    let (_, found) = store
        .private_key_chain()
        .ok_or_else(|| PairError::Pkcs12("it holds no private key with a certificate".into()))?;
    if found.certs().len() > MAX_CHAIN {
        return Err(PairError::TooLarge);
    }
    let chain: Vec<CertificateDer<'static>> = found
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if chain.is_empty() {
        return Err(PairError::Pkcs12("it holds no certificate".into()));
    }
    Ok(Identity {
        chain,
        key: PrivateKeyDer::Pkcs8(found.key().as_der().to_vec().into()),
    })
}

/// Checks that `identity` may serve as `role` for `hostname` at `now` (Unix time); what is
/// worth saying about an acceptable pair comes back as warnings.
pub fn check(
    identity: &Identity,
    role: CertRole,
    hostname: &str,
    now: i64,
) -> Result<Vec<PairWarning>, PairError> {
    let leaf_der = identity
        .chain
        .first()
        .ok_or_else(|| PairError::Certificate("no certificate found".into()))?;
    let (_, leaf) = X509Certificate::from_der(leaf_der)
        .map_err(|e| PairError::Certificate(format!("not X.509: {e}")))?;
    let spki = leaf.public_key();
    if role.wants_sm2() {
        let key = sm2_key(&identity.key)?;
        let served = Sm2PublicKey::from_sec1(&spki.subject_public_key.data).map_err(|_| {
            PairError::Unsuitable("this role needs an SM2 certificate (GB/T 32918)".into())
        })?;
        if key.public_key().to_sec1() != served.to_sec1() {
            return Err(PairError::Mismatch);
        }
    } else {
        let signer =
            rustls::crypto::ring::sign::any_supported_type(&identity.key).map_err(|_| {
                PairError::Unsuitable(
                    "the international certificate needs an RSA, ECDSA or Ed25519 key".into(),
                )
            })?;
        let public = signer
            .public_key()
            .ok_or_else(|| PairError::Key("its public half cannot be derived".into()))?;
        if public.as_ref() != spki.raw {
            return Err(PairError::Mismatch);
        }
    }
    let from = leaf.validity().not_before.timestamp();
    let until = leaf.validity().not_after.timestamp();
    if now < from || now > until {
        return Err(PairError::OutOfDate { from, until });
    }
    suits(&leaf, role)?;
    let mut warnings = Vec::new();
    if !names_host(&leaf, hostname) {
        warnings.push(PairWarning::NameMismatch {
            hostname: hostname.to_owned(),
        });
    }
    let days = (until - now).div_euclid(86_400);
    if days < SHORT_VALIDITY_DAYS {
        warnings.push(PairWarning::ExpiresSoon { days });
    }
    if leaf.subject() == leaf.issuer() {
        warnings.push(PairWarning::SelfSigned);
    }
    let parsed: Vec<_> = identity
        .chain
        .iter()
        .filter_map(|c| X509Certificate::from_der(c).ok().map(|(_, c)| c))
        .collect();
    if parsed.len() != identity.chain.len()
        || parsed.windows(2).any(|w| w[0].issuer() != w[1].subject())
    {
        warnings.push(PairWarning::ChainOrder);
    }
    Ok(warnings)
}

/// The key usages a role needs, where the certificate limits them.
fn suits(leaf: &X509Certificate<'_>, role: CertRole) -> Result<(), PairError> {
    if let Ok(Some(usage)) = leaf.key_usage() {
        let u = usage.value;
        let fits = match role {
            CertRole::Sm2Encryption => {
                u.key_encipherment() || u.key_agreement() || u.data_encipherment()
            }
            CertRole::Sm2Signing => u.digital_signature(),
            // rustls signs every handshake (ECDHE only): key encipherment alone will not do.
            CertRole::International => u.digital_signature(),
        };
        if !fits {
            return Err(PairError::Unsuitable(match role {
                CertRole::Sm2Encryption => {
                    "TLCP's encryption certificate needs key usage keyEncipherment".into()
                }
                _ => "the certificate's key usage does not allow digitalSignature".into(),
            }));
        }
    }
    if role != CertRole::Sm2Encryption
        && let Ok(Some(eku)) = leaf.extended_key_usage()
        && !(eku.value.server_auth || eku.value.any)
    {
        return Err(PairError::Unsuitable(
            "the certificate's extended key usage does not allow serverAuth".into(),
        ));
    }
    Ok(())
}

/// Whether the certificate names `hostname` (a `*.` name covers one label).
fn names_host(leaf: &X509Certificate<'_>, hostname: &str) -> bool {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let covers = |name: &str| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => name == host,
        }
    };
    match leaf.subject_alternative_name() {
        Ok(Some(san)) => san.value.general_names.iter().any(|n| match n {
            GeneralName::DNSName(d) => covers(d),
            _ => false,
        }),
        _ => leaf
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .any(covers),
    }
}

fn sm2_key(key: &PrivateKeyDer<'_>) -> Result<Sm2PrivateKey, PairError> {
    let parsed = match key {
        PrivateKeyDer::Pkcs8(k) => Sm2PrivateKey::from_pkcs8_der(k.secret_pkcs8_der()),
        PrivateKeyDer::Sec1(k) => Sm2PrivateKey::from_sec1_der(k.secret_sec1_der()),
        _ => return Err(PairError::Unsuitable("this role needs an SM2 key".into())),
    };
    parsed.map_err(|_| PairError::Unsuitable("this role needs an SM2 key".into()))
}

/// The pair as PEM text, chain then key, as the gateway stores it.
pub fn to_pem(identity: &Identity) -> (String, String) {
    let chain = identity
        .chain
        .iter()
        .map(|c| cert::pem("CERTIFICATE", c))
        .collect();
    let key = match &identity.key {
        PrivateKeyDer::Pkcs1(k) => cert::pem("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => cert::pem("EC PRIVATE KEY", k.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(k) => cert::pem("PRIVATE KEY", k.secret_pkcs8_der()),
        _ => String::new(),
    };
    (chain, key)
}

/// A new private key for `role` and a certificate request for `hostname` signed by it, both as
/// PEM: ECDSA P-256 for the international role, SM2 (with the role's key usage) otherwise.
pub fn request(role: CertRole, hostname: &str) -> Result<(String, String), PairError> {
    let failed = |e: String| PairError::Request(e);
    match role {
        CertRole::International => {
            let mut params = rcgen::CertificateParams::new(vec![hostname.to_owned()])
                .map_err(|e| failed(e.to_string()))?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, hostname);
            let key = rcgen::KeyPair::generate().map_err(|e| failed(e.to_string()))?;
            let csr = params
                .serialize_request(&key)
                .and_then(|r| r.pem())
                .map_err(|e| failed(e.to_string()))?;
            Ok((key.serialize_pem(), csr))
        }
        CertRole::Sm2Signing | CertRole::Sm2Encryption => {
            let usage = if role == CertRole::Sm2Signing {
                cert::Usage::Signing
            } else {
                cert::Usage::Encryption
            };
            let key = Sm2PrivateKey::generate();
            let csr = cert::request(&key, hostname, usage).map_err(|e| failed(e.to_string()))?;
            let key_pem = key.to_pkcs8_pem().map_err(|e| failed(e.to_string()))?;
            Ok((key_pem, cert::pem("CERTIFICATE REQUEST", &csr)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "mx.example.com";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn sm2_pair(usage: cert::Usage, days: i64) -> (String, String) {
        let key = Sm2PrivateKey::generate();
        let der = cert::self_signed(&key, HOST, days, usage).unwrap();
        (cert::pem("CERTIFICATE", &der), key.to_pkcs8_pem().unwrap())
    }

    #[test]
    fn an_international_pair_is_checked_and_round_trips_through_pem() {
        let generated = Identity::self_signed(HOST).unwrap();
        let (chain, key) = to_pem(&generated);
        let read = from_pem(chain.as_bytes(), key.as_bytes(), None).unwrap();
        let warnings = check(&read, CertRole::International, HOST, now()).unwrap();
        assert!(warnings.contains(&PairWarning::SelfSigned));
        assert!(
            !warnings
                .iter()
                .any(|w| matches!(w, PairWarning::NameMismatch { .. }))
        );
        let other = check(&read, CertRole::International, "mail.other.org", now()).unwrap();
        assert!(
            other
                .iter()
                .any(|w| matches!(w, PairWarning::NameMismatch { .. }))
        );
        // Not an SM2 certificate.
        assert!(matches!(
            check(&read, CertRole::Sm2Signing, HOST, now()),
            Err(PairError::Unsuitable(_))
        ));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (chain, _) = to_pem(&Identity::self_signed(HOST).unwrap());
        let (_, key) = to_pem(&Identity::self_signed(HOST).unwrap());
        let mixed = from_pem(chain.as_bytes(), key.as_bytes(), None).unwrap();
        assert!(matches!(
            check(&mixed, CertRole::International, HOST, now()),
            Err(PairError::Mismatch)
        ));
        let (sm_chain, _) = sm2_pair(cert::Usage::Signing, 90);
        let (_, sm_key) = sm2_pair(cert::Usage::Signing, 90);
        let mixed = from_pem(sm_chain.as_bytes(), sm_key.as_bytes(), None).unwrap();
        assert!(matches!(
            check(&mixed, CertRole::Sm2Signing, HOST, now()),
            Err(PairError::Mismatch)
        ));
    }

    #[test]
    fn sm2_roles_need_their_key_usage_and_dates_are_enforced() {
        let (chain, key) = sm2_pair(cert::Usage::Signing, 90);
        let signing = from_pem(chain.as_bytes(), key.as_bytes(), None).unwrap();
        assert!(check(&signing, CertRole::Sm2Signing, HOST, now()).is_ok());
        assert!(matches!(
            check(&signing, CertRole::Sm2Encryption, HOST, now()),
            Err(PairError::Unsuitable(_))
        ));
        let (chain, key) = sm2_pair(cert::Usage::Encryption, 10);
        let enc = from_pem(chain.as_bytes(), key.as_bytes(), None).unwrap();
        let warnings = check(&enc, CertRole::Sm2Encryption, HOST, now()).unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| matches!(w, PairWarning::ExpiresSoon { .. }))
        );
        assert!(matches!(
            check(&enc, CertRole::Sm2Encryption, HOST, now() + 20 * 86_400),
            Err(PairError::OutOfDate { .. })
        ));
    }

    #[test]
    fn garbage_and_oversized_uploads_are_refused_plainly() {
        assert!(matches!(
            from_pem(b"hello", b"world", None),
            Err(PairError::Certificate(_))
        ));
        let (chain, _) = sm2_pair(cert::Usage::Signing, 90);
        assert!(matches!(
            from_pem(
                chain.as_bytes(),
                b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
                None
            ),
            Err(PairError::Key(_))
        ));
        assert!(matches!(
            from_pem(&vec![b'a'; MAX_UPLOAD + 1], b"", None),
            Err(PairError::TooLarge)
        ));
        let long = chain.repeat(MAX_CHAIN + 1);
        assert!(matches!(
            chain_from_pem(long.as_bytes()),
            Err(PairError::TooLarge)
        ));
        assert!(matches!(
            from_pkcs12(b"\x30\x03\x02\x01\x03", "x"),
            Err(PairError::Pkcs12(_))
        ));
    }

    /// An encrypted key names its own derivation cost: one past the bound is refused before
    /// any work, one written as OpenSSL writes it opens; key and chain may share one text.
    #[test]
    fn encrypted_keys_open_within_a_bounded_cost() {
        let key = Sm2PrivateKey::generate();
        let der = cert::self_signed(&key, HOST, 90, cert::Usage::Signing).unwrap();
        let chain = cert::pem("CERTIFICATE", &der);
        let sealed = key.to_pkcs8_encrypted_pem(b"s3cret").unwrap();
        let combined = format!("{chain}{sealed}");
        let opened = from_pem(combined.as_bytes(), combined.as_bytes(), Some(b"s3cret")).unwrap();
        assert!(check(&opened, CertRole::Sm2Signing, HOST, now()).is_ok());
        // The same key asking for 2^24 scrypt blocks (2 GiB), or 2^30 PBKDF2 rounds.
        use pkcs8::der::{Decode, Encode};
        let (_, der) = pkcs8::der::pem::decode_vec(sealed.as_bytes()).unwrap();
        let mut info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der).unwrap();
        let pkcs8::pkcs5::EncryptionScheme::Pbes2(params) = &mut info.encryption_algorithm else {
            panic!("PBES2")
        };
        match &mut params.kdf {
            pkcs8::pkcs5::pbes2::Kdf::Scrypt(s) => s.cost_parameter = 1 << 24,
            pkcs8::pkcs5::pbes2::Kdf::Pbkdf2(p) => p.iteration_count = 1 << 30,
            _ => panic!("a KDF this test does not know"),
        }
        let costly = cert::pem("ENCRYPTED PRIVATE KEY", &info.to_der().unwrap());
        let refused = from_pem(chain.as_bytes(), costly.as_bytes(), Some(b"s3cret"));
        assert!(
            matches!(&refused, Err(PairError::Key(why)) if why.contains("too much work")),
            "{refused:?}"
        );
    }

    #[test]
    fn a_pkcs12_file_yields_its_key_and_chain() {
        let generated = Identity::self_signed(HOST).unwrap();
        let PrivateKeyDer::Pkcs8(pkcs8) = &generated.key else {
            panic!("rcgen makes PKCS#8 keys")
        };
        let cert = p12_keystore::Certificate::from_der(&generated.chain[0]).unwrap();
        let chain = p12_keystore::PrivateKeyChain::new(
            vec![1u8; 20],
            p12_keystore::PrivateKey::from_der(pkcs8.secret_pkcs8_der()).unwrap(),
            [cert],
        );
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry("gw", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        let der = store.writer("s3cret").write().unwrap();
        assert!(matches!(
            from_pkcs12(&der, "wrong"),
            Err(PairError::Pkcs12(_))
        ));
        let opened = from_pkcs12(&der, "s3cret").unwrap();
        assert_eq!(opened.chain, generated.chain);
        assert!(check(&opened, CertRole::International, HOST, now()).is_ok());
    }

    #[test]
    fn requests_are_made_for_every_role() {
        for role in CertRole::ALL {
            let (key, csr) = request(role, HOST).unwrap();
            assert!(
                csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
                "{csr}"
            );
            assert!(key.contains("PRIVATE KEY-----"));
            assert_eq!(CertRole::parse(role.as_str()), Some(role));
        }
    }
}
