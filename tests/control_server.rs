//! A real `ControlServer` in a real `Poller`, driven by a small loop in the test thread, with
//! clients in other threads: many at once, silent ones, ones that never read, too many, stale
//! and live sockets, HTTP and MLVPN's line protocol on both sockets.
//!
//! The tests share the process's fd table (one of them counts it), so they run one at a time.

mod control_common;

use control_common::{PROM_DIGEST, python, sample};
use mlvpn::control::{self, ControlServer, LinkStatus, MAX_CLIENTS, Status, query, query_http};
use mlvpn::proto::Duration;
use mlvpn::sys::poll::Poller;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh directory for sockets (short, for `sun_path`), removed with this value.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("mlvpn-ctl-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// The daemon's side: the server in a poll table, and what each round did.
struct Loop {
    server: ControlServer,
    poller: Poller,
    status: Status,
    rounds: u64,
    snapshots: u64,
    /// Where the socket is, removed after the server.
    dir: Option<TempDir>,
}

impl Loop {
    fn new(mut server: ControlServer, status: Status) -> Self {
        let mut poller = Poller::with_capacity(server.slots_needed());
        server.register(&mut poller);
        assert_eq!(poller.len(), server.slots_needed());
        Loop { server, poller, status, rounds: 0, snapshots: 0, dir: None }
    }

    fn unix(tag: &str, status: Status) -> (Self, PathBuf) {
        let dir = temp_dir(tag);
        let path = dir.join("ctl.sock");
        let mut server = ControlServer::bind(Some(&path), None).unwrap();
        server.set_client_timeout(Duration::from_secs(1));
        let mut lp = Loop::new(server, status);
        lp.dir = Some(dir);
        (lp, path)
    }

    /// One round as the daemon runs it: poll until a slot is ready or the server's deadline
    /// (at most 50 ms here, so the test can check on its clients), then `handle`.
    fn round(&mut self) {
        let now = mlvpn::daemon::now();
        let cap = StdDuration::from_millis(50);
        let timeout = self
            .server
            .deadline()
            .map_or(cap, |t| StdDuration::from_micros(t.saturating_since(now).as_micros()).min(cap));
        self.poller.wait(Some(timeout)).unwrap();
        let (status, snapshots) = (&self.status, &mut self.snapshots);
        let mut snapshot = || {
            *snapshots += 1;
            status.clone()
        };
        self.server.handle(&mut self.poller, mlvpn::daemon::now(), &mut snapshot);
        self.rounds += 1;
    }

    /// Runs rounds until `done` or `limit`; panics at the limit.
    fn run_until(&mut self, limit: StdDuration, mut done: impl FnMut(&ControlServer) -> bool) {
        let start = StdInstant::now();
        while !done(&self.server) {
            assert!(start.elapsed() < limit, "not done after {limit:?}");
            self.round();
        }
    }

    fn run_for(&mut self, d: StdDuration) {
        let start = StdInstant::now();
        while start.elapsed() < d {
            self.round();
        }
    }
}

fn rendered(s: &Status, f: fn(&Status, &mut String)) -> String {
    let mut o = String::new();
    f(s, &mut o);
    o
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A status whose JSON is far larger than a socket buffer, so that writes block.
fn big_status() -> Status {
    let mut s = sample();
    let l = s.links[0].clone();
    s.links = (0..3000).map(|i| LinkStatus { name: format!("link{i}"), ..l.clone() }).collect();
    s
}

fn read_to_end_or_reset<R: Read>(mut s: R) -> Vec<u8> {
    let mut v = Vec::new();
    match s.read_to_end(&mut v) {
        Ok(_) => v,
        Err(e) => panic!("read: {e} after {} bytes", v.len()),
    }
}

#[test]
fn fifty_concurrent_clients_all_get_complete_answers() {
    let _g = serial();
    let dir = temp_dir("fifty");
    let path = dir.join("ctl.sock");
    let server = ControlServer::bind(Some(&path), Some("127.0.0.1:0".parse().unwrap())).unwrap();
    let http = server.http_addr().unwrap();
    let mut lp = Loop::new(server, sample());
    let json = rendered(&lp.status, Status::write_json);
    let metrics = rendered(&lp.status, Status::write_prometheus);
    let table = rendered(&lp.status, Status::write_table);
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let path = path.clone();
            thread::spawn(move || match i % 5 {
                0 => ("status", query(&path, "status", StdDuration::from_secs(20)).unwrap()),
                1 => ("metrics", query(&path, "metrics", StdDuration::from_secs(20)).unwrap()),
                2 => ("table", query(&path, "table", StdDuration::from_secs(20)).unwrap()),
                3 => {
                    let (code, body) = query_http(http, "/status", StdDuration::from_secs(20)).unwrap();
                    assert_eq!(code, 200);
                    ("status", body)
                }
                _ => {
                    let (code, body) = query_http(http, "/metrics", StdDuration::from_secs(20)).unwrap();
                    assert_eq!(code, 200);
                    ("metrics", body)
                }
            })
        })
        .collect();
    let start = StdInstant::now();
    while !clients.iter().all(|c| c.is_finished()) {
        assert!(start.elapsed() < StdDuration::from_secs(20), "clients still waiting");
        lp.round();
        assert!(lp.server.clients() <= MAX_CLIENTS);
    }
    for c in clients {
        let (what, got) = c.join().unwrap();
        let want = match what {
            "status" => &json,
            "metrics" => &metrics,
            _ => &table,
        };
        assert_eq!(&got, want, "{what}");
    }
    // Many requests per round share one snapshot; never more than one per request.
    assert!(lp.snapshots <= 50, "{} snapshots", lp.snapshots);
    // The documents that came over the sockets parse with real parsers.
    if let Some(out) = python("import json,sys; json.loads(sys.stdin.read()); print('ok')", &json, "json") {
        assert_eq!(out, "ok\n");
    }
    let (code, body) = {
        let t = thread::spawn(move || query_http(http, "/metrics", StdDuration::from_secs(10)).unwrap());
        lp.run_until(StdDuration::from_secs(10), |_| t.is_finished());
        t.join().unwrap()
    };
    assert_eq!(code, 200);
    if let Some(digest) = python(PROM_DIGEST, &body, "prometheus_client") {
        assert_eq!(digest.lines().count(), body.lines().filter(|l| !l.starts_with('#')).count());
    }
}

