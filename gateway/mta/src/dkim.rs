//! Outbound DKIM signing (RFC 6376) per sending domain: receivers check the `DKIM-Signature`
//! against the key the domain publishes in DNS, which DMARC needs to align outbound mail with
//! its From domain.
//!
//! The `[dkim]` section names, per domain, the selector that signs now:
//!
//! ```toml
//! [[dkim.domains]]
//! domain = "example.com"
//! selector = "jm2026a"
//! ```
//!
//! Its key is `data_dir/keys/<domain>/<selector>.pem` (PKCS#8 PEM, readable by the service
//! account only): RSA (2048 to 4096 bits, `rsa-sha256`) or Ed25519 (`ed25519-sha256`, RFC 8463),
//! the algorithm following the key. A domain may keep several selector files, so a key is
//! rotated without a gap: generate the next (`jianmen dkim keygen`), publish its TXT record,
//! switch `selector` once DNS has it, remove the old record a few days later. Only the
//! configured selector signs.
//!
//! [`DkimSigner`] loads every configured key at start — a missing, unreadable, badly protected
//! or unusable key stops the start there, naming the file — and signs a message by the domain
//! of its From header (relaxed/relaxed, with mail-auth and ring).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::Done;
use mail_parser::{HeaderName, MessageParser};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use crate::config::{ConfigError, is_domain_like};

/// The header fields signed, when present. mail-auth lists every instance present (bottom up)
/// and then each name of this list absent from the message once more, which signs its absence
/// (RFC 6376 §5.4): a Reply-To or Cc added on the way breaks the signature. `From` is listed
/// twice so that a second From field prepended later breaks it too (the reader's mail program
/// may show the top one).
pub const SIGNED_HEADERS: [&str; 13] = [
    "From",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Largest key file read: a 4096-bit RSA key in PEM is about 3.3 KB; anything far larger is
/// not a key and is not read into memory.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The bits of an RSA key `generate_key` makes: the size every receiver accepts and ring's
/// smallest (RFC 8301 requires at least 1024, recommends 2048).
const RSA_BITS: usize = 2048;

/// Why DKIM keys could not be loaded or made, or a message not signed.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// A `[dkim]` value is unusable.
    #[error("invalid value for `{key}`: {reason}")]
    Config {
        /// Dotted path of the key, e.g. `dkim.domains[0].selector`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is missing or unreadable.
    #[error("cannot read DKIM key {path} ({source}); make one with `jianmen dkim keygen`")]
    KeyFile {
        /// The file that was tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file may be read by others than its owner: anyone who can read it can sign
    /// mail as the domain.
    #[error("DKIM key {path} is readable by group or others (mode {mode:04o}): chmod 600 it")]
    KeyMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no key this gateway can sign with.
    #[error("DKIM key {path}: {reason}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The From header names several mailboxes of different domains, or there are several
    /// From fields: whose domain would vouch for the message is not clear.
    #[error("the From header names more than one domain (or there is more than one From field)")]
    AmbiguousFrom,
    /// mail-auth could not sign (a key that loaded signs; this is not expected).
    #[error("DKIM signing failed: {0}")]
    Sign(String),
    /// A new key could not be made.
    #[error("cannot generate a DKIM key: {0}")]
    Generate(String),
}

/// The `[dkim]` section: the sending domains whose outbound mail is signed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    /// One entry per signing domain (`[[dkim.domains]]`).
    pub domains: Vec<DkimDomain>,
}

/// A signing domain and the selector that signs now.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimDomain {
    /// The domain (`d=`): mail whose From address is in it is signed. Case and a trailing dot
    /// do not matter; an internationalised name is taken in its ASCII (xn--) form.
    pub domain: String,
    /// The selector (`s=`): the key is `data_dir/keys/<domain>/<selector>.pem` and its record
    /// `<selector>._domainkey.<domain>`.
    pub selector: String,
}

