//! Time as plain integers.
//!
//! The core never reads a clock: every entry point takes an [`Instant`] from the caller. An
//! `Instant` is a count of microseconds since an arbitrary origin chosen by the caller (the shell
//! uses `CLOCK_MONOTONIC`, the simulator starts at zero). Microseconds in a `u64` last 584 000
//! years, so arithmetic here saturates instead of wrapping and never panics.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A point in time, in microseconds since the caller's origin.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

/// A span of time in microseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

impl Instant {
    /// The caller's origin.
    pub const ZERO: Instant = Instant(0);

    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }

    /// The low 32 bits of the microsecond count: the timestamp carried in keepalives. It wraps
    /// every 71 minutes, which is fine for measuring round trips of at most a minute.
    pub const fn wire_timestamp(self) -> u32 {
        self.0 as u32
    }
}

impl Duration {
    pub const ZERO: Duration = Duration(0);
    pub const MAX: Duration = Duration(u64::MAX);

    pub const fn from_micros(us: u64) -> Self {
        Duration(us)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms.saturating_mul(1_000))
    }
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1_000_000))
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    pub const fn saturating_mul(self, k: u64) -> Self {
        Duration(self.0.saturating_mul(k))
    }
    pub const fn saturating_sub(self, other: Duration) -> Self {
        Duration(self.0.saturating_sub(other.0))
    }
    pub const fn div(self, k: u64) -> Self {
        Duration(self.0 / k)
    }
    /// `self` limited to `[lo, hi]`; `lo` wins if the bounds cross.
    pub fn clamp_to(self, lo: Duration, hi: Duration) -> Self {
        Duration(self.0.min(hi.0).max(lo.0))
    }
}

/// `a * b / c` rounded down, saturating, in 64-bit arithmetic: `(a / c) * b + (a % c) * b / c`
/// is exact while `(a % c) * b` fits, which holds for every byte count and rate we see (u128
/// would pull a 2 KB division routine into the 32-bit routers' binary, and is slow there).
/// Not inlined: on 32-bit routers each copy is a few hundred bytes of 64-bit arithmetic.
#[inline(never)]
pub fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    (a / c).saturating_mul(b).saturating_add((a % c).saturating_mul(b) / c)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.0))
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, d: Duration) -> Duration {
        Duration(self.0.saturating_add(d.0))
    }
}

impl Sub for Duration {
    type Output = Duration;
    fn sub(self, d: Duration) -> Duration {
        self.saturating_sub(d)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Integers only: a router's binary has no room for float formatting.
        if self.0 >= 1_000_000 {
            let ms = self.0 / 1_000 + u64::from(self.0 % 1_000 >= 500);
            write!(f, "{}.{:03}s", ms / 1_000, ms % 1_000)
        } else if self.0 >= 1_000 {
            write!(f, "{}.{:03}ms", self.0 / 1_000, self.0 % 1_000)
        } else {
            write!(f, "{}us", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_is_exact_in_range() {
        let exact = |a: u64, b: u64, c: u64| {
            (u128::from(a) * u128::from(b) / u128::from(c)).min(u64::MAX.into()) as u64
        };
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Rates up to 100 Gbit/s, times up to a day, queues up to 4 GB.
            let (rate, us, bytes) = (x % 12_500_000_000 + 1, x % 86_400_000_000, x % (1 << 32));
            assert_eq!(mul_div(rate, us, 1_000_000), exact(rate, us, 1_000_000));
            assert_eq!(mul_div(bytes, 1_000_000, rate), exact(bytes, 1_000_000, rate));
        }
        assert_eq!(mul_div(u64::MAX, 1_000_000, 1), u64::MAX);
    }
    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Instant::from_micros(5);
        assert_eq!(t - Instant::from_micros(9), Duration::ZERO);
        assert_eq!(Instant::from_micros(u64::MAX) + Duration::from_secs(1), Instant::from_micros(u64::MAX));
        assert_eq!(Duration::from_secs(2) - Duration::from_secs(3), Duration::ZERO);
    }

    #[test]
    fn units_convert() {
        assert_eq!(Duration::from_millis(1500).as_micros(), 1_500_000);
        assert_eq!(Duration::from_secs(2).as_millis(), 2_000);
        assert_eq!(
            Duration::from_millis(7).clamp_to(Duration::from_millis(10), Duration::from_millis(20)),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn debug_shows_three_decimals() {
        let d = |us: u64| format!("{:?}", Duration::from_micros(us));
        assert_eq!(d(999), "999us");
        assert_eq!(d(1_000), "1.000ms");
        assert_eq!(d(12_345), "12.345ms");
        assert_eq!(d(999_999), "999.999ms");
        assert_eq!(d(1_000_000), "1.000s");
        assert_eq!(d(1_234_499), "1.234s");
        assert_eq!(d(1_234_500), "1.235s");
        assert_eq!(d(59_999_999), "60.000s");
        assert_eq!(d(u64::MAX), "18446744073709.552s");
    }

    #[test]
    fn wire_timestamp_wraps() {
        let t = Instant::from_micros((1 << 32) + 7);
        assert_eq!(t.wire_timestamp(), 7);
    }
}
