//! One direction of one emulated link: the impairment model. Sans-IO: no sockets, no clock;
//! time (nanoseconds on any monotonic clock) is always an argument.
//!
//! ## The model
//!
//! A frame handed to [`Pipe::handle_frame`] at time `t` goes through, in order:
//!
//! 1. **Outage**: while the pipe is blackholed every frame is dropped (`blackholed`).
//! 2. **Bottleneck queue**: a FIFO in front of a server of `rate` bit/s. A frame is tail-dropped
//!    (`tail_drop`) when the bytes already *waiting* (not yet being serialised) plus its own would
//!    exceed the queue limit; an empty queue always admits one frame, so a limit smaller than a
//!    frame still lets traffic through one frame at a time. The queue limit is `queue` bytes, or
//!    by default 50 ms worth of the current rate, at least 15,000 bytes (as the simulator's).
//! 3. **Serialisation**: a frame starts when the server is free and takes `len * 8 / rate`. The
//!    rate in force when a frame *starts* applies to it, so a rate change takes effect for every
//!    frame still waiting (a queue drains at the new rate, as on a real link whose capacity
//!    drops). With `rate` unlimited serialisation takes no time and nothing queues.
//! 4. **Loss**: a frame that finished serialisation is lost with probability `loss` (it used the
//!    link's capacity; it is lost on the wire, as on a lossy radio link) (`lost`).
//! 5. **Propagation**: the frame arrives `delay + j` after it finished serialisation, `j` drawn
//!    uniformly from `[-jitter, +jitter]` (and `delay + j` clamped at 0). **Frames of one pipe are
//!    never reordered**: a frame never arrives before the one ahead of it, so a frame drawn early
//!    waits for a late predecessor. Real access links queue in order; reordering in the tests
//!    must come from the multi-link tunnel, not from one link. Consequence: every frame's one-way
//!    delay stays within `[delay - jitter, delay + jitter]` (plus serialisation and queueing),
//!    and the draw is uniform for frames more than `2 * jitter` apart, but for dense traffic the
//!    delays bunch towards `delay + jitter` (the running maximum of the draws wins). This is the
//!    price of in-order delivery with independent per-frame draws.
//!
//! Rates count whole Ethernet frames (header included, no preamble/FCS/gap), like `tbf`.
//!
//! ## Storage
//!
//! Frames live in a ring of `capacity` slots (a power of two), in arrival order: first those on
//! the wire (serialised, waiting to be delivered), then those waiting in the queue. The pipe keeps
//! only each slot's metadata; the caller keeps the bytes in an array indexed by the same slot
//! numbers. A full ring drops the frame (`ring_full`), never grows.
//!
//! ## Call order
//!
//! [`handle_frame`](Pipe::handle_frame) for every arriving frame (copy the bytes into the slot it
//! returns); then [`poll_transmit`](Pipe::poll_transmit) until `None`, sending each slot it
//! returns before the next `handle_frame`; then sleep until
//! [`poll_timeout`](Pipe::poll_timeout). [`set_params`](Pipe::set_params) at any time.

use crate::rng::Rng;

pub const NS_PER_SEC: u64 = 1_000_000_000;
pub const NS_PER_MS: u64 = 1_000_000;

/// The default queue holds this long at the current rate...
pub const DEFAULT_QUEUE_NS: u64 = 50 * NS_PER_MS;
/// ...but at least this many bytes.
pub const MIN_DEFAULT_QUEUE: u64 = 15_000;
/// Loss probabilities are in parts per billion.
pub const LOSS_SCALE: u32 = 1_000_000_000;

/// What one pipe does to its frames. The default is a perfect link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params {
    /// One-way propagation delay.
    pub delay_ns: u64,
    /// Half-width of the uniform jitter added to `delay_ns`.
    pub jitter_ns: u64,
    /// Loss probability in parts per billion (`LOSS_SCALE` is certain loss).
    pub loss_ppb: u32,
    /// Bottleneck rate in bit/s; 0 is unlimited.
    pub rate_bps: u64,
    /// Queue limit in bytes; `None` is the default (50 ms of the rate, at least 15,000 bytes).
    pub queue_bytes: Option<u64>,
    /// Every frame is dropped.
    pub blackhole: bool,
}