impl DkimConfig {
    /// Checks the names, so that `check-config` reports a bad one with its key before any key
    /// file is looked for.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.entries()
            .map(|_| ())
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })
    }

    /// The (domain, selector) pairs in the form they are used (lower case, ASCII), or the key
    /// and reason of the first bad value.
    fn entries(&self) -> Result<Vec<(String, String)>, (String, String)> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(self.domains.len());
        for (i, d) in self.domains.iter().enumerate() {
            let domain = normalise_domain(&d.domain);
            if !is_domain_like(&domain) {
                return Err((
                    format!("dkim.domains[{i}].domain"),
                    format!("`{}` is not a domain", d.domain),
                ));
            }
            if out.iter().any(|(seen, _)| *seen == domain) {
                return Err((
                    format!("dkim.domains[{i}].domain"),
                    format!("`{domain}` is listed more than once (one selector signs)"),
                ));
            }
            let selector = normalise_selector(&d.selector);
            if !is_domain_like(&selector) {
                return Err((
                    format!("dkim.domains[{i}].selector"),
                    format!(
                        "`{}` is not a selector (letters, digits, hyphens, dot-separated)",
                        d.selector
                    ),
                ));
            }
            out.push((domain, selector));
        }
        Ok(out)
    }
}

/// A domain as keys are filed and matched: trimmed, without a trailing dot, lower case, in
/// its ASCII form (an internationalised From domain matches its xn-- name).
pub fn normalise_domain(domain: &str) -> String {
    let trimmed = domain.trim().trim_end_matches('.');
    mail_auth::common::to_a_label(trimmed).to_ascii_lowercase()
}

/// A selector as keys are filed: DNS does not tell case apart, file names do.
pub fn normalise_selector(selector: &str) -> String {
    selector.trim().to_ascii_lowercase()
}

/// Where the key of `domain` and `selector` lives: `data_dir/keys/<domain>/<selector>.pem`.
/// Both names are checked first, as they become file names.
pub fn key_path(data_dir: &Path, domain: &str, selector: &str) -> Result<PathBuf, DkimError> {
    let (domain, selector) = (normalise_domain(domain), normalise_selector(selector));
    for (key, value) in [("domain", &domain), ("selector", &selector)] {
        if !is_domain_like(value) {
            return Err(DkimError::Config {
                key: key.into(),
                reason: format!("`{value}` is not a DNS name"),
            });
        }
    }
    Ok(data_dir
        .join("keys")
        .join(domain)
        .join(format!("{selector}.pem")))
}

/// The two key types DKIM signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// RSA, 2048 bits when generated (`k=rsa`, `a=rsa-sha256`): what every receiver checks.
    #[default]
    Rsa,
    /// Ed25519 (`k=ed25519`, `a=ed25519-sha256`, RFC 8463): short keys, but not every receiver
    /// checks it yet — sign with RSA too if it must count everywhere.
    Ed25519,
}

