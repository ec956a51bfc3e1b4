//! The session's byte stream: bounded line reads, DATA and BDAT bodies, and buffered replies that
//! are flushed only when the client has nothing more pipelined.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Anything a session can run over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Bytes a read asks for at least; the buffer grows (and reads get larger) while a message
/// streams in, and stays small for idle sessions.
const READ_CHUNK: usize = 4 * 1024;
/// Consumed bytes kept in front of the buffer before it is compacted.
const COMPACT_AFTER: usize = 64 * 1024;

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The client closed the connection.
    #[error("connection closed by client")]
    Closed,
    /// The client was silent for too long, or the session ran out of time.
    #[error("timeout")]
    Timeout,
    /// Socket or TLS error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A command line, or the fact that it was too long (its bytes were discarded).
#[derive(Debug)]
pub enum Line {
    /// The line including its terminating LF.
    Complete(Vec<u8>),
    /// The line exceeded the limit; everything up to its LF was skipped.
    TooLong,
}

/// How a DATA body ended.
#[derive(Debug, Default)]
pub struct DataOutcome {
    /// More bytes were sent than the size limit allowed; the excess was discarded.
    pub too_big: bool,
    /// The gateway-wide memory budget for messages being received ran out; the rest was
    /// discarded.
    pub no_memory: bool,
    /// Lines ending in a bare LF were rewritten to CRLF.
    pub bare_lf: bool,
}

/// Granularity of memory reservations.
const BUDGET_STEP: usize = 256 * 1024;

/// The bytes of message data all sessions together may hold in memory, so that many large
/// messages at once get 452 instead of exhausting memory. Permits are KiB.
#[derive(Clone)]
pub struct MemoryBudget(Arc<Semaphore>);

impl MemoryBudget {
    /// A budget of `mib` MiB.
    pub fn new(mib: usize) -> Self {
        Self(Arc::new(Semaphore::new(
            mib.saturating_mul(1024).min(Semaphore::MAX_PERMITS),
        )))
    }

    /// An empty reservation that grows as a message does.
    pub fn reserve(&self) -> Reservation {
        Reservation {
            budget: self.0.clone(),
            held: None,
        }
    }
}

