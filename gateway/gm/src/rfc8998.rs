//! RFC 8998: TLS 1.3 with TLS_SM4_GCM_SM3 (0x00C6), key exchange on curveSM2 (group 41) and
//! SM2 signatures (sm2sig_sm3, 0x0708) — as a rustls [`CryptoProvider`], so the protocol code
//! stays rustls's own. The CertificateVerify signature uses the ID RFC 8998 §3.2.1 gives
//! (`TLSv1.3+GM+Cipher+Suite`); certificate signatures use the standard `1234567812345678`.

use std::sync::Arc;

use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter,
    Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls13AeadAlgorithm,
    UnsupportedOperationError, make_tls13_aad,
};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, KeyProvider, SharedSecret, SupportedKxGroup,
    WebPkiSupportedAlgorithms, hash, hmac, tls13::HkdfUsingHmac,
};
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, PrivateKeyDer, SignatureVerificationAlgorithm,
};
use rustls::sign::{Signer, SigningKey};
use rustls::{
    CipherSuite, CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, Error, NamedGroup,
    ProtocolVersion, SignatureAlgorithm, SignatureScheme, SupportedCipherSuite, Tls13CipherSuite,
};
use sm2::elliptic_curve::Generate;
use sm2::elliptic_curve::point::AffineCoordinates;
use sm2::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};

use super::cert::{SM2_PUBLIC_KEY_ALG_ID, SM2_SM3_ALG_ID, SM2_SM3_ALG_ID_NULL};
use super::sm2::{DEFAULT_ID, Sm2IdSigner, Sm2PrivateKey, Sm2PublicKey};
use super::sm3::{DIGEST_LEN, Sm3Hasher, hmac_sm3_parts, sm3};
use super::sm4::{Sm4Gcm, TAG_LEN};

/// TLS_SM4_GCM_SM3.
pub const SUITE_SM4_GCM_SM3: CipherSuite = CipherSuite::Unknown(0x00c6);
/// curveSM2.
pub const GROUP_CURVE_SM2: NamedGroup = NamedGroup::Unknown(41);
/// sm2sig_sm3.
pub const SCHEME_SM2_SM3: SignatureScheme = SignatureScheme::Unknown(0x0708);
/// The SM2 ID of TLS 1.3 CertificateVerify signatures (RFC 8998 §3.2.1).
pub const TLS13_ID: &str = "TLSv1.3+GM+Cipher+Suite";

/// The RFC 8998 cipher suite.
pub static TLS13_SM4_GCM_SM3: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: SUITE_SM4_GCM_SM3,
            hash_provider: &Sm3Hash,
            // Same block size and mode as AES-GCM: the same limit.
            confidentiality_limit: 1 << 24,
        },
        hkdf_provider: &HkdfUsingHmac(&HmacSm3),
        aead_alg: &Sm4GcmAead,
        quic: None,
    });

/// A rustls provider offering only RFC 8998 (SM4-GCM-SM3, curveSM2, sm2sig_sm3).
pub fn provider() -> CryptoProvider {
    let ring = rustls::crypto::ring::default_provider();
    CryptoProvider {
        cipher_suites: vec![TLS13_SM4_GCM_SM3],
        kx_groups: vec![&CurveSm2],
        signature_verification_algorithms: SM2_ALGORITHMS,
        secure_random: ring.secure_random,
        key_provider: &Sm2KeyProvider,
    }
}

/// Verification of SM2 signatures: certificates (standard ID, both encodings of the
/// algorithm identifier, since webpki matches bytes) and TLS 1.3 CertificateVerify.
pub static SM2_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&SM2_CERT, &SM2_CERT_NULL],
    mapping: &[(SCHEME_SM2_SM3, &[&SM2_TLS13])],
};

static SM2_CERT: Sm2Verify = Sm2Verify {
    id: DEFAULT_ID,
    alg: SM2_SM3_ALG_ID,
};
static SM2_CERT_NULL: Sm2Verify = Sm2Verify {
    id: DEFAULT_ID,
    alg: SM2_SM3_ALG_ID_NULL,
};
static SM2_TLS13: Sm2Verify = Sm2Verify {
    id: TLS13_ID,
    alg: SM2_SM3_ALG_ID,
};

#[derive(Debug)]
struct Sm2Verify {
    id: &'static str,
    alg: &'static [u8],
}

impl SignatureVerificationAlgorithm for Sm2Verify {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        Sm2PublicKey::from_sec1(public_key)
            .and_then(|k| k.verify(self.id, message, signature))
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SM2_PUBLIC_KEY_ALG_ID)
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(self.alg)
    }
}

struct Sm3Hash;

impl hash::Hash for Sm3Hash {
    fn start(&self) -> Box<dyn hash::Context> {
        Box::new(Sm3Context(Sm3Hasher::new()))
    }

