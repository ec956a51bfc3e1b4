//! SM2 X.509 certificates: a self-signed certificate for the gateway's host name (the demo,
//! tests, and appliances before the customer's CA issues one). Written as DER by hand: the
//! X.509 crates cannot sign with SM2.

use super::GmError;
use super::sm2::{DEFAULT_ID, Sm2PrivateKey};

/// `SEQUENCE { OID 1.2.156.10197.1.501 (SM2 signature with SM3) }`, contents only.
pub const SM2_SM3_ALG_ID: &[u8] = &[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75];
/// The same with explicit NULL parameters, as some CAs write it.
pub const SM2_SM3_ALG_ID_NULL: &[u8] = &[
    0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75, 0x05, 0x00,
];
/// `id-ecPublicKey` with the named curve SM2 (1.2.156.10197.1.301), contents only.
pub const SM2_PUBLIC_KEY_ALG_ID: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55,
    0x01, 0x82, 0x2d,
];

/// One DER element.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// `CN=host`, and for an encryption certificate also `OU=encryption`: a TLCP pair has two
/// certificates for one host, and verifiers look issuers up by name, so self-signed ones must
/// not share a name.
fn name(common_name: &str, usage: Usage) -> Vec<u8> {
    let rdn = |oid: &[u8], value: &str| tlv(0x31, &seq(&[oid, &tlv(0x0c, value.as_bytes())]));
    let cn = rdn(&[0x06, 0x03, 0x55, 0x04, 0x03], common_name);
    match usage {
        Usage::Signing => seq(&[&cn]),
        Usage::Encryption => seq(&[&cn, &rdn(&[0x06, 0x03, 0x55, 0x04, 0x0b], "encryption")]),
    }
}

/// UTCTime until 2049, GeneralizedTime after (RFC 5280 §4.1.2.5).
fn time(t: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    use chrono::Datelike;
    if t.year() < 2050 {
        tlv(0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(0x18, t.format("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

/// What a certificate's key is for; TLCP servers have one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Signatures: TLS and RFC 8998 servers, TLCP's signing certificate (digitalSignature,
    /// nonRepudiation).
    Signing,
    /// TLCP's encryption certificate, whose key the client encrypts the pre-master secret
    /// to (keyEncipherment, dataEncipherment, keyAgreement).
    Encryption,
}

impl Usage {
    /// The keyUsage BIT STRING contents (unused-bit count, then the bits).
    fn key_usage_bits(self) -> [u8; 2] {
        match self {
            Usage::Signing => [0x06, 0xc0],
            Usage::Encryption => [0x03, 0x38],
        }
    }
}

/// The SubjectAltName and key-usage extensions of a server certificate for `host`.
fn server_extensions(host: &str, usage: Usage) -> Vec<u8> {
    let san = seq(&[
        &[0x06, 0x03, 0x55, 0x1d, 0x11],
        &tlv(0x04, &seq(&[&tlv(0x82, host.as_bytes())])),
    ]);
    let key_usage = seq(&[
        &[0x06, 0x03, 0x55, 0x1d, 0x0f],
        &[0x01, 0x01, 0xff],
        &tlv(0x04, &tlv(0x03, &usage.key_usage_bits())),
    ]);
    seq(&[&san, &key_usage])
}

/// `info` signed with `key`: `SEQUENCE { info, sm2-with-sm3, BIT STRING signature }`, the
/// shape of certificates and certificate requests alike.
fn signed(key: &Sm2PrivateKey, info: &[u8]) -> Result<Vec<u8>, GmError> {
    let signature = key.sign(DEFAULT_ID, info)?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    Ok(seq(&[info, &tlv(0x30, SM2_SM3_ALG_ID), &tlv(0x03, &bits)]))
}

/// A PKCS#10 certificate request (DER) for `host`, SM2-signed, asking for the same
/// extensions as [`self_signed`] — what a customer's CA needs to issue the gateway's SM2
/// certificate.
pub fn request(key: &Sm2PrivateKey, host: &str, usage: Usage) -> Result<Vec<u8>, GmError> {
    // extensionRequest (1.2.840.113549.1.9.14)
    let ext_req = seq(&[
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e,
        ],
        &tlv(0x31, &server_extensions(host, usage)),
    ]);
    let info = seq(&[
        &[0x02, 0x01, 0x00],
        &name(host, usage),
        &key.public_key().to_spki_der()?,
        &tlv(0xa0, &ext_req),
    ]);
    signed(key, &info)
}

/// A self-signed SM2 certificate (DER) for `host`, valid from an hour ago for `days`, with
/// SAN dNSName `host` and the key usage of `usage`.
pub fn self_signed(
    key: &Sm2PrivateKey,
    host: &str,
    days: i64,
    usage: Usage,
) -> Result<Vec<u8>, GmError> {
    let now = chrono::Utc::now();
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| GmError::Random)?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let spki = key.public_key().to_spki_der()?;
    let tbs = seq(&[
        &tlv(0xa0, &[0x02, 0x01, 0x02]),
        &tlv(0x02, &serial),
        &tlv(0x30, SM2_SM3_ALG_ID),
        &name(host, usage),
        &seq(&[
            &time(now - chrono::Duration::hours(1)),
            &time(now + chrono::Duration::days(days)),
        ]),
        &name(host, usage),
        &spki,
        &tlv(0xa3, &server_extensions(host, usage)),
    ]);
    signed(key, &tbs)
}

/// PEM armour for DER under `label` (`CERTIFICATE`, `CERTIFICATE REQUEST`, `PRIVATE KEY`).
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm2::Sm2PublicKey;

    #[test]
    fn the_certificate_parses_and_its_signature_verifies() {
        let key = Sm2PrivateKey::generate();
        let der = self_signed(&key, "mx.example.com", 365, Usage::Signing).unwrap();
        // Parsed by webpki (as rustls will): name and key algorithm found.
        let cert = rustls_pki_types::CertificateDer::from(der.clone());
        let ee = webpki::EndEntityCert::try_from(&cert).unwrap();
        let name = rustls_pki_types::ServerName::try_from("mx.example.com").unwrap();
        assert!(ee.verify_is_valid_for_subject_name(&name).is_ok());
        // The outer structure: tbs, algorithm, signature over tbs with the standard ID.
        let (tbs, rest) = split_der(&der[4..]);
        let (alg, sig) = split_der(rest);
        assert_eq!(&alg[2..], SM2_SM3_ALG_ID);
        let public = Sm2PublicKey::from_sec1(&key.public_key().to_sec1()).unwrap();
        assert!(public.verify(DEFAULT_ID, tbs, &sig[3..]).is_ok());
    }

    /// The first DER element of `b` (with header) and the rest (lengths < 64 KiB).
    fn split_der(b: &[u8]) -> (&[u8], &[u8]) {
        let (len, header) = match b[1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (b[2] as usize, 3),
            _ => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        };
        b.split_at(header + len)
    }
}
