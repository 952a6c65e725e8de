//! The TUN/TAP device: where the tunnel meets the kernel's IP stack. One [`Tun`] type with the
//! same methods on each OS:
//!
//! * Linux ([`linux`]): `/dev/net/tun`, named at creation, offloads where the kernel has them;
//! * FreeBSD and OpenBSD (`bsd`): `/dev/tun` (a clone) or `/dev/tunN`, each packet behind a
//!   4-byte address family ([`family`]), no offloads.

/// Layer 3 or layer 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunKind {
    /// IP packets (`IFF_TUN`).
    Tun,
    /// Ethernet frames (`IFF_TAP`).
    Tap,
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(any(target_os = "freebsd", target_os = "openbsd"))]
mod bsd;
#[cfg(any(target_os = "freebsd", target_os = "openbsd"))]
pub use bsd::*;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::cvt;

/// A zeroed `ifreq` carrying `name`, which must fit `IFNAMSIZ` with its NUL.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} is longer than {} bytes or holds a NUL", libc::IFNAMSIZ - 1),
        ));
    }
    // SAFETY: all-zero is a valid ifreq (a byte array and a union of integers, byte arrays and
    // a raw pointer); the name stays NUL-terminated because it is shorter than the array.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
/// The NUL-terminated name the kernel wrote back into `req`.
#[allow(clippy::unnecessary_cast)] // c_char is i8 or u8, by architecture
fn name_of(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req.ifr_name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A socket to address interface ioctls to. Any family would do; AF_INET is always present.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall without pointers.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2), is open, and has no other owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// Plain functions: their tests run on Linux too.
#[cfg(any(test, not(target_os = "linux")))]
pub mod family;
