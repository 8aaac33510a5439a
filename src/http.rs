//! The little of HTTP/1.1 ferrumx speaks as a client: a GET with `Connection: close`,
//! and the response read back (the status, then the body by Content-Length, chunked, or
//! to the end of the connection), every size bounded and every malformed answer an
//! error. Two callers share it: the daemon's REST block download (`rest`, blocking) and
//! the peer blacklist (BLACKLIST_URL, fetched by the Peers actor on its own socket, TLS
//! included). Response heads and chunk sizes are parsed by `httparse`.

use httparse::Status;
use std::io::{ErrorKind, Read};

/// A response with more header lines than this is refused.
const MAX_HEADERS: usize = 64;
/// The longest response head accepted.
const MAX_HEAD: usize = 64 << 10;
/// How much is read from the connection at a time while the head is incomplete.
const READ_STEP: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("unsupported URL {0:?}: expected http:// or https://host[:port][/path]")]
    Url(String),
    #[error("HTTP response: {0}")]
    Malformed(String),
    #[error("HTTP response: status {0}")]
    Status(u16),
    #[error("HTTP response: body over the {0}-byte limit")]
    TooLarge(usize),
    #[error("the connection closed before the status line")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn malformed(detail: &str) -> HttpError {
    HttpError::Malformed(detail.to_string())
}

/// An `http://` or `https://` URL, split for a GET request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// From the first `/`, `/` if none.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, HttpError> {
        let bad = || HttpError::Url(url.to_string());
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), port.parse().map_err(|_| bad())?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad());
        }
        Ok(HttpUrl {
            tls,
            host,
            port,
            path,
        })
    }

    /// The GET request for this URL.
    pub fn get_request(&self) -> String {
        let mut host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port != if self.tls { 443 } else { 80 } {
            host = format!("{host}:{}", self.port);
        }
        get_request(&host, &self.path)
    }
}

/// A GET of `path` from `host` (the `Host` header: a name or address, with the port
/// unless it is the scheme's), `Connection: close` so that the body ends with the
/// connection at the latest.
pub fn get_request(host: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ferrumx/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// How a response's body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// A response's status line and headers, as far as reading the body needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    framing: Framing,
    /// Bytes up to the end of the blank line.
    len: usize,
}

/// The head at the start of `buf`; `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) if buf.len() > MAX_HEAD => return Err(malformed("head too long")),
        Ok(Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let status = response.code.ok_or_else(|| malformed("no status"))?;
    let mut framing = Framing::UntilClose;
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).map_err(|_| malformed("header not UTF-8"))?;
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().contains("chunked") {
                framing = Framing::Chunked;
            }
        } else if header.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked
        {
            let length = value
                .trim()
                .parse()
                .map_err(|_| malformed("bad Content-Length"))?;
            framing = Framing::Length(length);
        }
    }
    Ok(Some(Head {
        status,
        framing,
        len,
    }))
}

/// The body from the bytes after the head (all that was received), at most `max` bytes.
fn decode_body(framing: Framing, body: &[u8], max: usize) -> Result<Vec<u8>, HttpError> {
    match framing {
        Framing::Chunked => dechunk(body, max),
        Framing::Length(n) if n > max => Err(HttpError::TooLarge(max)),
        Framing::Length(n) if body.len() < n => Err(malformed("body shorter than Content-Length")),
        Framing::Length(n) => Ok(body[..n].to_vec()),
        Framing::UntilClose if body.len() > max => Err(HttpError::TooLarge(max)),
        Framing::UntilClose => Ok(body.to_vec()),
    }
}

/// A chunked body, all of it received, decoded to at most `max` bytes. A chunk size too
/// large for the limit (or for any integer) is an error, never an overflow.
fn dechunk(mut body: &[u8], max: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let (consumed, size) = match httparse::parse_chunk_size(body) {
            Ok(Status::Complete(parsed)) => parsed,
            Ok(Status::Partial) => return Err(malformed("truncated chunk size")),
            Err(_) => return Err(malformed("bad chunk size")),
        };
        body = &body[consumed..];
        if size == 0 {
            return Ok(out);
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|&size| size <= max - out.len())
            .ok_or(HttpError::TooLarge(max))?;
        let (data, rest) = body
            .split_at_checked(size)
            .ok_or_else(|| malformed("truncated chunk"))?;
        body = rest
            .strip_prefix(b"\r\n")
            .ok_or_else(|| malformed("chunk not followed by CRLF"))?;
        out.extend_from_slice(data);
    }
}