impl KeyAlgorithm {
    /// The `k=` tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A private key in one of the forms mail-auth signs with.
enum AnyKey {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

impl AnyKey {
    /// Reads a PEM private key: PKCS#8 (RSA or Ed25519) or PKCS#1 RSA (`openssl genrsa`).
    /// Ed25519 keys without their public half (OpenSSL's) are taken as well.
    fn from_pem(pem: &[u8]) -> Result<AnyKey, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("no PEM private key in it ({e})"))?;
        let rsa = |der| {
            RsaKey::<Sha256>::from_key_der(der).map_err(|e| {
                format!("not an RSA key ring accepts (PKCS#8 or PKCS#1, 2048 to 4096 bits): {e}")
            })
        };
        match der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                match Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()) {
                    Ok(key) => Ok(AnyKey::Ed25519(key)),
                    Err(ed) => rsa(PrivateKeyDer::Pkcs8(pkcs8))
                        .map(AnyKey::Rsa)
                        .map_err(|e| format!("{e}; nor an Ed25519 key: {ed}")),
                }
            }
            der @ PrivateKeyDer::Pkcs1(_) => rsa(der).map(AnyKey::Rsa),
            _ => Err("an EC key: DKIM signs with RSA or Ed25519 only".into()),
        }
    }

    fn algorithm(&self) -> KeyAlgorithm {
        match self {
            AnyKey::Rsa(_) => KeyAlgorithm::Rsa,
            AnyKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// The TXT record value that publishes this key's public half: for RSA the
    /// SubjectPublicKeyInfo (RFC 6376 §3.6.1), for Ed25519 the raw 32 bytes (RFC 8463 §4).
    fn txt_value(&self) -> Result<String, String> {
        use base64::Engine;
        let public = match self {
            AnyKey::Rsa(key) => {
                // ring gives the RSAPublicKey (PKCS#1); DNS takes it wrapped as an SPKI.
                use rsa::pkcs1::DecodeRsaPublicKey;
                use rsa::pkcs8::EncodePublicKey;
                let bad = |e: &dyn fmt::Display| format!("cannot encode the RSA public key: {e}");
                rsa::RsaPublicKey::from_pkcs1_der(&key.public_key())
                    .map_err(|e| bad(&e))?
                    .to_public_key_der()
                    .map_err(|e| bad(&e))?
                    .as_bytes()
                    .to_vec()
            }
            AnyKey::Ed25519(key) => key.public_key(),
        };
        Ok(format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm(),
            base64::engine::general_purpose::STANDARD.encode(public)
        ))
    }

    /// A mail-auth signer for `domain` and `selector` (relaxed/relaxed, the default).
    fn into_signer(self, domain: &str, selector: &str) -> Signer {
        match self {
            AnyKey::Rsa(key) => Signer::Rsa(
                mail_auth::dkim::DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED_HEADERS),
            ),
            AnyKey::Ed25519(key) => Signer::Ed25519(
                mail_auth::dkim::DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED_HEADERS),
            ),
        }
    }
}

/// One domain's ready signer (mail-auth's types differ per key type).
enum Signer {
    Rsa(mail_auth::dkim::DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(mail_auth::dkim::DkimSigner<Ed25519Key, Done>),
}

/// A signing domain's key, loaded.
struct DomainKey {
    selector: String,
    algorithm: KeyAlgorithm,
    txt_value: String,
    signer: Signer,
}

/// The keys of every configured signing domain, loaded at start; shared by the sessions
/// (`Send + Sync`). The default holds no key and signs nothing (no `[dkim]` section).
#[derive(Default)]
pub struct DkimSigner {
    /// By domain (lower case, ASCII).
    keys: BTreeMap<String, DomainKey>,
}

impl fmt::Debug for DkimSigner {
    /// Names domains and selectors, never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.keys
                    .iter()
                    .map(|(d, k)| (d, format!("{} ({})", k.selector, k.algorithm))),
            )
            .finish()
    }
}

/// A loaded key's public record, for an administrator to compare with DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// The signing domain.
    pub domain: String,
    /// The selector that signs.
    pub selector: String,
    /// RSA or Ed25519.
    pub algorithm: KeyAlgorithm,
    /// What `<selector>._domainkey.<domain>` must hold (`v=DKIM1; k=…; p=…`).
    pub txt_value: String,
}

