//! Waiting on a deployed stack: the throttle that keeps a long wait to one progress line per
//! period, and the one plain HTTP request the health probe and the serving check send. Below
//! both ([`super::probe`], [`super::serving`]), so neither imports the other for them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How often a long wait reports its progress at INFO (a wait is one line every 10 s, not
/// its polls).
pub(super) const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Decides when a wait reports its progress: first [`PROGRESS_EVERY`] after it started, then at
/// most once per period, so a short wait says nothing but its result. `now` is passed in so
/// the decision is tested without waiting.
pub(super) struct Progress {
    every: Duration,
    last: Instant,
}

impl Progress {
    /// Returns the throttle of a wait that started at `started`.
    pub(super) fn new(started: Instant, every: Duration) -> Self {
        Progress {
            every,
            last: started,
        }
    }

    /// Returns true when a progress line is due at `now`, and counts it as printed.
    pub(super) fn due(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.last) >= self.every {
            self.last = now;
            true
        } else {
            false
        }
    }
}

/// Sends `GET path` with `host` in `Host:` over plain HTTP and returns the status code. Health
/// endpoints answer in one status line; a client library would add nothing here.
pub(super) fn http_status(ip: &str, port: u16, path: &str, host: &str) -> Result<u16, String> {
    let addr = format!("{ip}:{port}");
    let sock = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_status_line(&head[..n]).ok_or_else(|| format!("{addr} sent no HTTP status line"))
}

/// Returns the status code of an HTTP response's first line.
fn parse_status_line(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.split_whitespace();
    parts.next().filter(|p| p.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b""), None);
    }
}
