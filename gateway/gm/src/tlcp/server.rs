//! The TLCP server handshake (ECC suites): signing and encryption certificates out, the
//! SM2-encrypted pre-master secret in.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};

use super::TlcpError;
use super::conn::{Conn, TlcpStream, establish, random};
use super::handshake::{self, SECRET_LEN, Suite, VERIFY_LEN, kind};
use super::record::{ContentType, VERSION};
use crate::GmError;
use crate::sm2::{
    AgreementParty, DEFAULT_ID, Sm2IdSigner, Sm2PrivateKey, Sm2PublicKey, key_agreement,
};
use crate::sm3::Sm3Hasher;

/// The server's two SM2 identities.
pub struct ServerConfig {
    sign_cert: Vec<u8>,
    chain: Vec<Vec<u8>>,
    signer: Sm2IdSigner,
    enc_cert: Vec<u8>,
    enc_key: Sm2PrivateKey,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tlcp::ServerConfig")
    }
}

impl ServerConfig {
    /// `sign_chain` is the signing certificate then its CA chain (DER); `enc_cert` the
    /// encryption certificate; each with its key.
    pub fn new(
        sign_chain: Vec<Vec<u8>>,
        sign_key: &Sm2PrivateKey,
        enc_cert: Vec<u8>,
        enc_key: Sm2PrivateKey,
    ) -> Result<Self, GmError> {
        let mut chain = sign_chain.into_iter();
        let sign_cert = chain.next().ok_or(GmError::BadKey)?;
        Ok(ServerConfig {
            sign_cert,
            chain: chain.collect(),
            signer: sign_key.signer(DEFAULT_ID)?,
            enc_cert,
            enc_key,
        })
    }
}

/// Runs the server handshake on `io` (which must not have been read from) and returns the
/// plaintext stream. The caller bounds the time (a silent client would wait forever).
pub async fn accept<IO>(config: Arc<ServerConfig>, io: IO) -> Result<TlcpStream, TlcpError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    establish(io, async |conn| Ok((handshake(&config, conn).await?, None))).await
}

/// The full ECC handshake; returns the suite once both Finished messages are exchanged.
async fn handshake<IO: AsyncRead + AsyncWrite>(
    config: &ServerConfig,
    conn: &mut Conn<IO>,
) -> Result<Suite, TlcpError> {
    let mut transcript = Sm3Hasher::new();
    let message = conn.read_message(kind::CLIENT_HELLO, "ClientHello").await?;
    transcript.update(&message);
    let hello = handshake::parse_client_hello(&message[4..])?;

    let mut server_random: [u8; 32] = random()?;
    let now = chrono::Utc::now().timestamp() as u32;
    server_random[..4].copy_from_slice(&now.to_be_bytes());
    // ECDHE: an ephemeral SM2 key, and the client's certificates are needed.
    let ephemeral = hello.suite.is_ecdhe().then(Sm2PrivateKey::generate);
    let params = match &ephemeral {
        Some(key) => handshake::ecdhe_params(&key.public_key().to_sec1()),
        None => handshake::asn1_cert(&config.enc_cert),
    };
    let signed = handshake::key_exchange_signed_data(&hello.random, &server_random, &params);
    let mut flight = vec![
        handshake::server_hello(&server_random, hello.suite),
        handshake::certificate(&config.sign_cert, &config.enc_cert, &config.chain),
        handshake::server_key_exchange(
            if ephemeral.is_some() { &params } else { &[] },
            &config.signer.sign(&signed),
        ),
    ];
    if ephemeral.is_some() {
        flight.push(handshake::certificate_request());
    }
    flight.push(handshake::message(kind::SERVER_HELLO_DONE, &[]));
    for message in &flight {
        transcript.update(message);
    }
    conn.writer.write_flight(&flight).await?;

    let pre_master = match &ephemeral {
        Some(ephemeral) => ecdhe_pre_master(config, conn, &mut transcript, ephemeral).await?,
        None => {
            let message = conn
                .read_message(kind::CLIENT_KEY_EXCHANGE, "ClientKeyExchange")
                .await?;
            transcript.update(&message);
            let ciphertext = handshake::parse_client_key_exchange(&message[4..])?;
            // A pre-master secret that fails to decrypt or names another version is replaced
            // by a random one: the handshake then fails at Finished, as it would for a wrong
            // key, so a client learns nothing about which check failed.
            let fallback: [u8; SECRET_LEN] = random()?;
            match config.enc_key.decrypt(ciphertext) {
                Ok(p) if p.len() == SECRET_LEN && p[..2] == VERSION.to_be_bytes() => p,
                _ => fallback.to_vec(),
            }
        }
    };
    let master = handshake::master_secret(&pre_master, &hello.random, &server_random);
    let (client_keys, server_keys) =
        handshake::key_block(hello.suite, &master, &hello.random, &server_random);

    match conn.reader.read().await? {
        (ContentType::ChangeCipherSpec, body) if body == [1] && conn.pending.is_empty() => {}
        _ => return Err(TlcpError::Unexpected("ChangeCipherSpec")),
    }
    conn.reader.rx.protect(client_keys);
    let expected = handshake::verify_data(&master, true, &transcript.current());
    let finished = conn.read_message(kind::FINISHED, "Finished").await?;
    if finished.len() != 4 + VERIFY_LEN || !bool::from(finished[4..].ct_eq(&expected)) {
        return Err(TlcpError::BadFinished);
    }
    transcript.update(&finished);
    if !conn.pending.is_empty() {
        return Err(TlcpError::Unexpected("data after Finished"));
    }

    conn.writer
        .write(ContentType::ChangeCipherSpec, &[1])
        .await?;
    conn.writer.tx.protect(server_keys);
    let ours = handshake::verify_data(&master, false, &transcript.current());
    conn.writer
        .write(
            ContentType::Handshake,
            &handshake::message(kind::FINISHED, &ours),
        )
        .await?;
    Ok(hello.suite)
}

