//! The one place the daemon reads a clock.
//!
//! The protocol core takes time as an argument (integer microseconds); the shell reads it here
//! and turns it into the core's `Instant` at its seam ([`crate::daemon::now`]), so that this
//! layer knows clocks and nothing of the protocol. `std::time::Instant` is opaque (no way to get a number out of it), hence
//! `clock_gettime` directly. `CLOCK_MONOTONIC` never jumps with NTP or the operator's `date`,
//! which matters for keepalive and reorder timers on routers that boot with a 1970 clock.

use std::mem;

/// Microseconds of `CLOCK_MONOTONIC` (since an arbitrary origin, usually boot).
///
/// # Panics
/// If `clock_gettime(CLOCK_MONOTONIC)` fails, which Linux never does with a valid pointer.
pub fn monotonic_micros() -> u64 {
    // SAFETY: all-zero is a valid timespec (two integers, plus padding on some 32-bit targets).
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    // SAFETY: `ts` is a live, exclusive timespec for the kernel to fill.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    // Both fields are non-negative for CLOCK_MONOTONIC; `time_t` is 32 bits on some of our
    // targets, which lasts 68 years of uptime.
    let secs = ts.tv_sec as u64;
    let micros = ts.tv_nsec as u64 / 1_000;
    secs * 1_000_000 + micros
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn monotonic_and_in_microseconds() {
        let a = monotonic_micros();
        std::thread::sleep(Duration::from_millis(20));
        let b = monotonic_micros();
        let elapsed = b - a;
        assert!(elapsed >= 20_000, "{elapsed} us");
        assert!(elapsed < 5_000_000, "{elapsed} us");
        assert!(monotonic_micros() >= b);
    }
}
