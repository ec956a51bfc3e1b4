//! The TLCP client handshake (ECC suites), for delivering to downstreams that speak only TLCP.
//! Like the TLS client of opportunistic SMTP (RFC 7435) it does not authenticate the server's
//! certificate against a CA, but it does check that the ServerKeyExchange is signed by the
//! signing certificate's key over this handshake's randoms and the encryption certificate, so
//! the pre-master secret goes to the key the server vouched for. Given pins, it also requires the
//! signing certificate's public key to be one of them (an internal downstream's own key).

use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};

use super::TlcpError;
use super::conn::{TlcpStream, establish, random};
use super::handshake::{self, SECRET_LEN, Suite, VERIFY_LEN, kind};
use super::record::{ContentType, VERSION};
use crate::sm2::{DEFAULT_ID, Sm2PublicKey};
use crate::sm3::Sm3Hasher;

/// The SM2 public key of a DER certificate.
pub(super) fn public_key(der: &[u8]) -> Result<Sm2PublicKey, TlcpError> {
    let cert = rustls_pki_types::CertificateDer::from(der);
    let parsed = webpki::EndEntityCert::try_from(&cert)
        .map_err(|_| TlcpError::Decode("server certificate"))?;
    Sm2PublicKey::from_spki_der(parsed.subject_public_key_info().as_ref())
        .map_err(|_| TlcpError::Decode("server certificate is not SM2"))
}

