//! The control server: a UNIX listener and/or an HTTP listener in the daemon's poll table, and
//! up to [`MAX_CLIENTS`] clients, each answered once and closed.
//!
//! # Bounds (what a slow, silent or hostile client can cost)
//!
//! * **fds**: the listeners plus at most [`MAX_CLIENTS`]. While every client slot is taken the
//!   listeners leave the poll table, so further connections wait in the kernel's backlog
//!   (or are refused by it) rather than cost an fd or spin the loop.
//! * **memory**: a request buffer of [`MAX_REQUEST`] bytes per slot, allocated on the slot's
//!   first use and kept, and one response per client, the size of a document.
//! * **time**: each client is closed [`CLIENT_TIMEOUT`] after it was accepted, answered or not.
//!   Per [`ControlServer::handle`] call: at most one read and one write per client, at most
//!   [`ACCEPT_BATCH`] accepts per listener, at most one [`Status`] snapshot, each document
//!   rendered at most once however many clients asked for it.
//! * **the data path never waits**: every socket is non-blocking.
//!
//! A client that half-closes and then stops reading would keep a level-triggered `POLLIN` up
//! (end of file is always readable) while its response waits for room; the poll table has no
//! write-only interest, so such a client leaves the table and its write is retried every
//! [`WRITE_RETRY`] until it completes or the deadline passes.

use super::json;
use super::prom;
use super::request::{self, Answer, Framing, MAX_REQUEST, Parse, Request};
use super::status::Status;
use crate::log::Throttle;
use crate::proto::{Duration, Instant};
use crate::sys::poll::{Interest, Poller};
use crate::{log_debug, log_warn};
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Clients served at once.
pub const MAX_CLIENTS: usize = 32;
/// From accept to close, answered or not.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections accepted per listener per call.
pub const ACCEPT_BATCH: usize = 8;
/// How often a write to a half-closed client that is not reading is retried.
pub const WRITE_RETRY: Duration = Duration::from_millis(20);
/// How long accepting pauses after the process ran out of fds (or memory).
const ACCEPT_RETRY: Duration = Duration::from_millis(500);
/// `sun_path` holds 108 bytes with the final NUL.
const UNIX_PATH_MAX: usize = 107;

#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(true),
            Stream::Tcp(s) => s.set_nonblocking(true),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    Writing {
        /// The client closed its side (its `POLLIN` stays up from now on).
        peer_eof: bool,
        /// Out of the poll table: try the write again at this time.
        retry_at: Option<Instant>,
    },
}

#[derive(Debug)]
struct Client {
    stream: Option<Stream>,
    deadline: Instant,
    /// `MAX_REQUEST` bytes once the slot has been used.
    req: Vec<u8>,
    req_len: usize,
    eof: bool,
    out: Vec<u8>,
    sent: usize,
    phase: Phase,
}

impl Client {
    fn idle() -> Self {
        Client {
            stream: None,
            deadline: Instant::ZERO,
            req: Vec::new(),
            req_len: 0,
            eof: false,
            out: Vec::new(),
            sent: 0,
            phase: Phase::Reading,
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        self.stream.as_ref()?;
        match self.phase {
            Phase::Writing { retry_at: Some(t), .. } => Some(t.min(self.deadline)),
            _ => Some(self.deadline),
        }
    }
}

/// What a step left the client in.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Keep,
    Close,
}

#[derive(Debug, Clone, Copy)]
struct Slots {
    unix: Option<usize>,
    http: Option<usize>,
    /// First of `MAX_CLIENTS` consecutive slots.
    clients: usize,
}

/// The socket file we created, removed on drop if it is still ours.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Documents rendered during one `handle` call, shared by every client that asked.
#[derive(Debug, Default)]
struct Docs {
    status: Option<Status>,
    json: Option<String>,
    metrics: Option<String>,
    table: Option<String>,
    /// Buffers kept between calls so that rendering reuses their capacity.
    spare: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Doc {
    Json,
    Metrics,
    Table,
}

impl Docs {
    fn clear(&mut self) {
        self.status = None;
        for s in [self.json.take(), self.metrics.take(), self.table.take()].into_iter().flatten() {
            self.spare.push(s);
        }
    }