    fn hash(&self, data: &[u8]) -> hash::Output {
        hash::Output::new(&sm3(data))
    }

    fn output_len(&self) -> usize {
        DIGEST_LEN
    }

    fn algorithm(&self) -> rustls::crypto::hash::HashAlgorithm {
        rustls::crypto::hash::HashAlgorithm::Unknown(7)
    }
}

struct Sm3Context(Sm3Hasher);

impl hash::Context for Sm3Context {
    fn fork_finish(&self) -> hash::Output {
        hash::Output::new(&self.0.current())
    }

    fn fork(&self) -> Box<dyn hash::Context> {
        Box::new(Sm3Context(self.0.clone()))
    }

    fn finish(self: Box<Self>) -> hash::Output {
        hash::Output::new(&self.0.finish())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

struct HmacSm3;

impl hmac::Hmac for HmacSm3 {
    fn with_key(&self, key: &[u8]) -> Box<dyn hmac::Key> {
        Box::new(HmacSm3Key(key.to_vec()))
    }

    fn hash_output_len(&self) -> usize {
        DIGEST_LEN
    }
}

struct HmacSm3Key(Vec<u8>);

impl hmac::Key for HmacSm3Key {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> hmac::Tag {
        let mut parts = Vec::with_capacity(middle.len() + 2);
        parts.push(first);
        parts.extend_from_slice(middle);
        parts.push(last);
        hmac::Tag::new(&hmac_sm3_parts(&self.0, &parts))
    }

    fn tag_len(&self) -> usize {
        DIGEST_LEN
    }
}

struct Sm4GcmAead;

impl Tls13AeadAlgorithm for Sm4GcmAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Sm4GcmRecords { gcm: gcm(&key), iv })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Sm4GcmRecords { gcm: gcm(&key), iv })
    }

    fn key_len(&self) -> usize {
        super::sm4::KEY_LEN
    }

    fn extract_keys(
        &self,
        _key: AeadKey,
        _iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        // No kernel TLS for SM4.
        Err(UnsupportedOperationError)
    }
}

fn gcm(key: &AeadKey) -> Sm4Gcm {
    let mut k = [0u8; super::sm4::KEY_LEN];
    // rustls sizes the key by `key_len()`.
    k.copy_from_slice(&key.as_ref()[..super::sm4::KEY_LEN]);
    Sm4Gcm::new(&k)
}

struct Sm4GcmRecords {
    gcm: Sm4Gcm,
    iv: Iv,
}

impl MessageEncrypter for Sm4GcmRecords {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut plain = Vec::with_capacity(total_len);
        plain.extend_from_slice(&msg.payload.to_vec());
        plain.push(msg.typ.into());
        let nonce = Nonce::new(&self.iv, seq).0;
        let sealed = self.gcm.seal(&nonce, &make_tls13_aad(total_len), &plain);
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_slice(&sealed);
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl MessageDecrypter for Sm4GcmRecords {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        if payload.len() < TAG_LEN {
            return Err(Error::DecryptError);
        }
        let nonce = Nonce::new(&self.iv, seq).0;
        let plain = self
            .gcm
            .open(&nonce, &make_tls13_aad(payload.len()), payload)
            .map_err(|_| Error::DecryptError)?;
        payload[..plain.len()].copy_from_slice(&plain);
        payload.truncate(plain.len());
        msg.into_tls13_unpadded_message()
    }
}

/// Ephemeral ECDH on the SM2 curve (the shared secret is the x coordinate, as for NIST curves).
#[derive(Debug)]
struct CurveSm2;

impl SupportedKxGroup for CurveSm2 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = sm2::NonZeroScalar::generate();
        let public = (sm2::ProjectivePoint::GENERATOR * *secret).to_affine();
        Ok(Box::new(Sm2Exchange {
            secret,
            public: public.to_sec1_point(false).as_bytes().to_vec(),
        }))
    }

    fn name(&self) -> NamedGroup {
        GROUP_CURVE_SM2
    }
}

struct Sm2Exchange {
    secret: sm2::NonZeroScalar,
    public: Vec<u8>,
}

impl ActiveKeyExchange for Sm2Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        // Only uncompressed points (RFC 8446 §4.2.8.2); the identity cannot be encoded so.
        if peer.len() != 65 || peer[0] != 4 {
            return Err(Error::from(rustls::PeerMisbehaved::InvalidKeyShare));
        }
        let point = sm2::Sec1Point::from_bytes(peer)
            .map_err(|_| Error::from(rustls::PeerMisbehaved::InvalidKeyShare))?;
        let peer = Option::<sm2::AffinePoint>::from(sm2::AffinePoint::from_sec1_point(&point))
            .ok_or(Error::from(rustls::PeerMisbehaved::InvalidKeyShare))?;
        let shared = (sm2::ProjectivePoint::from(peer) * *self.secret).to_affine();
        Ok(SharedSecret::from(&shared.x()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        GROUP_CURVE_SM2
    }
}

