//! One TCP flow for the simulator, modelled on what the netns benchmark runs through the tunnel
//! (`iperf3 -C cubic`, Linux, no `fq` qdisc so no pacing).
//!
//! The point is to reproduce how a congestion-controlled sender reacts to the tunnel: it backs
//! off on every loss (a packet the tunnel refuses as congestion, a hole the reorder buffer gives
//! up on, a link's tail drop that loss recovery does not repair), it grows its window by time,
//! not by need, and it sends in bursts as acknowledgements arrive. A constant-rate source hides
//! all of that: it never backs off, so a tunnel that drops early still looks full.
//!
//! * **CUBIC** (RFC 9438) with Linux's constants (C = 0.4, β = 0.7, fast convergence), its
//!   TCP-friendly region, and its rule that before the first loss the window grows by at least
//!   5% per round trip (`tcp_cubic.c`: `cnt` capped at 20 while `last_max_cwnd` is 0).
//! * **HyStart** as in Linux (Ha & Rhee, "Taming the elephants", 2011): slow start ends when
//!   the smallest of a round's first 8 RTT samples exceeds the smallest RTT ever seen by
//!   `clamp(min_rtt / 8, 4 ms, 16 ms)`, or when a train of acknowledgements (2 ms apart or
//!   less) lasts longer than half the smallest RTT (unpaced senders).
//! * **SACK loss recovery** (RFC 6675, simplified): a segment is lost when 3 segments sent after
//!   it were received; lost segments are resent first; one window reduction per recovery
//!   episode. **RTO** per RFC 6298 with Linux's 200 ms floor.
//! * The receiver acknowledges every second segment, at once when something arrived out of
//!   order, and otherwise after 40 ms (Linux's delayed ACK). Everything delivered in one event
//!   of the simulation is one batch, acknowledged together — as GRO on the receiving TUN does
//!   with a run of segments the reorder buffer releases at once.
//!
//! Segments are [`SEGMENT`] bytes (the simulator's MTU); an acknowledgement is [`ACK_LEN`] bytes
//! and carries the cumulative acknowledgement and up to 3 SACK blocks, most recent first.

use mlvpn::proto::rtt::RttEstimator;
use mlvpn::proto::{Duration, Instant};
use std::collections::{BTreeSet, VecDeque};

/// IP packet of a full segment.
pub const SEGMENT: usize = 1400;
/// IP packet of an acknowledgement (with SACK blocks): small, like a real one.
pub const ACK_LEN: usize = 72;
/// Byte 16 of a packet says what it is (other sources leave it 0).
pub const DATA_MARK: u8 = 0xd1;
pub const ACK_MARK: u8 = 0xac;

