//! DANE for SMTP (RFC 7672, RFC 7671): a server proves who it is by matching a DNSSEC-signed
//! TLSA record instead of (or besides) a public authority. Only the two usages SMTP relies on
//! count: DANE-EE (3), which pins the server's own certificate or key — whoever issued it,
//! whatever its name or dates — and DANE-TA (2), which names the authority the server's chain
//! must lead to (then the name and dates are checked as usual). PKIX-TA/EE (0, 1) are unusable
//! for SMTP (RFC 7672 §3.1.3) and ignored.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::tls::SignatureOnly;

/// TLSA certificate usage DANE-TA: the record names a trust anchor in the server's chain.
pub const DANE_TA: u8 = 2;
/// TLSA certificate usage DANE-EE: the record names the server's own certificate.
pub const DANE_EE: u8 = 3;

/// One TLSA record (RFC 6698 §2.1), as DNS gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// Certificate usage: which certificate of the chain it names.
    pub usage: u8,
    /// 0: the whole certificate; 1: its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0: the data itself; 1: its SHA-256; 2: its SHA-512.
    pub matching: u8,
    /// What the selected part must be (or hash to).
    pub data: Vec<u8>,
}

impl Tlsa {
    /// Whether this record can authenticate an SMTP server: DANE-TA or DANE-EE with a known
    /// selector and matching type (RFC 7672 §3.1.3). A TLSA set with none of these still
    /// obliges TLS, but cannot authenticate.
    pub fn is_usable(&self) -> bool {
        matches!(self.usage, DANE_TA | DANE_EE)
            && self.selector <= 1
            && match self.matching {
                0 => !self.data.is_empty(),
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// Whether `certificate` is the one this record names (its usage aside).
    fn matches(&self, certificate: &[u8]) -> bool {
        let selected = match self.selector {
            0 => certificate,
            1 => match x509_parser::parse_x509_certificate(certificate) {
                Ok((_, parsed)) => parsed.tbs_certificate.subject_pki.raw,
                Err(_) => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == self.data,
            2 => ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == self.data,
            _ => false,
        }
    }
}

/// Accepts a server whose certificate chain matches one of the usable `records`; the handshake
/// signatures are checked as always.
#[derive(Debug)]
pub(crate) struct DaneVerifier {
    records: Vec<Tlsa>,
    signatures: SignatureOnly,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl DaneVerifier {
    /// A verifier for the usable ones of `records` (callers make sure there is one).
    pub(crate) fn new(records: &[Tlsa], provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        Self {
            records: records.iter().filter(|r| r.is_usable()).cloned().collect(),
            signatures: SignatureOnly::new(Vec::new()),
            provider,
        }
    }

    /// DANE-TA: a certificate the server sent matches a record, and the end entity chains to
    /// it and names the server.
    fn verify_through_anchor(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let anchors = intermediates.iter().filter(|c| {
            self.records
                .iter()
                .any(|r| r.usage == DANE_TA && r.matches(c.as_ref()))
        });
        let mut last = rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        );
        for anchor in anchors {
            let mut roots = rustls::RootCertStore::empty();
            if roots.add(anchor.clone().into_owned()).is_err() {
                continue;
            }
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
            match verifier.verify_server_cert(end_entity, intermediates, server_name, &[], now) {
                Ok(verified) => return Ok(verified),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // DANE-EE: the certificate itself; names and dates do not matter (RFC 7672 §3.1.1).
        if self
            .records
            .iter()
            .any(|r| r.usage == DANE_EE && r.matches(end_entity.as_ref()))
        {
            return Ok(ServerCertVerified::assertion());
        }
        if self.records.iter().any(|r| r.usage == DANE_TA) {
            return self.verify_through_anchor(end_entity, intermediates, server_name, now);
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a server certificate it issued for `mx.example`.
    fn chain() -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let ee = rcgen::CertificateParams::new(vec!["mx.example".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ee.der().clone(), ca_cert.der().clone())
    }

    fn record(usage: u8, selector: u8, matching: u8, cert: &[u8]) -> Tlsa {
        let selected = if selector == 1 {
            x509_parser::parse_x509_certificate(cert)
                .unwrap()
                .1
                .tbs_certificate
                .subject_pki
                .raw
                .to_vec()
        } else {
            cert.to_vec()
        };
        let data = match matching {
            1 => ring::digest::digest(&ring::digest::SHA256, &selected)
                .as_ref()
                .to_vec(),
            2 => ring::digest::digest(&ring::digest::SHA512, &selected)
                .as_ref()
                .to_vec(),
            _ => selected,
        };
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    fn verify(records: &[Tlsa], ee: &CertificateDer, chain: &[CertificateDer], name: &str) -> bool {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        DaneVerifier::new(records, provider)
            .verify_server_cert(
                ee,
                chain,
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    #[test]
    fn dane_ee_matches_certificate_or_key_by_any_matching_type() {
        let (ee, ca) = chain();
        let (other, _) = chain();
        for selector in 0..=1 {
            for matching in 0..=2 {
                let r = record(DANE_EE, selector, matching, &ee);
                assert!(r.is_usable());
                // Name and issuer do not matter for DANE-EE.
                assert!(verify(
                    std::slice::from_ref(&r),
                    &ee,
                    &[],
                    "anything.example"
                ));
                assert!(!verify(&[r], &other, &[], "mx.example"));
            }
        }
        // The CA's record as DANE-EE does not authenticate the server's certificate.
        assert!(!verify(
            &[record(DANE_EE, 1, 1, &ca)],
            &ee,
            std::slice::from_ref(&ca),
            "mx.example"
        ));
    }

    #[test]
    fn dane_ta_needs_the_anchor_in_the_chain_and_the_right_name() {
        let (ee, ca) = chain();
        let ta = record(DANE_TA, 1, 1, &ca);
        assert!(verify(
            std::slice::from_ref(&ta),
            &ee,
            std::slice::from_ref(&ca),
            "mx.example"
        ));
        assert!(!verify(
            std::slice::from_ref(&ta),
            &ee,
            std::slice::from_ref(&ca),
            "other.example"
        ));
        // The anchor must be sent by the server to be found.
        assert!(!verify(&[ta], &ee, &[], "mx.example"));
        // An anchor record for another CA.
        let (_, other_ca) = chain();
        assert!(!verify(
            &[record(DANE_TA, 0, 1, &other_ca)],
            &ee,
            &[ca],
            "mx.example"
        ));
    }

    #[test]
    fn pkix_usages_and_malformed_records_are_unusable() {
        let (ee, ca) = chain();
        for usage in [0, 1] {
            let r = record(usage, 1, 1, &ee);
            assert!(!r.is_usable());
            assert!(!verify(&[r], &ee, std::slice::from_ref(&ca), "mx.example"));
        }
        let mut short = record(DANE_EE, 1, 1, &ee);
        short.data.truncate(31);
        assert!(!short.is_usable());
        assert!(!record(DANE_EE, 2, 1, &ee).is_usable());
        let mut unknown = record(DANE_EE, 1, 1, &ee);
        unknown.matching = 3;
        assert!(!unknown.is_usable());
    }
}
