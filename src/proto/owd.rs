//! One-way delay of the peer's packets on one link, as the receiver sees it.
//!
//! Every keepalive carries the sender's clock; the receiver subtracts it from its own. The
//! result is the one-way delay plus the (unknown, constant) offset between the two clocks. The
//! offset cancels in the two things we need:
//!
//! * **queueing delay** of a link: current delay minus the link's minimum, which the sender's
//!   capacity estimator uses (a one-way figure, so a busy return path does not count);
//! * **spread across links**: the peer's clock is the same for all links, so the difference of
//!   two links' delays is the true difference of their one-way delays — what the reorder buffer
//!   must wait for, and what the sender's scheduler plans with.
//!
//! Values are `u32` microseconds that wrap (the clocks' low 32 bits); differences are taken with
//! wrapping arithmetic and are meaningful up to ±35 minutes. Clock drift (≤ 100 ppm between
//! cheap crystals) moves the minimum by at most 1 ms over the [`MIN_WINDOW`], which we accept.

use super::time::{Duration, Instant};

/// The minimum is taken over the last 10 to 20 seconds (two buckets of 10 s): long enough to
/// see an empty queue now and then, short enough to follow a route change.
pub const MIN_WINDOW: Duration = Duration::from_secs(10);

/// `a - b` for wrapping microsecond values, as a signed number.
pub fn wrapping_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

#[derive(Debug, Clone, Default)]
pub struct OwdTracker {
    /// Offsets are kept relative to the first sample, so plain `i64` arithmetic works.
    base: Option<u32>,
    smoothed: i64,
    /// Mean deviation, RFC 6298 style.
    deviation: i64,
    /// Minimum of the current and previous bucket, and when the current bucket began.
    min_current: i64,
    min_previous: i64,
    /// The same for the smoothed delay.
    smooth_min_current: i64,
    smooth_min_previous: i64,
    bucket_start: Instant,
    samples: u64,
}

impl OwdTracker {
    /// A keepalive sent at peer time `sent` arrived at our time `now`.
    pub fn on_sample(&mut self, now: Instant, sent: u32) {
        let raw = now.wire_timestamp().wrapping_sub(sent);
        let base = *self.base.get_or_insert(raw);
        let v = wrapping_diff(raw, base);
        if self.samples == 0 {
            self.smoothed = v;
            self.deviation = 0;
            self.min_current = v;
            self.min_previous = v;
            self.smooth_min_current = v;
            self.smooth_min_previous = v;
            self.bucket_start = now;
        } else {
            let err = (v - self.smoothed).abs();
            self.deviation += (err - self.deviation) / 4;
            self.smoothed += (v - self.smoothed) / 8;
            if now - self.bucket_start >= MIN_WINDOW {
                self.min_previous = self.min_current;
                self.min_current = v;
                self.smooth_min_previous = self.smooth_min_current;
                self.smooth_min_current = self.smoothed;
                self.bucket_start = now;
            }
            self.min_current = self.min_current.min(v);
            self.smooth_min_current = self.smooth_min_current.min(self.smoothed);
        }
        self.samples += 1;
    }

    pub fn has_samples(&self) -> bool {
        self.samples > 0
    }

    fn to_wire(&self, v: i64) -> u32 {
        self.base.unwrap_or(0).wrapping_add(v as u32)
    }

    /// Smoothed delay (with the clock offset), for the peer.
    pub fn smoothed(&self) -> u32 {
        self.to_wire(self.smoothed)
    }

    /// Minimum delay over the window (with the clock offset): no packet was faster.
    pub fn min(&self) -> u32 {
        self.to_wire(self.min_current.min(self.min_previous))
    }

    /// Minimum of the *smoothed* delay over the window (with the clock offset), for the peer:
    /// the delay of the link unloaded. Jitter moves single samples, not the average, so the
    /// distance from this to [`OwdTracker::smoothed`] is queueing, not jitter.
    pub fn smoothed_min(&self) -> u32 {
        self.to_wire(self.smooth_min_current.min(self.smooth_min_previous))
    }

    /// The delay most packets stay under: smoothed plus four deviations.
    pub fn high(&self) -> u32 {
        self.to_wire(self.smoothed + 4 * self.deviation)
    }

    /// Current queueing delay: smoothed minus its minimum.
    pub fn queueing(&self) -> Duration {
        let floor = self.smooth_min_current.min(self.smooth_min_previous);
        Duration::from_micros((self.smoothed - floor).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_micros(v * 1000)
    }

    #[test]
    fn offsets_cancel_between_links_and_queueing_shows() {
        // Peer clock is 5 s ahead; link a has 10 ms, link b 40 ms one way.
        let peer = |t: Instant| (t.as_micros() + 5_000_000) as u32;
        let (mut a, mut b) = (OwdTracker::default(), OwdTracker::default());
        for k in 0..100 {
            let sent = ms(k * 10);
            a.on_sample(sent + Duration::from_millis(10), peer(sent));
            b.on_sample(sent + Duration::from_millis(40), peer(sent));
        }
        assert_eq!(wrapping_diff(b.min(), a.min()), 30_000);
        assert_eq!(wrapping_diff(b.smoothed(), a.smoothed()), 30_000);
        assert_eq!(a.queueing(), Duration::ZERO);
        // A queue builds on a: 25 ms more.
        for k in 100..160 {
            let sent = ms(k * 10);
            a.on_sample(sent + Duration::from_millis(35), peer(sent));
        }
        assert!(a.queueing() > Duration::from_millis(24), "{:?}", a.queueing());
        assert_eq!(wrapping_diff(a.min(), b.min()), -30_000);
    }

    #[test]
    fn works_across_the_32_bit_wrap_and_forgets_old_minima() {
        let mut t = OwdTracker::default();
        let start = Instant::from_micros((1 << 32) - 500_000);
        for k in 0..30u64 {
            let now = start + Duration::from_millis(k * 1000);
            let sent = (now.as_micros() - 20_000) as u32;
            t.on_sample(now, sent);
        }
        assert_eq!(t.queueing(), Duration::ZERO);
        // The path got 50 ms longer for good: after two windows the minimum follows.
        for k in 30..80u64 {
            let now = start + Duration::from_millis(k * 1000);
            t.on_sample(now, (now.as_micros() - 70_000) as u32);
        }
        assert!(t.queueing() < Duration::from_millis(1), "{:?}", t.queueing());
    }

    #[test]
    fn jitter_is_not_queueing() {
        let mut t = OwdTracker::default();
        let mut x = 7u64;
        for k in 0..2000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let jitter = (x >> 33) % 200_000; // 0..200 ms on top of 20 ms
            let now = ms(k * 10) + Duration::from_micros(20_000 + jitter);
            t.on_sample(now, ms(k * 10).wire_timestamp());
        }
        assert!(t.queueing() < Duration::from_millis(40), "{:?}", t.queueing());
        let spread = wrapping_diff(t.smoothed(), t.min());
        assert!(spread > 50_000, "{spread}");
    }

    #[test]
    fn jitter_raises_the_high_mark() {
        let mut t = OwdTracker::default();
        for k in 0..200u64 {
            let now = ms(k * 10);
            let delay = if k % 2 == 0 { 10 } else { 30 };
            t.on_sample(now + Duration::from_millis(delay), now.wire_timestamp());
        }
        let spread = wrapping_diff(t.high(), t.min());
        assert!(spread > 25_000 && spread < 60_000, "{spread}");
    }
}