const BETA: f64 = 0.7;
const C: f64 = 0.4;
const DUP_THRESH: usize = 3;
const RTO_MIN: Duration = Duration::from_millis(200);
const RTO_MAX: Duration = Duration::from_secs(60);
const INITIAL_WINDOW: f64 = 10.0;
const HYSTART_LOW_WINDOW: f64 = 16.0;
const HYSTART_SAMPLES: u32 = 8;
const DELAYED_ACK: Duration = Duration::from_millis(40);
const SACK_BLOCKS: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Seg {
    sent: Instant,
    sacked: bool,
    lost: bool,
    retransmitted: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SenderStats {
    pub segments: u64,
    pub retransmits: u64,
    /// Window reductions: recovery episodes and timeouts.
    pub reductions: u64,
    pub timeouts: u64,
    /// When slow start ended (by HyStart or by a loss).
    pub slow_start_end: Option<Instant>,
}

/// The sending side: always has data (like iperf3).
#[derive(Debug)]
pub struct TcpSender {
    pub start: Instant,
    pub stop: Instant,
    next: u64,
    una: u64,
    /// State of segments `una..next`.
    segs: VecDeque<Seg>,
    /// Whether any segment in flight is SACKed or marked lost (else the pipe is `next - una`).
    scoreboard: bool,
    pub cwnd: f64,
    pub ssthresh: f64,
    rtt: RttEstimator,
    rto: Duration,
    rto_at: Option<Instant>,
    /// In recovery until this segment is acknowledged.
    recovery: Option<u64>,
    // CUBIC.
    w_max: f64,
    epoch: Option<Instant>,
    k: f64,
    origin: f64,
    w_est: f64,
    ack_cnt: f64,
    // HyStart.
    round_end: u64,
    round_start: Instant,
    last_ack: Instant,
    round_min: Option<Duration>,
    round_samples: u32,
    pub stats: SenderStats,
}

impl TcpSender {
    pub fn new(start: Instant, stop: Instant) -> Self {
        TcpSender {
            start,
            stop,
            next: 0,
            una: 0,
            segs: VecDeque::new(),
            scoreboard: false,
            cwnd: INITIAL_WINDOW,
            ssthresh: f64::INFINITY,
            rtt: RttEstimator::default(),
            rto: Duration::from_secs(1),
            rto_at: None,
            recovery: None,
            w_max: 0.0,
            epoch: None,
            k: 0.0,
            origin: 0.0,
            w_est: 0.0,
            ack_cnt: 0.0,
            round_end: 0,
            round_start: start,
            last_ack: start,
            round_min: None,
            round_samples: 0,
            stats: SenderStats::default(),
        }
    }

    fn seg(&mut self, n: u64) -> &mut Seg {
        &mut self.segs[(n - self.una) as usize]
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// Segments believed in the network (RFC 6675's pipe).
    fn pipe(&self) -> u64 {
        if !self.scoreboard {
            return self.next - self.una;
        }
        self.segs.iter().filter(|s| !s.sacked && (!s.lost || s.retransmitted)).count() as u64
    }

    fn on_rtt(&mut self, now: Instant, rtt: Duration) {
        // RFC 6298 arithmetic, the engine's own estimator; Linux's 200 ms floor.
        self.rtt.on_sample(rtt);
        self.rto = self.rtt.rto_or(RTO_MIN).clamp_to(RTO_MIN, RTO_MAX);
        // HyStart: the smallest of the round's first samples against the smallest ever.
        if self.in_slow_start() && self.cwnd >= HYSTART_LOW_WINDOW {
            self.round_min = Some(self.round_min.map_or(rtt, |m| m.min(rtt)));
            if self.round_samples < HYSTART_SAMPLES {
                self.round_samples += 1;
            } else {
                let min = self.rtt.min().unwrap_or(rtt);
                let thresh = min.div(8).clamp_to(Duration::from_millis(4), Duration::from_millis(16));
                if self.round_min.unwrap() > min + thresh {
                    self.ssthresh = self.cwnd;
                    self.stats.slow_start_end.get_or_insert(now);
                }
            }
        }
    }

    /// HyStart's ACK-train detection: acknowledgements 2 ms apart or closer for longer than
    /// half the minimum RTT since the round began mean the window already fills the path.
    fn hystart_ack_train(&mut self, now: Instant) {
        if !self.in_slow_start() || self.cwnd < HYSTART_LOW_WINDOW {
            return;
        }
        let Some(min) = self.rtt.min() else { return };
        if now - self.last_ack <= Duration::from_millis(2) {
            self.last_ack = now;
            if now - self.round_start > min.div(2) {
                self.ssthresh = self.cwnd;
                self.stats.slow_start_end.get_or_insert(now);
            }
        }
    }

    /// A congestion event: CUBIC's multiplicative decrease.
    fn reduce(&mut self, now: Instant) {
        self.stats.reductions += 1;
        if self.stats.slow_start_end.is_none() {
            self.stats.slow_start_end = Some(now);
        }
        self.epoch = None;
        self.w_max = if self.cwnd < self.w_max { self.cwnd * (1.0 + BETA) / 2.0 } else { self.cwnd };
        self.ssthresh = (self.cwnd * BETA).max(2.0);
        self.cwnd = self.ssthresh;
    }

    fn cubic_increase(&mut self, now: Instant, acked: f64) {
        let min_rtt = self.rtt.min().unwrap_or(Duration::from_millis(100)).as_secs_f64();
        let epoch = *self.epoch.get_or_insert_with(|| {
            self.ack_cnt = 0.0;
            self.w_est = self.cwnd;
            if self.w_max <= self.cwnd {
                self.k = 0.0;
                self.origin = self.cwnd;
            } else {
                self.k = ((self.w_max - self.cwnd) / C).cbrt();
                self.origin = self.w_max;
            }
            now
        });
        let t = (now - epoch).as_secs_f64() + min_rtt;
        let target = self.origin + C * (t - self.k).powi(3);
        let mut cnt = if target > self.cwnd { self.cwnd / (target - self.cwnd) } else { 100.0 * self.cwnd };
        if self.w_max == 0.0 && cnt > 20.0 {
            cnt = 20.0;
        }
        // TCP-friendly region: what Reno with CUBIC's β would have.
        self.ack_cnt += acked;
        // Linux: one segment per cwnd × (1 + β) / (3 (1 − β)) acknowledged.
        let delta = self.cwnd * (1.0 + BETA) / (3.0 * (1.0 - BETA));
        while self.ack_cnt > delta {
            self.ack_cnt -= delta;
            self.w_est += 1.0;
        }
        if self.w_est > self.cwnd {
            cnt = cnt.min(self.cwnd / (self.w_est - self.cwnd));
        }
        self.cwnd += acked / cnt.max(2.0);
    }

    /// An acknowledgement: everything before `cum`, and the `sacks` ranges `[from, to)`.
    pub fn on_ack(&mut self, now: Instant, cum: u64, sacks: &[(u64, u64)]) {
        let mut acked = 0u64;
        let mut rtt_sample = None;
        if cum > self.una && cum <= self.next {
            let last = self.seg(cum - 1);
            if !last.retransmitted {
                rtt_sample = Some(now - last.sent);
            }
            for _ in self.una..cum {
                let s = self.segs.pop_front().unwrap();
                if !s.sacked {
                    acked += 1;
                }
            }
            self.una = cum;
            self.rto_at = (self.next > self.una).then_some(now + self.rto);
        }
        for &(from, to) in sacks {
            for n in from.max(self.una)..to.min(self.next) {
                let s = self.seg(n);
                if !s.sacked {
                    s.sacked = true;
                    acked += 1;
                    if !s.retransmitted && rtt_sample.is_none() {
                        rtt_sample = Some(now - s.sent);
                    }
                    self.scoreboard = true;
                }
            }
        }
        if let Some(rtt) = rtt_sample {
            self.on_rtt(now, rtt);
        }
        if self.una >= self.round_end {
            self.round_end = self.next;
            self.round_start = now;
            self.last_ack = now;
            self.round_min = None;
            self.round_samples = 0;
        }
        self.hystart_ack_train(now);
        if self.recovery.is_some_and(|r| self.una > r) {
            self.recovery = None;
        }
        if self.scoreboard {
            // RFC 6675 IsLost: DupThresh segments above it were received.
            let mut above = 0;
            let mut newly_lost = false;
            for s in self.segs.iter_mut().rev() {
                if s.sacked {
                    above += 1;
                } else if above >= DUP_THRESH && !s.lost {
                    s.lost = true;
                    newly_lost = true;
                }
            }
            if newly_lost && self.recovery.is_none() {
                self.recovery = Some(self.next - 1);
                self.reduce(now);
            }
            if !self.segs.iter().any(|s| s.sacked || s.lost) {
                self.scoreboard = false;
            }
        }
        if acked > 0 && self.recovery.is_none() {
            let mut acked = acked as f64;
            if self.in_slow_start() {
                let room = (self.ssthresh - self.cwnd).max(0.0);
                let step = acked.min(room);
                self.cwnd += step;
                acked -= step;
            }
            if acked > 0.0 {
                self.cubic_increase(now, acked);
            }
        }
    }

    /// The next segment to send now, if the window allows: lost ones first, then new data.
    pub fn poll_send(&mut self, now: Instant) -> Option<u64> {
        if now < self.start || (self.pipe() as f64) >= self.cwnd.floor() {
            return None;
        }
        let lost = if self.scoreboard {
            self.segs.iter().position(|s| s.lost && !s.retransmitted && !s.sacked)
        } else {
            None
        };
        let n = match lost {
            Some(i) => {
                let s = &mut self.segs[i];
                s.retransmitted = true;
                s.sent = now;
                self.stats.retransmits += 1;
                self.una + i as u64
            }
            None if now < self.stop => {
                self.segs.push_back(Seg { sent: now, sacked: false, lost: false, retransmitted: false });
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.stats.segments += 1;
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rto);
        }
        Some(n)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rto_at
    }

    /// The retransmission timer fired: everything unacknowledged is lost, the window is one.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.rto_at.is_none_or(|t| t > now) {
            return;
        }
        self.stats.timeouts += 1;
        self.reduce(now);
        self.cwnd = 1.0;
        self.recovery = None;
        for s in self.segs.iter_mut().filter(|s| !s.sacked) {
            s.lost = true;
            s.retransmitted = false;
        }
        self.scoreboard = !self.segs.is_empty();
        self.rto = self.rto.saturating_mul(2).clamp_to(RTO_MIN, RTO_MAX);
        self.rto_at = (self.next > self.una).then_some(now + self.rto);
    }
}

