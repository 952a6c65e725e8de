//! The process's start and end, in place of Rust's runtime start-up.
//!
//! `main.rs` has no Rust `fn main`: [`c_main!`](crate::c_main) defines the C library's `main`
//! itself, and does what std's start-up does for a program like ours, no more:
//! * a closed standard fd (0, 1 or 2) is opened on `/dev/null`, so that a socket opened later
//!   cannot take its number and receive what we print;
//! * SIGPIPE is ignored: a write to a closed pipe or socket is an `EPIPE` error, not the end
//!   of the process;
//! * the arguments are copied from `argv` (before the process title overwrites them);
//! * at the end, stdout is flushed.
//!
//! What std's start-up does besides, and what it costs a router's binary 11 KB for, is left
//! out: a SIGSEGV handler on the stack's guard page that prints "has overflowed its stack"
//! before aborting (here a stack overflow is a plain SIGSEGV; the daemon is single-threaded
//! and does not recurse), and the name `main` for this thread in panic messages (they say
//! `thread '<unnamed>'`; the message and its file:line are the same).

use std::ffi::{CStr, OsStr, OsString, c_char, c_int};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;

/// Defines the C entry point `main`, which runs `$run(args) -> u8` (the arguments with the
/// program's name first; the exit status) between [`start`] and [`end`].
#[macro_export]
macro_rules! c_main {
    ($run:path) => {
        #[cfg(not(test))]
        #[unsafe(no_mangle)]
        extern "C" fn main(
            argc: ::std::ffi::c_int,
            argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            // SAFETY: argc and argv as the C library passes them to main.
            let args = unsafe { $crate::sys::start::start(argc, argv) };
            let status = $run(args);
            $crate::sys::start::end();
            ::std::ffi::c_int::from(status)
        }
    };
}

/// Prepares the process (see the module) and returns its arguments.
///
/// # Safety
/// `argv` must point at `argc` pointers to NUL-terminated strings, as `main` receives them;
/// call once, first thing.
pub unsafe fn start(argc: c_int, argv: *const *const c_char) -> Vec<OsString> {
    for fd in 0..3 {
        // SAFETY: F_GETFD reads a flag of an fd number, open or not. When it is closed, open
        // takes the lowest free number, which is that one, the lower ones being open by now.
        // Not close-on-exec: it is stdin, stdout or stderr, for hooks too, as std opens it.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
                && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) == -1
            {
                std::process::abort();
            }
        }
    }
    // SAFETY: installs no handler, only the ignore disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let argc = usize::try_from(argc).unwrap_or(0);
    // SAFETY: the caller's promise: argc valid pointers to C strings.
    (0..argc)
        .map(|i| unsafe { OsStr::from_bytes(CStr::from_ptr(*argv.add(i)).to_bytes()) }.to_owned())
        .collect()
}

/// Flushes what is left in stdout's buffer (a last line without a newline).
pub fn end() {
    let _ = std::io::stdout().flush();
}
