//! Logging to syslog (the default without `--debug`), facility `daemon`.
//!
//! We speak to the syslog daemon ourselves rather than through `syslog(3)`: one line per
//! datagram on the UNIX socket `/dev/log`, exactly the line musl's `syslog(3)` sends,
//!
//! ```text
//! <PRI>Mmm dd hh:mm:ss ident[pid]: message
//! ```
//!
//! (RFC 3164; `PRI` is facility × 8 + level, the time is local). The C function would do the
//! same through `printf` and `strftime`, which with their helpers make up more than a tenth of
//! a router's binary; the local time still comes from `localtime_r(3)`, so the time zone is the
//! C library's, as before. The timestamp matters even though most daemons replace it with
//! their own: OpenWrt's `logd` removes the first 16 bytes of any line whose 16th is a space, so
//! a line without one could lose its ident.
//!
//! As musl does, the socket is opened by [`open`] (`LOG_NDELAY`: before the unprivileged child
//! chroots away from `/dev/log`), a line longer than 1024 bytes is cut, each line ends with a
//! newline, the pid is the sender's at the time of sending (the privileged parent and the
//! network child share the socket), and a send that finds the connection lost (the syslog
//! daemon restarted) connects again and retries once. A message can hold any text: nothing in
//! it is interpreted.

use std::io::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::sync::{Mutex, MutexGuard};

/// The socket of the local syslog daemon.
const LOG_PATH: &str = "/dev/log";
/// The longest line sent, newline included (musl's limit).
const LINE_MAX: usize = 1024;

/// Message priority (`LOG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Priority {
    fn level(self) -> libc::c_int {
        match self {
            Priority::Err => libc::LOG_ERR,
            Priority::Warning => libc::LOG_WARNING,
            Priority::Notice => libc::LOG_NOTICE,
            Priority::Info => libc::LOG_INFO,
            Priority::Debug => libc::LOG_DEBUG,
        }
    }
}

#[derive(Debug)]
struct Connection {
    ident: String,
    /// `None` if the socket could not be created; retried at the next message.
    socket: Option<UnixDatagram>,
}

unsafe extern "C" {
    /// POSIX `tzset(3)`, which the libc crate does not declare for Unix.
    fn tzset();
}

/// Set by [`open`], cleared by [`close`]; behind a lock because tests log from many threads.
static SYSLOG: Mutex<Option<Connection>> = Mutex::new(None);

fn syslog() -> MutexGuard<'static, Option<Connection>> {
    // A panic while holding the lock cannot leave the connection inconsistent.
    SYSLOG.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket connected to `/dev/log`, or unconnected if nobody listens there yet: the first
/// send then connects again, as musl does.
fn connect() -> Option<UnixDatagram> {
    let socket = UnixDatagram::unbound().ok()?;
    let _ = socket.connect(LOG_PATH);
    Some(socket)
}

/// Opens the connection to syslog with `ident` (usually `"mlvpn"`), facility `LOG_DAEMON`,
/// the pid in every line, and the socket opened at once so that logging keeps working after
/// the unprivileged child chroots away from `/dev/log`. A second call changes the ident and
/// keeps the socket.
pub fn open(ident: &str) -> io::Result<()> {
    if ident.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "syslog ident holds a NUL"));
    }
    // The C library reads the time zone file at the first local time it is asked for: have it
    // read now, while the file is reachable, not in the network child's chroot and sandbox.
    // SAFETY: tzset takes nothing and only sets the C library's time zone state.
    unsafe { tzset() };
    let mut guard = syslog();
    let socket = guard.take().and_then(|c| c.socket).or_else(connect);
    *guard = Some(Connection { ident: ident.to_string(), socket });
    Ok(())
}

/// Logs `message` at `priority`. Without a prior [`open`], the message is dropped (the daemon
/// writes to stderr until it has opened syslog).
pub fn log(priority: Priority, message: &str) {
    let mut guard = syslog();
    let Some(conn) = guard.as_mut() else { return };
    let line = format_line(priority, &local_time(), &conn.ident, std::process::id(), message);
    if conn.socket.is_none() {
        conn.socket = connect();
    }
    let Some(socket) = &conn.socket else { return };
    if let Err(e) = socket.send(&line) {
        let lost = matches!(
            e.raw_os_error(),
            Some(libc::ECONNREFUSED | libc::ECONNRESET | libc::ENOTCONN | libc::EPIPE)
        );
        if lost && socket.connect(LOG_PATH).is_ok() {
            let _ = socket.send(&line);
        }
    }
}

/// Closes the connection.
pub fn close() {
    *syslog() = None;
}