impl DkimSigner {
    /// Loads the configured selector's key of every `[dkim]` domain from
    /// `data_dir/keys/<domain>/<selector>.pem`. A key that is missing, readable by group or
    /// others, or not an RSA (2048–4096 bits) or Ed25519 key is refused, naming the file: mail
    /// must not leave unsigned because a key went missing unnoticed.
    pub fn load(config: &DkimConfig, data_dir: &Path) -> Result<DkimSigner, DkimError> {
        let entries = config
            .entries()
            .map_err(|(key, reason)| DkimError::Config { key, reason })?;
        let mut keys = BTreeMap::new();
        for (domain, selector) in entries {
            let path = key_path(data_dir, &domain, &selector)?;
            let pem = read_key_file(&path)?;
            let key = AnyKey::from_pem(&pem).map_err(|reason| DkimError::BadKey {
                path: path.clone(),
                reason,
            })?;
            let txt_value = key
                .txt_value()
                .map_err(|reason| DkimError::BadKey { path, reason })?;
            let algorithm = key.algorithm();
            let signer = key.into_signer(&domain, &selector);
            keys.insert(
                domain,
                DomainKey {
                    selector,
                    algorithm,
                    txt_value,
                    signer,
                },
            );
        }
        Ok(DkimSigner { keys })
    }

    /// Whether no domain signs (no `[[dkim.domains]]`): the caller can skip parsing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The record each loaded key needs in DNS, by domain.
    pub fn published_keys(&self) -> Vec<PublishedKey> {
        self.keys
            .iter()
            .map(|(domain, k)| PublishedKey {
                domain: domain.clone(),
                selector: k.selector.clone(),
                algorithm: k.algorithm,
                txt_value: k.txt_value.clone(),
            })
            .collect()
    }

    /// Signs `message` (the bytes as they will be sent, CRLF line endings) with the key of its
    /// From domain. Returns the whole `DKIM-Signature: …\r\n` field to put on top of the
    /// message, unchanged bytes after it; `None` when the message is not this gateway's to
    /// sign: no From address in a domain with a key (no From, another domain, unparsable
    /// headers). `Some(Err)` is a message of a signing domain that cannot be signed: its From
    /// names other domains too ([`DkimError::AmbiguousFrom`]), or signing failed.
    pub fn sign(&self, message: &[u8]) -> Option<Result<String, DkimError>> {
        if self.keys.is_empty() {
            return None;
        }
        let parsed = MessageParser::new().parse_headers(message)?;
        let mut fields = 0;
        let mut domains = Vec::new();
        for value in parsed.header_values(HeaderName::From) {
            fields += 1;
            let addresses = value.as_address().into_iter().flat_map(|a| a.iter());
            domains.extend(
                addresses
                    .filter_map(|a| a.address()?.rsplit_once('@'))
                    .map(|(_, domain)| normalise_domain(domain)),
            );
        }
        let (domain, key) = domains
            .iter()
            .find_map(|d| self.keys.get_key_value(d.as_str()))?;
        if fields > 1 || domains.iter().any(|d| d != domain) {
            return Some(Err(DkimError::AmbiguousFrom));
        }
        let signature = match &key.signer {
            Signer::Rsa(s) => s.sign(message),
            Signer::Ed25519(s) => s.sign(message),
        };
        Some(
            signature
                .map(|s| s.to_header())
                .map_err(|e| DkimError::Sign(e.to_string())),
        )
    }
}

