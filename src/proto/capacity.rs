//! How fast one link can carry our packets, learnt from the receiver's reports.
//!
//! The model is BBR's (Cardwell et al., "BBR: Congestion-Based Congestion Control", ACM Queue
//! 2016), cut down to what a tunnel needs:
//!
//! * **Delivery rate samples.** Each keepalive from the peer says how many bytes it has
//!   received on the link, stamped with the peer's clock. Bytes over peer time between two
//!   reports at least [`SAMPLE_SPAN`] apart is a delivery rate, immune to jitter on the way back.
//! * **Bottleneck bandwidth** is the largest sample of the last [`MAX_WINDOW`]. A sample taken
//!   while the link was not the bottleneck of what we sent says nothing about its limit (only
//!   about our demand), so it may raise the estimate but never lower it. The link is the
//!   bottleneck when the scheduler keeps it backlogged, or when it delivers clearly less than
//!   we offered it ([`SATURATED_RATIO`]) while our packets queue in it ([`SATURATED_QUEUE`]):
//!   the second is what follows a link that got slower, which by the stale estimate looks idle.
//! * **Got slower**: a whole round of delivering less than [`SLOWER_RATIO`] of what we offered
//!   and clearly less than the estimate, with a queue standing: the estimate drops at once to
//!   what the link delivers rather than waiting for the window to forget. (Once a link's buffer
//!   is full its delay stops growing; what it drops is the only sign left.)
//! * **Pacing**: the scheduler lets the link carry `gain × estimate`. In *startup* the gain is 2
//!   so the estimate doubles each round until it stops growing or a queue builds; then it cycles
//!   through [`PROBE_GAINS`]: one round at 1.1 to find capacity that appeared, one at 0.9 to
//!   drain the queue that built, six at 1.
//!
//! **The queue we planned against the queue there is.** The scheduler keeps a model of each
//! link's queue (what we sent, drained at the pacing rate) and fills it on purpose, up to its
//! limit ([`super::arrival`]). So a queue alone says nothing about the estimate; what does is
//! how the real queue moves against the model. Each keepalive we send records the model's queueing ahead of it (*planned*, smoothed
//! as the receiver smooths its delays, [`super::owd`]), and each report of the peer gives the
//! smoothed one-way delay of our keepalives up to the one it echoes. Between two reports the
//! delay grew by as much as the real queue did; the planned queueing of the two echoed
//! keepalives grew by as much as the model's did. The difference — the *drift* — is what the
//! model got wrong:
//!
//! * It moves the model ([`Capacity::take_correction`]). Integrating an estimated rate, the
//!   model would otherwise go on believing in a queue that drained faster than it thought, or
//!   miss one that did not. A link that got slower is relieved at the next report, before its
//!   estimate catches up; the real queue stays where the scheduler means it to be.
//! * The model holds [`FASTER_SHORTFALL`] of queue while the real queue stays empty, for a round:
//!   the link drains faster than we think — the estimate was learnt from light traffic, or a
//!   search ended early while other links took the load — so the link goes back to startup.
//!
//! Differences, not levels, because the receiver can only measure queueing against the smallest
//! delay it saw lately, which is no floor at all once a queue has stood that long. (An empty
//! queue is the exception: then the smallest delay is the floor.)
//!
//! A configured `bandwidth_upload` is the starting estimate and a ceiling.

use super::owd::wrapping_diff;
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
/// Real queueing (as the receiver measures it) beyond which startup ends: the link does not
/// carry what startup sends.
pub const STARTUP_EXIT_QUEUE: Duration = Duration::from_millis(10);
/// A sample counts as the link's limit when we offered at least this much more (in percent)
/// than it delivered ...
pub const SATURATED_RATIO: u64 = 110;
/// ... while the receiver sees our packets queue at least this long (random loss alone is no
/// saturation).
pub const SATURATED_QUEUE: Duration = Duration::from_millis(10);
/// A round of offering this much more (in percent) than the link delivers, its best delivery
/// clearly below the estimate, means it got slower (1.1 probing cannot do it, nor 10% loss).
pub const SLOWER_RATIO: u64 = 125;
/// Planned queueing from which, with the real queue empty ([`EMPTY_QUEUE`]) for a round, the
/// link is faster than its estimate (most of the scheduler's [`super::arrival::QUEUE_LIMIT`]:
/// the link takes all we give it).
pub const FASTER_SHORTFALL: Duration = Duration::from_millis(8);
/// Real queueing below this is none (smoothing noise). A link at its capacity always shows a
/// few milliseconds: the probing round sends a tenth more than it carries.
pub const EMPTY_QUEUE: Duration = Duration::from_millis(2);
/// Estimate before anything is known (bytes/s): 2 Mbit/s.
pub const INITIAL_RATE: u64 = 250_000;
/// Never below 100 kbit/s: a link this slow still carries keepalives and is probed upwards.
pub const MIN_RATE: u64 = 12_500;