    fn get(&mut self, doc: Doc, snapshot: &mut dyn FnMut() -> Status) -> &str {
        let Docs { status, json, metrics, table, spare } = self;
        let slot = match doc {
            Doc::Json => json,
            Doc::Metrics => metrics,
            Doc::Table => table,
        };
        slot.get_or_insert_with(|| {
            let status = status.get_or_insert_with(snapshot);
            let mut out = spare.pop().unwrap_or_default();
            out.clear();
            match doc {
                Doc::Json => status.write_json(&mut out),
                Doc::Metrics => status.write_prometheus(&mut out),
                Doc::Table => status.write_table(&mut out),
            }
            out
        })
    }
}

/// The control socket(s). See the module documentation for the bounds.
#[derive(Debug)]
pub struct ControlServer {
    unix: Option<UnixListener>,
    unix_file: Option<SocketFile>,
    http: Option<TcpListener>,
    clients: Vec<Client>,
    slots: Option<Slots>,
    listening: bool,
    accept_paused_until: Option<Instant>,
    accept_errors: Throttle,
    docs: Docs,
    timeout: Duration,
}

fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Creates the UNIX socket at `path`, mode 0600: a stale socket (nobody listening) is replaced,
/// a live one is an error, the directory is created (0700) if missing.
fn bind_unix(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| context(e, format!("cannot create {}", dir.display())))?;
    }
    let stale = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another mlvpn is running on {shown}"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => true,
            Err(e) => return Err(context(e, format!("cannot check the socket {shown}"))),
        },
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{shown} exists and is not a socket"),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(context(e, format!("cannot check {shown}"))),
    };
    // Bound under a temporary name, made private, then renamed over the final one, so that
    // nobody else can connect to it and a stale socket is replaced in one step. If that name
    // would not fit in `sun_path`, bind in place.
    let tmp = dir.join(format!(".mlvpn-control-{}", std::process::id()));
    let in_place = tmp.as_os_str().len() > UNIX_PATH_MAX;
    let bind_at = if in_place { path } else { &tmp };
    if in_place && stale {
        fs::remove_file(path).map_err(|e| context(e, format!("cannot remove the stale socket {shown}")))?;
    }
    if !in_place {
        let _ = fs::remove_file(&tmp);
    }
    let listener = UnixListener::bind(bind_at).map_err(|e| context(e, format!("cannot bind {shown}")))?;
    let made = (|| {
        fs::set_permissions(bind_at, fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        // Whoever connected before the chmod is dropped (nobody legitimate knows the name yet).
        for _ in 0..1024 {
            if listener.accept().is_err() {
                break;
            }
        }
        if !in_place {
            fs::rename(&tmp, path)?;
        }
        fs::symlink_metadata(path)
    })();
    match made {
        Ok(m) => Ok((listener, SocketFile { path: path.to_path_buf(), dev: m.dev(), ino: m.ino() })),
        Err(e) => {
            let _ = fs::remove_file(bind_at);
            Err(context(e, format!("cannot set up {shown}")))
        }
    }
}

