//! What client and server share once they have a transport: record reading and writing,
//! handshake message reassembly, and after the handshake a pump that protects and unprotects
//! records between the transport and an in-memory pipe whose other end the caller gets as an
//! ordinary byte stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream, ReadBuf, ReadHalf,
    WriteHalf,
};

use super::TlcpError;
use super::handshake::{self, Suite};
use super::record::{ContentType, Direction, HEADER_LEN, MAX_PLAINTEXT, parse_header};

/// The caller's side of an established TLCP connection: read and write plaintext.
pub struct TlcpStream {
    pipe: DuplexStream,
    suite: Suite,
    peer_signing_certificate: Option<Vec<u8>>,
}

impl TlcpStream {
    /// The negotiated suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The server's signing certificate (DER), on the client's side.
    pub fn peer_signing_certificate(&self) -> Option<&[u8]> {
        self.peer_signing_certificate.as_deref()
    }
}

impl AsyncRead for TlcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.pipe).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

/// How long the pump lets the caller keep writing after the client closed its side.
const DRAIN: Duration = Duration::from_secs(30);

/// Splits `io`, runs `handshake` over it (sending the matching alert if it fails), then starts
/// the pump and returns the caller's stream.
pub(super) async fn establish<IO>(
    io: IO,
    handshake: impl AsyncFnOnce(&mut Conn<IO>) -> Result<(Suite, Option<Vec<u8>>), TlcpError>,
) -> Result<TlcpStream, TlcpError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let mut conn = Conn {
        reader: RecordReader {
            io: BufReader::new(read),
            rx: Direction::default(),
        },
        writer: RecordWriter {
            io: write,
            tx: Direction::default(),
        },
        pending: Vec::new(),
    };
    let (suite, peer_signing_certificate) = match handshake(&mut conn).await {
        Ok(established) => established,
        Err(e) => {
            if !matches!(
                e,
                TlcpError::Closed | TlcpError::Io(_) | TlcpError::Alert(_)
            ) {
                let _ = conn.writer.alert(e.alert()).await;
            }
            return Err(e);
        }
    };
    let (ours, theirs) = tokio::io::duplex(4 * MAX_PLAINTEXT);
    tokio::spawn(pump(conn.reader, conn.writer, ours));
    Ok(TlcpStream {
        pipe: theirs,
        suite,
        peer_signing_certificate,
    })
}

/// The receiving direction: records from the client.
pub(super) struct RecordReader<IO> {
    io: BufReader<ReadHalf<IO>>,
    pub(super) rx: Direction,
}

/// The sending direction: records to the client.
pub(super) struct RecordWriter<IO> {
    io: WriteHalf<IO>,
    pub(super) tx: Direction,
}

/// Both directions during the handshake.
pub(super) struct Conn<IO> {
    pub(super) reader: RecordReader<IO>,
    pub(super) writer: RecordWriter<IO>,
    /// Handshake bytes received but not yet a whole message.
    pub(super) pending: Vec<u8>,
}

impl<IO: AsyncRead> RecordReader<IO> {
    /// The next record's type and plaintext; alerts end the connection.
    pub(super) async fn read(&mut self) -> Result<(ContentType, Vec<u8>), TlcpError> {
        let mut head = [0u8; HEADER_LEN];
        self.io.read_exact(&mut head).await?;
        let header = parse_header(&head)?;
        let mut fragment = vec![0u8; header.len];
        self.io.read_exact(&mut fragment).await?;
        let plaintext = self.rx.open(header.content, &fragment)?;
        if header.content == ContentType::Alert {
            return match plaintext[..] {
                [_, 0] => Err(TlcpError::Closed),
                [_, description] => Err(TlcpError::Alert(description)),
                _ => Err(TlcpError::Decode("alert")),
            };
        }
        if plaintext.is_empty() && header.content != ContentType::ApplicationData {
            return Err(TlcpError::Decode("empty record"));
        }
        Ok((header.content, plaintext))
    }
}

