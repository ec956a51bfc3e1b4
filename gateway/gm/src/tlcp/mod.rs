//! TLCP (GB/T 38636-2020), the dual-certificate national-cipher protocol most 国密 browsers and
//! client libraries speak: version 0x0101, a signing certificate that authenticates the server
//! and an encryption certificate whose SM2 key the client encrypts the pre-master secret to.
//! No Rust implementation existed, so this one is small: a server for the ECC suites
//! (ECC_SM4_GCM_SM3 0xE053, ECC_SM4_CBC_SM3 0xE013) and the ECDHE suites (0xE051, 0xE011:
//! SM2 key agreement with the client's certificate pair), a client for the ECC suites; full
//! handshakes, no resumption or renegotiation.
//!
//! [`record`] protects records, [`handshake`] parses and builds messages and derives keys,
//! [`server`] and [`client`] run the two sides, and `conn` what they share.

pub mod client;
mod conn;
pub mod handshake;
pub mod record;
pub mod server;

pub use client::connect;
pub use conn::TlcpStream;
pub use handshake::Suite;
pub use record::starts_tlcp;
pub use server::{ServerConfig, accept};

/// Why a TLCP connection failed; each maps to the alert the peer is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlcpError {
    /// A record or message is malformed.
    #[error("malformed {0}")]
    Decode(&'static str),
    /// Not TLCP's version 0x0101.
    #[error("not TLCP version 1.1")]
    Version,
    /// A record longer than allowed.
    #[error("record too long")]
    RecordOverflow,
    /// A protected record failed authentication.
    #[error("bad record MAC")]
    BadRecordMac,
    /// The client offered none of our suites.
    #[error("no cipher suite in common")]
    NoCommonSuite,
    /// A message arrived out of order.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
    /// The client's Finished did not match the handshake (wrong keys or altered messages).
    #[error("Finished does not verify")]
    BadFinished,
    /// The server's key exchange was not signed by its signing certificate's key.
    #[error("ServerKeyExchange signature does not verify")]
    BadSignature,
    /// The server's signing certificate carries none of the pinned public keys.
    #[error("server certificate: its public key is not pinned")]
    NotPinned,
    /// The peer sent a fatal alert.
    #[error("peer sent alert {0}")]
    Alert(u8),
    /// The peer closed the connection (close_notify or EOF).
    #[error("connection closed")]
    Closed,
    /// Over 2^64 records in one direction.
    #[error("record sequence exhausted")]
    SequenceExhausted,
    /// The system's random number generator failed.
    #[error("no randomness")]
    Random,
    /// Our own key or certificate could not be used.
    #[error("internal error")]
    Internal,
    /// The transport failed.
    #[error("I/O: {0}")]
    Io(std::io::ErrorKind),
}

impl TlcpError {
    /// The alert description sent for this error (RFC 5246 §7.2 numbering, as TLCP).
    pub fn alert(&self) -> u8 {
        match self {
            TlcpError::Decode(_) => 50,
            TlcpError::Version => 70,
            TlcpError::RecordOverflow => 22,
            TlcpError::BadRecordMac => 20,
            TlcpError::NoCommonSuite => 40,
            TlcpError::Unexpected(_) => 10,
            TlcpError::BadFinished | TlcpError::BadSignature => 51,
            TlcpError::NotPinned => 42,
            TlcpError::Closed => 0,
            _ => 80,
        }
    }
}

impl From<std::io::Error> for TlcpError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            TlcpError::Closed
        } else {
            TlcpError::Io(e.kind())
        }
    }
}
