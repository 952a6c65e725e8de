//! How fast one link can carry our packets, learnt from the receiver's reports.
//!
//! The model is BBR's (Cardwell et al., "BBR: Congestion-Based Congestion Control", ACM Queue
//! 2016), cut down to what a tunnel needs:
//!
//! * **Delivery rate samples.** Each keepalive from the peer says how many bytes it has
//!   received on the link, stamped with the peer's clock. Bytes over peer time between two
//!   reports at least [`SAMPLE_SPAN`] apart is a delivery rate, immune to jitter on the way back.
//! * **Bottleneck bandwidth** is the largest sample of the last [`MAX_WINDOW`]. A sample taken
//!   while we did not keep the link busy says nothing about the link's limit (only about our
//!   demand), so it may raise the estimate but never lower it.
//! * **Pacing**: the scheduler lets the link carry `gain × estimate`. In *startup* the gain is 2
//!   so the estimate doubles each round until it stops growing; then it cycles through
//!   [`PROBE_GAINS`]: one round at 1.25 to find capacity that appeared, one at 0.75 to drain the
//!   queue that built, six at 1.
//! * **Queueing delay**: the receiver also reports how much longer than the minimum our packets
//!   took. Longer than [`STANDING_QUEUE`] means a queue stands that the pacing does not drain
//!   (startup overshot, or the estimate is a little high): the gain drops to the draining 0.75
//!   until it is gone. Far too long ([`QUEUE_TOO_LONG`]) means the estimate is stale (the link
//!   got slower): it drops at once to what is being delivered, rather than waiting for the
//!   window to forget.
//!
//! * **Startup again**: packets refused while the receiver sees no queue mean the estimate is
//!   too low — typically learnt while the link carried only light traffic — so the link goes
//!   back to startup.
//!
//! A configured `bandwidth_upload` is the starting estimate and a ceiling.

use super::time::{Duration, Instant};

/// Shortest span of a delivery-rate sample: shorter spans measure packet bunching.
pub const SAMPLE_SPAN: Duration = Duration::from_millis(60);
/// Longest span (jittery links), bounded by the reports we remember.
pub const MAX_SPAN: Duration = Duration::from_millis(400);
/// The bandwidth estimate is the largest sample this recent.
pub const MAX_WINDOW: Duration = Duration::from_millis(1500);
/// Pacing gains of the probing cycle, one round each.
pub const PROBE_GAINS: [u32; 8] = [110, 90, 100, 100, 100, 100, 100, 100];
/// Startup gain, in percent: the estimate can double per round.
pub const STARTUP_GAIN: u32 = 200;
/// Startup ends after this many rounds without 25% growth.
const STARTUP_FLAT_ROUNDS: u32 = 3;
/// Queueing delay beyond which the estimate is known to be too high.
pub const QUEUE_TOO_LONG: Duration = Duration::from_millis(40);
/// Queueing delay beyond which the link is drained (the scheduler itself queues up to
/// [`super::arrival::QUEUE_LIMIT`]; this leaves room for that and for jitter).
pub const STANDING_QUEUE: Duration = Duration::from_millis(25);
/// Below this queueing delay, packets refused for congestion mean the estimate is too low.
pub const STARTUP_AGAIN_QUEUE: Duration = Duration::from_millis(5);
/// Gain while draining a standing queue.
const DRAIN_GAIN: u32 = 75;
/// Estimate before anything is known (bytes/s): 2 Mbit/s.
pub const INITIAL_RATE: u64 = 250_000;
/// Never below 100 kbit/s: a link this slow still carries keepalives and is probed upwards.
pub const MIN_RATE: u64 = 12_500;

/// Max-filter buckets (each `MAX_WINDOW / BUCKETS`).
const BUCKETS: usize = 6;
/// Reports remembered to find one a span back (reports come every 20 ms or so under load).
const HISTORY: usize = 32;

#[derive(Debug, Clone)]
pub struct Capacity {
    cap: Option<u64>,
    estimate: u64,
    /// Max of accepted samples per bucket, and the bucket's start.
    buckets: [(u64, Instant); BUCKETS],
    /// (peer timestamp, cumulative bytes received) of recent reports.
    history: [(u32, u32); HISTORY],
    history_len: usize,
    history_next: usize,
    startup: bool,
    flat_rounds: u32,
    round_start: Instant,
    round_best: u64,
    cycle_index: usize,
    cycle_start: Instant,
    /// Since when the sender has kept this link backlogged, if it has.
    busy_since: Option<Instant>,
    /// Latest delivery rate sample.
    pub latest: u64,
    /// The receiver says our packets wait in a queue the pacing does not drain.
    draining: bool,
    /// Since when the link has queued too long while busy, and the best it delivered since.
    slow_since: Instant,
    recent_busy_max: u64,
    /// A delivery sample has been recorded: the estimate is a measurement, not a guess.
    measured: bool,
    /// When the scheduler last refused a packet because this link's queue model was full.
    refused_at: Option<Instant>,
}