#[test]
fn silent_and_non_reading_clients_are_closed_at_their_deadline_while_others_are_served() {
    let _g = serial();
    let (mut lp, path) = Loop::unix("silent", big_status());
    let json = rendered(&lp.status, Status::write_json);
    assert!(json.len() > 1 << 20);
    // Connects and sends nothing.
    let mut silent = UnixStream::connect(&path).unwrap();
    // Sends half a request (slowloris).
    let mut partial = UnixStream::connect(&path).unwrap();
    partial.write_all(b"GET /sta").unwrap();
    // Asks and never reads, connection left open.
    let mut stuck = UnixStream::connect(&path).unwrap();
    stuck.write_all(b"status\n").unwrap();
    // Asks, closes its side, never reads: its end of file keeps POLLIN up.
    let mut stuck_eof = UnixStream::connect(&path).unwrap();
    stuck_eof.write_all(b"status\n").unwrap();
    stuck_eof.shutdown(Shutdown::Write).unwrap();
    lp.run_until(StdDuration::from_secs(5), |s| s.clients() == 4);
    let accepted = StdInstant::now();

    // Meanwhile others are served, completely.
    let others: Vec<_> = (0..5)
        .map(|_| {
            let path = path.clone();
            thread::spawn(move || query(&path, "status", StdDuration::from_secs(10)).unwrap())
        })
        .collect();
    lp.run_until(StdDuration::from_secs(5), |_| others.iter().all(|t| t.is_finished()));
    for t in others {
        assert_eq!(t.join().unwrap(), json);
    }
    assert_eq!(lp.server.clients(), 4, "the four are still there");

    // Until their deadline (1 s), with the loop sleeping, not spinning.
    let rounds = lp.rounds;
    lp.run_until(StdDuration::from_secs(5), |s| s.clients() == 0);
    let waited = accepted.elapsed();
    assert!(waited >= StdDuration::from_millis(700), "closed after {waited:?}");
    assert!(lp.rounds - rounds < 500, "{} rounds in {waited:?}: the loop spins", lp.rounds - rounds);
    assert!(lp.server.deadline().is_none());

    // Each saw its connection closed: nothing at all, or an incomplete answer.
    for s in [&mut silent, &mut partial] {
        s.set_read_timeout(Some(StdDuration::from_secs(5))).unwrap();
        assert_eq!(read_to_end_or_reset(&mut *s).len(), 0);
    }
    for s in [&mut stuck, &mut stuck_eof] {
        s.set_read_timeout(Some(StdDuration::from_secs(5))).unwrap();
        let got = read_to_end_or_reset(&mut *s);
        assert!(!got.is_empty() && got.len() < json.len(), "{} bytes", got.len());
    }
}