impl ControlServer {
    /// Opens the listeners: a UNIX socket at `unix` (see the module documentation for how a
    /// stale or live socket is handled) and an HTTP listener on `http`. Either may be absent;
    /// with neither, the server does nothing.
    pub fn bind(unix: Option<&Path>, http: Option<SocketAddr>) -> io::Result<ControlServer> {
        let (unix, unix_file) = match unix {
            Some(p) => {
                let (l, f) = bind_unix(p)?;
                (Some(l), Some(f))
            }
            None => (None, None),
        };
        let http = match http {
            Some(addr) => {
                let l =
                    TcpListener::bind(addr).map_err(|e| context(e, format!("cannot listen on {addr}")))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        Ok(ControlServer {
            unix,
            unix_file,
            http,
            clients: (0..MAX_CLIENTS).map(|_| Client::idle()).collect(),
            slots: None,
            listening: false,
            accept_paused_until: None,
            accept_errors: Throttle::new(Duration::from_secs(10)),
            docs: Docs::default(),
            timeout: CLIENT_TIMEOUT,
        })
    }

    /// Changes how long a client may stay connected ([`CLIENT_TIMEOUT`] by default), for
    /// clients accepted from now on.
    pub fn set_client_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Where the UNIX socket is, if there is one.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_file.as_ref().map(|f| f.path.as_path())
    }

    /// The HTTP listener's address (with the actual port if bound to port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Leaves the socket file to another process to remove: after the fork of privilege
    /// separation both hold the listener, the child serves it and the parent, which outlives
    /// the child and may still reach the file, removes it (the child is in a chroot, and its
    /// sandbox forbids file calls).
    pub fn disown_file(&mut self) {
        if let Some(f) = self.unix_file.take() {
            std::mem::forget(f);
        }
    }

    /// Poll slots [`register`](Self::register) will take: one per listener and
    /// [`MAX_CLIENTS`], or none without a listener.
    pub fn slots_needed(&self) -> usize {
        let listeners = usize::from(self.unix.is_some()) + usize::from(self.http.is_some());
        if listeners == 0 { 0 } else { listeners + MAX_CLIENTS }
    }

    /// Takes [`slots_needed`](Self::slots_needed) consecutive slots at the end of the poll table,
    /// once, at start. The listeners are polled from then on; client slots stay disabled until
    /// a client is accepted.
    ///
    /// # Panics
    /// If called twice.
    pub fn register(&mut self, poller: &mut Poller) {
        assert!(self.slots.is_none(), "ControlServer::register called twice");
        let unix_fd = self.unix.as_ref().map(AsRawFd::as_raw_fd);
        let http_fd = self.http.as_ref().map(AsRawFd::as_raw_fd);
        let Some(any) = unix_fd.or(http_fd) else { return };
        let unix = unix_fd.map(|fd| poller.register(&fd, Interest::Read));
        let http = http_fd.map(|fd| poller.register(&fd, Interest::Read));
        let clients = poller.len();
        for _ in 0..MAX_CLIENTS {
            let slot = poller.register(&any, Interest::Read);
            poller.disable(slot);
        }
        self.slots = Some(Slots { unix, http, clients });
        self.listening = true;
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.iter().filter(|c| c.stream.is_some()).count()
    }

    /// When [`handle`](Self::handle) must run next even if no slot is ready: the next client
    /// deadline or write retry, or the end of an accept pause.
    pub fn deadline(&self) -> Option<Instant> {
        self.clients.iter().filter_map(Client::wake_at).chain(self.accept_paused_until).min()
    }

    /// After each `poll`: reads requests, answers, writes, closes, accepts. Cheap when nothing
    /// is ready (a scan of [`MAX_CLIENTS`] slots); call it every round of the loop.
    /// `snapshot` is called at most once per call, and only if a client asked for a document.
    pub fn handle(&mut self, poller: &mut Poller, now: Instant, snapshot: &mut dyn FnMut() -> Status) {
        let Some(slots) = self.slots else { return };
        self.docs.clear();
        for (i, c) in self.clients.iter_mut().enumerate() {
            if c.stream.is_none() {
                continue;
            }
            let slot = slots.clients + i;
            let ready = poller.readable(slot) || poller.writable(slot) || poller.error(slot);
            let retry = matches!(c.phase, Phase::Writing { retry_at: Some(t), .. } if t <= now);
            let mut step = Step::Keep;
            if ready || retry {
                step = progress(c, slot, poller, now, &mut self.docs, snapshot);
            }
            if step == Step::Close || now >= c.deadline {
                close(c, slot, poller);
            }
        }
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
        }
        if self.listening {
            if slots.unix.is_some_and(|s| poller.readable(s) || poller.error(s)) {
                self.accept(true, slots, poller, now, snapshot);
            }
            if slots.http.is_some_and(|s| poller.readable(s) || poller.error(s)) {
                self.accept(false, slots, poller, now, snapshot);
            }
        }
        let want = self.accept_paused_until.is_none() && self.clients() < MAX_CLIENTS;
        if want != self.listening {
            self.listening = want;
            for (slot, fd) in [
                (slots.unix, self.unix.as_ref().map(AsRawFd::as_raw_fd)),
                (slots.http, self.http.as_ref().map(AsRawFd::as_raw_fd)),
            ] {
                if let (Some(slot), Some(fd)) = (slot, fd) {
                    if want { poller.set_fd(slot, &fd) } else { poller.disable(slot) }
                }
            }
        }
    }

