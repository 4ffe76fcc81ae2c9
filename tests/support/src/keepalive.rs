//! A keep-alive HTTP/1.1 client for load and fault tests that drive the
//! demo app on a loopback listener: one request at a time per connection,
//! every exchange bounded, answers parsed strictly (a `Content-Length` is
//! required; `Transfer-Encoding` or `Connection: close` is an error).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Deserialize)]
struct CountBody {
    count: u64,
}

/// The `N` of a `{"count":N}` body.
///
/// # Errors
/// Any other body, described.
pub fn parse_count(body: &[u8]) -> Result<u64, String> {
    serde_json::from_slice::<CountBody>(body)
        .map(|body| body.count)
        .map_err(|err| {
            format!(
                "not a {{\"count\":N}} body ({err}): {}",
                String::from_utf8_lossy(body)
            )
        })
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The `session=…` pair of a `Set-Cookie` for the session cookie.
    pub cookie: Option<String>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive connection, one request at a time; it needs a
/// `Content-Length` in every answer (the demo sends one) and fails on
/// anything it does not understand.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    host: String,
    io_timeout: Duration,
}

impl Conn {
    /// A connection to `addr`; every exchange must end within `io_timeout`.
    pub async fn open(addr: SocketAddr, io_timeout: Duration) -> Self {
        let stream = timeout(io_timeout, TcpStream::connect(addr))
            .await
            .expect("connecting within the I/O timeout")
            .expect("connecting to the demo");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::with_capacity(4096),
            host: addr.to_string(),
            io_timeout,
        }
    }

    /// Sends `method path` with the cookie pair and a JSON body when given.
    ///
    /// # Errors
    /// A write or read that failed or timed out, a closed connection, or a
    /// response head this client does not accept, described.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        json: Option<&str>,
    ) -> Result<Answer, String> {
        let bound = self.io_timeout;
        timeout(bound, self.exchange(method, path, cookie, json))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {bound:?}")))
            .map_err(|err| format!("{method} {path}: {err}"))
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        json: Option<&str>,
    ) -> Result<Answer, String> {
        let body = json.unwrap_or("");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if json.is_some() {
            request.push_str("Content-Type: application/json\r\n");
        }
        if let Some(cookie) = cookie {
            let _ = write!(request, "Cookie: {cookie}\r\n");
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|err| format!("write: {err}"))?;

        let head_end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err("response head too long".to_owned());
            }
            self.fill().await?;
        };
        let head = parse_head(&self.buf[..head_end])?;
        while self.buf.len() < head_end + head.length {
            self.fill().await?;
        }
        let body = self.buf[head_end..head_end + head.length].to_vec();
        self.buf.drain(..head_end + head.length);
        Ok(Answer {
            status: head.status,
            cookie: head.cookie,
            retry_after: head.retry_after,
            body,
        })
    }

    async fn fill(&mut self) -> Result<(), String> {
        self.buf.reserve(4096);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("connection closed by the server".to_owned()),
            Ok(_) => Ok(()),
            Err(err) => Err(format!("read: {err}")),
        }
    }
}

struct Head {
    status: u16,
    length: usize,
    cookie: Option<String>,
    retry_after: Option<u64>,
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let head = std::str::from_utf8(head).map_err(|_| "response head not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n").filter(|line| !line.is_empty());
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut parsed = Head {
        status,
        length: usize::MAX,
        cookie: None,
        retry_after: None,
    };
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.length = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unexpected Transfer-Encoding {value:?}"));
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            return Err("the server closes the connection".to_owned());
        } else if name.eq_ignore_ascii_case("retry-after") {
            parsed.retry_after = Some(
                value
                    .parse()
                    .map_err(|_| format!("bad Retry-After {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("set-cookie") {
            let pair = value.split(';').next().unwrap_or_default().trim();
            if pair.starts_with("session=") {
                parsed.cookie = Some(pair.to_owned());
            }
        }
    }
    if parsed.length == usize::MAX {
        return Err(format!("no Content-Length (status {status})"));
    }
    Ok(parsed)
}
