//! Data packets waiting for room on the links, one queue per flow: the tunnel's own buffer.
//!
//! The arrival scheduler keeps each link's queue short ([`super::arrival`]): a link's bottleneck
//! buffer is someone else's and may be small, and what overflows it is lost. But a TCP flow
//! through the tunnel sends in bursts — a window's worth at once when the reorder buffer
//! releases what waited for a slow link, and TCP's acknowledgements of it all arrive together —
//! and a router that drops every burst beyond a few milliseconds of its links makes the flow
//! back off long before the links are full. So a packet that finds every link at its limit
//! waits here and goes out as soon as a link has room.
//!
//! One first-in first-out queue made a call wait behind an upload's whole burst (73 ms at the
//! median beside a saturating upload, issue 13). So the queue is flow-fair in the manner of
//! FQ-CoDel (RFC 8290): packets are hashed to [`FLOWS`] queues ([`super::flow`]), served by
//! deficit round-robin a [`quantum`](FairQueue::new) of bytes at a time, and a flow that had
//! nothing queued is *new* and served before the old ones — a voice or game flow, which never
//! builds a queue, is always new and so never waits behind bulk. Each queue keeps its own
//! standing delay near [`CODEL_TARGET`] with CoDel (RFC 8289): a burst passes, a queue that
//! stays above the target for an [`CODEL_INTERVAL`] loses packets at the rate of CoDel's control
//! law, which tells a bulk flow's sender to slow down without a fixed cut. When the buffers or
//! the tunnel's byte limit run out, the fattest flow loses its oldest packet (RFC 8290, §4.1),
//! never the packet of a flow that has little queued.
//!
//! Storage is a pool of `capacity` buffers allocated once, each flow a list threaded through
//! them; free buffers are reused last in, first out, so only the buffers in use at the peak are
//! ever resident. Nothing here allocates after [`FairQueue::new`].

use crate::proto::time::{Duration, Instant, mul_div};
use std::collections::VecDeque;

/// Queues of the flow table: more than the flows a home or branch office has busy at once,
/// few enough to scan when the fattest is needed.
pub const FLOWS: usize = 64;
/// Buffers of the queue: at 100 Mbit/s of full-size packets, 57 ms; at 500 Mbit/s, 11 ms.
pub const SEND_QUEUE_SLOTS: usize = 512;
/// Longest the whole queue may be expected to take to drain at the links' rates; beyond it, the
/// fattest flow loses a packet. Half the bandwidth-delay product of a 80 ms path: what a
/// single CUBIC flow needs to keep the path full after its back-off (RFC 9438, §4.6), and what
/// the simulator measured (`tests/sim/unequal.rs`: a 20 ms limit left 90% of the loss-free rate
/// on a bond with a lossy link, 40 ms 93%).
pub const SEND_QUEUE_LIMIT: Duration = Duration::from_millis(40);
/// A packet that waited this long (the links got slower while it waited) is dropped rather
/// than sent late, whatever CoDel thinks.
pub const SEND_QUEUE_MAX_WAIT: Duration = Duration::from_millis(100);
/// CoDel's target standing delay of one flow's queue, 5 % of the interval as RFC 8289 §4.4
/// advises (its 5 ms go with a 100 ms interval); the links' own queues,
/// [`super::arrival::QUEUE_LIMIT`], come on top.
pub const CODEL_TARGET: Duration = Duration::from_millis(15);
/// CoDel's interval: a round trip of the paths the tunnel's flows take (RFC 8289 §4.3), which
/// include the receiver's reorder hold (the slowest link's latency) on top of the Internet's.
/// Measured by setting both constants and running `cargo test --release --test sim unequal::
/// -- --nocapture` (`tests/sim/unequal.rs`, one CUBIC flow): RFC 8289's 5/100 ms
/// cost the flow whose fast link drops from 40 to 10 Mbit/s two more seconds to recover;
/// 5/200 ms took 3.5 % of the goodput on 40/25/15 Mbit/s and 8 % on 50/50 Mbit/s 55 ms apart
/// (10/200 ms: 2 % and 4.5 %); 15/300 ms costs nothing measurable there (100 % and 99 %) and
/// still keeps a bulk flow's standing queue in the tunnel at a third of the 40 ms cut it had.
pub const CODEL_INTERVAL: Duration = Duration::from_millis(300);

const NIL: u16 = u16::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    len: u16,
    next: u16,
    since: Instant,
}

/// CoDel's state for one queue (RFC 8289, §5).
#[derive(Debug, Clone, Copy, Default)]
struct Codel {
    /// When the sojourn time went above target, plus an interval; `None` while below.
    first_above: Option<Instant>,
    drop_next: Instant,
    count: u32,
    last_count: u32,
    dropping: bool,
}