impl Params {
    /// The queue limit in force, in bytes.
    pub fn queue_limit(&self) -> u64 {
        match self.queue_bytes {
            Some(q) => q,
            None => (self.rate_bps / 8 * DEFAULT_QUEUE_NS / NS_PER_SEC).max(MIN_DEFAULT_QUEUE),
        }
    }

    /// How long `len` bytes take to serialise.
    pub fn serialisation_ns(&self, len: u64) -> u64 {
        if self.rate_bps == 0 {
            0
        } else {
            // len < 2^32, so len * 8e9 < 2^66: go through u128.
            (u128::from(len) * 8 * u128::from(NS_PER_SEC) / u128::from(self.rate_bps)) as u64
        }
    }
}

/// Why a frame was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    Blackhole,
    /// The bottleneck queue is full (tail drop).
    Queue,
    /// Every slot of the ring is taken.
    RingFull,
}

/// Frame and byte counts; each frame handed in ends in exactly one of `tx`, `lost`,
/// `tail_drop`, `blackholed`, `ring_full`, `tx_error` (or is still held: `held()`). The shell
/// counts `oversize` (frames it could not even hand in) and `tx_error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx: u64,
    pub rx_bytes: u64,
    pub tx: u64,
    pub tx_bytes: u64,
    pub lost: u64,
    pub tail_drop: u64,
    pub blackholed: u64,
    pub ring_full: u64,
    pub oversize: u64,
    pub tx_error: u64,
    /// The most a frame was handed out after its delivery time (how late the caller polled).
    pub late_max_ns: u64,
    /// Frames handed out more than 1 ms late.
    pub late_1ms: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    len: u32,
    lost: bool,
    /// While queued: the arrival time. On the wire: the delivery time.
    at: u64,
}

/// One direction of one link. See the module doc for the model and the call order.
#[derive(Debug)]
pub struct Pipe {
    params: Params,
    entries: Box<[Entry]>,
    mask: usize,
    /// Ring positions (ever increasing; the slot is `pos & mask`): `head..mid` are on the wire,
    /// `mid..tail` are waiting in the queue.
    head: usize,
    mid: usize,
    tail: usize,
    /// Bytes in `mid..tail`.
    queued_bytes: u64,
    /// When the frame being serialised (if any) is done.
    tx_free_at: u64,
    /// Delivery time of the last frame put on the wire: nothing is delivered before it.
    last_deliver: u64,
    rng: Rng,
    counters: Counters,
}

