//! TLCP handshake messages and key schedule (GB/T 38636-2020 §6.4–6.5): parsing what the
//! client sends (ClientHello, ClientKeyExchange, Finished), building what the server sends,
//! and the TLS 1.2-style PRF over HMAC-SM3 that turns the pre-master secret into keys.

use super::TlcpError;
use super::record::{Keys, VERSION};
use crate::sm3::{DIGEST_LEN, hmac_sm3_parts};

/// Handshake message types used here.
pub mod kind {
    /// ClientHello.
    pub const CLIENT_HELLO: u8 = 1;
    /// ServerHello.
    pub const SERVER_HELLO: u8 = 2;
    /// CertificateRequest (the server asks for client certificates; ECDHE suites).
    pub const CERTIFICATE_REQUEST: u8 = 13;
    /// Certificate.
    pub const CERTIFICATE: u8 = 11;
    /// ServerKeyExchange.
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    /// ServerHelloDone.
    pub const SERVER_HELLO_DONE: u8 = 14;
    /// CertificateVerify (the client proves its signing key; ECDHE suites).
    pub const CERTIFICATE_VERIFY: u8 = 15;
    /// ClientKeyExchange.
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    /// Finished.
    pub const FINISHED: u8 = 20;
}

/// Largest handshake message accepted from a client (a hello with many extensions is ~2 KiB).
pub const MAX_MESSAGE: usize = 1 << 16;
/// Length of Finished's verify_data.
pub const VERIFY_LEN: usize = 12;
/// Length of the pre-master and master secrets.
pub const SECRET_LEN: usize = 48;

/// The cipher suites spoken here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// ECC_SM4_GCM_SM3 (0xE053): SM2 key transport, SM4-GCM records.
    EccSm4GcmSm3,
    /// ECC_SM4_CBC_SM3 (0xE013): SM2 key transport, SM4-CBC + HMAC-SM3 records.
    EccSm4CbcSm3,
    /// ECDHE_SM4_GCM_SM3 (0xE051): SM2 key agreement with client certificates, SM4-GCM.
    EcdheSm4GcmSm3,
    /// ECDHE_SM4_CBC_SM3 (0xE011): SM2 key agreement with client certificates, SM4-CBC.
    EcdheSm4CbcSm3,
}

impl Suite {
    /// The server's preference: key transport first (it needs no client certificates, which
    /// most clients lack), GCM before CBC.
    pub const SERVER_ORDER: [Suite; 4] = [
        Suite::EccSm4GcmSm3,
        Suite::EccSm4CbcSm3,
        Suite::EcdheSm4GcmSm3,
        Suite::EcdheSm4CbcSm3,
    ];
    /// What the client offers (it has no certificates of its own).
    pub const CLIENT_OFFER: [Suite; 2] = [Suite::EccSm4GcmSm3, Suite::EccSm4CbcSm3];

    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            Suite::EccSm4GcmSm3 => 0xE053,
            Suite::EccSm4CbcSm3 => 0xE013,
            Suite::EcdheSm4GcmSm3 => 0xE051,
            Suite::EcdheSm4CbcSm3 => 0xE011,
        }
    }

    /// The name Tongsuo and GmSSL print.
    pub fn name(self) -> &'static str {
        match self {
            Suite::EccSm4GcmSm3 => "ECC-SM2-SM4-GCM-SM3",
            Suite::EccSm4CbcSm3 => "ECC-SM2-SM4-CBC-SM3",
            Suite::EcdheSm4GcmSm3 => "ECDHE-SM2-SM4-GCM-SM3",
            Suite::EcdheSm4CbcSm3 => "ECDHE-SM2-SM4-CBC-SM3",
        }
    }

    /// Whether the pre-master secret comes from SM2 key agreement (else key transport).
    pub fn is_ecdhe(self) -> bool {
        matches!(self, Suite::EcdheSm4GcmSm3 | Suite::EcdheSm4CbcSm3)
    }

    fn is_gcm(self) -> bool {
        matches!(self, Suite::EccSm4GcmSm3 | Suite::EcdheSm4GcmSm3)
    }
}