/// Reads a key file after checking, on the open file, that only its owner may read it.
fn read_key_file(path: &Path) -> Result<Vec<u8>, DkimError> {
    let key_file = |source| DkimError::KeyFile {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(key_file)?;
    let meta = file.metadata().map_err(key_file)?;
    if !meta.is_file() {
        return Err(DkimError::BadKey {
            path: path.to_owned(),
            reason: "not a regular file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(DkimError::KeyMode {
            path: path.to_owned(),
            mode,
        });
    }
    let mut pem = Vec::new();
    file.take(MAX_KEY_FILE)
        .read_to_end(&mut pem)
        .map_err(key_file)?;
    Ok(pem)
}

/// Makes a new private key: RSA of 2048 bits (the `rsa` crate: ring cannot generate RSA
/// keys; the key is only generated here, ring does the signing) or Ed25519 (ring). Returns
/// the key as PKCS#8 PEM, to be stored at [`key_path`] with mode 0600, and the TXT record
/// value that publishes it (`v=DKIM1; k=…; p=…`). The key is read back through the loader
/// before it is returned, so what is handed out is what [`DkimSigner::load`] accepts and
/// the record matches it.
pub fn generate_key(algorithm: KeyAlgorithm) -> Result<(String, String), DkimError> {
    let generate = |e: String| DkimError::Generate(e);
    let der = match algorithm {
        KeyAlgorithm::Rsa => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|e| generate(e.to_string()))?;
            key.to_pkcs8_der()
                .map_err(|e| generate(e.to_string()))?
                .as_bytes()
                .to_vec()
        }
        KeyAlgorithm::Ed25519 => {
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .map_err(|e| generate(e.to_string()))?
                .as_ref()
                .to_vec()
        }
    };
    let pem = jianmen_gm::cert::pem("PRIVATE KEY", &der);
    let key = AnyKey::from_pem(pem.as_bytes()).map_err(generate)?;
    if key.algorithm() != algorithm {
        return Err(generate(format!(
            "asked for {algorithm}, made {}",
            key.algorithm()
        )));
    }
    let txt = key.txt_value().map_err(generate)?;
    Ok((pem, txt))
}

