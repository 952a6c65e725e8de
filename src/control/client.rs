//! The other end: what `mlvpn status` uses to ask a running daemon.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The largest answer accepted (a status document is a few kB per link).
pub const MAX_RESPONSE: usize = 16 << 20;

/// Sends `command` (`status`, `metrics` or `table`) on the UNIX socket at `unix_path` and
/// returns the document the daemon sent back, all within `timeout`. An error document
/// (`{"error": ...}`, see [`super::error_message`]) is returned as it is.
pub fn query(unix_path: &Path, command: &str, timeout: Duration) -> io::Result<String> {
    if command.is_empty() || command.contains(['\n', '\r', '\u{4}']) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a command is one word"));
    }
    let until = Instant::now() + timeout;
    let shown = unix_path.display();
    let mut s = UnixStream::connect(unix_path).map_err(|e| {
        let why = match e.kind() {
            io::ErrorKind::NotFound => "no such socket (is mlvpn running, with control_unix_path set?)",
            io::ErrorKind::ConnectionRefused => "nobody listening (mlvpn is not running)",
            io::ErrorKind::PermissionDenied => "permission denied (run as mlvpn's user or root)",
            _ => "",
        };
        if why.is_empty() {
            io::Error::new(e.kind(), format!("{shown}: {e}"))
        } else {
            io::Error::new(e.kind(), format!("{shown}: {why}"))
        }
    })?;
    s.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    s.shutdown(Shutdown::Write)?;
    let body = read_all(&mut s, until, |s, t| s.set_read_timeout(t))?;
    String::from_utf8(body).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the answer is not UTF-8"))
}

/// `GET path` over HTTP from the listener at `addr`: the status code and the body.
pub fn query_http(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let until = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let raw = read_all(&mut s, until, |s, t| s.set_read_timeout(t))?;
    let raw = String::from_utf8(raw).map_err(|_| bad("the answer is not UTF-8"))?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let code = head
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("not an HTTP response"))?;
    Ok((code, body.to_string()))
}

/// Reads to the end of the stream, at most [`MAX_RESPONSE`] bytes, before `until`.
fn read_all<S: Read>(
    s: &mut S,
    until: Instant,
    set_timeout: impl Fn(&S, Option<Duration>) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no complete answer in time"));
        }
        set_timeout(s, Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) if out.len() + n > MAX_RESPONSE => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "answer too large"));
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no complete answer in time"));
            }
            Err(e) => return Err(e),
        }
    }
}
