//! A minimal blocking HTTP/1.1 client for the receiver's own tests.
//!
//! Deliberately raw (std `TcpStream`, hand-written request) so tests can send exactly the
//! malformed requests a real client library would refuse to build: no `Content-Length`, odd
//! encodings, wrong methods. One request per connection, with `Connection: close`, so a response
//! ends where the server closes the connection.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

use crate::Receiver;

/// Bounds every test's network wait: a receiver bug fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A request under construction.
#[derive(Debug, Clone)]
pub(crate) struct HttpRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A parsed response.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl HttpRequest {
    /// A bare request: no headers, no body, no `Content-Length`.
    pub(crate) fn new(method: &str, target: &str) -> HttpRequest {
        HttpRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A well-formed Events API request for `receiver` with this query (e.g. `name=mcp_logs`)
    /// and NDJSON body, as a correct client sends it.
    pub(crate) fn events(receiver: &Receiver, query: &str, ndjson: &str) -> HttpRequest {
        HttpRequest::new("POST", &format!("/v0/events?{query}"))
            .header("Authorization", &format!("Bearer {}", receiver.token()))
            .header("Content-Type", "application/x-ndjson")
            .body(ndjson.as_bytes())
    }

    /// Sets a header, replacing any with the same (case-insensitive) name.
    pub(crate) fn header(self, name: &str, value: &str) -> HttpRequest {
        let mut request = self.without_header(name);
        request.headers.push((name.to_owned(), value.to_owned()));
        request
    }

    pub(crate) fn without_header(mut self, name: &str) -> HttpRequest {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        self
    }

    /// Sets the body and a matching `Content-Length`.
    pub(crate) fn body(mut self, body: &[u8]) -> HttpRequest {
        self.body = body.to_vec();
        self.header("Content-Length", &body.len().to_string())
    }

    /// Gzips the current body and declares it with `Content-Encoding: gzip`.
    pub(crate) fn gzipped(self) -> HttpRequest {
        let compressed = gzip(&self.body);
        self.header("Content-Encoding", "gzip").body(&compressed)
    }

    /// Sends the request to `receiver`, panicking (failing the test) on any I/O error.
    pub(crate) fn send(&self, receiver: &Receiver) -> HttpResponse {
        self.try_send_to(receiver.addr).unwrap_or_else(|error| {
            panic!(
                "{} {} to {}: {error}",
                self.method,
                self.target,
                receiver.url()
            )
        })
    }

    /// Sends the request to `addr`; usable from a thread that does not own the receiver.
    pub(crate) fn try_send_to(&self, addr: SocketAddr) -> io::Result<HttpResponse> {
        self.try_send_with_timeout(addr, IO_TIMEOUT)
    }

    /// Like [`HttpRequest::try_send_to`], giving up on any single read or write after `timeout`
    /// (and then closing the connection), as a client with a request timeout does.
    pub(crate) fn try_send_with_timeout(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<HttpResponse> {
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;

        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.target, addr
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&self.body)?;
        // No half-close (`shutdown(Write)`) here: hyper takes a read EOF for a client that went
        // away and drops the request unanswered.

        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        HttpResponse::parse(&raw)
    }
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> io::Result<HttpResponse> {
        let malformed = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} in response {:?}", String::from_utf8_lossy(raw)),
            )
        };
        let split = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .ok_or_else(|| malformed("no end of headers"))?;
        let head = std::str::from_utf8(&raw[..split]).map_err(|_| malformed("non-UTF-8 head"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|status_line| status_line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| malformed("no status code"))?;
        let headers = lines
            .map(|line| {
                line.split_once(':')
                    .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
                    .ok_or_else(|| malformed("malformed header"))
            })
            .collect::<io::Result<_>>()?;
        Ok(HttpResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
        })
    }

    /// The first header with this (case-insensitive) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON, panicking with the body if it is not.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("response body {:?} is not JSON: {error}", self.body))
    }
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .expect("gzip into a Vec cannot fail")
}