/// A reader over a message body that never reads past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TlcpError> {
        if self.0.len() < n {
            return Err(TlcpError::Decode("message truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, TlcpError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, TlcpError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Result<usize, TlcpError> {
        let b = self.take(3)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    }

    fn vec8(&mut self) -> Result<&'a [u8], TlcpError> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }

    fn vec16(&mut self) -> Result<&'a [u8], TlcpError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }

    fn end(&self) -> Result<(), TlcpError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(TlcpError::Decode("trailing bytes"))
        }
    }
}

/// The start both hellos share: version (must be TLCP's), random, session id (skipped).
fn hello_start(r: &mut Reader<'_>) -> Result<[u8; 32], TlcpError> {
    if r.u16()? != VERSION {
        return Err(TlcpError::Version);
    }
    let mut random = [0u8; 32];
    random.copy_from_slice(r.take(32)?);
    if r.vec8()?.len() > 32 {
        return Err(TlcpError::Decode("session id too long"));
    }
    Ok(random)
}

/// What the server needs from a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The client's random.
    pub random: [u8; 32],
    /// The suite chosen from the client's list by server preference.
    pub suite: Suite,
}

/// Parses a ClientHello body and picks a suite; extensions are checked for shape and ignored.
pub fn parse_client_hello(body: &[u8]) -> Result<ClientHello, TlcpError> {
    let mut r = Reader(body);
    let random = hello_start(&mut r)?;
    let suites = r.vec16()?;
    if suites.is_empty() || !suites.len().is_multiple_of(2) {
        return Err(TlcpError::Decode("cipher suites"));
    }
    let offered: Vec<u16> = suites
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if !r.vec8()?.contains(&0) {
        return Err(TlcpError::Decode("no null compression"));
    }
    skip_extensions(&mut r)?;
    let suite = Suite::SERVER_ORDER
        .into_iter()
        .find(|s| offered.contains(&s.code()))
        .ok_or(TlcpError::NoCommonSuite)?;
    Ok(ClientHello { random, suite })
}

/// The SM2 ciphertext (GM/T 0009 DER) of a ClientKeyExchange body for the ECC suites.
pub fn parse_client_key_exchange(body: &[u8]) -> Result<&[u8], TlcpError> {
    let mut r = Reader(body);
    let ciphertext = r.vec16()?;
    r.end()?;
    if ciphertext.is_empty() {
        return Err(TlcpError::Decode("empty key exchange"));
    }
    Ok(ciphertext)
}

/// Skips an optional extensions block (checked for shape) and requires the end.
fn skip_extensions(r: &mut Reader<'_>) -> Result<(), TlcpError> {
    if !r.0.is_empty() {
        let mut extensions = Reader(r.vec16()?);
        while !extensions.0.is_empty() {
            extensions.u16()?;
            extensions.vec16()?;
        }
    }
    r.end()
}

/// ClientHello offering `suites`, no session to resume and no extensions.
pub fn client_hello(random: &[u8; 32], suites: &[Suite]) -> Vec<u8> {
    let mut body = VERSION.to_be_bytes().to_vec();
    body.extend_from_slice(random);
    body.push(0);
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.code().to_be_bytes());
    }
    body.extend([1, 0]);
    message(kind::CLIENT_HELLO, &body)
}

/// The server's random and chosen suite from a ServerHello body; the suite must be one of
/// `offered`.
pub fn parse_server_hello(body: &[u8], offered: &[Suite]) -> Result<([u8; 32], Suite), TlcpError> {
    let mut r = Reader(body);
    let random = hello_start(&mut r)?;
    let code = r.u16()?;
    let suite = offered
        .iter()
        .copied()
        .find(|s| s.code() == code)
        .ok_or(TlcpError::Unexpected("cipher suite not offered"))?;
    if r.u8()? != 0 {
        return Err(TlcpError::Decode("compression"));
    }
    skip_extensions(&mut r)?;
    Ok((random, suite))
}

/// Most certificates accepted in one Certificate message.
const MAX_CERTIFICATES: usize = 10;

