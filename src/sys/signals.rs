//! Signals as readable events on an fd, so they sit in the poll table like everything else.
//!
//! [`Signals::new`] blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD and opens a non-blocking
//! `signalfd` for them; it also ignores SIGPIPE, so a write to a closed control-socket client
//! returns `EPIPE` instead of killing the daemon. Blocked signals stay pending until read from
//! the fd: no handler runs, nothing is interrupted at a random point, and nothing is lost
//! between two polls (standard signals of one kind do coalesce: two SIGCHLDs may read as one,
//! so reap every exited child on each [`Signal::Child`]).
//!
//! The signal mask is per thread and inherited by threads and children. Hence:
//! * call [`Signals::new`] in the main thread **before any other thread exists**, or a
//!   process-directed SIGTERM may be delivered to a thread that does not block it and kill
//!   the process with the default action;
//! * hook scripts must not inherit the mask (a script whose SIGTERM is blocked cannot be
//!   stopped): [`process::spawn_hook`](super::process::spawn_hook) resets it in the child.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
#[cfg(target_os = "linux")]
use std::{
    io::Read,
    mem,
    os::fd::{FromRawFd, OwnedFd},
    ptr,
};

use super::cvt;

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: say goodbye to the peer and exit.
    Terminate,
    /// SIGHUP: re-read the configuration.
    Reload,
    /// SIGCHLD: a hook script exited; reap it.
    Child,
}

/// The signals the daemon handles.
const HANDLED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD];

/// The signalfd; see the module documentation.
#[derive(Debug)]
pub struct Signals {
    file: File,
}

#[cfg(target_os = "linux")]
impl Signals {
    /// Blocks the handled signals in the calling thread, ignores SIGPIPE, and opens the fd
    /// (non-blocking, close-on-exec).
    ///
    /// Dropping it closes the fd but leaves the signals blocked: create it once, at start.
    pub fn new() -> io::Result<Signals> {
        // SAFETY: setting a disposition to SIG_IGN installs no handler; no pointers.
        if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        let set = handled_set()?;
        // SAFETY: `set` is an initialised sigset_t; the old mask is not asked for (null).
        let err = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
        // SAFETY: -1 asks for a new fd; `set` is an initialised sigset_t that the kernel copies.
        let fd = cvt(unsafe { libc::signalfd(-1, &set, flags) })?;
        // SAFETY: `fd` was just returned by signalfd(2), is open, and has no other owner.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signals { file: File::from(fd) })
    }

    /// The next pending signal, `None` when there is none. Call until `None` after the poll
    /// table reports the fd readable.
    pub fn read(&self) -> io::Result<Option<Signal>> {
        // One `struct signalfd_siginfo`, whose first field is the signal number (`u32`).
        let mut info = [0u8; mem::size_of::<libc::signalfd_siginfo>()];
        loop {
            match (&self.file).read(&mut info) {
                Ok(n) if n == info.len() => {}
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("signalfd gave {n} bytes"),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
            // Only the handled signals reach this fd; skip anything else.
            if let Some(signal) = libc::c_int::try_from(signo).ok().and_then(meaning) {
                return Ok(Some(signal));
            }
        }
    }
}

/// What a handled signal asks for.
fn meaning(signo: libc::c_int) -> Option<Signal> {
    match signo {
        libc::SIGTERM | libc::SIGINT => Some(Signal::Terminate),
        libc::SIGHUP => Some(Signal::Reload),
        libc::SIGCHLD => Some(Signal::Child),
        _ => None,
    }
}

/// The BSDs have no `signalfd`: a self-pipe ([`self_pipe`]).
#[cfg(not(target_os = "linux"))]
impl Signals {
    /// Installs the handlers, ignores SIGPIPE, and opens the pipe (non-blocking,
    /// close-on-exec). Create it once, at start.
    pub fn new() -> io::Result<Signals> {
        // SAFETY: setting a disposition to SIG_IGN installs no handler; no pointers.
        if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        Ok(Signals { file: self_pipe::open()? })
    }