/// Max-filter buckets (each `MAX_WINDOW / BUCKETS`).
const BUCKETS: usize = 6;
/// Reports remembered to find one a span back (reports come every 20 ms or so under load).
const HISTORY: usize = 32;
/// Keepalives whose planned queueing we remember until the peer's report on them comes back
/// (they go every 20 to 50 ms under load: 0.6 s or more).
const PLANNED_HISTORY: usize = 32;

/// The scheduler's planned queueing at each keepalive we send, smoothed as
/// [`super::owd::OwdTracker`] smooths the delays the receiver measures, so the two move alike.
#[derive(Debug, Clone)]
struct Planned {
    /// µs.
    smoothed: i64,
    samples: u64,
    /// (keepalive timestamp, smoothed planned queueing in µs, bytes sent on the link before it).
    history: [(u32, u32, u64); PLANNED_HISTORY],
    next: usize,
    /// The last report compared: (echoed timestamp, the peer's smoothed delay, our smoothed
    /// planned queueing then).
    last: Option<(u32, u32, i64)>,
}

impl Planned {
    fn new() -> Self {
        Planned { smoothed: 0, samples: 0, history: [(0, u32::MAX, 0); PLANNED_HISTORY], next: 0, last: None }
    }

    fn on_keepalive(&mut self, timestamp: u32, queue: Duration, tx_bytes: u64) {
        let v = queue.as_micros().min(u64::from(u32::MAX - 1)) as i64;
        if self.samples == 0 {
            self.smoothed = v;
        } else {
            self.smoothed += (v - self.smoothed) / 8;
        }
        self.samples += 1;
        self.history[self.next] = (timestamp, self.smoothed as u32, tx_bytes);
        self.next = (self.next + 1) % PLANNED_HISTORY;
    }

    /// Smoothed planned queueing when we sent the keepalive stamped `timestamp`, µs.
    fn at(&self, timestamp: u32) -> Option<i64> {
        self.find(timestamp).map(|&(_, q, _)| i64::from(q))
    }

    /// Bytes we had sent on the link when we sent the keepalive stamped `timestamp`: all of
    /// them had reached the peer (or been lost) by the time it saw that keepalive.
    fn sent_before(&self, timestamp: u32) -> Option<u64> {
        self.find(timestamp).map(|&(_, _, tx)| tx)
    }

    fn find(&self, timestamp: u32) -> Option<&(u32, u32, u64)> {
        self.history.iter().find(|&&(ts, q, _)| ts == timestamp && q != u32::MAX)
    }

    /// The model was moved by `by` µs: what we remember moves with it, as if the model had
    /// always held that much more (or less), so the next report does not count it again.
    fn shift(&mut self, by: i64) {
        self.smoothed = (self.smoothed + by).max(0);
        for h in self.history.iter_mut().filter(|h| h.1 != u32::MAX) {
            h.1 = (i64::from(h.1) + by).clamp(0, i64::from(u32::MAX - 1)) as u32;
        }
        if let Some(l) = &mut self.last {
            l.2 += by;
        }
    }

    /// The drift since the last report, µs: how much more the real queue grew than the
    /// planned one (`owd`: the peer's smoothed delay of our keepalives up to `echo`).
    fn drift(&mut self, echo: u32, owd: u32) -> Option<i64> {
        let planned = self.at(echo)?;
        let drift = match self.last {
            // Only a newer report moves anything (a reordered one is not).
            Some((e, o, p)) if (echo.wrapping_sub(e) as i32) > 0 => wrapping_diff(owd, o) - (planned - p),
            Some((e, _, _)) if echo != e => return None,
            _ => 0,
        };
        self.last = Some((echo, owd, planned));
        Some(drift)
    }
}