impl Pipe {
    /// A perfect pipe with `capacity` slots.
    ///
    /// # Panics
    /// If `capacity` is not a power of two (the shell checks the command line).
    pub fn new(capacity: usize, seed: u64) -> Pipe {
        assert!(capacity.is_power_of_two(), "ring capacity {capacity}");
        Pipe {
            params: Params::default(),
            entries: vec![Entry::default(); capacity].into_boxed_slice(),
            mask: capacity - 1,
            head: 0,
            mid: 0,
            tail: 0,
            queued_bytes: 0,
            tx_free_at: 0,
            last_deliver: 0,
            rng: Rng::new(seed),
            counters: Counters::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Bytes waiting in the bottleneck queue.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Frames held: on the wire (including lost ones not yet reaped) and in the queue.
    pub fn held(&self) -> usize {
        self.tail - self.head
    }

    /// Changes the parameters at `now`. Frames already on the wire keep their delivery time;
    /// frames still queued get the new rate, delay, jitter and loss. Turning the blackhole on
    /// drops every frame held (a dead link loses what is in flight too).
    pub fn set_params(&mut self, now: u64, params: Params) {
        self.advance(now);
        if params.blackhole && !self.params.blackhole {
            self.flush(now);
        }
        self.params = params;
    }

    /// Takes a frame of `len` bytes arriving at `now`; on success the caller puts its bytes in
    /// the returned slot.
    #[must_use = "the frame must be stored in the slot, or it was dropped"]
    pub fn handle_frame(&mut self, now: u64, len: usize) -> Result<usize, Drop> {
        self.counters.rx += 1;
        self.counters.rx_bytes += len as u64;
        if self.params.blackhole {
            self.counters.blackholed += 1;
            return Err(Drop::Blackhole);
        }
        self.advance(now);
        if self.tail - self.head == self.entries.len() {
            self.counters.ring_full += 1;
            return Err(Drop::RingFull);
        }
        let len64 = len as u64;
        if self.queued_bytes > 0 && self.queued_bytes + len64 > self.params.queue_limit() {
            self.counters.tail_drop += 1;
            return Err(Drop::Queue);
        }
        let slot = self.tail & self.mask;
        self.entries[slot] = Entry { len: len as u32, lost: false, at: now };
        self.tail += 1;
        self.queued_bytes += len64;
        self.advance(now);
        Ok(slot)
    }

    /// The next frame due at `now`, as `(slot, len)`: send it before the next `handle_frame`,
    /// which may reuse the slot.
    #[must_use]
    pub fn poll_transmit(&mut self, now: u64) -> Option<(usize, usize)> {
        self.advance(now);
        while self.head < self.mid {
            let e = self.entries[self.head & self.mask];
            if e.at > now {
                return None;
            }
            let slot = self.head & self.mask;
            self.head += 1;
            if !e.lost {
                let c = &mut self.counters;
                c.tx += 1;
                c.tx_bytes += u64::from(e.len);
                let late = now - e.at;
                c.late_max_ns = c.late_max_ns.max(late);
                c.late_1ms += u64::from(late > NS_PER_MS);
                return Some((slot, e.len as usize));
            }
        }
        None
    }

    /// When to call [`poll_transmit`](Pipe::poll_transmit) next; `None` when nothing is held.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.head < self.mid {
            // Delivery times are non-decreasing along the ring, and every queued frame will be
            // delivered no earlier than the wire's last one.
            Some(self.entries[self.head & self.mask].at)
        } else if self.mid < self.tail {
            Some(self.tx_free_at.max(self.entries[self.mid & self.mask].at))
        } else {
            None
        }
    }

    /// Moves every queued frame whose serialisation has started by `now` onto the wire.
    fn advance(&mut self, now: u64) {
        while self.mid < self.tail {
            let slot = self.mid & self.mask;
            let e = self.entries[slot];
            let start = self.tx_free_at.max(e.at);
            if start > now {
                break;
            }
            let len = u64::from(e.len);
            let end = start + self.params.serialisation_ns(len);
            self.tx_free_at = end;
            self.queued_bytes -= len;
            self.mid += 1;
            let p = &self.params;
            let lost = p.loss_ppb > 0 && self.rng.below(u64::from(LOSS_SCALE)) < u64::from(p.loss_ppb);
            let at = if lost {
                self.counters.lost += 1;
                // Reaped in order by poll_transmit; no effect on the ones behind it.
                self.last_deliver
            } else {
                let mut flight = p.delay_ns;
                if p.jitter_ns > 0 {
                    let j = self.rng.below(2 * p.jitter_ns + 1);
                    flight = (flight + j).saturating_sub(p.jitter_ns);
                }
                let at = (end + flight).max(self.last_deliver);
                self.last_deliver = at;
                at
            };
            self.entries[slot] = Entry { len: e.len, lost, at };
        }
    }

