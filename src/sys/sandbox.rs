//! The network process's last lock, after the privilege drop and before its first packet:
//! what each OS offers to narrow the system calls a process may still make.
//!
//! | OS | sandbox |
//! |---|---|
//! | Linux | a seccomp-bpf allow-list ([`super::seccomp`]) |
//! | OpenBSD | `pledge("stdio inet unix recvfd")`: sockets of the internet and local families, fds received from the parent; no file system, no exec |
//! | FreeBSD | none yet: Capsicum's capability mode refuses `sendto(2)` with a destination address, and every datagram of ours carries one (links are unconnected, so that a server's link answers a peer at any address) |

use std::io;

/// What [`enter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The sandbox, named, is in place for good.
    Entered(&'static str),
    /// This system offers none the process can use: why.
    Unavailable(&'static str),
}

/// Locks the calling process (single-threaded, privileges already dropped) into its sandbox.
#[cfg(all(
    target_os = "linux",
    any(
        all(target_arch = "x86_64", target_pointer_width = "64"),
        target_arch = "aarch64",
        all(target_arch = "arm", target_endian = "little"),
        target_arch = "mips"
    )
))]
pub fn enter() -> io::Result<Outcome> {
    use super::seccomp::{FilterError, install};
    match install() {
        Ok(()) => Ok(Outcome::Entered("seccomp filter")),
        Err(FilterError::Unsupported) => Ok(Outcome::Unavailable("the kernel refused the filter")),
        Err(FilterError::Os(e)) => Err(e),
    }
}

/// Linux on an architecture the filter does not know the numbers of: built, not sandboxed.
#[cfg(all(
    target_os = "linux",
    not(any(
        all(target_arch = "x86_64", target_pointer_width = "64"),
        target_arch = "aarch64",
        all(target_arch = "arm", target_endian = "little"),
        target_arch = "mips"
    ))
))]
pub fn enter() -> io::Result<Outcome> {
    Ok(Outcome::Unavailable("no seccomp filter for this architecture yet"))
}

#[cfg(target_os = "openbsd")]
pub fn enter() -> io::Result<Outcome> {
    // SAFETY: NUL-terminated literals; a null execpromises leaves exec (which the child
    // never does: "exec" is not promised) unchanged.
    super::cvt(unsafe { libc::pledge(c"stdio inet unix recvfd".as_ptr(), std::ptr::null()) })?;
    Ok(Outcome::Entered("pledge"))
}

#[cfg(target_os = "freebsd")]
pub fn enter() -> io::Result<Outcome> {
    Ok(Outcome::Unavailable("Capsicum refuses sendto(2) with an address, which every link datagram uses"))
}

/// Test builds only (feature `sandbox-selftest`): a call no sandbox allows, to prove that the
/// sandbox bites in the real daemon.
#[cfg(feature = "sandbox-selftest")]
pub fn forbidden_call() {
    // SAFETY: umask takes and returns a mode, no pointers.
    unsafe { libc::umask(0o077) };
}
