//! TLS configurations in one place: the inbound server side (an international certificate on
//! the ring provider, and an SM2 certificate on the RFC 8998 provider of [`crate::gm`], chosen
//! per connection from the ClientHello) and the outbound client, which offers both.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::TlsConfig;
use crate::gm::rfc8998;

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
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key.
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
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
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e.to_string()))?;
        Ok(Self { chain, key })
    }

    /// The international identity of `[tls]` (files, or generated).
    pub fn international(config: &TlsConfig, hostname: &str) -> Result<Self, TlsError> {
        match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => Identity::from_pem_files(cert, key),
            _ => Identity::self_signed(hostname),
        }
    }

    /// The SM2 identity of `[tls]` (files, or generated).
    pub fn sm2(config: &TlsConfig, hostname: &str) -> Result<Self, TlsError> {
        match (&config.sm_cert, &config.sm_key) {
            (Some(cert), Some(key)) => Identity::from_pem_files(cert, key),
            _ => Identity::self_signed_sm2(hostname),
        }
    }

    /// Generates an SM2 key and a self-signed SM2 certificate for `hostname`.
    pub fn self_signed_sm2(hostname: &str) -> Result<Self, TlsError> {
        let generated = |e: crate::gm::GmError| TlsError::Pem {
            path: "<generated SM2>".into(),
            reason: e.to_string(),
        };
        let key = crate::gm::sm2::Sm2PrivateKey::generate();
        let cert = crate::gm::cert::self_signed(&key, hostname, 3650).map_err(generated)?;
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
}

/// The server side of TLS: an international configuration, and a national-cipher one for
/// clients that offer RFC 8998 (TLS_SM4_GCM_SM3 with sm2sig_sm3).
pub struct ServerTls {
    international: Arc<ServerConfig>,
    sm: Arc<ServerConfig>,
}

impl ServerTls {
    /// Both configurations from `[tls]`; a missing SM2 certificate is generated.
    pub fn new(config: &TlsConfig, hostname: &str) -> Result<ServerTls, TlsError> {
        Ok(ServerTls {
            international: server_config(config, hostname)?,
            sm: sm_server_config_for(Identity::sm2(config, hostname)?)?,
        })
    }

    /// Whether a client asks for the national-cipher suite.
    pub fn wants_sm(hello: &rustls::server::ClientHello<'_>) -> bool {
        hello.cipher_suites().contains(&rfc8998::SUITE_SM4_GCM_SM3)
            && hello.signature_schemes().contains(&rfc8998::SCHEME_SM2_SM3)
    }

    /// Reads the ClientHello on `stream` and completes the handshake with the matching
    /// configuration.
    pub async fn accept<IO>(
        &self,
        stream: IO,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await?;
        let config = if Self::wants_sm(&start.client_hello()) {
            self.sm.clone()
        } else {
            self.international.clone()
        };
        start.into_stream(config).await
    }
}

/// The inbound server configuration with the international certificate.
pub fn server_config(config: &TlsConfig, hostname: &str) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_for(Identity::international(config, hostname)?)
}

/// One configuration serving both kinds of client, for servers that cannot choose a
/// configuration per connection (the console under actix-web): RFC 8998's suite comes first in
/// the server's order, and the certificate is chosen from the ClientHello as [`ServerTls`]
/// does. In TLS 1.3 suite and certificate are independent, so every pairing is valid.
pub fn dual_server_config(config: &TlsConfig, hostname: &str) -> Result<ServerConfig, TlsError> {
    let certified = |identity: Identity, provider: &CryptoProvider| -> Result<_, TlsError> {
        let key = provider.key_provider.load_private_key(identity.key)?;
        Ok(Arc::new(rustls::sign::CertifiedKey::new(
            identity.chain,
            key,
        )))
    };
    let sm = rfc8998::provider();
    let mut provider = rustls::crypto::ring::default_provider();
    let resolver = DualResolver {
        international: certified(Identity::international(config, hostname)?, &provider)?,
        sm: certified(Identity::sm2(config, hostname)?, &sm)?,
    };
    let mut suites = sm.cipher_suites;
    suites.append(&mut provider.cipher_suites);
    provider.cipher_suites = suites;
    provider.kx_groups.extend(sm.kx_groups);
    let mut server = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    server.ignore_client_order = true;
    Ok(server)
}

/// Picks the SM2 or the international certificate from the ClientHello.
#[derive(Debug)]
struct DualResolver {
    international: Arc<rustls::sign::CertifiedKey>,
    sm: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for DualResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(if ServerTls::wants_sm(&hello) {
            self.sm.clone()
        } else {
            self.international.clone()
        })
    }
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

/// The outbound client configuration: encrypts without authenticating the server, as SMTP
/// opportunistic TLS does (RFC 7435); signatures in the handshake are still checked. It offers
/// the international suites first and RFC 8998 after them (a server that only speaks SM
/// answers with a HelloRetryRequest for curveSM2).
pub fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let sm = rfc8998::provider();
    provider.cipher_suites.extend(sm.cipher_suites);
    provider.kx_groups.extend(sm.kx_groups);
    client_config_with(provider)
}

/// An outbound-style client configuration (any certificate, checked handshake signatures)
/// over `provider`.
pub fn client_config_with(provider: CryptoProvider) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = Arc::new(EncryptOnly {
        algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
    });
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts any certificate but verifies handshake signatures (SM2 ones with RFC 8998's).
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl EncryptOnly {
    fn algorithms_for(&self, scheme: SignatureScheme) -> &WebPkiSupportedAlgorithms {
        if scheme == rfc8998::SCHEME_SM2_SM3 {
            &rfc8998::SM2_ALGORITHMS
        } else {
            &self.algorithms
        }
    }
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