impl Capacity {
    pub fn new(cap: Option<u64>, now: Instant) -> Self {
        let start = cap.unwrap_or(INITIAL_RATE).max(MIN_RATE);
        Capacity {
            cap,
            estimate: start,
            buckets: [(0, now); BUCKETS],
            history: [(0, 0); HISTORY],
            history_len: 0,
            history_next: 0,
            startup: true,
            flat_rounds: 0,
            round_start: now,
            round_best: start,
            cycle_index: 0,
            cycle_start: now,
            busy_since: None,
            latest: 0,
            draining: false,
            slow_since: now,
            recent_busy_max: 0,
            measured: false,
            refused_at: None,
        }
    }

    /// A new configured ceiling (`bandwidth_upload` changed on reload).
    pub fn set_cap(&mut self, cap: Option<u64>) {
        self.cap = cap;
        if let Some(c) = cap {
            self.estimate = self.estimate.min(c);
        }
    }

    /// The bottleneck bandwidth estimate, bytes/s.
    pub fn estimate(&self) -> u64 {
        self.estimate
    }

    pub fn in_startup(&self) -> bool {
        self.startup
    }

    fn gain(&self) -> u32 {
        if self.draining {
            DRAIN_GAIN
        } else if self.startup {
            STARTUP_GAIN
        } else {
            PROBE_GAINS[self.cycle_index]
        }
    }

    /// The rate the scheduler may send at now, bytes/s.
    pub fn pacing_rate(&self) -> u64 {
        let r = self.estimate.saturating_mul(u64::from(self.gain())) / 100;
        self.cap.map_or(r, |c| r.min(c.saturating_mul(u64::from(self.gain().max(100))) / 100)).max(MIN_RATE)
    }

    /// The scheduler refused a packet with this link's queue model full.
    pub fn on_refused(&mut self, now: Instant) {
        self.refused_at = Some(now);
    }

    /// The scheduler tells whether it keeps the link backlogged (it had more to send than the
    /// pacing rate allowed).
    pub fn set_busy(&mut self, now: Instant, busy: bool) {
        match (busy, self.busy_since) {
            (true, None) => self.busy_since = Some(now),
            (false, Some(_)) => self.busy_since = None,
            _ => {}
        }
    }

    fn busy_for(&self, now: Instant, span: Duration) -> bool {
        self.busy_since.is_some_and(|t| now - t >= span)
    }

    /// A receiver report: at peer time `peer_ts` it had received `rx_bytes` (wrapping) on this
    /// link, and our packets queued `queueing` longer than the minimum. `round` is one round
    /// trip (SRTT, at least a few milliseconds).
    /// `jitter` (RTTVAR) widens the span of delivery samples: on a link whose packets bunch
    /// up, a short span measures the bunching.
    pub fn on_report(
        &mut self,
        now: Instant,
        peer_ts: u32,
        rx_bytes: u32,
        queueing: Option<Duration>,
        round: Duration,
        jitter: Duration,
    ) {
        if let Some(q) = queueing {
            // Hysteresis: drain from STANDING_QUEUE down to half of it.
            self.draining = q > STANDING_QUEUE || (self.draining && q > STANDING_QUEUE.div(2));
            // Packets refused while the link's real queue is empty: the estimate is too low
            // (it was learnt from light traffic, such as the acknowledgements of a transfer
            // the other way). Find the capacity again.
            let refused = self.refused_at.is_some_and(|t| now - t <= round.max(Duration::from_millis(50)));
            if !self.startup && refused && q < STARTUP_AGAIN_QUEUE {
                self.startup = true;
                self.flat_rounds = 0;
                self.round_best = self.estimate;
                self.round_start = now;
                self.refused_at = None;
            }
        }
        let span = jitter.saturating_mul(2).clamp_to(SAMPLE_SPAN, MAX_SPAN);
        let sample = self.sample(peer_ts, rx_bytes, span);
        if let Some(rate) = sample {
            self.latest = rate;
            let busy = self.busy_for(now, span);
            if busy || rate > self.estimate {
                self.record(now, rate);
            }
            if busy && queueing.is_some_and(|q| q > QUEUE_TOO_LONG) {
                self.recent_busy_max = self.recent_busy_max.max(rate);
            } else {
                self.recent_busy_max = 0;
                self.slow_since = now;
            }
            if self.recent_busy_max > 0
                && now - self.slow_since >= round.max(span)
                && self.recent_busy_max < self.estimate - self.estimate / 5
            {
                // For a whole round the link queued far too long and delivered clearly less
                // than we think it can: it got slower. Believe what it delivers now.
                self.buckets = [(0, now); BUCKETS];
                self.record(now, self.recent_busy_max);
                self.recent_busy_max = 0;
                self.slow_since = now;
                self.startup = false;
            }
            // With no trusted sample in the window (an idle link), the estimate stands.
            let windowed = self.buckets.iter().map(|b| b.0).max().unwrap_or(0);
            if windowed > 0 {
                self.estimate = windowed.max(MIN_RATE);
            }
            if let Some(c) = self.cap {
                self.estimate = self.estimate.min(c);
            }
        }
        self.advance_round(now, round, queueing);
    }