    /// The next pending signal, `None` when there is none.
    pub fn read(&self) -> io::Result<Option<Signal>> {
        self_pipe::read(&self.file)
    }
}

/// A handler writes the signal's number into a non-blocking pipe, whose other end sits in the
/// poll table. The handler does only that (`write` is async-signal-safe) and keeps `errno` as
/// it found it; a full pipe drops the byte, which loses nothing that matters (a pipe holds
/// thousands, and the loop reads them all). Compiled on Linux for its tests.
#[cfg(any(test, not(target_os = "linux")))]
mod self_pipe {
    use super::{HANDLED, Signal, cvt, meaning};
    use std::fs::File;
    use std::io::{self, Read};
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The pipe's write end, for the handler; it lives as long as the process.
    static WRITE_END: AtomicI32 = AtomicI32::new(-1);

    /// Opens the pipe and installs the handlers (with `SA_RESTART`): the read end.
    pub fn open() -> io::Result<File> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2(2) writes.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        // SAFETY: both fds were just created and have no other owner.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        WRITE_END.store(write.into_raw_fd(), Ordering::Relaxed);
        for sig in HANDLED {
            // SAFETY: all-zero is a valid sigaction; the handler is an `extern "C" fn(c_int)`
            // that only calls async-signal-safe functions.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                cvt(libc::sigemptyset(&mut action.sa_mask))?;
                cvt(libc::sigaction(sig, &action, std::ptr::null_mut()))?;
            }
        }
        Ok(File::from(read))
    }

    /// The next signal the pipe holds, `None` when it is empty.
    pub fn read(mut pipe: &File) -> io::Result<Option<Signal>> {
        let mut byte = [0u8; 1];
        loop {
            match pipe.read(&mut byte) {
                Ok(1) => {
                    if let Some(signal) = meaning(libc::c_int::from(byte[0])) {
                        return Ok(Some(signal));
                    }
                }
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    extern "C" fn on_signal(sig: libc::c_int) {
        // SAFETY: the thread's errno location, always valid; read and restored around one
        // write(2) of a byte from a local.
        unsafe {
            let errno = errno_location();
            let saved = *errno;
            let byte = sig as u8;
            libc::write(WRITE_END.load(Ordering::Relaxed), (&byte as *const u8).cast(), 1);
            *errno = saved;
        }
    }

    #[cfg(target_os = "openbsd")]
    use libc::__errno as errno_location;
    #[cfg(target_os = "linux")]
    use libc::__errno_location as errno_location;
    #[cfg(target_os = "freebsd")]
    use libc::__error as errno_location;
}

impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// The set of handled signals.
#[cfg(target_os = "linux")]
fn handled_set() -> io::Result<libc::sigset_t> {
    // SAFETY: all-zero is a valid sigset_t (an integer array); sigemptyset then initialises it
    // properly, and sigaddset only writes to it.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        cvt(libc::sigemptyset(&mut set))?;
        for sig in HANDLED {
            cvt(libc::sigaddset(&mut set, sig))?;
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::poll::{Interest, Poller};
    use crate::sys::testutil::in_forked_child;
    use std::time::Duration;

    /// Raises `sig` for the calling thread only (`raise` is `tgkill` to ourselves), so the test
    /// harness's other threads, which do not block it, are never chosen to take it.
    fn raise(sig: libc::c_int) {
        // SAFETY: plain syscall; the signal is blocked in this thread, so no handler runs.
        assert_eq!(unsafe { libc::raise(sig) }, 0);
    }

    #[test]
    fn thread_directed_signals_are_read_from_the_fd() {
        // Tests run in their own threads, and masks are per thread: this thread blocks the
        // signals and raises them at itself only.
        let signals = Signals::new().unwrap();
        assert_eq!(signals.read().unwrap(), None);
        raise(libc::SIGHUP);
        let mut poller = Poller::with_capacity(1);
        let slot = poller.register(&signals, Interest::Read);
        assert_eq!(poller.wait(Some(Duration::from_secs(5))).unwrap(), 1);
        assert!(poller.readable(slot));
        assert_eq!(signals.read().unwrap(), Some(Signal::Reload));
        assert_eq!(signals.read().unwrap(), None);
        raise(libc::SIGINT);
        raise(libc::SIGTERM);
        assert_eq!(signals.read().unwrap(), Some(Signal::Terminate));
        assert_eq!(signals.read().unwrap(), Some(Signal::Terminate));
        assert_eq!(signals.read().unwrap(), None);
    }

    /// Process-directed signals (kill, SIGCHLD) may go to any thread that does not block them,
    /// and the test harness's threads do not. So this test forks: the child is single-threaded,
    /// like the daemon. It reports the first failed step as its exit code and never panics or
    /// returns into the harness.
    #[test]
    fn process_directed_signals_in_a_single_threaded_child() {
        fn child() -> i32 {
            let Ok(signals) = Signals::new() else { return 10 };
            // SAFETY: plain syscalls; the signal is blocked, so no handler runs.
            if unsafe { libc::kill(libc::getpid(), libc::SIGTERM) } != 0 {
                return 11;
            }
            if signals.read().ok() != Some(Some(Signal::Terminate)) {
                return 12;
            }
            // SAFETY: the grandchild only calls _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: ends the grandchild at once, without running any Rust code.
                unsafe { libc::_exit(0) };
            }
            if pid < 0 {
                return 13;
            }
            let mut poller = Poller::with_capacity(1);
            let slot = poller.register(&signals, Interest::Read);
            if poller.wait(Some(Duration::from_secs(5))).ok() != Some(1) || !poller.readable(slot) {
                return 14;
            }
            if signals.read().ok() != Some(Some(Signal::Child)) {
                return 15;
            }
            if signals.read().ok() != Some(None) {
                return 16;
            }
            0
        }
        assert_eq!(in_forked_child(child), 0, "failed step (see the test)");
    }

    /// The BSDs' self-pipe, run on Linux: in a single-threaded child (the handlers are
    /// process-wide), a signal from `raise`, one from `kill` and a child's exit each arrive
    /// through the pipe, in order, and an empty pipe reads as `None`. The Linux mask of
    /// [`Signals::new`] is not set here: the handlers must run.
    #[test]
    fn the_self_pipe_delivers_signals() {
        fn child() -> i32 {
            let Ok(pipe) = self_pipe::open() else { return 10 };
            if self_pipe::read(&pipe).ok() != Some(None) {
                return 11;
            }
            raise(libc::SIGHUP);
            // SAFETY: plain syscalls; the handler only writes to the pipe.
            if unsafe { libc::kill(libc::getpid(), libc::SIGTERM) } != 0 {
                return 12;
            }
            // SAFETY: the grandchild only calls _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: ends the grandchild at once, without running any Rust code.
                unsafe { libc::_exit(0) };
            }
            let mut poller = Poller::with_capacity(1);
            let slot = poller.register(&pipe, Interest::Read);
            let mut got = Vec::new();
            // A handler interrupts poll (EINTR: zero events), as in the daemon's loop.
            for _ in 0..10 {
                match poller.wait(Some(Duration::from_secs(5))) {
                    Ok(0) => continue,
                    Ok(_) if poller.readable(slot) => {}
                    _ => return 13,
                }
                while let Ok(Some(signal)) = self_pipe::read(&pipe) {
                    got.push(signal);
                }
                if got.len() >= 3 {
                    break;
                }
            }
            if got != [Signal::Reload, Signal::Terminate, Signal::Child] {
                return 14;
            }
            if self_pipe::read(&pipe).ok() != Some(None) {
                return 15;
            }
            0
        }
        assert_eq!(in_forked_child(child), 0, "failed step (see the test)");
    }
}
