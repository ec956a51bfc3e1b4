//! What the certificates the gateway serves say about themselves — subject, issuer, names,
//! validity — for the console's system page and its expiry warnings. Read from the configured
//! PEM files; nothing here verifies a chain (the handshake code does that for peers).

use std::path::Path;

use serde::Serialize;

use super::tls::TlsConfig;

/// Days before expiry from which a certificate is flagged.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One certificate the gateway presents.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// `international`, `sm2-signing` or `sm2-encryption`.
    pub role: &'static str,
    /// The PEM file, or `None` for one generated at start (self-signed).
    pub file: Option<String>,
    /// Subject, as X.509 prints it.
    pub subject: String,
    /// Issuer, as X.509 prints it.
    pub issuer: String,
    /// DNS names of the subject alternative names.
    pub names: Vec<String>,
    /// Valid from (Unix time).
    pub not_before: i64,
    /// Valid until (Unix time).
    pub not_after: i64,
    /// Whole days until it expires (negative: expired).
    pub days_left: i64,
    /// Issuer and subject are the same: clients will not trust it without being told to.
    pub self_signed: bool,
    /// Why it could not be read, when it could not.
    pub error: Option<String>,
}

/// The certificates `config` makes the gateway present, generated ones as such.
pub fn describe(config: &TlsConfig, now: i64) -> Vec<CertInfo> {
    let mut served = Vec::new();
    if config.cert.is_some() || config.self_signed {
        served.push(("international", config.cert.as_deref()));
    }
    served.push(("sm2-signing", config.sm_cert.as_deref()));
    if config.tlcp {
        served.push(("sm2-encryption", config.sm_enc_cert.as_deref()));
    }
    served
        .into_iter()
        .map(|(role, file)| {
            let mut info = CertInfo {
                role,
                file: file.map(|p| p.display().to_string()),
                subject: String::new(),
                issuer: String::new(),
                names: Vec::new(),
                not_before: 0,
                not_after: 0,
                days_left: 0,
                // One made at start signs itself.
                self_signed: file.is_none(),
                error: None,
            };
            if let Some(path) = file
                && let Err(e) = fill(&mut info, path, now)
            {
                info.error = Some(e);
            }
            info
        })
        .collect()
}

/// The first certificate of the PEM file at `path`, read into `info`.
fn fill(info: &mut CertInfo, path: &Path, now: i64) -> Result<(), String> {
    use x509_parser::prelude::*;
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let (_, pem) = parse_x509_pem(&text).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let (_, cert) =
        X509Certificate::from_der(&pem.contents).map_err(|e| format!("not X.509: {e}"))?;
    info.subject = cert.subject().to_string();
    info.issuer = cert.issuer().to_string();
    info.self_signed = cert.subject() == cert.issuer();
    info.not_before = cert.validity().not_before.timestamp();
    info.not_after = cert.validity().not_after.timestamp();
    info.days_left = (info.not_after - now).div_euclid(86_400);
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        info.names = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_owned()),
                GeneralName::IPAddress(ip) => Some(format!("{ip:?}")),
                _ => None,
            })
            .collect();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{self, Usage};
    use crate::sm2::Sm2PrivateKey;

    #[test]
    fn a_configured_certificate_is_described_and_a_missing_one_is_generated() {
        let dir = tempfile::tempdir().unwrap();
        let key = Sm2PrivateKey::generate();
        let der = cert::self_signed(&key, "mx.example.com", 20, Usage::Signing).unwrap();
        let path = dir.path().join("sm2.pem");
        std::fs::write(&path, cert::pem("CERTIFICATE", &der)).unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "not a certificate").unwrap();
        let config = TlsConfig {
            sm_cert: Some(path),
            cert: Some(broken),
            tlcp: false,
            ..TlsConfig::generated()
        };
        let now = chrono::Utc::now().timestamp();
        let list = describe(&config, now);
        let roles: Vec<&str> = list.iter().map(|c| c.role).collect();
        assert_eq!(
            roles,
            ["international", "sm2-signing"],
            "no TLCP: no encryption certificate"
        );
        assert!(
            list[0].error.as_deref().unwrap().contains("not a PEM"),
            "{list:?}"
        );
        let sm2 = &list[1];
        assert_eq!(sm2.names, ["mx.example.com"]);
        assert!(
            sm2.self_signed && sm2.subject.contains("mx.example.com"),
            "{sm2:?}"
        );
        assert!((19..=20).contains(&sm2.days_left), "{sm2:?}");
        assert!(sm2.days_left < EXPIRY_WARNING_DAYS);
        let generated = describe(&TlsConfig::generated(), now);
        assert_eq!(generated.len(), 3);
        assert!(generated.iter().all(|c| c.file.is_none() && c.self_signed));
    }
}
