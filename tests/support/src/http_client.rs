//! A tiny HTTP/1.1 client for tests that serve an app on a real loopback
//! listener: one connection per request (`Connection: close`), every
//! exchange bounded by [`REQUEST_BOUND`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The bound on one HTTP exchange.
pub const REQUEST_BOUND: Duration = Duration::from_secs(30);

/// One HTTP/1.1 response as the tiny client reads it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The `name=value` pair of the only `Set-Cookie`.
    pub fn cookie(&self) -> String {
        assert_eq!(self.set_cookies.len(), 1, "{self:?}");
        let set = &self.set_cookies[0];
        set.split(';').next().unwrap().trim().to_owned()
    }
}

/// Sends `method path` with an empty body and `Connection: close` on a
/// fresh connection to `addr`, reads to EOF and parses the response.
pub async fn http(addr: SocketAddr, method: &str, path: &str, cookie: Option<&str>) -> Response {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
        );
        if let Some(cookie) = cookie {
            request.push_str("Cookie: ");
            request.push_str(cookie);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        parse(&raw)
    };
    tokio::time::timeout(REQUEST_BOUND, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no response within {REQUEST_BOUND:?}"))
}

/// Parses a complete HTTP/1.1 response (`Content-Length`, chunked, or up to EOF).
pub fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII headers");
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let mut set_cookies = Vec::new();
    let mut headers = Vec::new();
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':').expect("a header line");
        let value = value.trim();
        headers.push((name.to_ascii_lowercase(), value.to_owned()));
        if name.eq_ignore_ascii_case("set-cookie") {
            set_cookies.push(value.to_owned());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().expect("a numeric Content-Length"));
        }
    }
    let body = if chunked {
        let mut out = Vec::new();
        loop {
            let end = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size_text = std::str::from_utf8(&body[..end]).unwrap();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .expect("a hex chunk size");
            body = &body[end + 2..];
            if size == 0 {
                break out;
            }
            out.extend_from_slice(&body[..size]);
            body = &body[size + 2..];
        }
    } else {
        let n = length.unwrap_or(body.len());
        assert_eq!(body.len(), n, "the whole body was read");
        body.to_vec()
    };
    Response {
        status,
        set_cookies,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