/// Local time as syslog shows it, `Mmm dd hh:mm:ss` (`%b %e %T`): 15 bytes.
fn local_time() -> [u8; 15] {
    const MONTHS: &[u8; 36] = b"JanFebMarAprMayJunJulAugSepOctNovDec";
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // SAFETY: all-zero is a valid `tm` (integers and a null zone pointer); localtime_r reads
    // the one time_t and writes only the `tm` given, and is thread-safe (unlike localtime).
    let tm = unsafe {
        let t = secs as _;
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            tm = std::mem::zeroed();
        }
        tm
    };
    let field = |v: libc::c_int| v.clamp(0, 99) as u8;
    let mut out = *b"Jan  1 00:00:00";
    let month = field(tm.tm_mon).min(11) as usize * 3;
    out[..3].copy_from_slice(&MONTHS[month..month + 3]);
    for (at, v) in
        [(4, field(tm.tm_mday)), (7, field(tm.tm_hour)), (10, field(tm.tm_min)), (13, field(tm.tm_sec))]
    {
        if at != 4 || v >= 10 {
            out[at] = b'0' + v / 10;
        }
        out[at + 1] = b'0' + v % 10;
    }
    out
}

/// `<PRI>time ident[pid]: message\n`, cut to [`LINE_MAX`] bytes.
fn format_line(priority: Priority, time: &[u8; 15], ident: &str, pid: u32, message: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(LINE_MAX);
    let _ = write!(line, "<{}>", libc::LOG_DAEMON | priority.level());
    line.extend_from_slice(time);
    let _ = write!(line, " {ident}[{pid}]: {message}");
    line.truncate(LINE_MAX - 1);
    if line.last() != Some(&b'\n') {
        line.push(b'\n');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_what_musl_sends() {
        let line = format_line(Priority::Warning, b"Nov  6 03:52:07", "mlvpn", 4242, "link wan: down");
        assert_eq!(line, b"<28>Nov  6 03:52:07 mlvpn[4242]: link wan: down\n");
        let line = format_line(Priority::Debug, b"Dec 31 23:59:59", "mlvpn", 7, "%s %n\n");
        assert_eq!(line, b"<31>Dec 31 23:59:59 mlvpn[7]: %s %n\n");
        let line = format_line(Priority::Err, b"Jan  1 00:00:00", "x", 1, &"long ".repeat(2000));
        assert_eq!(line.len(), LINE_MAX);
        assert!(line.starts_with(b"<27>Jan  1 00:00:00 x[1]: long long"));
        assert!(line.ends_with(b"lo\n"));
    }

    #[test]
    fn local_time_has_the_shape_of_strftime_b_e_t() {
        let t = local_time();
        let text = std::str::from_utf8(&t).unwrap();
        assert!("JanFebMarAprMayJunJulAugSepOctNovDec".contains(&text[..3]), "{text}");
        for (i, c) in text.bytes().enumerate() {
            match i {
                3 | 6 => assert_eq!(c, b' ', "{text}"),
                9 | 12 => assert_eq!(c, b':', "{text}"),
                4 => assert!(c == b' ' || c.is_ascii_digit(), "{text}"),
                0..=2 => {}
                _ => assert!(c.is_ascii_digit(), "{text}"),
            }
        }
    }

    // Without a syslog daemon the messages go nowhere; this checks that the calls are sound
    // (a reopened ident, a long message, logging after close).
    #[test]
    fn open_log_close() {
        open("mlvpn-test").unwrap();
        log(Priority::Info, "plain");
        log(Priority::Err, "format characters are text: %s %n %x %%");
        log(Priority::Debug, &"long ".repeat(2000));
        open("mlvpn-test-again").unwrap();
        log(Priority::Warning, "");
        close();
        log(Priority::Notice, "after close");
        assert!(open("bad\0ident").is_err());
    }

    /// The network child's first syslog line comes after it entered its sandbox, where the
    /// time zone file (`/etc/localtime`) can no longer be opened: [`open`] must have read it.
    /// Run in a fresh process (this test binary again, this test only), since any earlier
    /// local time in this one would have read it already.
    #[cfg_attr(any(target_arch = "mips", target_arch = "arm"), ignore = "qemu-user refuses seccomp filters")]
    #[test]
    fn a_sandboxed_process_logs_after_open() {
        const CHILD: &str = "MLVPN_TEST_SYSLOG_IN_SANDBOX";
        let name = "sys::syslog::tests::a_sandboxed_process_logs_after_open";
        if std::env::var_os(CHILD).is_some() {
            open("mlvpn-test").unwrap();
            // SAFETY: plain prctl without pointers; the sandbox needs no_new_privs.
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }, 0);
            let entered = crate::sys::sandbox::enter().unwrap();
            assert!(matches!(entered, crate::sys::sandbox::Outcome::Entered(_)), "{entered:?}");
            log(Priority::Err, "from inside the sandbox");
            // Out at once: the harness's own threads and locks are not the daemon's to allow.
            // SAFETY: ends the process without running any more Rust code.
            unsafe { libc::_exit(7) };
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{:?} (SIGSYS is 31)\n{text}", out.status);
    }
}