/// The certificates of a Certificate body, in order (TLCP: signing, encryption, chain).
pub fn parse_certificate(body: &[u8]) -> Result<Vec<&[u8]>, TlcpError> {
    let mut r = Reader(body);
    let len = r.u24()?;
    let mut list = Reader(r.take(len)?);
    r.end()?;
    let mut certs = Vec::new();
    while !list.0.is_empty() {
        if certs.len() == MAX_CERTIFICATES {
            return Err(TlcpError::Decode("too many certificates"));
        }
        let n = list.u24()?;
        certs.push(list.take(n)?);
    }
    Ok(certs)
}

/// The signature of a ServerKeyExchange body for the ECC suites (a 16-bit length and DER).
pub fn parse_server_key_exchange(body: &[u8]) -> Result<&[u8], TlcpError> {
    let mut r = Reader(body);
    let signature = r.vec16()?;
    r.end()?;
    Ok(signature)
}

/// ClientKeyExchange carrying the SM2-encrypted pre-master secret.
pub fn client_key_exchange(ciphertext: &[u8]) -> Vec<u8> {
    let mut body = (ciphertext.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(ciphertext);
    message(kind::CLIENT_KEY_EXCHANGE, &body)
}

/// A handshake message: type, 24-bit length, body.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.push(kind);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

/// ServerHello with an empty session id (sessions are not resumed) and no extensions.
pub fn server_hello(random: &[u8; 32], suite: Suite) -> Vec<u8> {
    let mut body = VERSION.to_be_bytes().to_vec();
    body.extend_from_slice(random);
    body.push(0);
    body.extend_from_slice(&suite.code().to_be_bytes());
    body.push(0);
    message(kind::SERVER_HELLO, &body)
}

/// A certificate as TLCP carries it: 24-bit length, DER.
pub fn asn1_cert(der: &[u8]) -> Vec<u8> {
    let mut out = (der.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(der);
    out
}

/// Certificate: the signing certificate, the encryption certificate, then the CA chain.
pub fn certificate(sign: &[u8], enc: &[u8], chain: &[Vec<u8>]) -> Vec<u8> {
    let mut list = asn1_cert(sign);
    list.extend(asn1_cert(enc));
    for c in chain {
        list.extend(asn1_cert(c));
    }
    let mut body = (list.len() as u32).to_be_bytes()[1..].to_vec();
    body.extend(list);
    message(kind::CERTIFICATE, &body)
}

/// What the server signs in ServerKeyExchange: both randoms and `params` — for the ECC suites
/// the encryption certificate as [`asn1_cert`] (binding the key the client encrypts to to this
/// handshake), for ECDHE the [`ecdhe_params`].
pub fn key_exchange_signed_data(
    client_random: &[u8; 32],
    server_random: &[u8; 32],
    params: &[u8],
) -> Vec<u8> {
    [&client_random[..], server_random, params].concat()
}

/// The named curve curveSM2 in ECParameters.
const CURVE_SM2: u8 = 41;

/// ECParameters (named curve curveSM2) and the ephemeral point, as ECDHE key exchanges carry
/// them.
pub fn ecdhe_params(point: &[u8]) -> Vec<u8> {
    let mut out = vec![3, 0, CURVE_SM2, point.len() as u8];
    out.extend_from_slice(point);
    out
}

/// ServerKeyExchange: `params` (empty for the ECC suites) then the SM2 signature (DER).
pub fn server_key_exchange(params: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut body = params.to_vec();
    body.extend((signature.len() as u16).to_be_bytes());
    body.extend_from_slice(signature);
    message(kind::SERVER_KEY_EXCHANGE, &body)
}

/// CertificateRequest for an SM2 certificate pair (type ecdsa_sign, any CA; TLCP has no
/// signature-algorithm list).
pub fn certificate_request() -> Vec<u8> {
    message(kind::CERTIFICATE_REQUEST, &[1, 64, 0, 0])
}

/// The client's ephemeral point from an ECDHE ClientKeyExchange, in every encoding met in
/// practice: ECParameters ‖ ECPoint (Tongsuo's default), the same inside a 16-bit length
/// (GB/T 38636 §6.4.5.8; GmSSL, Tongsuo's strict mode), or a bare ECPoint.
pub fn parse_ecdhe_client_key_exchange(body: &[u8]) -> Result<&[u8], TlcpError> {
    let mut r = Reader(body);
    if body.len() >= 2 && usize::from(u16::from_be_bytes([body[0], body[1]])) == body.len() - 2 {
        r.take(2)?;
    }
    if r.0.first() == Some(&3) {
        r.take(3)?;
    }
    let point = r.vec8()?;
    r.end()?;
    if point.is_empty() {
        return Err(TlcpError::Decode("empty ECDHE point"));
    }
    Ok(point)
}

/// The signature of a CertificateVerify body.
pub fn parse_certificate_verify(body: &[u8]) -> Result<&[u8], TlcpError> {
    parse_server_key_exchange(body)
}

/// The TLS 1.2 PRF (RFC 5246 §5) with HMAC-SM3.
pub fn prf(secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    let mut a = hmac_sm3_parts(secret, &[label, seed]);
    for chunk in out.chunks_mut(DIGEST_LEN) {
        let block = hmac_sm3_parts(secret, &[&a, label, seed]);
        chunk.copy_from_slice(&block[..chunk.len()]);
        a = hmac_sm3_parts(secret, &[&a]);
    }
}

/// The master secret from the pre-master secret and both randoms.
pub fn master_secret(
    pre_master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> [u8; SECRET_LEN] {
    let mut master = [0u8; SECRET_LEN];
    prf(
        pre_master,
        b"master secret",
        &[&client_random[..], server_random].concat(),
        &mut master,
    );
    master
}

/// Both directions' keys: (client write, server write).
pub fn key_block(
    suite: Suite,
    master: &[u8; SECRET_LEN],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> (Keys, Keys) {
    let seed = [&server_random[..], client_random].concat();
    let take = |block: &[u8], at: usize| -> [u8; 16] {
        let mut k = [0u8; 16];
        k.copy_from_slice(&block[at..at + 16]);
        k
    };
    if suite.is_gcm() {
        // Keys, then the 4-byte implicit nonce parts.
        let mut block = [0u8; 2 * 16 + 2 * 4];
        prf(master, b"key expansion", &seed, &mut block);
        let salt = |at: usize| {
            let mut s = [0u8; 4];
            s.copy_from_slice(&block[at..at + 4]);
            s
        };
        (
            Keys::Gcm {
                key: take(&block, 0),
                salt: salt(32),
            },
            Keys::Gcm {
                key: take(&block, 16),
                salt: salt(36),
            },
        )
    } else {
        // MAC keys, encryption keys, then IVs (unused: records carry explicit IVs).
        let mut block = [0u8; 2 * 32 + 2 * 16 + 2 * 16];
        prf(master, b"key expansion", &seed, &mut block);
        let mac = |at: usize| {
            let mut m = [0u8; DIGEST_LEN];
            m.copy_from_slice(&block[at..at + DIGEST_LEN]);
            m
        };
        (
            Keys::Cbc {
                mac: mac(0),
                key: take(&block, 64),
            },
            Keys::Cbc {
                mac: mac(32),
                key: take(&block, 80),
            },
        )
    }
}

/// Finished's verify_data for the transcript hash so far.
pub fn verify_data(
    master: &[u8; SECRET_LEN],
    client: bool,
    transcript: &[u8; DIGEST_LEN],
) -> [u8; VERIFY_LEN] {
    let label: &[u8] = if client {
        b"client finished"
    } else {
        b"server finished"
    };
    let mut out = [0u8; VERIFY_LEN];
    prf(master, label, transcript, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(suites: &[u16], extensions: Option<&[u8]>) -> Vec<u8> {
        let mut b = VERSION.to_be_bytes().to_vec();
        b.extend([7u8; 32]);
        b.push(0);
        b.extend(((suites.len() * 2) as u16).to_be_bytes());
        for s in suites {
            b.extend(s.to_be_bytes());
        }
        b.extend([1, 0]);
        if let Some(e) = extensions {
            b.extend((e.len() as u16).to_be_bytes());
            b.extend(e);
        }
        b
    }

    #[test]
    fn client_hello_picks_the_servers_preferred_common_suite() {
        let h = parse_client_hello(&hello(&[0xE013, 0xE053, 0x00ff], None)).unwrap();
        assert_eq!(h.suite, Suite::EccSm4GcmSm3);
        assert_eq!(h.random, [7; 32]);
        let h = parse_client_hello(&hello(&[0xE013], Some(&[0, 10, 0, 2, 0, 41]))).unwrap();
        assert_eq!(h.suite, Suite::EccSm4CbcSm3);
        // Key agreement only when the client offers no key-transport suite.
        let h = parse_client_hello(&hello(&[0xE051, 0xE013], None)).unwrap();
        assert_eq!(h.suite, Suite::EccSm4CbcSm3);
        let h = parse_client_hello(&hello(&[0xE011, 0xE051], None)).unwrap();
        assert_eq!(h.suite, Suite::EcdheSm4GcmSm3);
        assert!(h.suite.is_ecdhe());
        assert_eq!(
            parse_client_hello(&hello(&[0xE015, 0x1301], None)),
            Err(TlcpError::NoCommonSuite)
        );
    }

    #[test]
    fn malformed_hellos_are_refused() {
        let good = hello(&[0xE053], Some(&[0, 10, 0, 2, 0, 41]));
        // Every cut fails but the one that drops all extensions (they are optional).
        let without_extensions = good.len() - 8;
        for cut in (0..good.len()).filter(|c| *c != without_extensions) {
            assert!(parse_client_hello(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_client_hello(&good[..without_extensions]).is_ok());
        let mut tls12 = good.clone();
        tls12[0..2].copy_from_slice(&[3, 3]);
        assert_eq!(parse_client_hello(&tls12), Err(TlcpError::Version));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(parse_client_hello(&trailing).is_err());
        // Odd suite list length.
        let mut odd = hello(&[0xE053], None);
        odd[35..37].copy_from_slice(&[0, 3]);
        assert!(parse_client_hello(&odd).is_err());
    }

    #[test]
    fn client_key_exchange_is_one_length_prefixed_ciphertext() {
        assert_eq!(
            parse_client_key_exchange(&[0, 3, 1, 2, 3]).unwrap(),
            &[1, 2, 3]
        );
        assert!(parse_client_key_exchange(&[0, 3, 1, 2]).is_err());
        assert!(parse_client_key_exchange(&[0, 1, 1, 2]).is_err());
        assert!(parse_client_key_exchange(&[0, 0]).is_err());
    }

    #[test]
    fn ecdhe_client_key_exchange_is_read_in_every_encoding() {
        let point = [4u8; 65];
        let params = ecdhe_params(&point);
        let mut wrapped = (params.len() as u16).to_be_bytes().to_vec();
        wrapped.extend(&params);
        let mut bare = vec![65u8];
        bare.extend(point);
        for body in [&params, &wrapped, &bare] {
            assert_eq!(parse_ecdhe_client_key_exchange(body).unwrap(), &point[..]);
        }
        for bad in [&params[..params.len() - 1], &[3, 0, 41, 0][..], &[][..]] {
            assert!(parse_ecdhe_client_key_exchange(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prf_matches_hmac_sm3_expansion_by_hand() {
        // P_SM3 by its definition: A(1) = HMAC(s, seed), out = HMAC(s, A(1) ‖ seed) ‖ …
        let (secret, seed) = (b"secret".as_slice(), b"labelseed".as_slice());
        let a1 = hmac_sm3_parts(secret, &[seed]);
        let a2 = hmac_sm3_parts(secret, &[&a1]);
        let expected = [
            hmac_sm3_parts(secret, &[&a1, seed]),
            hmac_sm3_parts(secret, &[&a2, seed]),
        ]
        .concat();
        let mut out = [0u8; 40];
        prf(secret, b"label", b"seed", &mut out);
        assert_eq!(out[..], expected[..40]);
    }

    #[test]
    fn messages_have_24_bit_lengths() {
        assert_eq!(message(14, &[]), [14, 0, 0, 0]);
        let c = certificate(&[1; 3], &[2; 2], &[]);
        assert_eq!(c, [11, 0, 0, 14, 0, 0, 11, 0, 0, 3, 1, 1, 1, 0, 0, 2, 2, 2]);
    }
}