/// What a keepalive from the peer says about our packets on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The peer's clock when it sent the report ...
    pub peer_ts: u32,
    /// ... and the bytes (wrapping) it had received on this link by then.
    pub rx_bytes: u32,
    /// The smoothed one-way delay of our keepalives with the clocks' offset, and its minimum
    /// lately ([`super::owd`]).
    pub owd: Option<(u32, u32)>,
    /// The timestamp of the last keepalive of ours that measurement includes.
    pub echo: Option<u32>,
}

/// What we had sent on the link when we sent a keepalive the peer echoed: (its timestamp,
/// bytes sent before it). By the report that echoes it, the peer has received all of those
/// (or they were lost), so differences of these against differences of its byte counter
/// compare what we offered with what the link delivered — aligned by the link's own delay.
/// Counting what we sent up to the report's arrival instead adds a one-way delay's worth of
/// bytes that cannot have arrived yet: on a 60 ms link that starts carrying a flow, the first
/// samples then read as a link delivering a third of what it was offered.
type Sent = (u32, u64);

/// Our sending rate between two [`Sent`] points, bytes/s; `None` if no time passed between.
fn offered_rate(from: Sent, to: Sent) -> Option<u64> {
    let dt = to.0.wrapping_sub(from.0);
    (dt > 0 && dt < 10_000_000).then(|| to.1.saturating_sub(from.1) * 1_000_000 / u64::from(dt))
}

#[derive(Debug, Clone)]
pub struct Capacity {
    cap: Option<u64>,
    estimate: u64,
    /// Max of accepted samples per bucket, and the bucket's start.
    buckets: [(u64, Instant); BUCKETS],
    /// (peer timestamp, cumulative bytes received, what we had sent by the keepalive it echoed)
    /// of recent reports.
    history: [(u32, u32, Option<Sent>); HISTORY],
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
    /// The round in which the link is watched for getting slower: since when, the bytes we had
    /// sent then, the best delivery sample since, and whether it queued all along.
    watch_since: Instant,
    watch_sent: Option<Sent>,
    watch_best: u64,
    watch_queued: bool,
    /// Drift not yet handed to the scheduler, µs.
    correction: i64,
    /// Since when the model has planned a queue the link did not have.
    faster_since: Option<Instant>,
    /// A delivery sample has been recorded: the estimate is a measurement, not a guess.
    measured: bool,
    planned: Planned,
}