#[test]
fn a_slow_reader_gets_the_whole_answer() {
    let _g = serial();
    let (mut lp, path) = Loop::unix("slow", big_status());
    lp.server.set_client_timeout(Duration::from_secs(10));
    let json = rendered(&lp.status, Status::write_json);
    for half_close in [false, true] {
        let path = path.clone();
        let t = thread::spawn(move || {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"status\n").unwrap();
            if half_close {
                s.shutdown(Shutdown::Write).unwrap();
            }
            let mut got = Vec::new();
            let mut buf = [0u8; 64 << 10];
            loop {
                thread::sleep(StdDuration::from_millis(5));
                match s.read(&mut buf).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        lp.run_until(StdDuration::from_secs(10), |_| t.is_finished());
        assert_eq!(String::from_utf8(t.join().unwrap()).unwrap(), json, "half-closed: {half_close}");
    }
}

#[test]
fn more_than_max_clients_wait_in_the_backlog_and_cost_no_fds() {
    let _g = serial();
    let (mut lp, path) = Loop::unix("many", sample());
    let before = fd_count();
    let n = 100;
    let mut conns: Vec<UnixStream> = (0..n).map(|_| UnixStream::connect(&path).unwrap()).collect();
    lp.run_for(StdDuration::from_millis(50));
    let rounds = lp.rounds;
    lp.run_for(StdDuration::from_millis(200));
    assert!(lp.rounds - rounds < 100, "{} rounds in 200 ms: the loop spins", lp.rounds - rounds);
    assert_eq!(lp.server.clients(), MAX_CLIENTS);
    assert_eq!(fd_count(), before + n + MAX_CLIENTS, "ours: {n}, the server's: at most {MAX_CLIENTS}");
    // The ones waiting are served when slots free up (here: at the deadlines of the silent
    // ones). Ask on every connection and wait for all the answers.
    for c in &mut conns {
        c.write_all(b"status\n").unwrap();
    }
    let json = rendered(&lp.status, Status::write_json);
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                c.set_read_timeout(Some(StdDuration::from_secs(20))).unwrap();
                let mut v = String::new();
                c.read_to_string(&mut v).unwrap();
                v
            })
        })
        .collect();
    lp.run_until(StdDuration::from_secs(20), |_| readers.iter().all(|t| t.is_finished()));
    for t in readers {
        assert_eq!(t.join().unwrap(), json);
    }
    lp.run_until(StdDuration::from_secs(5), |s| s.clients() == 0);
    assert_eq!(fd_count(), before, "an fd leaked");
}

#[test]
fn connections_closed_by_their_clients_leak_nothing() {
    let _g = serial();
    let (mut lp, path) = Loop::unix("leak", sample());
    let http_server = ControlServer::bind(None, Some("127.0.0.1:0".parse().unwrap())).unwrap();
    let http = http_server.http_addr().unwrap();
    let mut hp = Loop::new(http_server, sample());
    let before = fd_count();
    for round in 0..3 {
        // Gone before asking, gone mid-request, asking then gone.
        let a: Vec<_> = (0..20).map(|_| UnixStream::connect(&path).unwrap()).collect();
        let b: Vec<_> = (0..20)
            .map(|_| {
                let mut s = TcpStream::connect(http).unwrap();
                s.write_all(b"GET /status HTTP/1.1\r\nHo").unwrap();
                s
            })
            .collect();
        let c: Vec<_> = (0..20)
            .map(|_| {
                let mut s = UnixStream::connect(&path).unwrap();
                s.write_all(b"metrics\n").unwrap();
                s
            })
            .collect();
        lp.run_for(StdDuration::from_millis(50));
        hp.run_for(StdDuration::from_millis(50));
        drop((a, b, c));
        lp.run_until(StdDuration::from_secs(5), |s| s.clients() == 0);
        hp.run_until(StdDuration::from_secs(5), |s| s.clients() == 0);
        assert_eq!(fd_count(), before, "round {round}");
    }
}

