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

// Plain functions: their tests run on Linux too.
#[cfg(any(test, not(target_os = "linux")))]
pub mod family;
