//! The gateway's own HTTP client, for the few documents it fetches itself (MTA-STS policies,
//! TAXII threat-intelligence pages): one HTTP/1.0 GET per connection, so the answer ends with
//! the connection and is never chunked; header and body sizes bounded; no redirects followed.
//! Callers bring the connection (resolved their way, TLS verified their way) and the deadline.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest response header read.
const MAX_HEADER: usize = 8 * 1024;

/// A response whose body is whole.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    fields: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header field called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GETs `path` from `host` over `stream`, with `fields` added to the request; the body may be
/// at most `max_body` bytes.
pub async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
    fields: &[(&str, &str)],
    max_body: usize,
) -> Result<Response, String> {
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: jianmen\r\n");
    for (k, v) in fields {
        if [k, v].iter().any(|s| s.contains(['\r', '\n'])) {
            return Err("a request field holds a line break".into());
        }
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    // Many HTTPS servers close without TLS's close_notify; then only a Content-Length the body
    // fills shows that nothing was cut off.
    let closed_cleanly = match (&mut stream)
        .take((MAX_HEADER + max_body + 1) as u64)
        .read_to_end(&mut response)
        .await
    {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
        Err(e) => return Err(e.to_string()),
    };
    parse(&response, closed_cleanly, max_body)
}

/// GETs `url` (`http://` or, verified by `tls`, `https://`), all within `timeout`.
pub async fn fetch(
    url: &url::Url,
    tls: &Arc<ClientConfig>,
    fields: &[(&str, &str)],
    max_body: usize,
    timeout: Duration,
) -> Result<Response, String> {
    let host = url.host_str().ok_or("the URL names no host")?;
    let port = url.port_or_known_default().ok_or("the URL names no port")?;
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let host_field = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let work = async {
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((name, port))
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        match url.scheme() {
            "https" => {
                let server = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
                let tls = TlsConnector::from(tls.clone())
                    .connect(server, tcp)
                    .await
                    .map_err(|e| format!("TLS with {host}: {e}"))?;
                get(tls, &host_field, &path, fields, max_body).await
            }
            "http" => get(tcp, &host_field, &path, fields, max_body).await,
            other => Err(format!("`{other}` is not HTTP")),
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{host}: no answer within {timeout:?}"))?
}

/// A response read to its end: its header must be whole, its body at most `max_body` bytes
/// and — on a connection that did not close cleanly — as long as its Content-Length says.
pub(crate) fn parse(
    response: &[u8],
    closed_cleanly: bool,
    max_body: usize,
) -> Result<Response, String> {
    let end = response
        .windows(4)
        .take(MAX_HEADER)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete HTTP header")?;
    let header = String::from_utf8_lossy(&response[..end]);
    let mut lines = header.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP status line: `{status_line}`"))?;
    let fields: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = &response[end + 4..];
    if body.len() > max_body {
        return Err(format!("body longer than {max_body} bytes"));
    }
    let response = Response {
        status,
        fields,
        body: body.to_vec(),
    };
    match response.header("content-length").map(str::parse::<usize>) {
        Some(Ok(n)) if n == body.len() => {}
        Some(_) => return Err("body shorter or longer than its Content-Length".into()),
        None if closed_cleanly => {}
        None => return Err("connection cut without Content-Length: body may be partial".into()),
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_whole_or_refused() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\n";
        let r = parse(ok, true, 100).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"body\n"[..]));
        assert_eq!(r.header("CONTENT-TYPE"), Some("text/plain; charset=utf-8"));
        assert!(parse(ok, false, 100).is_err(), "cut off without a length");
        let sized = b"HTTP/1.0 404 Not Found\r\nContent-Length: 4\r\n\r\nabcd";
        assert_eq!(parse(sized, false, 100).unwrap().status, 404);
        assert!(parse(&sized[..sized.len() - 1], false, 100).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain", true, 100).is_err());
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", true, 100).is_err());
        assert!(parse(ok, true, 4).is_err(), "longer than allowed");
    }

    /// A server that accepts and then says nothing, or answers without end.
    async fn peer(answer: Option<Vec<u8>>) -> url::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 1024];
            let _ = s.read(&mut request).await;
            match answer {
                Some(a) => loop {
                    if s.write_all(&a).await.is_err() {
                        return;
                    }
                },
                None => tokio::time::sleep(Duration::from_secs(60)).await,
            }
        });
        url::Url::parse(&format!("http://127.0.0.1:{port}/objects/")).unwrap()
    }

    #[tokio::test]
    async fn a_silent_or_endless_server_is_given_up() {
        let tls = jianmen_gm::tls::client_config().unwrap();
        let silent = peer(None).await;
        let e = fetch(&silent, &tls, &[], 1024, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.contains("no answer"), "{e}");
        let endless = peer(Some(b"HTTP/1.0 200 OK\r\n\r\nxxxxxxxx".to_vec())).await;
        let e = fetch(&endless, &tls, &[], 1024, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(e.contains("longer than"), "{e}");
    }

    #[tokio::test]
    async fn a_field_cannot_smuggle_a_second_request() {
        let (client, _server) = tokio::io::duplex(1024);
        let fields = [("Accept", "x\r\nHost: evil")];
        assert!(get(client, "h", "/", &fields, 10).await.is_err());
    }
}