#[test]
fn stale_socket_is_replaced_and_a_live_one_refused() {
    let _g = serial();
    let dir = temp_dir("stale");
    let path = dir.join("sub/dir/ctl.sock");
    // Missing directories are created, private.
    let first = ControlServer::bind(Some(&path), None).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("sub/dir")), 0o700);
    assert_eq!(mode(&path), 0o600, "socket mode");
    assert_eq!(first.unix_path(), Some(path.as_path()));
    // A live one is refused, and left alone.
    let e = ControlServer::bind(Some(&path), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    assert_eq!(e.to_string(), format!("another mlvpn is running on {}", path.display()));
    assert!(UnixStream::connect(&path).is_ok());
    // Ours goes with the server.
    drop(first);
    assert!(!path.exists());

    // A stale one (a dead daemon's) is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(UnixStream::connect(&path).is_err() && path.exists());
    let server = ControlServer::bind(Some(&path), None).unwrap();
    assert_eq!(mode(&path), 0o600);
    let mut lp = Loop::new(server, sample());
    let p = path.clone();
    let t = thread::spawn(move || query(&p, "status", StdDuration::from_secs(5)).unwrap());
    lp.run_until(StdDuration::from_secs(5), |_| t.is_finished());
    assert!(t.join().unwrap().starts_with("{\n  \"name\": \"mlvpn\""));
    // No temporary file left behind.
    let names: Vec<_> =
        std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["ctl.sock"]);

    // A socket that another process put in our place is not ours to remove.
    std::fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    drop(lp);
    assert!(path.exists());
    drop(other);

    // Anything else at the path is an error, and untouched.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "precious").unwrap();
    let e = ControlServer::bind(Some(&path), None).unwrap_err();
    assert!(e.to_string().contains("exists and is not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

/// Sends `request` raw and returns everything the server sent before closing.
fn exchange(
    lp: &mut Loop,
    connect: impl FnOnce() -> Box<dyn ReadWrite + Send> + Send + 'static,
    request: Vec<u8>,
) -> String {
    let t = thread::spawn(move || {
        let mut s = connect();
        s.write_all(&request).unwrap();
        let mut v = Vec::new();
        let _ = s.read_to_end(&mut v);
        String::from_utf8(v).unwrap()
    });
    lp.run_until(StdDuration::from_secs(5), |_| t.is_finished());
    t.join().unwrap()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tcp(addr: SocketAddr) -> impl FnOnce() -> Box<dyn ReadWrite + Send> + Send + 'static {
    move || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(StdDuration::from_secs(5))).unwrap();
        Box::new(s)
    }
}

fn unix(path: &Path) -> impl FnOnce() -> Box<dyn ReadWrite + Send> + Send + 'static {
    let path = path.to_path_buf();
    move || {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(StdDuration::from_secs(5))).unwrap();
        Box::new(s)
    }
}

#[test]
fn http_status_codes_and_both_protocols_on_both_sockets() {
    let _g = serial();
    let dir = temp_dir("http");
    let path = dir.join("ctl.sock");
    let server = ControlServer::bind(Some(&path), Some("127.0.0.1:0".parse().unwrap())).unwrap();
    let http = server.http_addr().unwrap();
    let mut lp = Loop::new(server, sample());
    let json = rendered(&lp.status, Status::write_json);
    let metrics = rendered(&lp.status, Status::write_prometheus);

    let r = exchange(&mut lp, tcp(http), b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: application/json\r\n") && head.contains("\r\nConnection: close\r\n")
    );
    assert_eq!(body, json);

    let r = exchange(&mut lp, tcp(http), b"GET /metrics HTTP/1.0\r\n\r\n".to_vec());
    assert!(r.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{r}");
    assert!(r.ends_with(&metrics));

    let r = exchange(&mut lp, tcp(http), b"GET /nope HTTP/1.1\r\n\r\n".to_vec());
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    assert_eq!(control::error_message(r.split_once("\r\n\r\n").unwrap().1).as_deref(), Some("not found"));

    let r = exchange(&mut lp, tcp(http), b"DELETE /status HTTP/1.1\r\n\r\n".to_vec());
    assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");

    let r = exchange(&mut lp, tcp(http), b"GET /status HTTP/1.1\r\nthis is not a header\r\n\r\n".to_vec());
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");

    // Over the limit: 400, closed, and the answer is not lost to a reset.
    let mut big = b"GET /status HTTP/1.1\r\n".to_vec();
    big.resize(5000, b'a');
    let r = exchange(&mut lp, tcp(http), big);
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    assert_eq!(
        control::error_message(r.split_once("\r\n\r\n").unwrap().1).as_deref(),
        Some("request too long")
    );

    // HTTP on the UNIX socket, MLVPN's line protocol over TCP.
    let r = exchange(&mut lp, unix(&path), b"GET /status HTTP/1.0\r\n\r\n".to_vec());
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with(&json), "{r}");
    assert_eq!(exchange(&mut lp, tcp(http), b"metrics\n".to_vec()), metrics);
    assert_eq!(exchange(&mut lp, unix(&path), b"STATUS\r\n".to_vec()), json);
    assert_eq!(exchange(&mut lp, unix(&path), b"GET /status\n".to_vec()), json);
    let r = exchange(&mut lp, unix(&path), b"bogus\n".to_vec());
    assert_eq!(control::error_message(&r).as_deref(), Some("unknown command"), "{r}");
    let r = exchange(&mut lp, unix(&path), vec![b'x'; 10_000]);
    assert_eq!(control::error_message(&r).as_deref(), Some("request too long"), "{r}");
}