impl Codel {
    /// Whether the head may be dropped: the queue has stood `above` target (with more than
    /// one packet's worth queued) for an interval.
    fn ok_to_drop(&mut self, now: Instant, above: bool) -> bool {
        if !above {
            self.first_above = None;
            return false;
        }
        match self.first_above {
            None => {
                self.first_above = Some(now + CODEL_INTERVAL);
                false
            }
            Some(t) => now >= t,
        }
    }

    /// Whether to drop the head now, and CoDel's state moved on.
    fn drop_head(&mut self, now: Instant, above: bool) -> bool {
        let ok = self.ok_to_drop(now, above);
        if self.dropping {
            if !ok {
                self.dropping = false;
                return false;
            }
            if now < self.drop_next {
                return false;
            }
            self.count = self.count.saturating_add(1);
            self.drop_next = control_law(self.drop_next, self.count);
            return true;
        }
        if !ok {
            return false;
        }
        self.dropping = true;
        // Resume near the last drop rate if the queue was dropping until recently (§5.4).
        let delta = self.count.wrapping_sub(self.last_count);
        let recently = now < self.drop_next + Duration::from_micros(16 * CODEL_INTERVAL.as_micros());
        self.count = if delta > 1 && recently { delta } else { 1 };
        self.drop_next = control_law(now, self.count);
        self.last_count = self.count;
        true
    }
}

/// The next drop: an interval divided by the square root of the drops so far (RFC 8289, §5.5).
fn control_law(t: Instant, count: u32) -> Instant {
    // sqrt(count << 20) is sqrt(count) in 1/1024ths: no floating point on the routers.
    let root = isqrt(u64::from(count.max(1)) << 20).max(1);
    t + Duration::from_micros(mul_div(CODEL_INTERVAL.as_micros(), 1024, root))
}

fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    // Newton's method from above converges in a few steps for these magnitudes.
    let mut x = 1u64 << (64 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    head: u16,
    tail: u16,
    bytes: u32,
    deficit: i32,
    /// In the new or the old list.
    listed: bool,
    codel: Codel,
}

const IDLE: Flow = Flow {
    head: NIL,
    tail: NIL,
    bytes: 0,
    deficit: 0,
    listed: false,
    codel: Codel { first_above: None, drop_next: Instant::ZERO, count: 0, last_count: 0, dropping: false },
};

/// Why a packet was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Longer than a buffer.
    TooBig,
    /// The queue is full and the packet's own flow is the fattest.
    Full,
}

/// Counters of the queue since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FqStats {
    /// Dropped by CoDel for a standing queue.
    pub codel_drops: u64,
    /// Dropped from the fattest flow when the queue was full.
    pub overflow_drops: u64,
    /// Dropped after waiting longer than [`SEND_QUEUE_MAX_WAIT`].
    pub expired: u64,
    /// Flows served as new (they had nothing queued).
    pub new_flows: u64,
}

#[derive(Debug)]
pub struct FairQueue {
    capacity: usize,
    slot_len: usize,
    quantum: i32,
    /// CoDel's target now ([`FairQueue::set_target`]).
    target: Duration,
    storage: Vec<u8>,
    slots: Vec<Slot>,
    free: Vec<u16>,
    /// Per flow (empty until the first packet, as the buffers).
    flows: Vec<Flow>,
    new_flows: VecDeque<u8>,
    old_flows: VecDeque<u8>,
    /// The flow whose head [`FairQueue::peek`] showed last, for [`FairQueue::pop`].
    current: Option<u8>,
    packets: usize,
    bytes: u64,
    /// The most buffers in use at once.
    peak: usize,
    /// Drops not yet taken by [`FairQueue::take_drops`].
    unreported: u64,
    stats: FqStats,
    /// Longest sojourn of a packet sent in this and the previous second.
    sojourn: [Duration; 2],
    sojourn_epoch: u64,
}

impl FairQueue {
    /// A queue of `capacity` packets of up to `slot_len` bytes, allocated with the first packet
    /// queued and never again (a server's idle sites keep none). A flow's turn is `slot_len`
    /// bytes: one full packet (RFC 8290, §4.2).
    pub fn new(capacity: usize, slot_len: usize) -> Self {
        assert!((1..u16::MAX as usize).contains(&capacity) && slot_len <= u16::MAX as usize);
        FairQueue {
            capacity,
            slot_len,
            quantum: slot_len as i32,
            target: CODEL_TARGET,
            storage: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            flows: Vec::new(),
            new_flows: VecDeque::with_capacity(FLOWS),
            old_flows: VecDeque::with_capacity(FLOWS),
            current: None,
            packets: 0,
            bytes: 0,
            peak: 0,
            unreported: 0,
            stats: FqStats::default(),
            sojourn: [Duration::ZERO; 2],
            sojourn_epoch: 0,
        }
    }

