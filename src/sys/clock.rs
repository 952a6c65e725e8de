//! The one place the daemon reads a clock.
//!
//! The protocol core takes time as an argument ([`Instant`], integer microseconds); the shell
//! reads it here. `std::time::Instant` is opaque (no way to get a number out of it), hence
//! `clock_gettime` directly. `CLOCK_MONOTONIC` never jumps with NTP or the operator's `date`,
//! which matters for keepalive and reorder timers on routers that boot with a 1970 clock.

use std::mem;

use crate::proto::Instant;

/// Microseconds of `CLOCK_MONOTONIC` (since an arbitrary origin, usually boot).
///
/// # Panics
/// If `clock_gettime(CLOCK_MONOTONIC)` fails, which Linux never does with a valid pointer.
pub fn now() -> Instant {
    // SAFETY: all-zero is a valid timespec (two integers, plus padding on some 32-bit targets).
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    // SAFETY: `ts` is a live, exclusive timespec for the kernel to fill.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    // Both fields are non-negative for CLOCK_MONOTONIC; `time_t` is 32 bits on some of our
    // targets, which lasts 68 years of uptime.
    let secs = ts.tv_sec as u64;
    let micros = ts.tv_nsec as u64 / 1_000;
    Instant::from_micros(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn monotonic_and_in_microseconds() {
        let a = now();
        std::thread::sleep(Duration::from_millis(20));
        let b = now();
        let elapsed = b.saturating_since(a).as_micros();
        assert!(elapsed >= 20_000, "{elapsed} us");
        assert!(elapsed < 5_000_000, "{elapsed} us");
        assert!(now() >= b);
    }
}