    fn sample(&mut self, peer_ts: u32, rx_bytes: u32, span: Duration) -> Option<u64> {
        let span_us = span.as_micros() as u32;
        // Newest first: the first report at least a span older than this one.
        let mut found = None;
        for k in 0..self.history_len {
            let idx = (self.history_next + HISTORY - 1 - k) % HISTORY;
            let (ts, bytes) = self.history[idx];
            let dt = peer_ts.wrapping_sub(ts);
            if dt >= span_us && dt < 10_000_000 {
                found = Some((dt, rx_bytes.wrapping_sub(bytes)));
                break;
            }
        }
        let newest = if self.history_len > 0 {
            Some(self.history[(self.history_next + HISTORY - 1) % HISTORY].0)
        } else {
            None
        };
        // Keep reports in peer-time order; a reordered one is not history.
        if newest.is_none_or(|n| (peer_ts.wrapping_sub(n) as i32) > 0) {
            self.history[self.history_next] = (peer_ts, rx_bytes);
            self.history_next = (self.history_next + 1) % HISTORY;
            self.history_len = (self.history_len + 1).min(HISTORY);
        }
        let (dt, bytes) = found?;
        Some(u64::from(bytes) * 1_000_000 / u64::from(dt))
    }

    /// Whether the estimate comes from measurements (or is still the starting guess).
    pub fn measured(&self) -> bool {
        self.measured
    }

    fn record(&mut self, now: Instant, rate: u64) {
        self.measured = true;
        let width = MAX_WINDOW.div(BUCKETS as u64);
        let newest = self.buckets.iter().map(|b| b.1).max().unwrap_or(now);
        if now - newest >= width {
            // A new bucket replaces the oldest.
            let oldest = (0..BUCKETS).min_by_key(|&i| self.buckets[i].1).unwrap_or(0);
            self.buckets[oldest] = (rate, now);
        } else {
            let i = (0..BUCKETS).max_by_key(|&i| self.buckets[i].1).unwrap_or(0);
            self.buckets[i].0 = self.buckets[i].0.max(rate);
        }
        // Buckets older than the window no longer count.
        for b in &mut self.buckets {
            if now - b.1 > MAX_WINDOW {
                b.0 = 0;
            }
        }
    }