/// The receiving side.
#[derive(Debug, Default)]
pub struct TcpReceiver {
    pub rcv_next: u64,
    ooo: BTreeSet<u64>,
    /// The most recently received out-of-order segment (its SACK block goes first).
    latest: Option<u64>,
    unacked: u32,
    must_ack: bool,
    delack_at: Option<Instant>,
    /// `(time, rcv_next)` at every advance: the in-order goodput.
    pub progress: Vec<(Instant, u64)>,
    pub duplicates: u64,
}

impl TcpReceiver {
    pub fn on_segment(&mut self, now: Instant, n: u64) {
        if n < self.rcv_next || self.ooo.contains(&n) {
            self.duplicates += 1;
            self.must_ack = true;
            return;
        }
        if n == self.rcv_next {
            self.rcv_next += 1;
            let filled = !self.ooo.is_empty();
            while self.ooo.remove(&self.rcv_next) {
                self.rcv_next += 1;
            }
            self.progress.push((now, self.rcv_next));
            self.unacked += 1;
            if filled {
                self.must_ack = true;
            }
        } else {
            self.ooo.insert(n);
            self.latest = Some(n);
            self.must_ack = true;
        }
    }

    /// At the end of a batch: the acknowledgement to send now, if one is due.
    pub fn poll_ack(&mut self, now: Instant) -> Option<(u64, Vec<(u64, u64)>)> {
        if self.delack_at.is_some_and(|t| t <= now) {
            self.must_ack |= self.unacked > 0;
            self.delack_at = None;
        }
        if !(self.must_ack || self.unacked >= 2) {
            if self.unacked > 0 && self.delack_at.is_none() {
                self.delack_at = Some(now + DELAYED_ACK);
            }
            return None;
        }
        self.must_ack = false;
        self.unacked = 0;
        self.delack_at = None;
        Some((self.rcv_next, self.sack_blocks()))
    }