/// ECDHE: the client's certificates, its ephemeral point and its CertificateVerify, then SM2
/// key agreement with the server as initiator (its encryption key and ephemeral) and the
/// client as responder (its encryption certificate's key and ephemeral). The client's
/// certificates are not checked against a CA (there is no client CA to configure); their
/// keys must match the signature and the agreement.
async fn ecdhe_pre_master<IO: AsyncRead>(
    config: &ServerConfig,
    conn: &mut Conn<IO>,
    transcript: &mut Sm3Hasher,
    ephemeral: &Sm2PrivateKey,
) -> Result<Vec<u8>, TlcpError> {
    let message = conn
        .read_message(kind::CERTIFICATE, "client Certificate")
        .await?;
    transcript.update(&message);
    let certs = handshake::parse_certificate(&message[4..])?;
    let [sign_cert, enc_cert, ..] = certs[..] else {
        return Err(TlcpError::Decode(
            "ECDHE needs the client's signing and encryption certificates",
        ));
    };
    let (client_sign, client_enc) = (
        super::client::public_key(sign_cert)?,
        super::client::public_key(enc_cert)?,
    );
    let message = conn
        .read_message(kind::CLIENT_KEY_EXCHANGE, "ClientKeyExchange")
        .await?;
    transcript.update(&message);
    let client_ephemeral =
        Sm2PublicKey::from_sec1(handshake::parse_ecdhe_client_key_exchange(&message[4..])?)
            .map_err(|_| TlcpError::Decode("ECDHE point"))?;
    // CertificateVerify signs the SM3 hash of every handshake message before it.
    let signed = transcript.current();
    let message = conn
        .read_message(kind::CERTIFICATE_VERIFY, "CertificateVerify")
        .await?;
    transcript.update(&message);
    let signature = handshake::parse_certificate_verify(&message[4..])?;
    client_sign
        .verify(DEFAULT_ID, &signed, signature)
        .map_err(|_| TlcpError::BadSignature)?;
    let (server_enc, server_ephemeral) = (config.enc_key.public_key(), ephemeral.public_key());
    key_agreement(
        true,
        &config.enc_key,
        ephemeral,
        &AgreementParty {
            static_key: &server_enc,
            ephemeral: &server_ephemeral,
            id: DEFAULT_ID,
        },
        &AgreementParty {
            static_key: &client_enc,
            ephemeral: &client_ephemeral,
            id: DEFAULT_ID,
        },
        SECRET_LEN,
    )
    .map_err(|_| TlcpError::Decode("ECDHE key agreement"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{self, Usage};
    use crate::sm2::Sm2PublicKey;
    use crate::tlcp::record::{Direction, HEADER_LEN, parse_header};
    use tokio::io::DuplexStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on one end of a pipe; the test plays the client on the other.
    struct Peer {
        io: DuplexStream,
        tx: Direction,
        rx: Direction,
        sign_public: Sm2PublicKey,
        enc_public: Sm2PublicKey,
        server: tokio::task::JoinHandle<Result<TlcpStream, TlcpError>>,
    }

    fn start() -> Peer {
        let sign = Sm2PrivateKey::generate();
        let enc = Sm2PrivateKey::generate();
        let (sign_public, enc_public) = (sign.public_key(), enc.public_key());
        let config = ServerConfig::new(
            vec![cert::self_signed(&sign, "gw.test", 1, Usage::Signing).unwrap()],
            &sign,
            cert::self_signed(&enc, "gw.test", 1, Usage::Encryption).unwrap(),
            enc,
        )
        .unwrap();
        let (io, server_io) = tokio::io::duplex(1 << 16);
        Peer {
            io,
            tx: Direction::default(),
            rx: Direction::default(),
            sign_public,
            enc_public,
            server: tokio::spawn(accept(Arc::new(config), server_io)),
        }
    }

    impl Peer {
        async fn send(&mut self, content: ContentType, data: &[u8]) {
            let record = self.tx.seal(content, data).unwrap();
            self.io.write_all(&record).await.unwrap();
        }

        async fn record(&mut self) -> (ContentType, Vec<u8>) {
            let mut head = [0u8; HEADER_LEN];
            self.io.read_exact(&mut head).await.unwrap();
            let header = parse_header(&head).unwrap();
            let mut body = vec![0u8; header.len];
            self.io.read_exact(&mut body).await.unwrap();
            (header.content, self.rx.open(header.content, &body).unwrap())
        }

        /// The alert the server ends with.
        async fn alert(&mut self) -> u8 {
            loop {
                if let (ContentType::Alert, body) = self.record().await {
                    return body[1];
                }
            }
        }
    }

    fn hello(version: u16, suites: &[u16]) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        body.extend([3u8; 32]);
        body.push(0);
        body.extend(((suites.len() * 2) as u16).to_be_bytes());
        suites.iter().for_each(|s| body.extend(s.to_be_bytes()));
        body.extend([1, 0]);
        handshake::message(kind::CLIENT_HELLO, &body)
    }

    /// Runs the client side up to (not including) its Finished; returns the transcript and
    /// the master secret.
    async fn to_finished(peer: &mut Peer, suite: Suite) -> (Sm3Hasher, [u8; SECRET_LEN]) {
        let mut transcript = Sm3Hasher::new();
        let client_hello = hello(VERSION, &[suite.code()]);
        transcript.update(&client_hello);
        peer.send(ContentType::Handshake, &client_hello).await;
        let mut flight = Vec::new();
        while !flight.ends_with(&[kind::SERVER_HELLO_DONE, 0, 0, 0]) {
            flight.extend(peer.record().await.1);
        }
        transcript.update(&flight);
        let server_random: [u8; 32] = flight[6..38].try_into().unwrap();
        // Certificate, then ServerKeyExchange whose signature covers the encryption cert.
        assert_eq!(flight[42], kind::CERTIFICATE);
        let cert_len = u32::from_be_bytes([0, flight[43], flight[44], flight[45]]) as usize;
        let ske = &flight[46 + cert_len..];
        assert_eq!(ske[0], kind::SERVER_KEY_EXCHANGE);
        let sig_len = usize::from(u16::from_be_bytes([ske[4], ske[5]]));
        let certs = &flight[49..46 + cert_len];
        let sign_len = u32::from_be_bytes([0, certs[0], certs[1], certs[2]]) as usize;
        let enc_cert = &certs[3 + sign_len + 3..];
        let signed = handshake::key_exchange_signed_data(
            &[3; 32],
            &server_random,
            &handshake::asn1_cert(enc_cert),
        );
        peer.sign_public
            .verify(DEFAULT_ID, &signed, &ske[6..6 + sig_len])
            .unwrap();

        let mut pre_master = VERSION.to_be_bytes().to_vec();
        pre_master.extend([9u8; 46]);
        let ciphertext = peer.enc_public.encrypt(&pre_master).unwrap();
        let mut body = (ciphertext.len() as u16).to_be_bytes().to_vec();
        body.extend(ciphertext);
        let cke = handshake::message(kind::CLIENT_KEY_EXCHANGE, &body);
        transcript.update(&cke);
        peer.send(ContentType::Handshake, &cke).await;
        peer.send(ContentType::ChangeCipherSpec, &[1]).await;
        let master = handshake::master_secret(&pre_master, &[3; 32], &server_random);
        let (client, server) = handshake::key_block(suite, &master, &[3; 32], &server_random);
        peer.tx.protect(client);
        peer.rx.protect(server);
        (transcript, master)
    }

    #[tokio::test]
    async fn a_full_handshake_then_data_both_ways_in_both_suites() {
        for suite in Suite::CLIENT_OFFER {
            let mut peer = start();
            let (mut transcript, master) = to_finished(&mut peer, suite).await;
            let ours = handshake::verify_data(&master, true, &transcript.current());
            let finished = handshake::message(kind::FINISHED, &ours);
            transcript.update(&finished);
            peer.send(ContentType::Handshake, &finished).await;
            // The server's CCS arrives unprotected: read it before switching.
            let mut head = [0u8; HEADER_LEN];
            peer.io.read_exact(&mut head).await.unwrap();
            assert_eq!(head, [20, 1, 1, 0, 1]);
            peer.io.read_exact(&mut [0u8; 1]).await.unwrap();
            let (content, theirs) = peer.record().await;
            assert_eq!(content, ContentType::Handshake);
            let expected = handshake::verify_data(&master, false, &transcript.current());
            assert_eq!(theirs, handshake::message(kind::FINISHED, &expected));

            let mut stream = (&mut peer.server).await.unwrap().unwrap();
            assert_eq!(stream.suite(), suite);
            peer.send(ContentType::ApplicationData, b"EHLO client\r\n")
                .await;
            let mut got = [0u8; 13];
            stream.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"EHLO client\r\n");
            stream.write_all(b"250 ok\r\n").await.unwrap();
            assert_eq!(peer.record().await.1, b"250 ok\r\n");
            // close_notify from the client: the caller reads end of file.
            peer.send(ContentType::Alert, &[1, 0]).await;
            assert_eq!(stream.read(&mut got).await.unwrap(), 0);
        }
    }

    #[tokio::test]
    async fn a_wrong_finished_is_refused_with_decrypt_error() {
        let mut peer = start();
        let (transcript, master) = to_finished(&mut peer, Suite::EccSm4CbcSm3).await;
        let mut wrong = handshake::verify_data(&master, true, &transcript.current());
        wrong[0] ^= 1;
        peer.send(
            ContentType::Handshake,
            &handshake::message(kind::FINISHED, &wrong),
        )
        .await;
        // The alert is sent under the still-unprotected server direction.
        peer.rx = Direction::default();
        assert_eq!(peer.alert().await, 51);
        assert_eq!(
            peer.server.await.unwrap().err(),
            Some(TlcpError::BadFinished)
        );
    }

    #[tokio::test]
    async fn hellos_without_tlcp_or_our_suites_get_their_alerts() {
        for (version, suites, alert, error) in [
            (
                VERSION,
                vec![0xE015u16, 0x1301],
                40,
                TlcpError::NoCommonSuite,
            ),
            (0x0303, vec![0xE053], 70, TlcpError::Version),
        ] {
            let mut peer = start();
            peer.send(ContentType::Handshake, &hello(version, &suites))
                .await;
            assert_eq!(peer.alert().await, alert);
            assert_eq!(peer.server.await.unwrap().err(), Some(error));
        }
        // Application data before the handshake.
        let mut peer = start();
        peer.send(ContentType::ApplicationData, b"hello").await;
        assert_eq!(peer.alert().await, 10);
    }
}
