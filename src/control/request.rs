//! The control request parser: sans-IO, never panics, bounded.
//!
//! Two protocols share a socket, told apart by the first line:
//!
//! * **MLVPN's line protocol**: one word, `status`, `metrics` or `table` (case-insensitive;
//!   `/status` and `/metrics` too, as the original accepted), ended by a newline, MLVPN's EOF
//!   byte 0x04, or the end of the stream. The answer is the bare document.
//! * **HTTP/1.0 and 1.1**: `GET /status HTTP/1.1`, headers, an empty line. The answer is an
//!   HTTP response. A request line of just `GET /status` (HTTP/0.9, what a person types into
//!   `nc`) gets the bare document.
//!
//! A request longer than [`MAX_REQUEST`] without being complete is refused.

/// Bytes a request may take, headers included.
pub const MAX_REQUEST: usize = 4096;

/// MLVPN's end-of-command byte (Ctrl-D).
const EOT: u8 = 0x04;

/// How the answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The bare document (MLVPN's line protocol, or HTTP/0.9).
    Bare,
    /// An HTTP/1.x response with headers.
    Http,
}

/// What to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The JSON status document.
    Status,
    /// Prometheus text.
    Metrics,
    /// The table `mlvpn status` prints.
    Table,
    /// HTTP 404, or "unknown command" on the line protocol.
    NotFound,
    /// HTTP 405: a method other than GET.
    MethodNotAllowed,
    /// HTTP 400: a request that does not parse.
    BadRequest,
    /// HTTP 400: more than [`MAX_REQUEST`] bytes.
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub framing: Framing,
    pub answer: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// Need more bytes.
    Incomplete,
    Done(Request),
    /// The client closed without asking anything: close without answering.
    Nothing,
}