/// Part of the [`MemoryBudget`] held by one message; given back when dropped.
pub struct Reservation {
    budget: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Makes sure `bytes` are covered; false if the budget cannot cover them now.
    pub fn cover(&mut self, bytes: usize) -> bool {
        let held_kib = self.held.as_ref().map_or(0, |p| p.num_permits());
        if bytes <= held_kib * 1024 {
            return true;
        }
        let want = bytes.div_ceil(BUDGET_STEP) * BUDGET_STEP / 1024 - held_kib;
        let Ok(more) = u32::try_from(want) else {
            return false;
        };
        match self.budget.clone().try_acquire_many_owned(more) {
            Ok(permit) => {
                match &mut self.held {
                    Some(held) => held.merge(permit),
                    None => self.held = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Buffered reads and writes over one connection, with deadlines.
pub struct Conn {
    io: Option<Box<dyn Io>>,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    idle: Duration,
    deadline: Instant,
}

impl Conn {
    /// Wraps a stream; `idle` bounds each wait for input and `deadline` the whole session.
    pub fn new(io: Box<dyn Io>, idle: Duration, deadline: Instant) -> Self {
        Self {
            io: Some(io),
            rbuf: Vec::with_capacity(READ_CHUNK),
            rpos: 0,
            wbuf: Vec::with_capacity(1024),
            idle,
            deadline,
        }
    }

    fn io(&mut self) -> io::Result<&mut Box<dyn Io>> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stream taken"))
    }

    /// Changes how long each wait for input may last (the session shortens it under stress).
    pub fn set_idle(&mut self, idle: Duration) {
        self.idle = idle;
    }

    /// Whether the client has already sent more bytes than were consumed (pipelining).
    pub fn has_buffered_input(&self) -> bool {
        self.rpos < self.rbuf.len()
    }

    /// Drops pipelined input, as RFC 3207 requires after STARTTLS.
    pub fn discard_buffered_input(&mut self) {
        self.rbuf.clear();
        self.rpos = 0;
    }

    fn wait_until(&self) -> Instant {
        (Instant::now() + self.idle).min(self.deadline)
    }

    /// Reads more bytes into the buffer; returns how many.
    async fn fill(&mut self) -> Result<usize, ReadError> {
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > COMPACT_AFTER {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        self.rbuf.reserve(READ_CHUNK);
        let until = self.wait_until();
        let result = match self.io.as_mut() {
            // read_buf fills spare capacity: no zeroing of the buffer on every read.
            Some(io) => tokio::time::timeout_at(until, io.read_buf(&mut self.rbuf)).await,
            None => Ok(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no stream",
            ))),
        };
        match result {
            Err(_) => Err(ReadError::Timeout),
            Ok(Err(e)) => Err(ReadError::Io(e)),
            Ok(Ok(0)) => Err(ReadError::Closed),
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// Reads one command line of at most `max` bytes (including CRLF).
    pub async fn read_line(&mut self, max: usize) -> Result<Line, ReadError> {
        let mut skipping = false;
        loop {
            let avail = &self.rbuf[self.rpos..];
            if let Some(i) = memchr(b'\n', avail) {
                if skipping || i + 1 > max {
                    self.rpos += i + 1;
                    return Ok(Line::TooLong);
                }
                let line = avail[..=i].to_vec();
                self.rpos += i + 1;
                return Ok(Line::Complete(line));
            }
            if skipping || avail.len() >= max {
                skipping = true;
                self.rpos = self.rbuf.len();
            }
            self.fill().await?;
        }
    }

    /// Reads a DATA body up to the lone `.` line, undoing dot-stuffing and appending to `out`
    /// until `max` bytes; beyond that the rest is read and discarded.
    ///
    /// Only `CRLF . CRLF` ends the body (a line ending in a bare LF cannot start the terminator),
    /// which closes the SMTP-smuggling hole; bare LF line ends are stored as CRLF.
    pub async fn read_data(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        memory: &mut Reservation,
    ) -> Result<DataOutcome, ReadError> {
        let mut outcome = DataOutcome::default();
        // Whether we are at the start of a line that followed a CRLF (DATA's own line did).
        let mut line_start = true;
        let mut after_crlf = true;
        let mut prev_cr = false;
        let limit = out.len().saturating_add(max);
        loop {
            if self.rpos == self.rbuf.len() {
                self.fill().await?;
            }
            let avail = &self.rbuf[self.rpos..];
            if line_start && avail[0] == b'.' {
                if avail.len() < 3 && memchr(b'\n', avail).is_none() {
                    self.fill().await?;
                    continue;
                }
                if after_crlf && avail.starts_with(b".\r\n") {
                    self.rpos += 3;
                    return Ok(outcome);
                }
                // A stuffed dot: drop it.
                self.rpos += 1;
                line_start = false;
                continue;
            }
            let avail = &self.rbuf[self.rpos..];
            let (chunk, ends_line) = match memchr(b'\n', avail) {
                Some(i) => (&avail[..=i], true),
                None => (avail, false),
            };
            let consumed = chunk.len();
            if ends_line {
                let body = &chunk[..consumed - 1];
                let cr = match body.last() {
                    Some(&b) => b == b'\r',
                    None => prev_cr,
                };
                if out.len() + consumed + 1 > limit {
                    outcome.too_big = true;
                } else if outcome.no_memory || !memory.cover(out.len() + consumed + 1) {
                    outcome.no_memory = true;
                } else if cr {
                    out.extend_from_slice(chunk);
                } else {
                    outcome.bare_lf = true;
                    out.extend_from_slice(body);
                    out.extend_from_slice(b"\r\n");
                }
                after_crlf = cr;
                prev_cr = false;
                line_start = true;
            } else {
                if out.len() + consumed > limit {
                    outcome.too_big = true;
                } else if outcome.no_memory || !memory.cover(out.len() + consumed) {
                    outcome.no_memory = true;
                } else {
                    out.extend_from_slice(chunk);
                }
                prev_cr = chunk.last() == Some(&b'\r');
                line_start = false;
            }
            self.rpos += consumed;
        }
    }

    /// Reads exactly `n` bytes of a BDAT chunk, appending to `out` while it stays within `limit`
    /// total bytes and the memory reservation can grow; returns false if bytes were discarded.
    pub async fn read_chunk(
        &mut self,
        out: &mut Vec<u8>,
        mut n: usize,
        limit: usize,
        memory: &mut Reservation,
    ) -> Result<bool, ReadError> {
        let mut fits = out.len().saturating_add(n) <= limit && memory.cover(out.len() + n);
        while n > 0 {
            if self.rpos == self.rbuf.len() {
                self.fill().await?;
            }
            let take = n.min(self.rbuf.len() - self.rpos);
            let chunk = &self.rbuf[self.rpos..self.rpos + take];
            if fits && out.len() + take <= limit {
                out.extend_from_slice(chunk);
            } else {
                fits = false;
            }
            self.rpos += take;
            n -= take;
        }
        Ok(fits)
    }

    /// Queues a reply; it is sent by the next [`Conn::flush`].
    pub fn reply(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Sends queued replies.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let until = self.wait_until();
        let buf = std::mem::take(&mut self.wbuf);
        let io = self.io()?;
        let result = tokio::time::timeout_at(until, async {
            io.write_all(&buf).await?;
            io.flush().await
        })
        .await;
        self.wbuf = buf;
        self.wbuf.clear();
        match result {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout")),
        }
    }

    /// Takes the stream out (for the TLS handshake); the read buffer must be empty.
    pub fn take_stream(&mut self) -> io::Result<Box<dyn Io>> {
        self.io
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stream taken"))
    }

    /// Puts a (now encrypted) stream back.
    pub fn put_stream(&mut self, io: Box<dyn Io>) {
        self.io = Some(io);
    }

    /// Remaining time before the session deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Closes the write side cleanly, ignoring errors (the peer may be gone).
    pub async fn shutdown(&mut self) {
        if let Some(io) = self.io.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(5), io.shutdown()).await;
        }
    }
}

/// Position of the first `needle` byte.
pub fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn budget() -> Reservation {
        MemoryBudget::new(1).reserve()
    }

    #[tokio::test]
    async fn memory_budget_refuses_what_it_cannot_cover_and_is_given_back() {
        let budget = MemoryBudget::new(1);
        let mut a = budget.reserve();
        assert!(a.cover(700 * 1024));
        let mut b = budget.reserve();
        assert!(!b.cover(700 * 1024), "only 1 MiB in all");
        drop(a);
        assert!(b.cover(700 * 1024));
        let mut input = vec![b'x'; 2 * 1024 * 1024];
        input.extend_from_slice(b"\r\n.\r\n");
        let mut c = conn_with(&input).await;
        let mut out = Vec::new();
        let mut r = MemoryBudget::new(1).reserve();
        let o = c.read_data(&mut out, 10 << 20, &mut r).await.unwrap();
        assert!(o.no_memory && !o.too_big);
        assert!(out.len() <= 1024 * 1024);
    }

    async fn conn_with(input: &[u8]) -> Conn {
        let (mut client, server) = tokio::io::duplex(4 << 20);
        client.write_all(input).await.unwrap();
        drop(client);
        Conn::new(
            Box::new(server),
            Duration::from_secs(5),
            Instant::now() + Duration::from_secs(10),
        )
    }

    #[tokio::test]
    async fn data_unstuffs_and_stops_at_crlf_dot_crlf() {
        let mut c = conn_with(b"Subject: x\r\n\r\n..hidden\r\n.\r\nQUIT\r\n").await;
        let mut out = Vec::new();
        let o = c.read_data(&mut out, 1000, &mut budget()).await.unwrap();
        assert_eq!(out, b"Subject: x\r\n\r\n.hidden\r\n");
        assert!(!o.too_big && !o.bare_lf);
        match c.read_line(100).await.unwrap() {
            Line::Complete(l) => assert_eq!(l, b"QUIT\r\n"),
            Line::TooLong => panic!("short line"),
        }
    }

    #[tokio::test]
    async fn bare_lf_dot_does_not_end_data() {
        // The smuggling pattern: <LF>.<CRLF> must not terminate.
        let mut c = conn_with(b"a\n.\r\nMAIL FROM:<x@y>\r\n\r\n.\r\n").await;
        let mut out = Vec::new();
        let o = c.read_data(&mut out, 1000, &mut budget()).await.unwrap();
        assert!(o.bare_lf);
        assert_eq!(out, b"a\r\n\r\nMAIL FROM:<x@y>\r\n\r\n");
    }

    #[tokio::test]
    async fn oversized_data_is_consumed_but_flagged() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
        let mut c = conn_with(&input).await;
        let mut out = Vec::new();
        let o = c.read_data(&mut out, 100, &mut budget()).await.unwrap();
        assert!(o.too_big);
        assert!(out.len() <= 100);
        assert!(matches!(c.read_line(100).await.unwrap(), Line::Complete(l) if l == b"NOOP\r\n"));
    }

    #[tokio::test]
    async fn long_command_line_is_skipped() {
        let mut input = vec![b'A'; 200_000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let mut c = conn_with(&input).await;
        assert!(matches!(c.read_line(512).await.unwrap(), Line::TooLong));
        assert!(matches!(c.read_line(512).await.unwrap(), Line::Complete(l) if l == b"NOOP\r\n"));
        assert!(matches!(c.read_line(512).await, Err(ReadError::Closed)));
    }

    #[tokio::test]
    async fn bdat_chunk_reads_exact_bytes() {
        let mut c = conn_with(b"hello worldRSET\r\n").await;
        let mut out = Vec::new();
        assert!(
            c.read_chunk(&mut out, 11, 100, &mut budget())
                .await
                .unwrap()
        );
        assert_eq!(out, b"hello world");
        assert!(matches!(c.read_line(100).await.unwrap(), Line::Complete(l) if l == b"RSET\r\n"));
    }
}