    /// Drops every frame held, as a blackhole does.
    fn flush(&mut self, now: u64) {
        for pos in self.head..self.tail {
            if !self.entries[pos & self.mask].lost {
                self.counters.blackholed += 1;
            }
        }
        self.head = self.tail;
        self.mid = self.tail;
        self.queued_bytes = 0;
        self.tx_free_at = self.tx_free_at.min(now);
        self.last_deliver = self.last_deliver.min(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = NS_PER_MS;
    const US: u64 = 1_000;

    fn pipe(params: Params) -> Pipe {
        let mut p = Pipe::new(1 << 14, 7);
        p.set_params(0, params);
        p
    }

    /// Offers `n` frames of `len` bytes every `gap_ns` from `t0`, delivering as it goes.
    /// Returns (arrival time, send time) of each delivered frame, by arrival order.
    fn run(p: &mut Pipe, t0: u64, n: usize, len: usize, gap_ns: u64) -> Vec<(u64, u64)> {
        let mut sent_at = vec![0u64; p.capacity()];
        let mut out = Vec::new();
        let mut now = t0;
        let mut offered = 0;
        loop {
            while let Some((slot, l)) = p.poll_transmit(now) {
                assert_eq!(l, len);
                out.push((now, sent_at[slot]));
            }
            let next_frame = (offered < n).then(|| t0 + offered as u64 * gap_ns);
            let next = match (next_frame, p.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => return out,
                },
            };
            assert!(next >= now, "time went back: {next} < {now}");
            now = next;
            if next_frame == Some(now) {
                if let Ok(slot) = p.handle_frame(now, len) {
                    sent_at[slot] = now;
                }
                offered += 1;
            }
        }
    }

    #[test]
    fn perfect_pipe_delivers_at_once() {
        let mut p = pipe(Params::default());
        assert_eq!(p.handle_frame(5, 100), Ok(0));
        assert_eq!(p.poll_timeout(), Some(5));
        assert_eq!(p.poll_transmit(5), Some((0, 100)));
        assert_eq!(p.poll_transmit(5), None);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn delay_is_exact() {
        let mut p = pipe(Params { delay_ns: 20 * MS, ..Params::default() });
        let out = run(&mut p, 1_000, 100, 1000, 100 * US);
        assert_eq!(out.len(), 100);
        for (arrive, sent) in out {
            assert_eq!(arrive - sent, 20 * MS);
        }
    }

    #[test]
    fn jitter_stays_within_bounds_keeps_order_and_spreads_sparse_traffic() {
        let (delay, jitter) = (20 * MS, 5 * MS);
        let mut p = pipe(Params { delay_ns: delay, jitter_ns: jitter, ..Params::default() });
        // Dense: a frame every 100 us, far closer than 2 * jitter.
        let dense = run(&mut p, 0, 5_000, 200, 100 * US);
        assert_eq!(dense.len(), 5_000);
        let mut last_sent = 0;
        for &(arrive, sent) in &dense {
            assert!(sent >= last_sent, "reordered");
            last_sent = sent;
            let d = arrive - sent;
            assert!((delay - jitter..=delay + jitter).contains(&d), "delay {d}");
        }
        // Sparse: 50 ms apart, so no frame waits for another; the draws are uniform.
        let mut p = pipe(Params { delay_ns: delay, jitter_ns: jitter, ..Params::default() });
        let sparse = run(&mut p, 0, 4_000, 200, 50 * MS);
        let ds: Vec<f64> = sparse.iter().map(|&(a, s)| (a - s) as f64 / MS as f64).collect();
        let mean = ds.iter().sum::<f64>() / ds.len() as f64;
        let var = ds.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / ds.len() as f64;
        // Uniform on [15, 25] ms: mean 20, variance 10^2 / 12 = 8.33.
        assert!((mean - 20.0).abs() < 0.25, "mean {mean}");
        assert!((var - 8.33).abs() < 0.6, "variance {var}");
        let lo = ds.iter().cloned().fold(f64::MAX, f64::min);
        let hi = ds.iter().cloned().fold(0.0, f64::max);
        assert!(lo < 15.1 && hi > 24.9, "range {lo}..{hi}");
    }

    #[test]
    fn jitter_larger_than_delay_clamps_at_zero() {
        let mut p = pipe(Params { delay_ns: MS, jitter_ns: 5 * MS, ..Params::default() });
        let out = run(&mut p, 0, 1_000, 100, 20 * MS);
        assert!(out.iter().all(|&(a, s)| a - s <= 6 * MS));
        assert!(out.iter().filter(|&&(a, s)| a == s).count() > 300);
    }

    #[test]
    fn rate_limits_throughput_and_queue_limits_bytes() {
        // 10 Mbit/s, offered 20 Mbit/s of 1250-byte frames (one every 500 us) for 2 s.
        let params = Params { rate_bps: 10_000_000, queue_bytes: Some(50_000), ..Params::default() };
        let mut p = pipe(params);
        let out = run(&mut p, 0, 4_000, 1250, 500 * US);
        // 1250 bytes at 10 Mbit/s = 1 ms each: back to back at exactly 1 ms spacing.
        for w in out.windows(2) {
            assert_eq!(w[1].0 - w[0].0, MS);
        }
        // Over 2 s: 2000 frames served plus the 40 the queue held at the end.
        let c = *p.counters();
        assert_eq!(c.tx as usize, out.len());
        assert!((2_000..=2_042).contains(&out.len()), "{}", out.len());
        assert_eq!(c.tx + c.tail_drop, 4_000);
        // The queue never held more than 50,000 bytes = 40 frames, so no frame waited more than
        // 40 frames' time (plus its own).
        let worst = out.iter().map(|&(a, s)| a - s).max().unwrap();
        assert!(worst <= 41 * MS, "worst {worst}");
        assert!(worst >= 39 * MS, "worst {worst}");
    }

    #[test]
    fn empty_queue_admits_one_frame_bigger_than_the_limit() {
        let mut p = pipe(Params { rate_bps: 1_000_000, queue_bytes: Some(100), ..Params::default() });
        assert!(p.handle_frame(0, 1500).is_ok()); // straight into serialisation
        assert!(p.handle_frame(0, 1500).is_ok()); // waits: the queue was empty
        assert_eq!(p.handle_frame(0, 1500), Err(Drop::Queue));
        assert_eq!(p.queued_bytes(), 1500);
    }

    #[test]
    fn default_queue_is_50ms_of_rate() {
        let p = Params { rate_bps: 40_000_000, ..Params::default() };
        assert_eq!(p.queue_limit(), 250_000);
        assert_eq!(Params::default().queue_limit(), MIN_DEFAULT_QUEUE);
    }

    #[test]
    fn rate_change_applies_to_frames_still_queued() {
        let params = Params { rate_bps: 8_000_000, queue_bytes: Some(1 << 20), ..Params::default() };
        let mut p = pipe(params);
        // 100 frames of 1000 bytes at t=0: 1 ms each at 8 Mbit/s.
        for _ in 0..100 {
            p.handle_frame(0, 1000).unwrap();
        }
        let mut times = Vec::new();
        let mut changed = false;
        let mut now = 0;
        while let Some(t) = p.poll_timeout() {
            if !changed && t > 10 * MS {
                // Quarter the rate at 10.5 ms, while frame 10 is being serialised: it finishes
                // at the old rate (11 ms), every frame behind it takes 4 ms.
                changed = true;
                now = 10 * MS + MS / 2;
                p.set_params(now, Params { rate_bps: 2_000_000, ..params });
                continue;
            }
            now = t;
            while p.poll_transmit(now).is_some() {
                times.push(now);
            }
        }
        assert_eq!(times.len(), 100);
        assert_eq!(times[9], 10 * MS);
        assert_eq!(times[10], 11 * MS);
        assert_eq!(times[11], 15 * MS);
        assert_eq!(times[99] - times[98], 4 * MS);
        assert_eq!(now, 11 * MS + 89 * 4 * MS);
    }

    #[test]
    fn loss_rate_within_statistical_bounds() {
        for (ppb, n) in [(10_000_000u32, 200_000usize), (50_000_000, 100_000), (0, 10_000)] {
            let mut p = pipe(Params { loss_ppb: ppb, ..Params::default() });
            let out = run(&mut p, 0, n, 100, 10 * US);
            let lost = n - out.len();
            assert_eq!(p.counters().lost as usize, lost);
            let prob = f64::from(ppb) / f64::from(LOSS_SCALE);
            let expect = prob * n as f64;
            let sigma = (n as f64 * prob * (1.0 - prob)).sqrt();
            assert!((lost as f64 - expect).abs() <= 5.0 * sigma, "lost {lost}, expected {expect}");
        }
    }

    #[test]
    fn lost_frames_still_use_capacity() {
        let params = Params { rate_bps: 8_000_000, loss_ppb: LOSS_SCALE / 2, ..Params::default() };
        let mut p = pipe(Params { queue_bytes: Some(1 << 20), ..params });
        let out = run(&mut p, 0, 1_000, 1000, 0);
        // 1000 frames of 1 ms each: the last delivered one leaves near 1 s, not 0.5 s.
        assert!(out.last().unwrap().0 > 990 * MS);
    }

    #[test]
    fn blackhole_drops_everything_held_and_arriving_then_recovers() {
        let params = Params { delay_ns: 10 * MS, rate_bps: 8_000_000, ..Params::default() };
        let mut p = pipe(params);
        for _ in 0..5 {
            p.handle_frame(0, 1000).unwrap();
        }
        p.set_params(2 * MS, Params { blackhole: true, ..params });
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.poll_transmit(100 * MS), None);
        assert_eq!(p.handle_frame(3 * MS, 1000), Err(Drop::Blackhole));
        assert_eq!(p.counters().blackholed, 6);
        p.set_params(50 * MS, params);
        p.handle_frame(60 * MS, 1000).unwrap();
        assert_eq!(p.poll_timeout(), Some(71 * MS));
        assert!(p.poll_transmit(71 * MS).is_some());
        let c = p.counters();
        assert_eq!(c.rx, c.tx + c.blackholed);
    }

    #[test]
    fn lateness_is_measured_against_the_delivery_time() {
        let mut p = pipe(Params { delay_ns: 10 * MS, ..Params::default() });
        p.handle_frame(0, 10).unwrap();
        p.handle_frame(0, 10).unwrap();
        p.handle_frame(20 * MS, 10).unwrap();
        assert!(p.poll_transmit(10 * MS + 300 * US).is_some());
        assert!(p.poll_transmit(12 * MS).is_some());
        assert!(p.poll_transmit(30 * MS).is_some());
        assert_eq!(p.counters().late_max_ns, 2 * MS);
        assert_eq!(p.counters().late_1ms, 1);
    }

    #[test]
    fn ring_full_is_a_drop_not_a_panic() {
        let mut p = Pipe::new(4, 1);
        p.set_params(0, Params { delay_ns: MS, ..Params::default() });
        for _ in 0..4 {
            p.handle_frame(0, 10).unwrap();
        }
        assert_eq!(p.handle_frame(0, 10), Err(Drop::RingFull));
        let mut n = 0;
        while p.poll_transmit(MS).is_some() {
            n += 1;
        }
        assert_eq!(n, 4);
        assert!(p.handle_frame(MS, 10).is_ok());
    }

    #[test]
    fn delay_decrease_never_reorders() {
        let params = Params { delay_ns: 50 * MS, ..Params::default() };
        let mut p = pipe(params);
        p.handle_frame(0, 10).unwrap();
        p.set_params(MS, Params { delay_ns: 5 * MS, ..params });
        p.handle_frame(MS, 20).unwrap();
        assert_eq!(p.poll_transmit(49 * MS), None);
        assert_eq!(p.poll_transmit(50 * MS).map(|t| t.1), Some(10));
        assert_eq!(p.poll_transmit(50 * MS).map(|t| t.1), Some(20));
    }
}