fn route(target: &[u8], slash_optional: bool) -> Answer {
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let path = match path.strip_prefix(b"/") {
        Some(p) => p,
        None if slash_optional => path,
        None => return Answer::NotFound,
    };
    if path.eq_ignore_ascii_case(b"status") {
        Answer::Status
    } else if path.eq_ignore_ascii_case(b"metrics") {
        Answer::Metrics
    } else if path.eq_ignore_ascii_case(b"table") {
        Answer::Table
    } else {
        Answer::NotFound
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses what a client has sent so far; `eof` when it has closed its side.
pub fn parse(buf: &[u8], eof: bool) -> Parse {
    let full = buf.len() >= MAX_REQUEST;
    // Servers ought to ignore empty lines before a request (RFC 9112 2.2); MLVPN skipped them.
    let mut buf = buf;
    let (line, rest) = loop {
        let (line, rest) = match buf.iter().position(|&b| b == b'\n' || b == EOT) {
            Some(i) => (&buf[..i], Some(&buf[i + 1..])),
            None if eof => (buf, None),
            None if full => {
                let framing = if buf.contains(&b' ') { Framing::Http } else { Framing::Bare };
                return Parse::Done(Request { framing, answer: Answer::TooLong });
            }
            None => return Parse::Incomplete,
        };
        let line = trim(line);
        match rest {
            _ if !line.is_empty() => break (line, rest),
            Some(rest) => buf = rest,
            None => return Parse::Nothing,
        }
    };
    let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let bare = |answer| Parse::Done(Request { framing: Framing::Bare, answer });
    match words[..] {
        [command] => bare(route(command, true)),
        [method, target] if method.eq_ignore_ascii_case(b"GET") => bare(route(target, false)),
        [method, target, version] if version.starts_with(b"HTTP/") => {
            let http = |answer| Parse::Done(Request { framing: Framing::Http, answer });
            if !(version == b"HTTP/1.1" || version == b"HTTP/1.0")
                || method.is_empty()
                || !method.iter().all(|&b| is_tchar(b))
                || !target.starts_with(b"/")
                || target.iter().any(|b| b.is_ascii_control())
            {
                return http(Answer::BadRequest);
            }
            match headers(rest.unwrap_or_default(), eof) {
                Headers::Bad => http(Answer::BadRequest),
                Headers::Incomplete if full => http(Answer::TooLong),
                Headers::Incomplete => Parse::Incomplete,
                Headers::Done if method == b"GET" => http(route(target, false)),
                Headers::Done => http(Answer::MethodNotAllowed),
            }
        }
        _ => bare(Answer::NotFound),
    }
}

enum Headers {
    Incomplete,
    Done,
    Bad,
}

/// Checks header lines (`name: value`) up to the empty line. At the end of the stream, what
/// has arrived is taken as the whole header (lenient: `printf 'GET /status HTTP/1.0\n' | nc`).
fn headers(mut rest: &[u8], eof: bool) -> Headers {
    loop {
        let Some(i) = rest.iter().position(|&b| b == b'\n') else {
            return if eof && trim(rest).is_empty() {
                Headers::Done
            } else if eof {
                Headers::Bad
            } else {
                Headers::Incomplete
            };
        };
        let line = &rest[..i];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Headers::Done;
        }
        match line.iter().position(|&b| b == b':') {
            Some(colon) if colon > 0 && line[..colon].iter().all(|&b| is_tchar(b)) => {}
            _ => return Headers::Bad,
        }
        rest = &rest[i + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(framing: Framing, answer: Answer) -> Parse {
        Parse::Done(Request { framing, answer })
    }
    use Answer::*;
    use Framing::*;

    #[test]
    fn mlvpn_line_protocol() {
        assert_eq!(parse(b"status\n", false), done(Bare, Status));
        assert_eq!(parse(b"STATUS\r\n", false), done(Bare, Status));
        assert_eq!(parse(b"metrics\n", false), done(Bare, Metrics));
        assert_eq!(parse(b"/metrics\n", false), done(Bare, Metrics));
        assert_eq!(parse(b"table\n", false), done(Bare, Table));
        assert_eq!(parse(b"  status \x04", false), done(Bare, Status));
        assert_eq!(parse(b"\n\r\nstatus\nmetrics\n", false), done(Bare, Status));
        assert_eq!(parse(b"status", true), done(Bare, Status));
        assert_eq!(parse(b"status", false), Parse::Incomplete);
        assert_eq!(parse(b"", false), Parse::Incomplete);
        assert_eq!(parse(b"\n\n", false), Parse::Incomplete);
        assert_eq!(parse(b" \r\n\t\nstatus\n", false), done(Bare, Status));
        assert_eq!(parse(b" \r\n\t\nstat", false), Parse::Incomplete);
        assert_eq!(parse(b"", true), Parse::Nothing);
        assert_eq!(parse(b"\r\n", true), Parse::Nothing);
        assert_eq!(parse(b"quit\n", false), done(Bare, NotFound));
        assert_eq!(parse(b"status now please\n", false), done(Bare, NotFound));
        assert_eq!(parse(b"\xff\xfe\n", false), done(Bare, NotFound));
    }

    #[test]
    fn http_requests() {
        let get =
            b"GET /status HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n";
        assert_eq!(parse(get, false), done(Http, Status));
        assert_eq!(parse(b"GET /metrics HTTP/1.0\r\n\r\n", false), done(Http, Metrics));
        assert_eq!(parse(b"GET /metrics?x=1 HTTP/1.0\n\n", false), done(Http, Metrics));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n", false), done(Http, NotFound));
        assert_eq!(parse(b"GET /nope HTTP/1.1\r\n\r\n", false), done(Http, NotFound));
        assert_eq!(
            parse(b"POST /status HTTP/1.1\r\nContent-Length: 0\r\n\r\n", false),
            done(Http, MethodNotAllowed)
        );
        // HTTP/0.9 as typed by a person: the bare document at once.
        assert_eq!(parse(b"GET /status\r\n", false), done(Bare, Status));
        assert_eq!(parse(b"GET /x\n", false), done(Bare, NotFound));
        // Half-closed after the request line: accepted.
        assert_eq!(parse(b"GET /status HTTP/1.0\r\n", true), done(Http, Status));
    }

    #[test]
    fn malformed_http_is_a_bad_request() {
        for r in [
            &b"GET /status HTTP/2.0\r\n\r\n"[..],
            b"GET status HTTP/1.1\r\n\r\n",
            b"G\x01T /status HTTP/1.1\r\n\r\n",
            b"GET /sta\x7ftus HTTP/1.1\r\n\r\n",
            b"GET /status HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET /status HTTP/1.1\r\n: empty name\r\n\r\n",
            b"GET /status HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET /status HTTP/1.1\r\nBad Name: x\r\n\r\n",
        ] {
            assert_eq!(parse(r, false), done(Http, BadRequest), "{}", String::from_utf8_lossy(r));
        }
        // Cut short by the end of the stream, inside a header line.
        assert_eq!(parse(b"GET /status HTTP/1.1\r\nHost: a", true), done(Http, BadRequest));
    }

    #[test]
    fn slowloris_partial_requests_wait() {
        let full = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n], false), Parse::Incomplete, "{n}");
        }
        assert_eq!(parse(full, false), done(Http, Status));
    }

    #[test]
    fn oversized_requests_are_refused() {
        let mut r = b"GET /status HTTP/1.1\r\n".to_vec();
        while r.len() < MAX_REQUEST {
            r.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(parse(&r, false), done(Http, TooLong));
        assert_eq!(parse(&vec![b'a'; MAX_REQUEST], false), done(Bare, TooLong));
        assert_eq!(parse(&vec![b'a'; MAX_REQUEST - 1], false), Parse::Incomplete);
        let mut r = b"GET /".to_vec();
        r.resize(MAX_REQUEST, b'a');
        assert_eq!(parse(&r, false), done(Http, TooLong));
        // A complete request that fits is answered, whatever follows it.
        let mut r = b"status\n".to_vec();
        r.resize(MAX_REQUEST, b'a');
        assert_eq!(parse(&r, false), done(Bare, Status));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0x1234_5678;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let alphabet = b"GET /status HTTP/1.0\r\n:\x04\xff aA";
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let buf: Vec<u8> = (0..len).map(|_| alphabet[next() as usize % alphabet.len()]).collect();
            let _ = parse(&buf, next() % 2 == 0);
        }
    }
}