/// Loads SM2 private keys (PKCS#8) for servers and clients.
#[derive(Debug)]
struct Sm2KeyProvider;

impl KeyProvider for Sm2KeyProvider {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, Error> {
        let key = match &key_der {
            PrivateKeyDer::Pkcs8(k) => Sm2PrivateKey::from_pkcs8_der(k.secret_pkcs8_der()),
            PrivateKeyDer::Sec1(k) => Sm2PrivateKey::from_sec1_der(k.secret_sec1_der()),
            _ => Err(super::GmError::BadKey),
        }
        .and_then(|k| k.signer(TLS13_ID))
        .map_err(|_| Error::General("not an SM2 private key".into()))?;
        Ok(Arc::new(Sm2SigningKey(Arc::new(key))))
    }
}

/// A certificate's SM2 key with RFC 8998's ID, signing CertificateVerify.
#[derive(Debug, Clone)]
pub struct Sm2SigningKey(pub Arc<Sm2IdSigner>);

impl SigningKey for Sm2SigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SCHEME_SM2_SM3)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::Unknown(8)
    }
}

impl Signer for Sm2SigningKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.0.sign(message))
    }

    fn scheme(&self) -> SignatureScheme {
        SCHEME_SM2_SM3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConnection, ServerConfig, ServerConnection};
    use std::io::{Read, Write};

    fn server() -> Arc<ServerConfig> {
        let key = Sm2PrivateKey::generate();
        let cert = super::super::cert::self_signed(
            &key,
            "gw.test",
            30,
            super::super::cert::Usage::Signing,
        )
        .unwrap();
        let der = PrivatePkcs8KeyDer::from(key.to_pkcs8_der().unwrap());
        Arc::new(
            ServerConfig::builder_with_provider(Arc::new(provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.into()], der.into())
                .unwrap(),
        )
    }

    fn client(provider: CryptoProvider) -> Arc<rustls::ClientConfig> {
        crate::tls::client_config_with(provider).unwrap()
    }

    /// Moves records between the two until neither has anything to send.
    fn pump(c: &mut ClientConnection, s: &mut ServerConnection) -> Result<(), Error> {
        for _ in 0..20 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            let to_server = !buf.is_empty();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            let to_client = !buf.is_empty();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets()?;
            if !to_server && !to_client {
                return Ok(());
            }
        }
        Ok(())
    }

    #[test]
    fn a_full_rfc_8998_handshake_carries_data_both_ways() {
        let mut s = ServerConnection::new(server()).unwrap();
        let name = ServerName::try_from("gw.test").unwrap();
        let mut c = ClientConnection::new(client(provider()), name).unwrap();
        pump(&mut c, &mut s).unwrap();
        assert!(!c.is_handshaking() && !s.is_handshaking());
        assert_eq!(
            c.negotiated_cipher_suite().unwrap().suite(),
            SUITE_SM4_GCM_SM3
        );
        assert_eq!(
            s.negotiated_key_exchange_group().unwrap().name(),
            GROUP_CURVE_SM2
        );
        c.writer().write_all(b"EHLO client.test\r\n").unwrap();
        s.writer().write_all(b"250 gw.test\r\n").unwrap();
        pump(&mut c, &mut s).unwrap();
        let mut got = String::new();
        s.reader().read_to_string(&mut got).ok();
        assert_eq!(got, "EHLO client.test\r\n");
        let mut got = String::new();
        c.reader().read_to_string(&mut got).ok();
        assert_eq!(got, "250 gw.test\r\n");
    }

    #[test]
    fn a_client_without_sm_suites_is_refused_by_an_sm_only_server() {
        let mut s = ServerConnection::new(server()).unwrap();
        let name = ServerName::try_from("gw.test").unwrap();
        let mut c =
            ClientConnection::new(client(rustls::crypto::ring::default_provider()), name).unwrap();
        assert!(pump(&mut c, &mut s).is_err());
    }

    #[test]
    fn ecdh_on_curve_sm2_agrees_and_refuses_bad_points() {
        let a = CurveSm2.start().unwrap();
        let b = CurveSm2.start().unwrap();
        let (pa, pb) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        let ka = a.complete(&pb).unwrap();
        let kb = b.complete(&pa).unwrap();
        assert_eq!(ka.secret_bytes(), kb.secret_bytes());
        assert_eq!(ka.secret_bytes().len(), 32);
        for bad in [vec![4u8; 65], pa[..33].to_vec(), vec![]] {
            assert!(CurveSm2.start().unwrap().complete(&bad).is_err());
        }
    }
}
