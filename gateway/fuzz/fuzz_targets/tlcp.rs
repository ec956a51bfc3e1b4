//! Any bytes as what a TLCP peer sends: the server handshake (record layer, ClientHello,
//! ClientKeyExchange, ChangeCipherSpec, Finished) and the client handshake (ServerHello,
//! Certificate, ServerKeyExchange, ServerHelloDone, Finished) must refuse them with an error,
//! never panic, hang or grow without bound. The first byte picks the side.
#![no_main]

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use jianmen_gm::cert::{self, Usage};
use jianmen_gm::sm2::Sm2PrivateKey;
use jianmen_gm::tlcp;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads the fuzz input, then end of file; swallows what the server writes.
struct Feed(Vec<u8>, usize);

impl AsyncRead for Feed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (self.0.len() - self.1).min(buf.remaining());
        let at = self.1;
        buf.put_slice(&self.0[at..at + n]);
        self.1 += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Feed {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn setup() -> &'static (tokio::runtime::Runtime, Arc<tlcp::ServerConfig>) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, Arc<tlcp::ServerConfig>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let sign = Sm2PrivateKey::generate();
        let enc = Sm2PrivateKey::generate();
        let sign_cert = cert::self_signed(&sign, "fuzz.test", 1, Usage::Signing).unwrap();
        let enc_cert = cert::self_signed(&enc, "fuzz.test", 1, Usage::Encryption).unwrap();
        let config = tlcp::ServerConfig::new(vec![sign_cert], &sign, enc_cert, enc).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (rt, Arc::new(config))
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, config) = setup();
    let Some((&side, rest)) = data.split_first() else {
        return;
    };
    let feed = Feed(rest.to_vec(), 0);
    if side & 1 == 0 {
        let _ = rt.block_on(tlcp::accept(config.clone(), feed));
    } else {
        let _ = rt.block_on(tlcp::connect(feed, &[]));
    }
});
