//! TLS configurations in one place: the inbound server side (an international certificate on
//! the ring provider, an SM2 certificate on the RFC 8998 provider of this crate, and TLCP's
//! signing + encryption pair, chosen per connection from the client's first bytes) and the
//! outbound client, which offers international and RFC 8998 suites.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::sm2::Sm2PrivateKey;
use crate::{cert, rfc8998, tlcp};

fn serves_tlcp_by_default() -> bool {
    true
}

/// Where the STARTTLS certificate comes from.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`. Leave both out and set `self_signed` for a generated one.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate for `server.hostname` at start (demo and tests).
    #[serde(default)]
    pub self_signed: bool,
    /// PEM SM2 certificate chain for national-cipher (RFC 8998) clients; with `sm_key`. Left
    /// out, a self-signed SM2 certificate for `server.hostname` is generated at start.
    #[serde(default)]
    pub sm_cert: Option<PathBuf>,
    /// PEM SM2 private key (PKCS#8 or SEC1).
    #[serde(default)]
    pub sm_key: Option<PathBuf>,
    /// Serve TLCP (GB/T 38636) clients too, on STARTTLS and the console: `sm_cert` signs,
    /// `sm_enc_cert` receives the key exchange.
    #[serde(default = "serves_tlcp_by_default")]
    pub tlcp: bool,
    /// PEM SM2 encryption certificate for TLCP (key usage keyEncipherment); with
    /// `sm_enc_key`. Left out, a self-signed one is generated at start.
    #[serde(default)]
    pub sm_enc_cert: Option<PathBuf>,
    /// PEM SM2 private key of `sm_enc_cert`.
    #[serde(default)]
    pub sm_enc_key: Option<PathBuf>,
    /// File whose first line is the password of encrypted (`ENCRYPTED PRIVATE KEY`) keys above.
    #[serde(default)]
    pub key_password_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Generated certificates only (the console without `[tls]`).
    pub fn generated() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            self_signed: true,
            sm_cert: None,
            sm_key: None,
            tlcp: true,
            sm_enc_cert: None,
            sm_enc_key: None,
            key_password_file: None,
        }
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// No certificate authority to verify servers against.
    #[error("certificate authorities: {0}")]
    Authorities(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Loads PEM files; an encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`) is opened with
    /// `password`.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        password: Option<&[u8]>,
    ) -> Result<Self, TlsError> {
        let pem_err = |path: &Path, reason: String| TlsError::Pem {
            path: path.display().to_string(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_err(cert, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| pem_err(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_err(cert, "no certificate found".into()));
        }
        let text = std::fs::read_to_string(key).map_err(|e| pem_err(key, e.to_string()))?;
        let key = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            let password = password.ok_or_else(|| {
                pem_err(
                    key,
                    "the key is encrypted: set tls.key_password_file".into(),
                )
            })?;
            let der = crate::decrypt_pkcs8_pem(&text, password)
                .map_err(|e| pem_err(key, format!("cannot decrypt the key: {e}")))?;
            PrivateKeyDer::Pkcs8(der.into())
        } else {
            PrivateKeyDer::from_pem_slice(text.as_bytes())
                .map_err(|e| pem_err(key, e.to_string()))?
        };
        Ok(Self { chain, key })
    }

    /// The international identity of `[tls]` (files, or generated).
    pub fn international(config: &TlsConfig, hostname: &str) -> Result<Self, TlsError> {
        match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => {
                Identity::from_pem_files(cert, key, key_password(config)?.as_deref())
            }
            _ => Identity::self_signed(hostname),
        }
    }

    /// The SM2 identity of `[tls]` (files, or generated).
    pub fn sm2(config: &TlsConfig, hostname: &str) -> Result<Self, TlsError> {
        match (&config.sm_cert, &config.sm_key) {
            (Some(cert), Some(key)) => {
                Identity::from_pem_files(cert, key, key_password(config)?.as_deref())
            }
            _ => Identity::self_signed_sm2(hostname),
        }
    }

    /// TLCP's SM2 encryption identity of `[tls]` (files, or generated).
    pub fn sm2_encryption(config: &TlsConfig, hostname: &str) -> Result<Self, TlsError> {
        match (&config.sm_enc_cert, &config.sm_enc_key) {
            (Some(cert), Some(key)) => {
                Identity::from_pem_files(cert, key, key_password(config)?.as_deref())
            }
            _ => Identity::self_signed_sm2_for(hostname, cert::Usage::Encryption),
        }
    }

    /// Generates an SM2 key and a self-signed SM2 signing certificate for `hostname`.
    pub fn self_signed_sm2(hostname: &str) -> Result<Self, TlsError> {
        Identity::self_signed_sm2_for(hostname, cert::Usage::Signing)
    }

    fn self_signed_sm2_for(hostname: &str, usage: cert::Usage) -> Result<Self, TlsError> {
        let generated = |e: crate::GmError| TlsError::Pem {
            path: "<generated SM2>".into(),
            reason: e.to_string(),
        };
        let key = Sm2PrivateKey::generate();
        let cert = cert::self_signed(&key, hostname, 3650, usage).map_err(generated)?;
        let der = key.to_pkcs8_der().map_err(generated)?;
        Ok(Self {
            chain: vec![CertificateDer::from(cert)],
            key: PrivateKeyDer::Pkcs8(der.into()),
        })
    }

    /// Generates a self-signed certificate for `hostname` (and localhost).
    pub fn self_signed(hostname: &str) -> Result<Self, TlsError> {
        let mut names = vec![hostname.to_owned()];
        if hostname != "localhost" {
            names.push("localhost".to_owned());
        }
        let mut params = rcgen::CertificateParams::new(names)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, hostname);
        let signing_key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&signing_key)?;
        let key =
            PrivateKeyDer::try_from(signing_key.serialize_der()).map_err(|e| TlsError::Pem {
                path: "<generated>".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            chain: vec![cert.der().clone()],
            key,
        })
    }

    /// The SM2 private key, for protocols outside rustls (TLCP).
    fn sm2_key(&self) -> Result<Sm2PrivateKey, TlsError> {
        let parsed = match &self.key {
            PrivateKeyDer::Pkcs8(k) => Sm2PrivateKey::from_pkcs8_der(k.secret_pkcs8_der()),
            PrivateKeyDer::Sec1(k) => Sm2PrivateKey::from_sec1_der(k.secret_sec1_der()),
            _ => Err(crate::GmError::BadKey),
        };
        parsed.map_err(|e| TlsError::Pem {
            path: "<SM2 key>".into(),
            reason: e.to_string(),
        })
    }
}

/// The password for encrypted keys in `[tls]` (`key_password_file`, first line).
fn key_password(config: &TlsConfig) -> Result<Option<Vec<u8>>, TlsError> {
    let Some(path) = &config.key_password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Some(
        text.lines().next().unwrap_or_default().as_bytes().to_vec(),
    ))
}

/// A byte stream after any of the handshakes (TLS, RFC 8998 or TLCP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The server side of TLS: an international configuration, a national-cipher one for clients
/// that offer RFC 8998 (TLS_SM4_GCM_SM3 with sm2sig_sm3), and TLCP for clients whose first
/// record says version 0x0101. A certificate installed from the console replaces its role's
/// configuration for the next handshake; connections already open keep theirs.
pub struct ServerTls {
    served: std::sync::RwLock<Arc<Served>>,
}

/// The configurations of one moment, and the SM2 identities TLCP is built from.
#[derive(Clone)]
struct Served {
    international: Arc<ServerConfig>,
    sm: Arc<ServerConfig>,
    sm_sign: Identity,
    sm_enc: Option<Identity>,
    tlcp: Option<Arc<tlcp::ServerConfig>>,
}

impl ServerTls {
    /// All configurations from `[tls]`; missing SM2 certificates are generated.
    pub fn new(config: &TlsConfig, hostname: &str) -> Result<ServerTls, TlsError> {
        let sm_sign = Identity::sm2(config, hostname)?;
        let sm_enc = if config.tlcp {
            Some(Identity::sm2_encryption(config, hostname)?)
        } else {
            None
        };
        let tlcp = match &sm_enc {
            Some(enc) => Some(tlcp_server(&sm_sign, enc)?),
            None => None,
        };
        let served = Served {
            international: server_config(config, hostname)?,
            sm: sm_server_config_for(sm_sign.clone())?,
            sm_sign,
            sm_enc,
            tlcp,
        };
        Ok(ServerTls {
            served: std::sync::RwLock::new(Arc::new(served)),
        })
    }

    /// Serves `identity` as `role` from the next handshake on; on error nothing changes. The
    /// TLCP encryption certificate is kept even where TLCP is off, for when it is turned on.
    pub fn install(&self, role: crate::pair::CertRole, identity: Identity) -> Result<(), TlsError> {
        use crate::pair::CertRole;
        // Held from read to write: two installs at once must not lose one.
        let mut served = self.served.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Served::clone(&served);
        match role {
            CertRole::International => next.international = server_config_for(identity)?,
            CertRole::Sm2Signing => {
                next.sm = sm_server_config_for(identity.clone())?;
                next.sm_sign = identity;
            }
            CertRole::Sm2Encryption => next.sm_enc = Some(identity),
        }
        if let (Some(_), Some(enc)) = (&next.tlcp, &next.sm_enc) {
            next.tlcp = Some(tlcp_server(&next.sm_sign, enc)?);
        }
        *served = Arc::new(next);
        Ok(())
    }

    fn current(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a client asks for the national-cipher suite.
    pub fn wants_sm(hello: &rustls::server::ClientHello<'_>) -> bool {
        hello.cipher_suites().contains(&rfc8998::SUITE_SM4_GCM_SM3)
            && hello.signature_schemes().contains(&rfc8998::SCHEME_SM2_SM3)
    }

    /// Reads the client's first record on `stream` and completes the handshake it asks for:
    /// TLCP, RFC 8998 or international TLS. Returns the plaintext stream and what was
    /// negotiated (see [`describe`]).
    pub async fn accept<IO>(&self, mut stream: IO) -> std::io::Result<(Box<dyn Stream>, String)>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let served = self.current();
        let mut first = [0u8; 3];
        stream.read_exact(&mut first).await?;
        let stream = Rewind::new(first.to_vec(), stream);
        if let Some(config) = served.tlcp.as_ref().filter(|_| tlcp::starts_tlcp(&first)) {
            let tlcp = tlcp::accept(config.clone(), stream)
                .await
                .map_err(std::io::Error::other)?;
            let negotiated = format!("TLCP with cipher {}", tlcp.suite().name());
            return Ok((Box::new(tlcp), negotiated));
        }
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await?;
        let config = if Self::wants_sm(&start.client_hello()) {
            served.sm.clone()
        } else {
            served.international.clone()
        };
        let tls = start.into_stream(config).await?;
        let negotiated = describe(tls.get_ref().1);
        Ok((Box::new(tls), negotiated))
    }
}

/// TLCP's server configuration: `sign` is the SM2 signing identity (the RFC 8998
/// certificate), `enc` receives the key exchange.
fn tlcp_server(sign: &Identity, enc: &Identity) -> Result<Arc<tlcp::ServerConfig>, TlsError> {
    let enc_cert = enc.chain.first().map(|c| c.to_vec()).unwrap_or_default();
    let server = tlcp::ServerConfig::new(
        sign.chain.iter().map(|c| c.to_vec()).collect(),
        &sign.sm2_key()?,
        enc_cert,
        enc.sm2_key()?,
    )
    .map_err(|e| TlsError::Pem {
        path: "<TLCP identity>".into(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(server))
}

/// A stream whose first bytes were already read: they are served again before the rest.
pub struct Rewind<IO> {
    prefix: Vec<u8>,
    at: usize,
    inner: IO,
}

impl<IO> Rewind<IO> {
    /// `prefix` was read from `inner` and is read again first.
    pub fn new(prefix: Vec<u8>, inner: IO) -> Self {
        Rewind {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The inbound server configuration with the international certificate.
pub fn server_config(config: &TlsConfig, hostname: &str) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_for(Identity::international(config, hostname)?)
}

/// An RFC 8998 server configuration (TLS 1.3 only) for an SM2 identity.
pub fn sm_server_config_for(identity: Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let config = ServerConfig::builder_with_provider(Arc::new(rfc8998::provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    Ok(Arc::new(config))
}

/// A server configuration for a given identity.
pub fn server_config_for(identity: Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    Ok(Arc::new(config))
}

/// Whom an outbound connection accepts as its server, beyond encrypting (RFC 7435 without it).
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Any certificate: encryption against passive listeners only.
    Anyone,
    /// A certificate chaining to one of these authorities (a site's own CA) and naming the
    /// server.
    Authorities(Vec<CertificateDer<'static>>),
    /// A certificate chaining to one of the system's authorities and naming the server.
    SystemAuthorities,
    /// A certificate carrying one of these public keys (SHA-256 of its SubjectPublicKeyInfo,
    /// as a DANE `3 1 1` record pins it), whoever issued it, whatever its name or dates: for
    /// an internal server with a certificate of its own making.
    Pins(Vec<[u8; 32]>),
    /// A certificate chain matching one of these DNSSEC-signed TLSA records (RFC 7672): at
    /// least one must be usable ([`Tlsa::is_usable`](crate::dane::Tlsa::is_usable)).
    Dane(Vec<crate::dane::Tlsa>),
}

/// The outbound client configuration: encrypts without authenticating the server, as SMTP
/// opportunistic TLS does (RFC 7435); signatures in the handshake are still checked. It offers
/// the international suites first and RFC 8998 after them (a server that only speaks SM
/// answers with a HelloRetryRequest for curveSM2).
pub fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    verifying_client_config(&ServerTrust::Anyone)
}

/// An outbound client configuration that accepts only the servers `trust` allows, with the
/// same suites as [`client_config`].
pub fn verifying_client_config(trust: &ServerTrust) -> Result<Arc<ClientConfig>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let sm = rfc8998::provider();
    provider.cipher_suites.extend(sm.cipher_suites);
    provider.kx_groups.extend(sm.kx_groups);
    let provider = Arc::new(provider);
    let signatures_only = |pins: &[[u8; 32]]| Arc::new(SignatureOnly::new(pins.to_vec()));
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        ServerTrust::Anyone => builder
            .dangerous()
            .with_custom_certificate_verifier(signatures_only(&[])),
        ServerTrust::Pins(pins) if pins.is_empty() => {
            return Err(TlsError::Authorities("no public key pinned".into()));
        }
        ServerTrust::Pins(pins) => builder
            .dangerous()
            .with_custom_certificate_verifier(signatures_only(pins)),
        ServerTrust::Dane(records) if !records.iter().any(|r| r.is_usable()) => {
            return Err(TlsError::Authorities("no usable TLSA record".into()));
        }
        ServerTrust::Dane(records) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::dane::DaneVerifier::new(
                    records,
                    provider.clone(),
                )))
        }
        ServerTrust::Authorities(_) | ServerTrust::SystemAuthorities => {
            let mut roots = rustls::RootCertStore::empty();
            match trust {
                ServerTrust::Authorities(cas) => {
                    for ca in cas {
                        roots
                            .add(ca.clone())
                            .map_err(|e| TlsError::Authorities(e.to_string()))?;
                    }
                }
                _ => {
                    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                }
            }
            if roots.is_empty() {
                return Err(TlsError::Authorities("none found".into()));
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Authorities(e.to_string()))?;
            builder.with_webpki_verifier(verifier)
        }
    };
    Ok(Arc::new(config.with_no_client_auth()))
}

/// An outbound-style client configuration (any certificate, checked handshake signatures)
/// over `provider`.
pub fn client_config_with(provider: CryptoProvider) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = Arc::new(SignatureOnly::new(Vec::new()));
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo: what [`ServerTrust::Pins`] holds.
pub fn public_key_pin(certificate: &[u8]) -> Result<[u8; 32], String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(certificate).map_err(|e| e.to_string())?;
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        parsed.tbs_certificate.subject_pki.raw,
    );
    let mut pin = [0u8; 32];
    pin.copy_from_slice(digest.as_ref());
    Ok(pin)
}

/// Verifies handshake signatures (SM2 ones with RFC 8998's); the certificate itself only for
/// its public key, when `pins` are given, else not at all.
#[derive(Debug)]
pub(crate) struct SignatureOnly {
    algorithms: WebPkiSupportedAlgorithms,
    pins: Vec<[u8; 32]>,
}

impl SignatureOnly {
    /// Checks signatures with ring's algorithms and RFC 8998's; certificates against `pins`.
    pub(crate) fn new(pins: Vec<[u8; 32]>) -> Self {
        Self {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            pins,
        }
    }

    fn algorithms_for(&self, scheme: SignatureScheme) -> &WebPkiSupportedAlgorithms {
        if scheme == rfc8998::SCHEME_SM2_SM3 {
            &rfc8998::SM2_ALGORITHMS
        } else {
            &self.algorithms
        }
    }
}

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pins.is_empty() {
            return Ok(ServerCertVerified::assertion());
        }
        let pin = public_key_pin(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self.pins.contains(&pin) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms_for(dss.scheme))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut schemes = self.algorithms.supported_schemes();
        schemes.push(rfc8998::SCHEME_SM2_SM3);
        schemes
    }
}

/// What a connection negotiated, for logs and `Received:` headers:
/// `TLSv1.3 with cipher TLS_SM4_GCM_SM3 (curveSM2)`.
pub fn describe(conn: &rustls::CommonState) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_owned(),
    };
    let suite = match conn.negotiated_cipher_suite().map(|s| s.suite()) {
        Some(rfc8998::SUITE_SM4_GCM_SM3) => "TLS_SM4_GCM_SM3".to_owned(),
        Some(s) => s
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{s:?}")),
        None => "unknown".to_owned(),
    };
    let group = match conn.negotiated_key_exchange_group().map(|g| g.name()) {
        Some(rfc8998::GROUP_CURVE_SM2) => "curveSM2".to_owned(),
        Some(g) => g
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{g:?}")),
        None => "unknown".to_owned(),
    };
    format!("{version} with cipher {suite} ({group})")
}