    fn advance_round(&mut self, now: Instant, round: Duration, queueing: Option<Duration>) {
        let round = round.max(Duration::from_millis(20));
        if self.startup {
            if now - self.round_start < round {
                return;
            }
            if self.busy_since.is_none() {
                // Not using the link fully says nothing about its capacity: startup waits.
                self.round_start = now;
                return;
            }
            if self.estimate >= self.round_best + self.round_best / 4 {
                self.round_best = self.estimate;
                self.flat_rounds = 0;
            } else {
                self.flat_rounds += 1;
            }
            self.round_start = now;
            let queue_built = queueing.is_some_and(|q| q > STANDING_QUEUE.div(2));
            if self.flat_rounds >= STARTUP_FLAT_ROUNDS
                || queue_built
                || self.cap.is_some_and(|c| self.estimate >= c)
            {
                self.startup = false;
                // Start with the draining phase: startup overfilled the queue.
                self.cycle_index = 1;
                self.cycle_start = now;
            }
        } else if now - self.cycle_start >= round {
            self.cycle_index = (self.cycle_index + 1) % PROBE_GAINS.len();
            self.cycle_start = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link of `rate` bytes/s we keep busy: the peer reports every 20 ms.
    fn feed(c: &mut Capacity, from_ms: u64, to_ms: u64, rate: u64, bytes: &mut u64) {
        let mut t = from_ms;
        while t < to_ms {
            t += 20;
            *bytes += rate * 20 / 1000;
            let now = Instant::from_micros(t * 1000);
            c.set_busy(now, true);
            c.on_report(
                now,
                (t * 1000) as u32,
                *bytes as u32,
                Some(Duration::from_millis(5)),
                Duration::from_millis(40),
                Duration::ZERO,
            );
        }
    }

    #[test]
    fn learns_a_busy_links_rate() {
        let mut c = Capacity::new(None, Instant::ZERO);
        let mut bytes = 0;
        feed(&mut c, 0, 3000, 5_000_000, &mut bytes);
        let e = c.estimate();
        assert!((4_800_000..=5_200_000).contains(&e), "{e}");
        assert!(!c.in_startup());
    }

    #[test]
    fn follows_a_drop_in_capacity_within_the_window() {
        let mut c = Capacity::new(None, Instant::ZERO);
        let mut bytes = 0;
        feed(&mut c, 0, 3000, 5_000_000, &mut bytes);
        feed(&mut c, 3000, 3000 + MAX_WINDOW.as_millis() + 200, 1_250_000, &mut bytes);
        let e = c.estimate();
        assert!((1_150_000..=1_350_000).contains(&e), "{e}");
    }

    #[test]
    fn an_idle_link_keeps_its_estimate() {
        let mut c = Capacity::new(None, Instant::ZERO);
        let mut bytes = 0;
        feed(&mut c, 0, 3000, 5_000_000, &mut bytes);
        let before = c.estimate();
        c.set_busy(Instant::from_micros(3_000_000), false);
        // Little traffic for 5 s: samples are low but not trusted.
        let mut t = 3000;
        while t < 8000 {
            t += 20;
            bytes += 1000;
            let now = Instant::from_micros(t * 1000);
            c.on_report(
                now,
                (t * 1000) as u32,
                bytes as u32,
                Some(Duration::ZERO),
                Duration::from_millis(40),
                Duration::ZERO,
            );
        }
        assert_eq!(c.estimate(), before);
    }

    #[test]
    fn refusals_with_an_empty_queue_restart_the_search() {
        let mut c = Capacity::new(None, Instant::ZERO);
        let mut bytes = 0;
        // Light, steady traffic: the estimate settles low and startup ends.
        feed(&mut c, 0, 3000, 250_000, &mut bytes);
        while c.in_startup() {
            let now = Instant::from_micros(3_100_000);
            c.on_report(
                now,
                3_100_000,
                bytes as u32,
                Some(Duration::from_millis(30)),
                Duration::from_millis(40),
                Duration::ZERO,
            );
        }
        let t = Instant::from_micros(3_200_000);
        c.on_refused(t);
        c.on_report(
            t,
            3_200_000,
            bytes as u32,
            Some(Duration::from_millis(1)),
            Duration::from_millis(40),
            Duration::ZERO,
        );
        assert!(c.in_startup(), "the search starts again");
        assert!(c.pacing_rate() >= 2 * c.estimate() - 1);
    }

    #[test]
    fn configured_bandwidth_starts_and_caps() {
        let mut c = Capacity::new(Some(1_000_000), Instant::ZERO);
        assert_eq!(c.estimate(), 1_000_000);
        let mut bytes = 0;
        feed(&mut c, 0, 2000, 3_000_000, &mut bytes);
        assert_eq!(c.estimate(), 1_000_000);
        assert!(c.pacing_rate() <= 1_250_000);
    }

    #[test]
    fn a_long_queue_cuts_the_estimate_at_once() {
        let mut c = Capacity::new(None, Instant::ZERO);
        let mut bytes = 0;
        feed(&mut c, 0, 3000, 5_000_000, &mut bytes);
        let mut t = 3000;
        for _ in 0..10 {
            t += 20;
            bytes += 1_000_000 * 20 / 1000;
            let now = Instant::from_micros(t * 1000);
            c.on_report(
                now,
                (t * 1000) as u32,
                bytes as u32,
                Some(Duration::from_millis(100)),
                Duration::from_millis(40),
                Duration::ZERO,
            );
        }
        assert!(c.estimate() < 2_500_000, "{}", c.estimate());
    }
}