    fn accept(
        &mut self,
        unix: bool,
        slots: Slots,
        poller: &mut Poller,
        now: Instant,
        snapshot: &mut dyn FnMut() -> Status,
    ) {
        for _ in 0..ACCEPT_BATCH {
            let Some(i) = self.clients.iter().position(|c| c.stream.is_none()) else { return };
            let accepted = if unix {
                self.unix.as_ref().map(|l| l.accept().map(|(s, _)| Stream::Unix(s)))
            } else {
                self.http.as_ref().map(|l| {
                    l.accept().map(|(s, _)| {
                        let _ = s.set_nodelay(true);
                        Stream::Tcp(s)
                    })
                })
            };
            let stream = match accepted {
                None => return,
                Some(Ok(s)) => s,
                Some(Err(e)) => match e.kind() {
                    io::ErrorKind::WouldBlock => return,
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => continue,
                    _ => {
                        // Out of fds or memory: the connection stays queued and the listener
                        // readable; pause rather than spin.
                        if let Some(held) = self.accept_errors.allow(now) {
                            log_warn!("control: accept: {e} ({held} more not shown)");
                        }
                        self.accept_paused_until = Some(now + ACCEPT_RETRY);
                        return;
                    }
                },
            };
            if let Err(e) = stream.set_nonblocking() {
                log_debug!("control", "client: {e}");
                continue;
            }
            let slot = slots.clients + i;
            let c = &mut self.clients[i];
            poller.set_fd(slot, &stream);
            poller.set_interest(slot, Interest::Read);
            c.stream = Some(stream);
            c.deadline = now + self.timeout;
            if c.req.len() != MAX_REQUEST {
                c.req = vec![0; MAX_REQUEST];
            }
            // The request is often there already.
            if progress(c, slot, poller, now, &mut self.docs, snapshot) == Step::Close {
                close(c, slot, poller);
            }
        }
    }
}

