//! Helpers for this folder's unit tests.

use std::io;

/// Runs `f` in a forked child and returns its exit status (or 128 + the signal that ended it).
///
/// For tests of process-wide state (signal dispositions, process-directed signals) that the
/// test harness's other threads would disturb: the child has a single thread. `f` must report
/// failure through its return value, not by panicking or printing, because another thread may
/// have held the output lock at the time of the fork.
pub(super) fn in_forked_child(f: fn() -> i32) -> i32 {
    // SAFETY: the child runs only `f`, which avoids locks another thread of the harness might
    // hold at fork time (no printing, no panicking), then leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(f).unwrap_or(101);
        // SAFETY: leaves the child without returning into the test harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a live c_int; waits for our own child only.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", io::Error::last_os_error());
    if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) }
}