/// Runs the client handshake on `io` (offering both ECC suites, GCM first) and returns the
/// plaintext stream; with `pins` (SHA-256 of SubjectPublicKeyInfo, as
/// [`crate::tls::public_key_pin`]), only a server whose signing certificate carries one of them.
/// The caller bounds the time.
pub async fn connect<IO>(io: IO, pins: &[[u8; 32]]) -> Result<TlcpStream, TlcpError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    establish(io, async |conn| {
        let mut transcript = Sm3Hasher::new();
        let client_random: [u8; 32] = random()?;
        let hello = handshake::client_hello(&client_random, &Suite::CLIENT_OFFER);
        transcript.update(&hello);
        conn.writer.write(ContentType::Handshake, &hello).await?;

        let message = conn.read_message(kind::SERVER_HELLO, "ServerHello").await?;
        transcript.update(&message);
        let (server_random, suite) =
            handshake::parse_server_hello(&message[4..], &Suite::CLIENT_OFFER)?;

        let message = conn.read_message(kind::CERTIFICATE, "Certificate").await?;
        transcript.update(&message);
        let certs = handshake::parse_certificate(&message[4..])?;
        let [sign_cert, enc_cert, ..] = certs[..] else {
            return Err(TlcpError::Decode(
                "TLCP needs signing and encryption certificates",
            ));
        };
        let (sign_key, enc_key) = (public_key(sign_cert)?, public_key(enc_cert)?);
        let signing_certificate = sign_cert.to_vec();
        // The encryption certificate is bound by the signature below: pinning the signing key
        // pins both.
        if !pins.is_empty() {
            let pin = crate::tls::public_key_pin(sign_cert)
                .map_err(|_| TlcpError::Decode("server certificate"))?;
            if !pins.contains(&pin) {
                return Err(TlcpError::NotPinned);
            }
        }

        let message = conn
            .read_message(kind::SERVER_KEY_EXCHANGE, "ServerKeyExchange")
            .await?;
        transcript.update(&message);
        let signature = handshake::parse_server_key_exchange(&message[4..])?;
        let signed = handshake::key_exchange_signed_data(
            &client_random,
            &server_random,
            &handshake::asn1_cert(enc_cert),
        );
        sign_key
            .verify(DEFAULT_ID, &signed, signature)
            .map_err(|_| TlcpError::BadSignature)?;

        let message = conn
            .read_message(
                kind::SERVER_HELLO_DONE,
                "ServerHelloDone (client certificates are not supported)",
            )
            .await?;
        transcript.update(&message);
        if message.len() != 4 {
            return Err(TlcpError::Decode("ServerHelloDone"));
        }

        let mut pre_master = [0u8; SECRET_LEN];
        pre_master[..2].copy_from_slice(&VERSION.to_be_bytes());
        pre_master[2..].copy_from_slice(&random::<{ SECRET_LEN - 2 }>()?);
        let ciphertext = enc_key
            .encrypt(&pre_master)
            .map_err(|_| TlcpError::Internal)?;
        let exchange = handshake::client_key_exchange(&ciphertext);
        transcript.update(&exchange);
        conn.writer.write(ContentType::Handshake, &exchange).await?;
        let master = handshake::master_secret(&pre_master, &client_random, &server_random);
        let (client_keys, server_keys) =
            handshake::key_block(suite, &master, &client_random, &server_random);

        conn.writer
            .write(ContentType::ChangeCipherSpec, &[1])
            .await?;
        conn.writer.tx.protect(client_keys);
        let ours = handshake::verify_data(&master, true, &transcript.current());
        let finished = handshake::message(kind::FINISHED, &ours);
        transcript.update(&finished);
        conn.writer.write(ContentType::Handshake, &finished).await?;

        match conn.reader.read().await? {
            (ContentType::ChangeCipherSpec, body) if body == [1] && conn.pending.is_empty() => {}
            _ => return Err(TlcpError::Unexpected("ChangeCipherSpec")),
        }
        conn.reader.rx.protect(server_keys);
        let expected = handshake::verify_data(&master, false, &transcript.current());
        let theirs = conn.read_message(kind::FINISHED, "Finished").await?;
        if theirs.len() != 4 + VERIFY_LEN || !bool::from(theirs[4..].ct_eq(&expected)) {
            return Err(TlcpError::BadFinished);
        }
        Ok((suite, Some(signing_certificate)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{self, Usage};
    use crate::sm2::Sm2PrivateKey;
    use crate::tlcp::{ServerConfig, accept};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn server_config(enc_cert_key: Option<&Sm2PrivateKey>) -> ServerConfig {
        let sign = Sm2PrivateKey::generate();
        let enc = Sm2PrivateKey::generate();
        // A server that shows one encryption certificate but holds another key.
        let shown = enc_cert_key.unwrap_or(&enc);
        ServerConfig::new(
            vec![cert::self_signed(&sign, "gw.test", 1, Usage::Signing).unwrap()],
            &sign,
            cert::self_signed(shown, "gw.test", 1, Usage::Encryption).unwrap(),
            enc,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn our_client_and_server_agree_and_carry_data() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(accept(Arc::new(server_config(None)), b));
        let mut client = connect(a, &[]).await.unwrap();
        let mut server = server.await.unwrap().unwrap();
        assert_eq!(client.suite(), Suite::EccSm4GcmSm3);
        client.write_all(b"EHLO x\r\n").await.unwrap();
        let mut got = [0u8; 8];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"EHLO x\r\n");
        let big = vec![b'z'; 100_000];
        server.write_all(&big).await.unwrap();
        let mut back = vec![0u8; big.len()];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, big);
    }

    #[tokio::test]
    async fn a_server_without_the_encryption_key_cannot_read_the_clients_finished() {
        let other = Sm2PrivateKey::generate();
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(accept(Arc::new(server_config(Some(&other))), b));
        let client = connect(a, &[]).await;
        assert!(client.is_err());
        // Its random pre-master secret gives other keys: the Finished record fails its check.
        assert_eq!(server.await.unwrap().err(), Some(TlcpError::BadRecordMac));
    }

    /// Finding 9 of the hardening review: a TLCP downstream could be anyone. A route's pins
    /// name the signing key it must have.
    #[tokio::test]
    async fn a_pinned_client_talks_only_to_the_key_it_pinned() {
        let (sign, enc) = (Sm2PrivateKey::generate(), Sm2PrivateKey::generate());
        let sign_cert = cert::self_signed(&sign, "gw.test", 1, Usage::Signing).unwrap();
        let pin = crate::tls::public_key_pin(&sign_cert).unwrap();
        let enc_cert = cert::self_signed(&enc, "gw.test", 1, Usage::Encryption).unwrap();
        let config = Arc::new(ServerConfig::new(vec![sign_cert], &sign, enc_cert, enc).unwrap());
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(accept(config.clone(), b));
        assert!(connect(a, &[[7; 32], pin]).await.is_ok());
        assert!(server.await.unwrap().is_ok());
        let (a, b) = tokio::io::duplex(1 << 16);
        let _server = tokio::spawn(accept(config, b));
        assert_eq!(
            connect(a, &[[7; 32]]).await.err(),
            Some(TlcpError::NotPinned)
        );
    }
}