impl<IO: AsyncWrite> RecordWriter<IO> {
    /// Sends `data` as records of `content`, split at the fragment limit, and flushes.
    pub(super) async fn write(
        &mut self,
        content: ContentType,
        data: &[u8],
    ) -> Result<(), TlcpError> {
        self.send(content, data).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Sends a flight of handshake messages, each in records of its own, and flushes. The
    /// standard lets one record carry several messages, but GmSSL 3 reads exactly one message
    /// per record and fails on a coalesced ServerHello flight; separate records suit both.
    pub(super) async fn write_flight(&mut self, messages: &[Vec<u8>]) -> Result<(), TlcpError> {
        for message in messages {
            self.send(ContentType::Handshake, message).await?;
        }
        self.io.flush().await?;
        Ok(())
    }

    async fn send(&mut self, content: ContentType, data: &[u8]) -> Result<(), TlcpError> {
        for chunk in data.chunks(MAX_PLAINTEXT) {
            let record = self.tx.seal(content, chunk)?;
            self.io.write_all(&record).await?;
        }
        Ok(())
    }

    /// A fatal alert (or close_notify, which is a warning).
    pub(super) async fn alert(&mut self, description: u8) -> Result<(), TlcpError> {
        let level = if description == 0 { 1 } else { 2 };
        self.write(ContentType::Alert, &[level, description]).await
    }
}

impl<IO: AsyncRead> Conn<IO> {
    /// The next whole handshake message (header included), which must be of `want` type.
    pub(super) async fn read_message(
        &mut self,
        want: u8,
        what: &'static str,
    ) -> Result<Vec<u8>, TlcpError> {
        loop {
            if self.pending.len() >= 4 {
                let len = u32::from_be_bytes([0, self.pending[1], self.pending[2], self.pending[3]])
                    as usize;
                if len > handshake::MAX_MESSAGE {
                    return Err(TlcpError::Decode("handshake message too long"));
                }
                if self.pending.len() >= 4 + len {
                    let rest = self.pending.split_off(4 + len);
                    let message = std::mem::replace(&mut self.pending, rest);
                    if message[0] != want {
                        return Err(TlcpError::Unexpected(what));
                    }
                    return Ok(message);
                }
            }
            match self.reader.read().await? {
                (ContentType::Handshake, data) => self.pending.extend(data),
                _ => return Err(TlcpError::Unexpected(what)),
            }
        }
    }
}

/// `N` random bytes.
pub(super) fn random<const N: usize>() -> Result<[u8; N], TlcpError> {
    let mut out = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out)
        .map_err(|_| TlcpError::Random)?;
    Ok(out)
}

/// Moves data between the client's records and the caller's pipe until either side ends.
async fn pump<IO: AsyncRead + AsyncWrite>(
    mut reader: RecordReader<IO>,
    mut writer: RecordWriter<IO>,
    pipe: DuplexStream,
) {
    let (mut from_caller, mut to_caller) = tokio::io::split(pipe);
    let inbound = async {
        let end = loop {
            match reader.read().await {
                Ok((ContentType::ApplicationData, data)) => {
                    if to_caller.write_all(&data).await.is_err() {
                        break None;
                    }
                }
                Ok(_) => break Some(TlcpError::Unexpected("handshake after Finished")),
                Err(e) => break Some(e),
            }
        };
        let _ = to_caller.shutdown().await;
        end
    };
    let outbound = async {
        let mut buf = vec![0u8; MAX_PLAINTEXT];
        loop {
            let n = match from_caller.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if writer
                .write(ContentType::ApplicationData, &buf[..n])
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = writer.alert(0).await;
        let _ = writer.io.shutdown().await;
    };
    tokio::pin!(outbound);
    tokio::select! {
        () = &mut outbound => {}
        end = inbound => {
            if let Some(e) = end
                && !matches!(e, TlcpError::Closed)
            {
                tracing::debug!(error = %e, "TLCP connection ended");
            }
            let _ = tokio::time::timeout(DRAIN, outbound).await;
        }
    }
}