    /// Allocates the buffers and the flows, once (out of line: the send path keeps only the
    /// test).
    #[cold]
    #[inline(never)]
    fn allocate(&mut self) {
        self.storage = vec![0; self.capacity * self.slot_len];
        self.slots = vec![Slot { len: 0, next: NIL, since: Instant::ZERO }; self.capacity];
        self.free = (0..self.capacity as u16).rev().collect();
        self.flows = vec![IDLE; FLOWS];
    }

    /// CoDel's target from now on: [`CODEL_TARGET`], plus whatever queueing the links were
    /// asked to shed (bulk that waits here rather than on a link, while a call runs).
    pub fn set_target(&mut self, target: Duration) {
        self.target = target;
    }

    /// The queue of a flow hash.
    pub fn flow_of(hash: u32) -> usize {
        ((u64::from(hash) * FLOWS as u64) >> 32) as usize
    }

    /// Whether `flow` has packets waiting (a new one of it must wait behind them).
    pub fn has_queued(&self, flow: usize) -> bool {
        self.flows.get(flow).is_some_and(|f| f.head != NIL)
    }

    /// Appends `packet` to `flow`'s queue. Past `limit_bytes` queued in all, or with no free
    /// buffer, the fattest flow loses its oldest packets to make room — unless it is `flow`.
    pub fn push(
        &mut self,
        now: Instant,
        flow: usize,
        packet: &[u8],
        limit_bytes: u64,
    ) -> Result<(), Refused> {
        if packet.len() > self.slot_len {
            return Err(Refused::TooBig);
        }
        if self.slots.is_empty() {
            self.allocate();
        }
        while self.free.is_empty() || self.bytes + packet.len() as u64 > limit_bytes {
            match self.fattest() {
                Some(fat) if fat != flow => {
                    self.drop_head(fat);
                    self.stats.overflow_drops += 1;
                }
                _ => return Err(Refused::Full),
            }
        }
        let Some(slot) = self.free.pop() else { return Err(Refused::Full) };
        let start = usize::from(slot) * self.slot_len;
        self.storage[start..start + packet.len()].copy_from_slice(packet);
        self.slots[usize::from(slot)] = Slot { len: packet.len() as u16, next: NIL, since: now };
        let f = &mut self.flows[flow];
        if f.tail == NIL {
            f.head = slot;
        } else {
            self.slots[usize::from(f.tail)].next = slot;
        }
        f.tail = slot;
        f.bytes += packet.len() as u32;
        if !f.listed {
            f.listed = true;
            f.deficit = self.quantum;
            self.new_flows.push_back(flow as u8);
            self.stats.new_flows += 1;
        }
        self.packets += 1;
        self.bytes += packet.len() as u64;
        self.peak = self.peak.max(self.packets);
        Ok(())
    }

    /// The packet to send next and when it was queued: new flows first, then the old ones in
    /// turn; packets CoDel or age condemn are dropped on the way.
    pub fn peek(&mut self, now: Instant) -> Option<(&[u8], Instant)> {
        loop {
            let (from_new, flow) = match self.new_flows.front() {
                Some(&f) => (true, f),
                None => (false, *self.old_flows.front()?),
            };
            let i = usize::from(flow);
            if self.flows[i].deficit <= 0 {
                self.flows[i].deficit += self.quantum;
                self.pop_list(from_new);
                self.old_flows.push_back(flow);
                continue;
            }
            if self.flows[i].head == NIL {
                // Empty: a new flow goes to the back of the old ones once, so that a flow
                // cannot stay new by sending one packet per turn (RFC 8290, §4.2).
                self.pop_list(from_new);
                if from_new && !self.old_flows.is_empty() {
                    self.old_flows.push_back(flow);
                } else {
                    self.flows[i].listed = false;
                }
                continue;
            }
            let head = self.slots[usize::from(self.flows[i].head)];
            let sojourn = now.saturating_since(head.since);
            if sojourn > SEND_QUEUE_MAX_WAIT {
                self.drop_head(i);
                self.stats.expired += 1;
                continue;
            }
            let f = &mut self.flows[i];
            let above = sojourn >= self.target && f.bytes > self.quantum as u32;
            if f.codel.drop_head(now, above) {
                self.drop_head(i);
                self.stats.codel_drops += 1;
                continue;
            }
            self.current = Some(flow);
            let start = usize::from(self.flows[i].head) * self.slot_len;
            return Some((&self.storage[start..start + usize::from(head.len)], head.since));
        }
    }

