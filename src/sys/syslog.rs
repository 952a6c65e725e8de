//! Logging to syslog (the default without `--debug`), facility `daemon`.
//!
//! Two C pitfalls are handled here:
//! * `syslog(3)` takes a printf format. User-controlled text (a peer address, an interface
//!   name, a config value) used as the format could read or write memory through `%s`/`%n`, so
//!   the format is always the constant `"%.*s"` and the message an argument. `%.*s` takes the
//!   length with the pointer, so a Rust `&str` goes in as it is, without a NUL-terminated copy
//!   (an interior NUL, which our messages never hold, would end the message early).
//! * `openlog(3)` does not copy the ident string: glibc and musl keep the pointer and read it at
//!   every `syslog` call. The ident must therefore outlive every later call, so we keep it in
//!   a `static` until [`close`] (or the next [`open`]) replaces it, under a lock that `log`
//!   also takes so the pointer is never read while it is being replaced.

use std::ffi::CString;
use std::io;
use std::sync::{Mutex, MutexGuard};

/// The ident passed to `openlog`, kept alive for as long as libc may read it.
static IDENT: Mutex<Option<CString>> = Mutex::new(None);

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

fn ident() -> MutexGuard<'static, Option<CString>> {
    // A panic while holding the lock cannot leave the Option inconsistent.
    IDENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens the connection to syslog with `ident` (usually `"mlvpn"`), facility `LOG_DAEMON`,
/// the pid in every line, and the socket opened at once (`LOG_NDELAY`) so that logging keeps
/// working after the unprivileged child chroots away from `/dev/log`.
pub fn open(ident_text: &str) -> io::Result<()> {
    let new = CString::new(ident_text)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "syslog ident holds a NUL"))?;
    let mut guard = ident();
    // SAFETY: `new`'s buffer is stored in IDENT right after, and stays there (at the same
    // address: moving a CString does not move its heap buffer) until `close` or the next `open`
    // has told libc to stop using it, all under the lock.
    unsafe { libc::openlog(new.as_ptr(), libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_DAEMON) };
    *guard = Some(new);
    Ok(())
}

/// Logs `message` at `priority`. Without a prior [`open`], libc uses its defaults (the program
/// name as ident, facility `LOG_USER`).
pub fn log(priority: Priority, message: &str) {
    let len = libc::c_int::try_from(message.len()).unwrap_or(libc::c_int::MAX);
    let _guard = ident();
    // SAFETY: the format is a constant that consumes exactly the two arguments given: an int
    // length and a pointer to at least that many readable bytes (`%.*s` reads no further, and
    // stops early at a NUL). The ident pointer libc may read is kept alive by the held lock.
    unsafe { libc::syslog(priority.level(), c"%.*s".as_ptr(), len, message.as_ptr()) };
}

/// Closes the connection; the ident is released after libc has let go of it.
pub fn close() {
    let mut guard = ident();
    // SAFETY: no arguments; afterwards libc no longer refers to the ident.
    unsafe { libc::closelog() };
    *guard = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Without a syslog daemon the messages go nowhere; this checks that the calls are sound
    // (no crash with format characters in the message, a reopened ident, or a long message).
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
}