    fn sack_blocks(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &n in &self.ooo {
            match ranges.last_mut() {
                Some(r) if r.1 == n => r.1 = n + 1,
                _ => ranges.push((n, n + 1)),
            }
        }
        ranges.reverse();
        if let Some(l) = self.latest {
            if let Some(i) = ranges.iter().position(|r| r.0 <= l && l < r.1) {
                let r = ranges.remove(i);
                ranges.insert(0, r);
            }
        }
        ranges.truncate(SACK_BLOCKS);
        ranges
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.delack_at
    }

    /// Segments delivered in order by `t`.
    pub fn delivered_at(&self, t: Instant) -> u64 {
        match self.progress.partition_point(|p| p.0 <= t) {
            0 => 0,
            i => self.progress[i - 1].1,
        }
    }
}

/// Encodes an acknowledgement into an [`ACK_LEN`]-byte packet (bytes 0..17 are the harness's).
pub fn encode_ack(packet: &mut [u8], cum: u64, sacks: &[(u64, u64)]) {
    packet[16] = ACK_MARK;
    packet[17..25].copy_from_slice(&cum.to_be_bytes());
    packet[25] = sacks.len() as u8;
    for (i, &(a, b)) in sacks.iter().enumerate() {
        let at = 26 + i * 12;
        packet[at..at + 8].copy_from_slice(&a.to_be_bytes());
        packet[at + 8..at + 12].copy_from_slice(&((b - a) as u32).to_be_bytes());
    }
}