/// The body of a complete response (read until the server closed the connection) if its
/// status is 200, at most `max` bytes.
pub fn body_of(response: &[u8], max: usize) -> Result<Vec<u8>, HttpError> {
    let head = parse_head(response)?.ok_or_else(|| malformed("no end of headers"))?;
    if head.status != 200 {
        return Err(HttpError::Status(head.status));
    }
    decode_body(head.framing, &response[head.len..], max)
}

/// Reads one response from a blocking connection whose request asked for `Connection:
/// close`: its status and body (at most `max` bytes). With a Content-Length it stops
/// there instead of waiting for the close.
pub fn read_response(stream: &mut impl Read, max: usize) -> Result<(u16, Vec<u8>), HttpError> {
    let mut body = Vec::new();
    let (status, _) = read_response_into(stream, max, &mut body)?;
    Ok((status, body))
}

/// Reads one response from a blocking connection, which may stay open after it, into
/// `body` (emptied first), whose memory a caller reading many large responses keeps from
/// one to the next: a fresh buffer of tens of megabytes is fresh pages for the kernel to
/// zero. A body with a Content-Length is read to exactly that length. Returns the status
/// and whether the connection can carry the next request.
pub fn read_response_into(
    stream: &mut impl Read,
    max: usize,
    body: &mut Vec<u8>,
) -> Result<(u16, bool), HttpError> {
    let mut buf = Vec::with_capacity(READ_STEP);
    let head = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        if read_more(stream, &mut buf)? == 0 {
            return Err(if buf.is_empty() {
                HttpError::Closed
            } else {
                malformed("headers end early")
            });
        }
    };
    body.clear();
    body.extend_from_slice(&buf[head.len..]);
    // Bytes past the Content-Length (the server sent what was not asked for) make the
    // connection unfit for another request.
    let mut reusable = matches!(head.framing, Framing::Length(_));
    match head.framing {
        Framing::Length(n) if n > max => return Err(HttpError::TooLarge(max)),
        Framing::Length(n) if body.len() > n => {
            reusable = false;
            body.truncate(n);
        }
        Framing::Length(n) => {
            let have = body.len();
            body.resize(n, 0);
            stream.read_exact(&mut body[have..])?;
        }
        // Chunk headers add a little to the body: twice the limit is ample.
        Framing::Chunked | Framing::UntilClose => {
            let limit = u64::try_from(max.saturating_mul(2)).unwrap_or(u64::MAX);
            stream.take(limit).read_to_end(body)?;
            let decoded = decode_body(head.framing, body, max)?;
            *body = decoded;
        }
    }
    Ok((head.status, reusable))
}