/// The zone-file line that publishes `txt_value` for `selector` of `domain`:
/// `<selector>._domainkey.<domain>. IN TXT ( "…" "…" )`, the value cut into strings of at most
/// 255 characters (one TXT string's limit; receivers join them without spaces, RFC 6376
/// §3.6.2.2).
pub fn dns_record(domain: &str, selector: &str, txt_value: &str) -> String {
    let strings: Vec<String> = txt_value
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    format!(
        "{}._domainkey.{}. IN TXT ( {} )",
        normalise_selector(selector),
        normalise_domain(domain),
        strings.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::Arc;

    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey as PublicKey;
    use mail_auth::{
        AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    };

    use super::*;

    const MESSAGE: &str = "From: Alice <alice@Example.COM>\r\n\
        To: bob@outside.test\r\n\
        Subject: quarterly figures\r\n\
        Date: Mon, 2 Mar 2026 10:00:00 +0800\r\n\
        Message-ID: <q1@example.com>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        \r\n\
        The figures are attached.\r\n";

    /// DNS answers from a table: mail-auth looks in the TXT cache before asking DNS.
    struct Records(HashMap<Box<str>, Txt>);

    impl ResolverCache<Box<str>, Txt> for Records {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.get(name).cloned()
        }
        fn remove<Q>(&self, _: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            None
        }
        fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
    }

    /// A data directory with a fresh key for `domain`/`selector` written with `mode`; returns
    /// it and the key's TXT value.
    fn data_dir_with_key(
        domain: &str,
        selector: &str,
        algorithm: KeyAlgorithm,
        mode: u32,
    ) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let (pem, txt) = generate_key(algorithm).unwrap();
        let path = key_path(dir.path(), domain, selector).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, pem.as_bytes()).unwrap();
        // The umask may have taken bits away from `mode`: set exactly what the test means.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, txt)
    }

    fn config(domain: &str, selector: &str) -> DkimConfig {
        DkimConfig {
            domains: vec![DkimDomain {
                domain: domain.into(),
                selector: selector.into(),
            }],
        }
    }

    /// What mail-auth's own verifier says of `signed`, with `txt` as the only DNS record.
    async fn verify(signed: &[u8], name: &str, txt: &str) -> Vec<DkimResult> {
        let record = PublicKey::parse(txt.as_bytes()).unwrap();
        let records = Records(HashMap::from([(
            Box::from(name),
            Txt::DomainKey(Arc::new(record)),
        )]));
        let message = AuthenticatedMessage::parse(signed).unwrap();
        let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
        authenticator
            .verify_dkim(Parameters::new(&message).with_txt_cache(&records))
            .await
            .into_iter()
            .map(|o| o.result().clone())
            .collect()
    }

    async fn signs_and_verifies(algorithm: KeyAlgorithm, tag: &str) {
        let (dir, txt) = data_dir_with_key("example.com", "jm2026a", algorithm, 0o600);
        assert!(
            txt.starts_with(&format!("v=DKIM1; k={algorithm}; p=")),
            "{txt}"
        );
        let signer = DkimSigner::load(&config("Example.com.", "jm2026a"), dir.path()).unwrap();
        let header = signer.sign(MESSAGE.as_bytes()).unwrap().unwrap();
        assert!(header.starts_with("DKIM-Signature: v=1; a="), "{header}");
        assert!(header.ends_with(";\r\n"), "{header}");
        for part in [tag, "d=example.com", "s=jm2026a", "c=relaxed/relaxed"] {
            assert!(header.contains(part), "{part} missing from {header}");
        }
        let signed = format!("{header}{MESSAGE}");
        let name = "jm2026a._domainkey.example.com.";
        assert_eq!(
            verify(signed.as_bytes(), name, &txt).await,
            vec![DkimResult::Pass]
        );
        // mail-auth calls a body hash mismatch neutral (the scanner counts it as a failure).
        let body = signed.replace("attached", "enclosed");
        let result = verify(body.as_bytes(), name, &txt).await;
        assert!(
            matches!(
                result.as_slice(),
                [DkimResult::Neutral(mail_auth::Error::Dkim(
                    mail_auth::dkim::DkimError::FailedBodyHashMatch
                ))]
            ),
            "a changed body must fail: {result:?}"
        );
        let subject = signed.replace("quarterly", "yearly");
        let result = verify(subject.as_bytes(), name, &txt).await;
        assert!(
            matches!(result.as_slice(), [DkimResult::Fail(_)]),
            "a changed Subject must fail: {result:?}"
        );
        assert_eq!(
            signer.published_keys(),
            vec![PublishedKey {
                domain: "example.com".into(),
                selector: "jm2026a".into(),
                algorithm,
                txt_value: txt,
            }]
        );
    }

    #[tokio::test]
    async fn rsa_signatures_verify_with_mail_auth() {
        signs_and_verifies(KeyAlgorithm::Rsa, "a=rsa-sha256").await;
    }

    #[tokio::test]
    async fn ed25519_signatures_verify_with_mail_auth() {
        signs_and_verifies(KeyAlgorithm::Ed25519, "a=ed25519-sha256").await;
    }

    #[test]
    fn present_headers_are_signed_and_absent_ones_sealed() {
        let (dir, _) = data_dir_with_key("example.com", "s1", KeyAlgorithm::Ed25519, 0o600);
        let signer = DkimSigner::load(&config("example.com", "s1"), dir.path()).unwrap();
        let header = signer.sign(MESSAGE.as_bytes()).unwrap().unwrap();
        let unfolded = header.replace("\r\n\t", " ");
        let h = unfolded
            .split(';')
            .find_map(|tag| tag.trim().strip_prefix("h="))
            .unwrap();
        let names: Vec<&str> = h.split(':').map(str::trim).collect();
        // Present fields bottom up, then the absent names (From again: the oversigning).
        assert_eq!(
            names,
            [
                "Content-Type",
                "MIME-Version",
                "Message-ID",
                "Date",
                "Subject",
                "To",
                "From",
                "From",
                "Cc",
                "Reply-To",
                "In-Reply-To",
                "References",
                "Content-Transfer-Encoding"
            ]
        );
    }

    #[test]
    fn the_dkim_section_is_parsed_strictly_and_checked_with_the_configuration() {
        let base = "[server]\nhostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n\
                    [domains]\nprotected = [\"example.com\"]\n";
        let none = crate::config::Config::parse(base).unwrap();
        assert!(none.dkim.domains.is_empty());
        let two = crate::config::Config::parse(&format!(
            "{base}[[dkim.domains]]\ndomain = \"example.com\"\nselector = \"jm2026a\"\n\
             [[dkim.domains]]\ndomain = \"example.org\"\nselector = \"e1\"\n"
        ))
        .unwrap();
        assert_eq!(two.dkim.domains.len(), 2);
        assert_eq!(two.dkim.domains[1].selector, "e1");
        let unknown = crate::config::Config::parse(&format!(
            "{base}[[dkim.domains]]\ndomain = \"example.com\"\nselector = \"s\"\nkey = \"/k.pem\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("key"), "{unknown}");
        let bad = crate::config::Config::parse(&format!(
            "{base}[[dkim.domains]]\ndomain = \"example.com\"\nselector = \"a/b\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(bad.contains("dkim.domains[0].selector"), "{bad}");
    }

    #[test]
    fn a_key_others_can_read_is_refused_by_name() {
        let (dir, _) = data_dir_with_key("example.com", "jm", KeyAlgorithm::Ed25519, 0o644);
        let err = DkimSigner::load(&config("example.com", "jm"), dir.path()).unwrap_err();
        assert!(
            matches!(err, DkimError::KeyMode { mode: 0o644, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("keys/example.com/jm.pem is readable by group or others"),
            "{err}"
        );
        let (dir, _) = data_dir_with_key("example.com", "jm", KeyAlgorithm::Ed25519, 0o640);
        assert!(DkimSigner::load(&config("example.com", "jm"), dir.path()).is_err());
    }

    #[test]
    fn a_missing_key_or_a_bad_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = DkimSigner::load(&config("example.com", "gone"), dir.path()).unwrap_err();
        assert!(matches!(err, DkimError::KeyFile { .. }), "{err}");
        assert!(err.to_string().contains("example.com/gone.pem"), "{err}");
        for (domain, selector, key) in [
            ("exa mple.com", "s", "dkim.domains[0].domain"),
            ("../etc", "s", "dkim.domains[0].domain"),
            ("example.com", "../../x", "dkim.domains[0].selector"),
            ("example.com", "", "dkim.domains[0].selector"),
        ] {
            let err = DkimSigner::load(&config(domain, selector), dir.path()).unwrap_err();
            assert!(err.to_string().contains(key), "{domain} {selector}: {err}");
            assert!(config(domain, selector).validate().is_err());
        }
        let twice = DkimConfig {
            domains: vec![
                config("example.com", "a").domains.remove(0),
                config("EXAMPLE.com", "b").domains.remove(0),
            ],
        };
        let err = twice.validate().unwrap_err().to_string();
        assert!(err.contains("dkim.domains[1].domain"), "{err}");
    }

    #[test]
    fn a_file_that_is_no_usable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path(), "example.com", "s").unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        for content in [
            "not a key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = DkimSigner::load(&config("example.com", "s"), dir.path()).unwrap_err();
            assert!(matches!(err, DkimError::BadKey { .. }), "{err}");
        }
    }

    #[test]
    fn mail_from_other_domains_or_without_from_is_not_signed() {
        let (dir, _) = data_dir_with_key("example.com", "s1", KeyAlgorithm::Ed25519, 0o600);
        let signer = DkimSigner::load(&config("example.com", "s1"), dir.path()).unwrap();
        let other = MESSAGE.replace("alice@Example.COM", "alice@example.org");
        assert!(signer.sign(other.as_bytes()).is_none());
        let sub = MESSAGE.replace("alice@Example.COM", "alice@mail.example.com");
        assert!(
            signer.sign(sub.as_bytes()).is_none(),
            "subdomains sign with their own keys"
        );
        let no_from = MESSAGE.replace("From: Alice <alice@Example.COM>\r\n", "");
        assert!(signer.sign(no_from.as_bytes()).is_none());
        let empty = DkimSigner::load(&DkimConfig::default(), dir.path()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.sign(MESSAGE.as_bytes()).is_none());
        assert!(DkimSigner::default().sign(MESSAGE.as_bytes()).is_none());
    }

    #[test]
    fn a_from_of_several_domains_is_not_signed_for_one_of_them() {
        let (dir, _) = data_dir_with_key("example.com", "s1", KeyAlgorithm::Ed25519, 0o600);
        let signer = DkimSigner::load(&config("example.com", "s1"), dir.path()).unwrap();
        let mixed = MESSAGE.replace(
            "From: Alice <alice@Example.COM>",
            "From: Alice <alice@example.com>, Mallory <m@evil.test>",
        );
        assert!(matches!(
            signer.sign(mixed.as_bytes()),
            Some(Err(DkimError::AmbiguousFrom))
        ));
        let two_fields = format!("From: m@evil.test\r\n{MESSAGE}");
        assert!(matches!(
            signer.sign(two_fields.as_bytes()),
            Some(Err(DkimError::AmbiguousFrom))
        ));
        let same = MESSAGE.replace(
            "From: Alice <alice@Example.COM>",
            "From: alice@example.com, carol@EXAMPLE.com",
        );
        assert!(matches!(signer.sign(same.as_bytes()), Some(Ok(_))));
    }

    #[test]
    fn garbage_does_not_panic() {
        let (dir, _) = data_dir_with_key("example.com", "s1", KeyAlgorithm::Ed25519, 0o600);
        let signer = DkimSigner::load(&config("example.com", "s1"), dir.path()).unwrap();
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\r\n\r\n".to_vec(),
            b"From:".to_vec(),
            b"From: @\r\n".to_vec(),
            b"From: alice@example.com".to_vec(),
            b"From: alice@example.com\r\n".to_vec(),
            b"From: alice@example.com\n\nbare LF\n".to_vec(),
            b"From: =?utf-8?b?////?= <alice@example.com>\r\n\r\nx".to_vec(),
            b"\xff\xfe\x00From: alice@example.com\r\n\r\n".to_vec(),
            "From: a@例子.公司\r\n\r\n".as_bytes().to_vec(),
        ];
        let mut noise = 0x2545_f491_u32;
        for len in [1, 7, 100, 5000] {
            let mut bytes = b"From: alice@example.com\r\n".to_vec();
            for _ in 0..len {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                bytes.push(noise as u8);
            }
            inputs.push(bytes);
        }
        for input in inputs {
            let _ = signer.sign(&input);
        }
    }

    #[test]
    fn international_domains_match_their_ascii_form() {
        let (dir, _) =
            data_dir_with_key("xn--fsqu00a.xn--55qx5d", "s1", KeyAlgorithm::Ed25519, 0o600);
        let signer = DkimSigner::load(&config("例子.公司", "s1"), dir.path()).unwrap();
        let message = MESSAGE.replace("alice@Example.COM", "alice@例子.公司");
        let header = signer.sign(message.as_bytes()).unwrap().unwrap();
        assert!(header.contains("d=xn--fsqu00a.xn--55qx5d"), "{header}");
    }

    #[test]
    fn the_dns_record_splits_long_values_into_strings() {
        let (_, txt) = generate_key(KeyAlgorithm::Rsa).unwrap();
        assert!(txt.len() > 255, "{txt}");
        let line = dns_record("Example.com", "JM2026a", &txt);
        let prefix = "jm2026a._domainkey.example.com. IN TXT ( \"";
        assert!(line.starts_with(prefix), "{line}");
        assert!(line.ends_with("\" )"), "{line}");
        let inner = &line[prefix.len()..line.len() - 3];
        let strings: Vec<&str> = inner.split("\" \"").collect();
        assert!(
            strings.len() == 2 && strings.iter().all(|s| s.len() <= 255),
            "{line}"
        );
        assert_eq!(strings.concat(), txt);
        let (_, short) = generate_key(KeyAlgorithm::Ed25519).unwrap();
        assert_eq!(
            dns_record("example.com", "e1", &short),
            format!("e1._domainkey.example.com. IN TXT ( \"{short}\" )")
        );
    }
}
