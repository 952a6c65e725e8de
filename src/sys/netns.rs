//! Fresh network namespaces, for tests that need the real kernel's network stack.
//!
//! The daemon itself never calls this. Tests (ours in `tests/sys_tun.rs`, and the end-to-end
//! suite) call [`unshare_thread`] at the top of a dedicated thread: everything that thread then
//! creates — TUN devices, addresses, routes, sockets, and the `ip` commands it spawns — lives in
//! a namespace nobody else sees. Nothing leaks into the host and nothing needs cleaning up: the
//! namespace is freed when its last thread has ended and its last fd is closed, even when the
//! test panics half-way.

use std::io;

use super::cvt;

/// Moves the calling thread (only) into a new, empty network namespace, with just a loopback
/// device, which is down. Needs `CAP_SYS_ADMIN`.
pub fn unshare_thread() -> io::Result<()> {
    // SAFETY: plain syscall without pointers; CLONE_NEWNET affects the calling thread only and
    // is permitted in a multi-threaded process.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
    Ok(())
}