#[test]
fn query_says_why_it_cannot_connect() {
    let _g = serial();
    let dir = temp_dir("query");
    let e = query(&dir.join("none.sock"), "status", StdDuration::from_secs(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("is mlvpn running"), "{e}");
    drop(UnixListener::bind(dir.join("stale.sock")).unwrap());
    let e = query(&dir.join("stale.sock"), "status", StdDuration::from_secs(1)).unwrap_err();
    assert!(e.to_string().contains("not running"), "{e}");
    // A server that never answers: a timeout, not a hang.
    let _l = UnixListener::bind(dir.join("mute.sock")).unwrap();
    let start = StdInstant::now();
    let e = query(&dir.join("mute.sock"), "status", StdDuration::from_millis(300)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() < StdDuration::from_secs(3));
    assert_eq!(
        query(&dir.join("mute.sock"), "two\nlines", StdDuration::from_secs(1)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn no_listener_means_no_slots_and_nothing_to_do() {
    let _g = serial();
    let server = ControlServer::bind(None, None).unwrap();
    assert_eq!(server.slots_needed(), 0);
    let mut lp = Loop::new(server, sample());
    lp.round();
    assert_eq!((lp.server.clients(), lp.server.deadline(), lp.snapshots), (0, None, 0));
}

/// Sets this process's soft limit on open files with `prlimit(1)`; false if it is missing.
fn set_nofile(soft: usize) -> bool {
    let pid = std::process::id().to_string();
    let hard = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile", "--raw", "--noheadings", "-o", "HARD"])
        .output();
    let Ok(hard) = hard else { return false };
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_string();
    std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={soft}:{hard}")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Puts the limit back (even if the test fails), after freeing fds to spawn prlimit(1).
struct Limit {
    soft: usize,
    ballast: Vec<std::fs::File>,
}

impl Drop for Limit {
    fn drop(&mut self) {
        self.ballast.clear();
        if !set_nofile(self.soft) {
            eprintln!("cannot restore the fd limit to {}", self.soft);
        }
    }
}

#[test]
fn out_of_fds_pauses_accepting_instead_of_spinning() {
    let _g = serial();
    let (mut lp, path) = Loop::unix("emfile", sample());
    let conns: Vec<UnixStream> = (0..5)
        .map(|_| {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"status\n").unwrap();
            s
        })
        .collect();
    let original = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft: usize = original
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap();
    // No fd left for accept(2): the limit is on fd numbers, so fill the holes below the
    // lowest free one and set the limit there. (poll(2) refuses more slots than the limit,
    // hence at least as many fds as slots.)
    let ballast = (0..lp.poller.len()).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
    let lowest_free = std::fs::File::open("/dev/null").unwrap().as_raw_fd();
    let limit = Limit { soft, ballast };
    if !set_nofile(lowest_free as usize) {
        let _ = writeln!(std::io::stderr(), "SKIPPED: prlimit(1) is missing or failed");
        return;
    }
    lp.run_for(StdDuration::from_millis(300));
    let rounds = lp.rounds;
    let clients = lp.server.clients();
    let paused = lp.server.deadline();
    drop(limit);
    assert_eq!(clients, 0);
    assert!(rounds < 100, "{rounds} rounds in 300 ms: the loop spins");
    assert!(paused.is_some(), "the server must wake the loop to try again");
    // Once fds are back, the queued clients are served.
    let json = rendered(&lp.status, Status::write_json);
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                c.set_read_timeout(Some(StdDuration::from_secs(5))).unwrap();
                let mut v = String::new();
                c.read_to_string(&mut v).unwrap();
                v
            })
        })
        .collect();
    lp.run_until(StdDuration::from_secs(5), |_| readers.iter().all(|t| t.is_finished()));
    for t in readers {
        assert_eq!(t.join().unwrap(), json);
    }
}