/// Reads, answers and writes what can be done now without blocking.
fn progress(
    c: &mut Client,
    slot: usize,
    poller: &mut Poller,
    now: Instant,
    docs: &mut Docs,
    snapshot: &mut dyn FnMut() -> Status,
) -> Step {
    let Some(stream) = c.stream.as_mut() else { return Step::Close };
    match c.phase {
        Phase::Reading => {
            match stream.read(&mut c.req[c.req_len..]) {
                Ok(0) => c.eof = true,
                Ok(n) => c.req_len += n,
                Err(e) if is_transient(&e) => return Step::Keep,
                Err(e) => {
                    log_debug!("control", "client read: {e}");
                    return Step::Close;
                }
            }
            match request::parse(&c.req[..c.req_len], c.eof) {
                Parse::Incomplete if c.eof => return Step::Close,
                Parse::Incomplete => return Step::Keep,
                Parse::Nothing => return Step::Close,
                Parse::Done(r) => {
                    respond(&mut c.out, r, docs, snapshot);
                    c.sent = 0;
                    c.phase = Phase::Writing { peer_eof: c.eof, retry_at: None };
                }
            }
        }
        Phase::Writing { peer_eof: false, .. } if poller.readable(slot) => {
            // Whatever else the client sends is ignored; its end of file matters.
            match stream.read(&mut c.req) {
                Ok(0) => c.phase = Phase::Writing { peer_eof: true, retry_at: None },
                Ok(_) => {}
                Err(e) if is_transient(&e) => {}
                Err(_) => return Step::Close,
            }
        }
        Phase::Writing { .. } => {}
    }
    let Phase::Writing { peer_eof, .. } = c.phase else { return Step::Keep };
    match stream.write(&c.out[c.sent..]) {
        Ok(n) => c.sent += n,
        Err(e) if is_transient(&e) => {}
        Err(e) => {
            log_debug!("control", "client write: {e}");
            return Step::Close;
        }
    }
    if c.sent == c.out.len() {
        return Step::Close;
    }
    // Wait for room: with POLLOUT, or on a timer if the client's end of file would keep the
    // slot readable (and the loop spinning).
    let retry_at = if peer_eof {
        poller.disable(slot);
        Some(now + WRITE_RETRY)
    } else {
        poller.set_interest(slot, Interest::ReadWrite);
        None
    };
    c.phase = Phase::Writing { peer_eof, retry_at };
    Step::Keep
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

fn close(c: &mut Client, slot: usize, poller: &mut Poller) {
    // Out of the table before the fd closes (its number may be reused at once).
    poller.disable(slot);
    if let Some(mut s) = c.stream.take() {
        // Unread input makes close() reset a TCP connection, which can discard the response
        // on its way: read what is left (once; bounded).
        if c.phase != Phase::Reading {
            let _ = s.read(&mut c.req);
        }
    }
    c.req_len = 0;
    c.eof = false;
    c.out.clear();
    c.sent = 0;
    c.phase = Phase::Reading;
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// Builds the whole response into `out`.
fn respond(out: &mut Vec<u8>, r: Request, docs: &mut Docs, snapshot: &mut dyn FnMut() -> Status) {
    out.clear();
    let mut error = String::new();
    let (code, content_type, body): (u16, &str, &str) = match r.answer {
        Answer::Status => (200, "application/json", docs.get(Doc::Json, snapshot)),
        Answer::Metrics => (200, prom::CONTENT_TYPE, docs.get(Doc::Metrics, snapshot)),
        Answer::Table => (200, "text/plain; charset=utf-8", docs.get(Doc::Table, snapshot)),
        a => {
            let (code, message) = match (a, r.framing) {
                (Answer::NotFound, Framing::Bare) => (404, "unknown command"),
                (Answer::NotFound, Framing::Http) => (404, "not found"),
                (Answer::MethodNotAllowed, _) => (405, "method not allowed"),
                (Answer::TooLong, _) => (400, "request too long"),
                _ => (400, "bad request"),
            };
            json::error_document(&mut error, message);
            (code, "application/json", &error)
        }
    };
    if r.framing == Framing::Http {
        let allow = if code == 405 { "Allow: GET\r\n" } else { "" };
        let _ = write!(
            out,
            "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n{allow}Server: mlvpn\r\n\r\n",
            reason(code),
            body.len()
        );
    }
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status { name: "t".into(), version: "1".into(), ..Default::default() }
    }

    fn answer(framing: Framing, answer: Answer) -> String {
        let mut out = Vec::new();
        let mut docs = Docs::default();
        respond(&mut out, Request { framing, answer }, &mut docs, &mut status);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn http_responses_have_length_type_and_close() {
        let r = answer(Framing::Http, Answer::Status);
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Type: application/json\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.contains("\r\nConnection: close\r\n"));
        let r = answer(Framing::Http, Answer::Metrics);
        assert!(r.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        let r = answer(Framing::Http, Answer::MethodNotAllowed);
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && r.contains("\r\nAllow: GET\r\n"));
        assert!(r.ends_with("\r\n\r\n{\n  \"error\": \"method not allowed\"\n}\n"), "{r}");
        let r = answer(Framing::Http, Answer::TooLong);
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        let r = answer(Framing::Http, Answer::NotFound);
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n") && r.contains("\"not found\""));
    }

    #[test]
    fn bare_responses_are_the_document_alone() {
        assert!(answer(Framing::Bare, Answer::Status).starts_with("{\n  \"name\": \"t\""));
        assert_eq!(answer(Framing::Bare, Answer::NotFound), "{\n  \"error\": \"unknown command\"\n}\n");
        assert_eq!(answer(Framing::Bare, Answer::TooLong), "{\n  \"error\": \"request too long\"\n}\n");
    }

    #[test]
    fn one_snapshot_and_one_rendering_per_call() {
        let mut docs = Docs::default();
        let calls = std::cell::Cell::new(0);
        let mut snap = || {
            calls.set(calls.get() + 1);
            status()
        };
        let mut out = Vec::new();
        for a in [Answer::Status, Answer::Metrics, Answer::Status, Answer::Table, Answer::NotFound] {
            respond(&mut out, Request { framing: Framing::Http, answer: a }, &mut docs, &mut snap);
        }
        assert_eq!(calls.get(), 1);
        docs.clear();
        respond(&mut out, Request { framing: Framing::Bare, answer: Answer::NotFound }, &mut docs, &mut snap);
        assert_eq!(calls.get(), 1, "errors need no snapshot");
        respond(&mut out, Request { framing: Framing::Bare, answer: Answer::Metrics }, &mut docs, &mut snap);
        assert_eq!(calls.get(), 2);
    }
}