/// Appends what the connection has next; 0 at its end.
fn read_more(stream: &mut impl Read, buf: &mut Vec<u8>) -> Result<usize, HttpError> {
    let old = buf.len();
    buf.resize(old + READ_STEP, 0);
    let read = loop {
        match stream.read(&mut buf[old..]) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    buf.truncate(old + *read.as_ref().unwrap_or(&0));
    Ok(read?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn bodies_by_length_chunks_or_close() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n[1]\nextra";
        assert_eq!(body_of(plain, MAX).expect("body"), b"[1]\n");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[\"a\r\n2;x=y\r\n\"]\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked, MAX).expect("body"), b"[\"a\"]");
        let closed = b"HTTP/1.0 200 OK\r\n\r\n[]";
        assert_eq!(body_of(closed, MAX).expect("body"), b"[]");
        assert!(matches!(
            body_of(b"HTTP/1.1 404 Not Found\r\n\r\n", MAX),
            Err(HttpError::Status(404))
        ));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n[]";
        assert!(matches!(body_of(short, MAX), Err(HttpError::Malformed(_))));
        assert!(body_of(b"garbage", MAX).is_err());
        assert!(body_of(b"HTTP/1.1 200 OK\r\n", MAX).is_err());
    }

    #[test]
    fn sizes_beyond_the_limit_are_errors_not_overflows() {
        for size in ["ffffffffffffffff", "fffffffffffffffe", "10000000"] {
            let response =
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nab\r\n");
            assert!(
                matches!(
                    body_of(response.as_bytes(), MAX),
                    Err(HttpError::TooLarge(MAX))
                ),
                "{size}"
            );
        }
        // More hex digits than any 64-bit size: refused by the parser.
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n";
        assert!(matches!(body_of(huge, MAX), Err(HttpError::Malformed(_))));
        // Chunks that add up past the limit.
        let two = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        assert!(matches!(body_of(two, 5), Err(HttpError::TooLarge(5))));
        assert_eq!(body_of(two, 6).expect("body"), b"abcdef");
        let long = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
        assert!(matches!(body_of(long, MAX), Err(HttpError::TooLarge(MAX))));
        let overflow = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert!(matches!(
            body_of(overflow, MAX),
            Err(HttpError::Malformed(_))
        ));
        let missing_crlf =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n";
        assert!(matches!(
            body_of(missing_crlf, MAX),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn kept_alive_responses_end_at_their_length() {
        // The buffer is kept from one response to the next: emptied first.
        let mut body = b"left from before".to_vec();
        let mut two: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 500 X\r\nContent-Length: 1\r\n\r\nz";
        // The first read takes both: what follows the length is not this response's.
        let (status, reusable) = read_response_into(&mut two, MAX, &mut body).expect("first");
        assert_eq!((status, body.as_slice()), (200, &b"abc"[..]));
        assert!(!reusable);
        let mut one =
            std::io::Cursor::new(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".to_vec());
        let (_, reusable) = read_response_into(&mut one, MAX, &mut body).expect("reply");
        assert!(reusable);
        assert_eq!(body, b"abc");
        let mut closing: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nabc";
        let (_, reusable) = read_response_into(&mut closing, MAX, &mut body).expect("reply");
        assert!(!reusable);
    }

    #[test]
    fn responses_are_read_from_a_connection() {
        let mut reply: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(
            read_response(&mut reply, MAX).expect("reply"),
            (200, b"abc".to_vec())
        );
        let mut chunked: &[u8] =
            b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
        assert_eq!(
            read_response(&mut chunked, MAX).expect("reply"),
            (500, b"x".to_vec())
        );
        let mut cut: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc";
        assert!(matches!(
            read_response(&mut cut, MAX),
            Err(HttpError::Io(_))
        ));
        let mut empty: &[u8] = b"";
        assert!(matches!(
            read_response(&mut empty, MAX),
            Err(HttpError::Closed)
        ));
        let mut big: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
        assert!(matches!(
            read_response(&mut big, 9),
            Err(HttpError::TooLarge(9))
        ));
    }

    #[test]
    fn urls_and_requests() {
        let url = HttpUrl::parse("https://electrum.org/blacklist.json").expect("url");
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.path.as_str()),
            (true, "electrum.org", 443, "/blacklist.json")
        );
        assert!(url.get_request().contains("\r\nHost: electrum.org\r\n"));
        let url = HttpUrl::parse("http://127.0.0.1:8080").expect("url");
        assert_eq!((url.port, url.path.as_str()), (8080, "/"));
        let url = HttpUrl::parse("http://[::1]:81/x").expect("url");
        assert_eq!((url.host.as_str(), url.port), ("::1", 81));
        for bad in ["ftp://x/", "http://", "http://h:x/", "https://u@h/"] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
        let request = url.get_request();
        assert!(request.starts_with("GET /x HTTP/1.1\r\nHost: [::1]:81\r\n"));
        assert!(request.ends_with("Connection: close\r\n\r\n"));
    }
}