    /// Removes the packet [`FairQueue::peek`] showed last.
    pub fn pop(&mut self, now: Instant) {
        let Some(flow) = self.current.take() else { return };
        let flow = usize::from(flow);
        let Some((len, since)) = self.unlink_head(flow) else { return };
        self.flows[flow].deficit -= i32::from(len);
        let epoch = now.as_micros() / 1_000_000;
        if epoch != self.sojourn_epoch {
            self.sojourn = [
                if epoch == self.sojourn_epoch + 1 { self.sojourn[1] } else { Duration::ZERO },
                Duration::ZERO,
            ];
            self.sojourn_epoch = epoch;
        }
        self.sojourn[1] = self.sojourn[1].max(now.saturating_since(since));
    }

    fn pop_list(&mut self, from_new: bool) {
        if from_new {
            self.new_flows.pop_front();
        } else {
            self.old_flows.pop_front();
        }
    }

    /// Takes the head of `flow` out of its queue; `None` if it is empty.
    fn unlink_head(&mut self, flow: usize) -> Option<(u16, Instant)> {
        let f = &mut self.flows[flow];
        if f.head == NIL {
            return None;
        }
        let slot = f.head;
        let s = self.slots[usize::from(slot)];
        f.head = s.next;
        if f.head == NIL {
            f.tail = NIL;
        }
        f.bytes -= u32::from(s.len);
        self.packets -= 1;
        self.bytes -= u64::from(s.len);
        self.free.push(slot);
        if self.current == Some(flow as u8) {
            self.current = None;
        }
        Some((s.len, s.since))
    }

    fn drop_head(&mut self, flow: usize) {
        if self.unlink_head(flow).is_some() {
            self.unreported += 1;
        }
    }

    fn fattest(&self) -> Option<usize> {
        (0..FLOWS).filter(|&i| self.flows[i].bytes > 0).max_by_key(|&i| self.flows[i].bytes)
    }

    /// Packets dropped inside the queue since the last call (the tunnel counts them as
    /// congestion drops).
    pub fn take_drops(&mut self) -> u64 {
        std::mem::take(&mut self.unreported)
    }

    /// Drops everything; returns how many packets that was.
    pub fn clear(&mut self) -> usize {
        let n = self.packets;
        for flow in 0..self.flows.len() {
            while self.unlink_head(flow).is_some() {}
            self.flows[flow] = IDLE;
        }
        self.new_flows.clear();
        self.old_flows.clear();
        self.current = None;
        n
    }