pub fn decode_ack(packet: &[u8]) -> (u64, Vec<(u64, u64)>) {
    let cum = u64::from_be_bytes(packet[17..25].try_into().unwrap());
    let n = packet[25] as usize;
    let sacks = (0..n)
        .map(|i| {
            let at = 26 + i * 12;
            let a = u64::from_be_bytes(packet[at..at + 8].try_into().unwrap());
            let len = u32::from_be_bytes(packet[at + 8..at + 12].try_into().unwrap());
            (a, a + u64::from(len))
        })
        .collect();
    (cum, sacks)
}

/// One flow: the sender on one side, the receiver on the other.
#[derive(Debug)]
pub struct TcpFlow {
    pub sender: TcpSender,
    pub receiver: TcpReceiver,
    /// Segments the tunnel refused (congestion or no link).
    pub refused: u64,
}

impl TcpFlow {
    /// Goodput in Mbit/s of in-order data (full segments) delivered in `[from, to)`.
    pub fn goodput(&self, from: Instant, to: Instant) -> f64 {
        let segs = self.receiver.delivered_at(to) - self.receiver.delivered_at(from);
        segs as f64 * SEGMENT as f64 * 8.0 / (to - from).as_secs_f64() / 1e6
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let start =
            (self.sender.next == 0 && self.sender.start < self.sender.stop).then_some(self.sender.start);
        [start, self.sender.poll_timeout(), self.receiver.poll_timeout()].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_micros(v * 1000)
    }

    /// A fixed-RTT pipe with a bottleneck of `rate` segments per ms and a drop-tail queue.
    #[test]
    fn fills_a_simple_path_and_backs_off_on_loss() {
        let mut s = TcpSender::new(ms(0), ms(20_000));
        let mut r = TcpReceiver::default();
        // 10 segments/ms ≈ 112 Mbit/s, 20 ms RTT, 100-segment queue.
        let mut wire: Vec<(Instant, u64)> = Vec::new();
        type Ack = (Instant, u64, Vec<(u64, u64)>);
        let mut acks: Vec<Ack> = Vec::new();
        let mut busy = ms(0);
        for t in 0..10_000u64 {
            let now = ms(t);
            while let Some(n) = s.poll_send(now) {
                let start = busy.max(now);
                if (start - now).as_micros() > 10_000 {
                    continue; // tail drop: 10 ms of queue
                }
                busy = start + Duration::from_micros(100);
                wire.push((busy + Duration::from_millis(10), n));
            }
            wire.retain(|&(at, n)| {
                if at <= now {
                    r.on_segment(now, n);
                    false
                } else {
                    true
                }
            });
            if let Some((cum, sacks)) = r.poll_ack(now) {
                acks.push((now + Duration::from_millis(10), cum, sacks));
            }
            acks.retain(|(at, cum, sacks)| {
                if *at <= now {
                    s.on_ack(now, *cum, sacks);
                    false
                } else {
                    true
                }
            });
            s.on_timeout(now);
        }
        let rate = (r.delivered_at(ms(10_000)) - r.delivered_at(ms(5_000))) as f64 / 5000.0;
        assert!(rate > 8.0, "{rate} segments/ms of 10");
        assert!(s.stats.reductions > 0, "the queue overflowed and cubic backed off");
        assert_eq!(s.stats.timeouts, 0, "{:?} {rate}", s.stats);
    }
}
