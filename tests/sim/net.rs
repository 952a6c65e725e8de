//! A simulated path: one direction of one link.
//!
//! A packet handed to [`Path::send`] is dropped if the path is blackholed, if the bottleneck
//! queue is full, or at random with the configured loss rate; otherwise it leaves the
//! bottleneck after the packets queued before it (serialisation at `rate`) and arrives after
//! the one-way `delay` plus a jitter drawn uniformly from `[-jitter, +jitter]`. Like a real
//! access link, a path keeps packets in order: jitter delays a packet, and those behind it wait
//! for it (so a jittery link shows variance but does not reorder itself).

use mlvpn::proto::{Duration, Instant};

/// A small, fast, seedable PRNG (SplitMix64). Statistical quality is ample for loss and jitter.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Derives an independent seed for a sub-stream.
    pub fn fork(seed: u64, stream: u64) -> u64 {
        Rng::new(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PathConfig {
    pub delay: Duration,
    pub jitter: Duration,
    /// Probability of losing a packet, 0..1.
    pub loss: f64,
    /// Bottleneck rate in bits per second of UDP payload; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// Bytes the bottleneck queue holds.
    pub queue_bytes: u64,
    /// Probability that a delivered packet has one bit flipped on the way, 0..1.
    pub corrupt: f64,
    /// Probability that a packet arrives `late_by` after the packets behind it (a link-layer
    /// retransmission on Wi-Fi or LTE), 0..1; the others keep their order.
    pub late: f64,
    pub late_by: Duration,
    /// The largest IP packet the path carries (the simulated datagrams are IPv4: 28 bytes of
    /// headers on top of the UDP payload); larger ones vanish without a word, as behind a
    /// router whose ICMP is filtered. `None`: any size.
    pub mtu: Option<usize>,
}

/// IPv4 and UDP headers in front of a simulated datagram.
pub const IP_UDP_HEADERS: usize = 28;

impl PathConfig {
    pub fn new(rate_mbps: f64, delay_ms: u64) -> Self {
        let rate = (rate_mbps * 1e6) as u64;
        PathConfig {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
            loss: 0.0,
            rate_bps: Some(rate),
            // 50 ms worth of queue, a common router buffer.
            queue_bytes: (rate / 8 / 20).max(15_000),
            corrupt: 0.0,
            late: 0.0,
            late_by: Duration::ZERO,
            mtu: None,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PathStats {
    pub sent: u64,
    pub delivered: u64,
    pub bytes: u64,
    pub dropped_blackhole: u64,
    pub dropped_queue: u64,
    pub dropped_loss: u64,
    /// Larger than the path's MTU.
    pub dropped_mtu: u64,
    pub corrupted: u64,
    /// Longest a packet waited in the bottleneck queue.
    pub max_queue: Duration,
}

#[derive(Debug)]
pub struct Path {
    pub config: PathConfig,
    pub blackhole: bool,
    rng: Rng,
    busy_until: Instant,
    last_arrival: Instant,
    pub stats: PathStats,
}

impl Path {
    pub fn new(config: PathConfig, seed: u64) -> Self {
        Path {
            config,
            blackhole: false,
            rng: Rng::new(seed),
            busy_until: Instant::ZERO,
            last_arrival: Instant::ZERO,
            stats: PathStats::default(),
        }
    }

    /// How long a packet sent now would wait in the bottleneck queue.
    pub fn backlog(&self, now: Instant) -> Duration {
        self.busy_until - now
    }

    /// Which bit of a delivered packet of `len` bytes the path flips, if any.
    pub fn corruption(&mut self, len: usize) -> Option<usize> {
        if len == 0 || self.config.corrupt == 0.0 || self.rng.unit() >= self.config.corrupt {
            return None;
        }
        self.stats.corrupted += 1;
        Some(self.rng.next_u64() as usize % (len * 8))
    }

    /// When a packet of `len` bytes sent now arrives, or `None` if it is lost.
    pub fn send(&mut self, now: Instant, len: usize) -> Option<Instant> {
        self.stats.sent += 1;
        if self.config.mtu.is_some_and(|m| len + IP_UDP_HEADERS > m) {
            self.stats.dropped_mtu += 1;
            return None;
        }
        if self.blackhole {
            self.stats.dropped_blackhole += 1;
            return None;
        }
        let mut left = now;
        if let Some(rate) = self.config.rate_bps {
            let start = self.busy_until.max(now);
            let backlog = (start - now).as_micros() as u128 * rate as u128 / 8 / 1_000_000;
            if backlog + len as u128 <= self.config.queue_bytes as u128 {
                self.stats.max_queue = self.stats.max_queue.max(start - now);
            }
            if backlog + len as u128 > self.config.queue_bytes as u128 {
                self.stats.dropped_queue += 1;
                return None;
            }
            left = start + Duration::from_micros(len as u64 * 8 * 1_000_000 / rate);
            self.busy_until = left;
        }
        if self.config.loss > 0.0 && self.rng.unit() < self.config.loss {
            self.stats.dropped_loss += 1;
            return None;
        }
        let j = self.config.jitter.as_micros() as i64;
        let jitter = if j > 0 { (self.rng.next_u64() % (2 * j as u64 + 1)) as i64 - j } else { 0 };
        let delay = (self.config.delay.as_micros() as i64 + jitter).max(0) as u64;
        if self.config.late > 0.0 && self.rng.unit() < self.config.late {
            self.stats.delivered += 1;
            self.stats.bytes += len as u64;
            return Some(left + Duration::from_micros(delay) + self.config.late_by);
        }
        let arrival = (left + Duration::from_micros(delay)).max(self.last_arrival);
        self.last_arrival = arrival;
        self.stats.delivered += 1;
        self.stats.bytes += len as u64;
        Some(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_serialises_and_queue_overflows() {
        let mut p = Path::new(PathConfig { queue_bytes: 3000, ..PathConfig::new(8.0, 10) }, 1);
        // 1000 bytes at 8 Mbit/s take 1 ms.
        let t0 = Instant::ZERO;
        assert_eq!(p.send(t0, 1000), Some(Instant::from_micros(11_000)));
        assert_eq!(p.send(t0, 1000), Some(Instant::from_micros(12_000)));
        assert_eq!(p.send(t0, 1000), Some(Instant::from_micros(13_000)));
        assert_eq!(p.send(t0, 1000), None, "queue holds 3000 bytes");
        assert_eq!(p.stats.dropped_queue, 1);
    }

    #[test]
    fn jitter_stays_in_bounds_and_keeps_order() {
        let mut c = PathConfig::new(1000.0, 100);
        c.jitter = Duration::from_millis(50);
        let mut p = Path::new(c, 7);
        let mut last = Instant::ZERO;
        for k in 0..1000u64 {
            let now = Instant::from_micros(k * 1000);
            let a = p.send(now, 100).unwrap();
            assert!(a >= last);
            assert!(a - now <= Duration::from_millis(151));
            last = a;
        }
    }
}