    pub fn len(&self) -> usize {
        self.packets
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// The most packets ever queued at once: the pool's memory is touched only that far.
    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Flows with packets waiting.
    pub fn active_flows(&self) -> usize {
        self.flows.iter().filter(|f| f.head != NIL).count()
    }

    /// The longest a packet sent from the queue waited, over the last second or two.
    pub fn recent_sojourn(&self, now: Instant) -> Duration {
        match (now.as_micros() / 1_000_000).checked_sub(self.sojourn_epoch) {
            Some(0) => self.sojourn[0].max(self.sojourn[1]),
            Some(1) => self.sojourn[1],
            _ => Duration::ZERO,
        }
    }

    pub fn stats(&self) -> &FqStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * MS)
    }

    /// Sends what the queue offers, at most `n` packets; returns the flows in sending order.
    fn drain(q: &mut FairQueue, now: Instant, n: usize) -> Vec<u8> {
        let mut order = Vec::new();
        while order.len() < n {
            let Some((p, _)) = q.peek(now) else { break };
            order.push(p[0]);
            q.pop(now);
        }
        order
    }

    #[test]
    fn a_new_flow_overtakes_a_bulk_backlog_and_bulk_flows_share() {
        let mut q = FairQueue::new(64, 1500);
        for _ in 0..20 {
            q.push(at(0), 1, &[1; 1500], u64::MAX).unwrap();
            q.push(at(0), 2, &[2; 1500], u64::MAX).unwrap();
        }
        // Both bulk flows have had a turn...
        assert_eq!(drain(&mut q, at(1), 2), [1, 2]);
        // ... when a voice packet arrives: it goes next.
        q.push(at(1), 3, &[3; 200], u64::MAX).unwrap();
        assert_eq!(drain(&mut q, at(1), 1), [3]);
        let rest = drain(&mut q, at(1), usize::MAX);
        assert_eq!(rest.len(), 38);
        assert!(rest.windows(2).all(|w| w[0] != w[1]), "bulk flows alternate: {rest:?}");
        assert_eq!(q.stats().new_flows, 3);
        assert!(q.is_empty() && q.bytes() == 0 && q.active_flows() == 0);
    }

    #[test]
    fn deficit_round_robin_shares_bytes_not_packets() {
        let mut q = FairQueue::new(400, 1500);
        for _ in 0..100 {
            q.push(at(0), 1, &[1; 1500], u64::MAX).unwrap();
        }
        for _ in 0..300 {
            q.push(at(0), 2, &[2; 500], u64::MAX).unwrap();
        }
        let mut bytes = [0usize; 3];
        for _ in 0..200 {
            let (p, _) = q.peek(at(1)).unwrap();
            bytes[usize::from(p[0])] += p.len();
            q.pop(at(1));
        }
        let share = bytes[1] as f64 / (bytes[1] + bytes[2]) as f64;
        assert!((share - 0.5).abs() < 0.02, "{bytes:?}");
    }

    #[test]
    fn a_full_queue_takes_from_the_fattest_flow_never_from_a_thin_one() {
        let mut q = FairQueue::new(8, 100);
        for _ in 0..8 {
            q.push(at(0), 1, &[1; 100], u64::MAX).unwrap();
        }
        assert_eq!(q.push(at(0), 1, &[1; 100], u64::MAX), Err(Refused::Full), "its own flow");
        q.push(at(0), 2, &[2; 100], u64::MAX).unwrap();
        assert_eq!(q.take_drops(), 1);
        assert_eq!(q.stats().overflow_drops, 1);
        // The byte limit works the same way.
        q.push(at(0), 3, &[3; 100], 800).unwrap();
        assert_eq!(q.bytes(), 800);
        assert_eq!(drain(&mut q, at(0), usize::MAX).iter().filter(|&&f| f == 1).count(), 6);
        assert_eq!(q.push(at(0), 1, &[0; 101], u64::MAX), Err(Refused::TooBig));
    }

    #[test]
    fn codel_lets_a_burst_through_and_thins_a_standing_queue() {
        let mut q = FairQueue::new(512, 1500);
        // A burst of 50 ms that drains within an interval: nothing dropped.
        for _ in 0..50 {
            q.push(at(0), 1, &[1; 1500], u64::MAX).unwrap();
        }
        for t in 0..50 {
            q.peek(at(t)).unwrap();
            q.pop(at(t));
        }
        assert_eq!(q.stats().codel_drops, 0);
        // A standing queue of ~20 ms for a second: CoDel drops, and more than once.
        let mut t = 100;
        for _ in 0..20 {
            q.push(at(t), 1, &[1; 1500], u64::MAX).unwrap();
        }
        while t < 1100 {
            q.push(at(t), 1, &[1; 1500], u64::MAX).unwrap();
            if q.peek(at(t)).is_some() {
                q.pop(at(t));
            }
            t += 1;
        }
        let drops = q.stats().codel_drops;
        assert!((2..=40).contains(&drops), "{drops}");
        assert!(q.recent_sojourn(at(t)) >= CODEL_TARGET);
    }

    #[test]
    fn packets_waiting_too_long_expire() {
        let mut q = FairQueue::new(4, 100);
        q.push(at(0), 5, &[5; 10], u64::MAX).unwrap();
        assert!(q.peek(at(101)).is_none());
        assert_eq!(q.stats().expired, 1);
        assert_eq!(q.take_drops(), 1);
        assert_eq!(q.clear(), 0);
    }

    #[test]
    fn control_law_spaces_drops_by_the_inverse_square_root() {
        assert_eq!(control_law(at(0), 1) - at(0), CODEL_INTERVAL);
        assert_eq!(control_law(at(0), 4) - at(0), CODEL_INTERVAL.div(2));
        let two = (control_law(at(0), 2) - at(0)).as_micros() as f64;
        let want = CODEL_INTERVAL.as_micros() as f64 / 2f64.sqrt();
        assert!((two / want - 1.0).abs() < 0.002, "{two} vs {want}");
        assert_eq!(
            [isqrt(0), isqrt(1), isqrt(15), isqrt(16), isqrt(u64::MAX)],
            [0, 1, 3, 4, u32::MAX as u64]
        );
    }

    #[test]
    fn flow_hashes_spread_over_the_table() {
        let mut used = [false; FLOWS];
        for h in 0..FLOWS as u32 {
            used[FairQueue::flow_of(h.wrapping_mul(0x9e37_79b9))] = true;
        }
        assert!(used.iter().filter(|&&u| u).count() > FLOWS / 2);
    }
}