impl Capacity {
    pub fn new(cap: Option<u64>, now: Instant) -> Self {
        let start = cap.unwrap_or(INITIAL_RATE).max(MIN_RATE);
        Capacity {
            cap,
            estimate: start,
            buckets: [(0, now); BUCKETS],
            history: [(0, 0, None); HISTORY],
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
            watch_since: now,
            watch_sent: None,
            watch_best: 0,
            watch_queued: true,
            correction: 0,
            faster_since: None,
            measured: false,
            planned: Planned::new(),
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

    /// Still searching, with the estimate only a lower bound: the scheduler must not limit the
    /// link's queue on the strength of it. (At a configured ceiling there is nothing to find.)
    pub fn probing(&self) -> bool {
        self.startup && self.cap.is_none_or(|c| self.estimate < c)
    }

    fn gain(&self) -> u32 {
        if self.startup { STARTUP_GAIN } else { PROBE_GAINS[self.cycle_index] }
    }

    /// The rate the scheduler may send at now, bytes/s. Never more than the probing gain
    /// above a configured ceiling: startup's doubling would only overfill the link's queue.
    pub fn pacing_rate(&self) -> u64 {
        let r = self.estimate.saturating_mul(u64::from(self.gain())) / 100;
        let ceiling = |c: u64| c.saturating_mul(u64::from(self.gain().clamp(100, PROBE_GAINS[0]))) / 100;
        self.cap.map_or(r, |c| r.min(ceiling(c))).max(MIN_RATE)
    }

    /// The link (re)connected, with a new session or after an outage: reports from before are
    /// no base for what comes. A new session's byte counter starts again from zero (against
    /// the old one's it reads as the u32 wrapping: a 40 Mbit/s link came back from an outage
    /// estimated at 121,536 Mbit/s), and the delay the peer measured before the outage is no
    /// base for the queue's drift after it. The estimate itself stands: the link is likely
    /// what it was, and the next samples correct it.
    pub fn forget_reports(&mut self) {
        self.history_len = 0;
        self.history_next = 0;
        self.planned.last = None;
    }

    /// We sent a keepalive stamped `timestamp` while the scheduler modelled `planned` of
    /// queueing ahead of it on this link, after `tx_bytes` bytes sent on the link in all.
    pub fn on_keepalive_sent(&mut self, timestamp: u32, planned: Duration, tx_bytes: u64) {
        self.planned.on_keepalive(timestamp, planned, tx_bytes);
    }

    /// The scheduler tells since when it has kept the link backlogged without a break (it
    /// had more to send than the pacing rate allowed), if it has.
    pub fn set_busy(&mut self, since: Option<Instant>) {
        self.busy_since = since;
    }

    fn busy_for(&self, now: Instant, span: Duration) -> bool {
        self.busy_since.is_some_and(|t| now - t >= span)
    }

    fn restart_startup(&mut self, now: Instant) {
        self.startup = true;
        self.flat_rounds = 0;
        self.round_best = self.estimate;
        self.round_start = now;
        self.faster_since = None;
    }

    /// A receiver report. `round` is one round trip (SRTT, at least a few milliseconds);
    /// `jitter` (RTTVAR) widens the span of delivery samples: on a link whose packets bunch up,
    /// a short span measures the bunching.
    pub fn on_report(&mut self, now: Instant, report: Report, round: Duration, jitter: Duration) {
        let span = jitter.saturating_mul(2).clamp_to(SAMPLE_SPAN, MAX_SPAN);
        let round = round.max(span);
        let queueing = report.owd.map(|(o, min)| Duration::from_micros(wrapping_diff(o, min).max(0) as u64));
        let drift = match (report.echo, report.owd) {
            (Some(e), Some((o, _))) => self.planned.drift(e, o),
            _ => None,
        };
        if let Some(d) = drift.filter(|&d| d != 0) {
            self.correction += d;
            self.planned.shift(d);
        }
        // The model plans a queue the link does not have.
        let planned = report.echo.and_then(|e| self.planned.at(e)).unwrap_or(0);
        let shortfall =
            queueing.is_some_and(|q| q < EMPTY_QUEUE) && planned >= FASTER_SHORTFALL.as_micros() as i64;
        if shortfall {
            let since = *self.faster_since.get_or_insert(now);
            if !self.startup && self.cap.is_none_or(|c| self.estimate < c) && now - since >= round {
                // For a round the model planned a queue that was not there, however it was
                // moved to the real one: the link drains faster than we think.
                self.restart_startup(now);
            }
        } else {
            self.faster_since = None;
        }
        let queued = queueing.is_some_and(|q| q >= SATURATED_QUEUE);
        self.watch_queued &= queued;
        let sent = report.echo.and_then(|e| Some((e, self.planned.sent_before(e)?)));
        let sample = self.sample(report.peer_ts, report.rx_bytes, sent, span);
        if let Some((rate, offered)) = sample {
            self.latest = rate;
            let saturated = queued
                && offered.is_some_and(|o| o.saturating_mul(100) >= rate.saturating_mul(SATURATED_RATIO));
            // Backlogged for the span and the one-way delay before it (what arrived in the span
            // was sent that much earlier), so the sample measured the link, not our demand.
            if self.busy_for(now, span + round) || saturated || rate > self.estimate {
                self.record(now, rate);
            }
            self.watch_best = self.watch_best.max(rate);
            let elapsed = now - self.watch_since;
            if elapsed >= round {
                let offered = self.watch_sent.zip(sent).and_then(|(a, b)| offered_rate(a, b));
                if self.watch_queued
                    && self.watch_best > 0
                    && offered.is_some_and(|o| {
                        o.saturating_mul(100) >= self.watch_best.saturating_mul(SLOWER_RATIO)
                    })
                    && self.watch_best < self.estimate - self.estimate / 5
                {
                    // For a whole round the link queued and carried clearly less than we
                    // offered and than we think it can: it got slower. Believe what it delivers.
                    self.buckets = [(0, now); BUCKETS];
                    self.record(now, self.watch_best);
                    self.startup = false;
                }
                self.watch_since = now;
                self.watch_sent = sent;
                self.watch_best = 0;
                self.watch_queued = true;
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

    /// How far the scheduler's model of the link's queue has drifted from the real queue since
    /// it was last asked (µs: positive, the real one grew more), once: the model is to be moved
    /// by it.
    pub fn take_correction(&mut self) -> i64 {
        std::mem::take(&mut self.correction)
    }

    /// A delivery rate sample over at least `span`, and the rate we offered the link between
    /// the keepalives the same two reports echoed, bytes/s.
    fn sample(
        &mut self,
        peer_ts: u32,
        rx_bytes: u32,
        sent: Option<Sent>,
        span: Duration,
    ) -> Option<(u64, Option<u64>)> {
        let span_us = span.as_micros() as u32;
        let max_us = MAX_WINDOW.as_micros() as u32;
        // Newest first: the first report at least a span older than this one.
        let mut found = None;
        for k in 0..self.history_len {
            let idx = (self.history_next + HISTORY - 1 - k) % HISTORY;
            let (ts, bytes, then) = self.history[idx];
            let dt = peer_ts.wrapping_sub(ts);
            if dt > max_us {
                // Reports stopped for longer than the window (an outage): a rate across the
                // silence measures the silence. (One read 28 kB/s of a 5 MB/s link as it came
                // back, queued and offered the full rate: a "saturated" sample, trusted.)
                break;
            }
            if dt >= span_us {
                found = Some((
                    dt,
                    rx_bytes.wrapping_sub(bytes),
                    then.zip(sent).and_then(|(a, b)| offered_rate(a, b)),
                ));
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
            self.history[self.history_next] = (peer_ts, rx_bytes, sent);
            self.history_next = (self.history_next + 1) % HISTORY;
            self.history_len = (self.history_len + 1).min(HISTORY);
        }
        let (dt, bytes, offered) = found?;
        Some((u64::from(bytes) * 1_000_000 / u64::from(dt), offered))
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
            // A queue built: the link does not carry what startup sends. (What the scheduler
            // planned says nothing here: startup's rate is a lower bound, and the link's queue
            // is not limited by it.) Checked at every report: a probing link takes whatever
            // the others cannot, and its buffer fills within a round.
            let queue_built = queueing.is_some_and(|q| q > STARTUP_EXIT_QUEUE);
            let at_cap = self.cap.is_some_and(|c| self.estimate >= c);
            if queue_built || at_cap || self.flat_rounds >= STARTUP_FLAT_ROUNDS {
                self.startup = false;
                // Start with the 0.9 round: startup overfilled the queue.
                self.cycle_index = 1;
                self.cycle_start = now;
                return;
            }
            if now - self.round_start < round {
                return;
            }
            self.round_start = now;
            if self.busy_since.is_none() {
                // Not using the link fully says nothing about its capacity: startup waits.
                return;
            }
            if self.estimate >= self.round_best + self.round_best / 4 {
                self.round_best = self.estimate;
                self.flat_rounds = 0;
            } else {
                self.flat_rounds += 1;
            }
        } else if now - self.cycle_start >= round {
            self.cycle_index = (self.cycle_index + 1) % PROBE_GAINS.len();
            self.cycle_start = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::owd::OwdTracker;
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_micros(v * 1000)
    }

    /// One link in a closed loop. Every millisecond we send `send` bytes/s worth onto it; the
    /// scheduler's model of its queue drains at our pacing rate, the real queue at the link's
    /// `rate`. Every 20 ms a keepalive goes out (recording the model's queueing), waits behind
    /// the real queue, and the peer measures it as the receiver does ([`OwdTracker`]) and
    /// reports at once; corrections move the model as the arrival scheduler does.
    struct Link {
        c: Capacity,
        t: u64,
        model: f64,
        real: f64,
        delivered: f64,
        owd: OwdTracker,
        corrections: i64,
        busy_from: Option<Instant>,
        sent: f64,
    }

    impl Link {
        fn new(cap: Option<u64>) -> Self {
            Link {
                c: Capacity::new(cap, Instant::ZERO),
                t: 0,
                model: 0.0,
                real: 0.0,
                delivered: 0.0,
                owd: OwdTracker::default(),
                corrections: 0,
                busy_from: None,
                sent: 0.0,
            }
        }

        /// Runs for `for_ms` with the link at `rate` bytes/s and the scheduler sending at `send`
        /// (`None`: as fast as the model lets it, keeping the model's queue at `keep` ms).
        fn run(&mut self, for_ms: u64, rate: u64, send: Option<u64>, keep: u64) {
            for _ in 0..for_ms {
                self.t += 1;
                let pacing = self.c.pacing_rate() as f64;
                self.model = (self.model - pacing / 1000.0).max(0.0);
                if self.model == 0.0 {
                    self.busy_from = None;
                }
                let drained = self.real.min(rate as f64 / 1000.0);
                self.real -= drained;
                self.delivered += drained;
                let sent = match send {
                    Some(s) => s as f64 / 1000.0,
                    None => (pacing * keep as f64 / 1000.0 - self.model).max(0.0),
                };
                self.model += sent;
                self.sent += sent;
                if self.model > 0.0 && self.busy_from.is_none() {
                    self.busy_from = Some(ms(self.t));
                }
                // A real link's buffer: 200 ms.
                self.real = (self.real + sent).min(rate as f64 * 0.2);
                if self.t % 20 != 0 {
                    continue;
                }
                let now = ms(self.t);
                let ts = now.wire_timestamp();

                let planned = Duration::from_micros((self.model * 1e6 / pacing) as u64);
                self.c.on_keepalive_sent(ts, planned, self.sent as u64);
                let wait = Duration::from_micros((self.real * 1e6 / rate as f64) as u64);
                self.owd.on_sample(now + Duration::from_millis(10) + wait, ts);
                self.c.set_busy(self.busy_from);
                let report = Report {
                    peer_ts: ts,
                    rx_bytes: self.delivered as u64 as u32,
                    owd: Some((self.owd.smoothed(), self.owd.smoothed_min())),
                    echo: Some(ts),
                };
                self.c.on_report(now, report, Duration::from_millis(40), Duration::ZERO);
                let c = self.c.take_correction();
                self.corrections += c;
                self.model = (self.model + c as f64 * pacing / 1e6).max(0.0);
            }
        }

        fn mbit(&self) -> f64 {
            self.c.estimate() as f64 * 8e-6
        }
    }

    #[test]
    fn learns_a_busy_links_rate() {
        let mut l = Link::new(None);
        l.run(3000, 5_000_000, None, 20);
        assert!((38.0..=42.0).contains(&l.mbit()), "{}", l.mbit());
        assert!(!l.c.in_startup());
        assert!(l.real < 5_000_000.0 * 0.03, "the real queue stays near the planned 20 ms");
    }

    #[test]
    fn a_new_session_is_not_measured_against_the_old_ones_counter() {
        let mut l = Link::new(None);
        l.run(3000, 5_000_000, None, 20);
        let before = l.mbit();
        // The peer's counter of the new session starts from zero, far behind the old one's.
        l.c.forget_reports();
        l.delivered = 0.0;
        for step in 0..50 {
            l.run(20, 5_000_000, None, 20);
            let ok = (before * 0.9..=before * 1.1).contains(&l.mbit());
            assert!(ok, "{before} → {} Mbit/s after {} ms", l.mbit(), (step + 1) * 20);
        }
    }

    #[test]
    fn an_idle_link_keeps_its_estimate() {
        let mut l = Link::new(None);
        l.run(3000, 5_000_000, None, 20);
        let before = l.c.estimate();
        // Little traffic for 5 s: samples are low but not trusted.
        l.run(5000, 5_000_000, Some(50_000), 0);
        assert_eq!(l.c.estimate(), before);
    }

    #[test]
    fn follows_a_link_that_got_slower_though_the_model_sees_no_backlog() {
        // Demand is below the old estimate, so by the model the link is never backlogged; but
        // the link now carries only a quarter of it, and the queue that builds is far beyond
        // anything planned.
        let mut l = Link::new(None);
        l.run(3000, 5_000_000, None, 20);
        l.run(1000, 1_250_000, Some(3_000_000), 0);
        assert!((9.0..=11.0).contains(&l.mbit()), "{}", l.mbit());
    }

    #[test]
    fn follows_a_drop_in_capacity_under_full_load() {
        let mut l = Link::new(None);
        l.run(3000, 5_000_000, None, 20);
        l.run(1000, 1_250_000, None, 20);
        assert!((9.0..=11.0).contains(&l.mbit()), "{}", l.mbit());
        l.run(1000, 1_250_000, None, 20);
        assert!(l.real < 1_250_000.0 * 0.04, "and the queue is back near the planned");
    }

    #[test]
    fn drift_moves_the_model_once() {
        let mut l = Link::new(None);
        l.run(3000, 5_000_000, None, 20);
        l.run(1000, 5_000_000, None, 35);
        // Steady: the model no longer moves (bar the probing rounds, which move the real queue).
        l.corrections = 0;
        l.run(160, 5_000_000, None, 35);
        assert!(l.corrections.abs() < 2_000, "{}", l.corrections);
        // The peer's delay grew 12 ms more than the planned queue since the last report: the
        // model is moved; the same report again moves nothing; a report 20 ms shorter moves it
        // back.
        let now = ms(l.t);
        let ts = now.wire_timestamp();
        let (owd, min) = (l.owd.smoothed(), l.owd.smoothed_min());
        let report = |extra: i64| Report {
            peer_ts: ts,
            rx_bytes: l.delivered as u64 as u32,
            owd: Some((owd.wrapping_add(extra as u32), min)),
            echo: Some(ts),
        };
        let round = Duration::from_millis(40);
        l.c.on_report(now, report(0), round, Duration::ZERO);
        let _ = l.c.take_correction();
        let next = ts.wrapping_add(1);
        l.c.on_keepalive_sent(
            next,
            l.c.planned.at(ts).map_or(Duration::ZERO, |p| Duration::from_micros(p as u64)),
            l.sent as u64,
        );
        let report2 = |extra: i64| Report { echo: Some(next), ..report(extra) };
        l.c.on_report(now, report2(12_000), round, Duration::ZERO);
        assert_eq!(l.c.take_correction(), 12_000);
        l.c.on_report(now, report2(12_000), round, Duration::ZERO);
        assert_eq!(l.c.take_correction(), 0);
    }

    #[test]
    fn a_link_faster_than_its_estimate_is_searched_again() {
        let mut l = Link::new(None);
        // Light, steady traffic: the estimate settles low and startup ends.
        l.run(5000, 5_000_000, Some(250_000), 0);
        l.run(20, 5_000_000, Some(250_000), 0);
        let low = l.mbit();
        assert!(low < 3.0 && !l.c.in_startup(), "{low}");
        // Now a flow wants all it can give: the model's queue stands while the real one empties.
        l.run(3000, 5_000_000, None, 20);
        assert!((36.0..=44.0).contains(&l.mbit()), "{}", l.mbit());
    }

    #[test]
    fn configured_bandwidth_starts_and_caps() {
        let mut l = Link::new(Some(1_000_000));
        assert_eq!(l.c.estimate(), 1_000_000);
        assert!(!l.c.probing(), "nothing to search beyond the ceiling");
        l.run(2000, 3_000_000, None, 20);
        assert_eq!(l.c.estimate(), 1_000_000);
        assert!(l.c.pacing_rate() <= 1_100_000);
    }

    #[test]
    fn planned_queueing_is_matched_to_the_keepalive_the_peer_measured() {
        let mut p = Planned::new();
        for k in 0..10u64 {
            p.on_keepalive(k as u32, Duration::from_millis(10 * k), 1000 * k);
        }
        assert!(p.at(9).unwrap() > p.at(5).unwrap());
        assert_eq!(p.at(0), Some(0));
        assert_eq!(p.at(99), None);
    }
}
