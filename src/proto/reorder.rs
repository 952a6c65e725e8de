//! Puts data packets that arrived over links of different delay back in tunnel order.
//!
//! Packets carry a tunnel-wide sequence number (u32, compared with wrapping arithmetic, RFC
//! 1982 style). The buffer tracks a window `[next, next + capacity)` in a fixed ring; packets are
//! copied into a fixed pool of `capacity` buffers allocated once.
//!
//! * A packet that is exactly the next one, with nothing queued before it, is not copied: the
//!   caller delivers it straight from its own buffer ([`Arrival::Deliver`]).
//! * A later packet is held; one already held is dropped as a duplicate.
//! * A packet older than `next` arrived after its place was given up on ([`Arrival::Behind`]):
//!   the caller delivers it at once, out of order, which TCP's SACK absorbs — dropping it would
//!   be a loss. The buffer cannot tell such a packet from a copy of one already delivered; the
//!   caller's exactly-once window ([`super::delivered`]) does, before offering it here.
//! * Each held packet gets a deadline when it arrives: by then, whatever was sent before it has
//!   arrived or never will (the caller computes how long that is for the link it came on). A
//!   hole is skipped as soon as a packet behind it reaches its deadline
//!   ([`ReorderBuffer::release_expired`]). The deadline belongs to the packet, not to the last
//!   arrival: the C original re-armed its timer on every packet, so under load a hole was only
//!   skipped when the buffer overflowed and packets were delivered up to 1.25 s late.
//! * A packet too far ahead for the window pushes the window forward, releasing what it passes.
//! * A packet may also be given a **hold**: it is not delivered before then even in order. The
//!   caller uses it to deliver bulk packets from every link at the latency of the slowest one,
//!   so that the tunnel's round trip does not depend on which links a flow's rate needs
//!   (`Tunnel::update_reorder_wait`).
//! * A *sparse* packet ([`super::sparse`]) is never held: [`ReorderBuffer::pass`] delivers it
//!   at once and leaves a mark in its place, so the sequence goes on past it without waiting.
//!
//! Released packets queue in order until the caller drains them with [`ReorderBuffer::pop`].

use super::time::{Duration, Instant};
use std::collections::VecDeque;

const NO_BUFFER: u16 = u16::MAX;
/// The place of a sparse packet delivered out of turn ([`ReorderBuffer::pass`]).
const PASSED: u16 = u16::MAX - 1;

/// The largest supported number of slots.
pub const MAX_CAPACITY: usize = PASSED as usize;

#[derive(Debug, Clone, Copy)]
struct Entry {
    buffer: u16,
    seq: u32,
    arrived: Instant,
    /// Give up on the holes before it at this time.
    deadline: Instant,
    /// Not delivered before this time, even in order.
    hold_until: Instant,
}

const EMPTY: Entry = Entry {
    buffer: NO_BUFFER,
    seq: 0,
    arrived: Instant::ZERO,
    deadline: Instant::ZERO,
    hold_until: Instant::ZERO,
};

impl Entry {
    /// A held packet (not a hole, not a passed mark).
    fn is_packet(&self) -> bool {
        self.buffer < PASSED
    }
}

/// What happened to an arriving packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// In order: deliver it now, from your own buffer.
    Deliver,
    /// Copied and held until the packets before it arrive or are given up on.
    Held,
    /// Older than the window: its place was given up on. Deliver it now (out of order), from
    /// your own buffer, unless it is a copy of one delivered before.
    Behind,
    /// Already held: dropped.
    Duplicate,
    /// Every buffer is in use (the caller is not draining [`ReorderBuffer::pop`]): dropped.
    Full,
    /// Longer than a slot: dropped.
    TooBig,
}

/// Counters, for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Delivered without waiting.
    pub in_order: u64,
    /// Held, then delivered.
    pub reordered: u64,
    /// Of those, held in order for the latency of a slower link.
    pub equalized: u64,
    /// Sparse packets delivered without waiting.
    pub passed: u64,
    /// Arrived after their place was given up on (handed back to be delivered out of order).
    pub late: u64,
    pub duplicate: u64,
    pub full: u64,
    /// Sequence numbers given up on (holes skipped by timeout or window overflow).
    pub skipped: u64,
    /// Total and maximum time packets spent held, in microseconds.
    pub wait_total_us: u64,
    pub wait_max_us: u64,
    /// How far past its deadline a packet was released at worst: zero when the caller runs
    /// `release_expired` at [`ReorderBuffer::deadline`].
    pub overdue_max_us: u64,
}

#[derive(Debug)]
pub struct ReorderBuffer {
    capacity: u32,
    slot_len: usize,
    /// `capacity * slot_len` bytes: the packet pool.
    storage: Vec<u8>,
    /// Length of the packet in each pool buffer.
    lens: Vec<u16>,
    /// Pool buffers not in use.
    free: Vec<u16>,
    /// Held packets by `seq % capacity`.
    window: Vec<Entry>,
    /// Pool buffers released in order, waiting for `pop`, with their arrival time.
    ready: VecDeque<(u16, Instant)>,
    /// The next sequence number to deliver; `None` until the first packet (or a
    /// [`ReorderBuffer::restart`] that says where the sequence starts).
    next: Option<u32>,
    /// The highest sequence number held (meaningful while something is held).
    highest: u32,
    /// The highest sequence number offered to [`ReorderBuffer::arrive`].
    newest_bulk: Option<u32>,
    held: usize,
    /// The held packet with the earliest deadline: (sequence, deadline).
    first_due: Option<(u32, Instant)>,
    pub stats: ReorderStats,
    /// The most buffers in use at once.
    peak: usize,
}

fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl ReorderBuffer {
    /// A buffer of `capacity` slots of `slot_len` bytes each, allocated with the first packet
    /// and never again (a server's idle sites keep none).
    pub fn new(capacity: usize, slot_len: usize) -> Self {
        assert!((1..=MAX_CAPACITY).contains(&capacity), "reorder capacity out of range");
        assert!(slot_len <= u16::MAX as usize);
        ReorderBuffer {
            capacity: capacity as u32,
            slot_len,
            storage: Vec::new(),
            lens: Vec::new(),
            free: Vec::new(),
            window: Vec::new(),
            ready: VecDeque::new(),
            next: None,
            highest: 0,
            newest_bulk: None,
            held: 0,
            first_due: None,
            stats: ReorderStats::default(),
            peak: 0,
        }
    }

    /// Allocates the buffers and the window, once (out of line: the receive path keeps only
    /// the test).
    #[cold]
    #[inline(never)]
    fn allocate(&mut self) {
        {
            let capacity = self.capacity as usize;
            self.storage = vec![0; capacity * self.slot_len];
            self.lens = vec![0; capacity];
            self.free = (0..capacity as u16).rev().collect();
            self.window = vec![EMPTY; capacity];
            self.ready = VecDeque::with_capacity(capacity);
        }
    }

    /// The most packet buffers ever in use at once: the pool's memory is touched only that far.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Bytes of one buffer.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    fn slot(&self, seq: u32) -> usize {
        (seq % self.capacity) as usize
    }

    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The next sequence number expected, if known.
    pub fn next_expected(&self) -> Option<u32> {
        self.next
    }

    /// Continues a sequence another buffer was following (the buffer was resized).
    pub fn resume_at(&mut self, next: Option<u32>) {
        self.next = next;
    }

    /// Packets held or released and not yet popped.
    pub fn len(&self) -> usize {
        self.held + self.ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where `seq` falls: `Err` if it is behind the window (counted as late), else the window
    /// moved forward far enough to hold it.
    fn place(&mut self, seq: u32) -> Result<u32, Arrival> {
        let next = *self.next.get_or_insert(seq);
        let d = seq_diff(seq, next);
        if d < 0 {
            self.stats.late += 1;
            return Err(Arrival::Behind);
        }
        if d as u32 >= self.capacity {
            self.advance_to(seq.wrapping_sub(self.capacity - 1));
        }
        Ok(self.next.expect("set above"))
    }

    /// A sparse packet `seq`: deliver it now, whatever is missing before it; the sequence goes
    /// on past its place.
    pub fn pass(&mut self, seq: u32) -> Arrival {
        if self.window.is_empty() {
            self.allocate();
        }
        let next = match self.place(seq) {
            Ok(next) => next,
            Err(a) => return a,
        };
        let slot = self.slot(seq);
        if self.window[slot].buffer != NO_BUFFER {
            self.stats.duplicate += 1;
            return Arrival::Duplicate;
        }
        self.stats.passed += 1;
        if seq == next {
            self.next = Some(next.wrapping_add(1));
        } else {
            self.window[slot] = Entry { buffer: PASSED, seq, ..EMPTY };
            if self.held == 0 || seq_diff(seq, self.highest) > 0 {
                self.highest = seq;
            }
            self.held += 1;
        }
        Arrival::Deliver
    }

    /// Offers packet `seq`, whose bytes are `payload`. If it must wait for packets before it,
    /// it waits at most `max_wait`; in order or not, it is not delivered before `hold` passed.
    pub fn arrive(
        &mut self,
        now: Instant,
        seq: u32,
        payload: &[u8],
        max_wait: Duration,
        hold: Duration,
    ) -> Arrival {
        if payload.len() > self.slot_len {
            return Arrival::TooBig;
        }
        if self.window.is_empty() {
            self.allocate();
        }
        let next = match self.place(seq) {
            Ok(next) => next,
            Err(a) => return a,
        };
        // A packet that arrives after later ones (it fills a hole: a resent one, or one from a
        // slower link) is late already: its successors' holds keep the pace, it adds none.
        let hold = match self.newest_bulk {
            Some(n) if seq_diff(n, seq) > 0 => Duration::ZERO,
            _ => {
                self.newest_bulk = Some(seq);
                hold
            }
        };
        if seq == next && self.ready.is_empty() && hold == Duration::ZERO {
            self.next = Some(next.wrapping_add(1));
            self.stats.in_order += 1;
            return Arrival::Deliver;
        }
        let slot = self.slot(seq);
        if self.window[slot].buffer != NO_BUFFER {
            self.stats.duplicate += 1;
            return Arrival::Duplicate;
        }
        let Some(buffer) = self.free.pop() else {
            self.stats.full += 1;
            return Arrival::Full;
        };
        self.peak = self.peak.max(self.capacity as usize - self.free.len());
        let start = buffer as usize * self.slot_len;
        self.storage[start..start + payload.len()].copy_from_slice(payload);
        self.lens[buffer as usize] = payload.len() as u16;
        let deadline = now + max_wait.max(hold);
        self.window[slot] = Entry { buffer, seq, arrived: now, deadline, hold_until: now + hold };
        if self.held == 0 || seq_diff(seq, self.highest) > 0 {
            self.highest = seq;
        }
        self.held += 1;
        if self.first_due.is_none_or(|(_, d)| deadline < d) {
            self.first_due = Some((seq, deadline));
        }
        Arrival::Held
    }

    /// Moves `next` forward to `target`, releasing held packets it passes and skipping holes.
    fn advance_to(&mut self, target: u32) {
        let Some(mut next) = self.next else { return };
        let mut passed_first_due = false;
        while seq_diff(target, next) > 0 {
            let slot = self.slot(next);
            let e = self.window[slot];
            if e.buffer == NO_BUFFER {
                self.stats.skipped += 1;
            } else {
                if e.is_packet() {
                    self.ready.push_back((e.buffer, e.arrived));
                }
                self.window[slot] = EMPTY;
                self.held -= 1;
                passed_first_due |= self.first_due.is_some_and(|(s, _)| s == e.seq);
            }
            next = next.wrapping_add(1);
            if self.held == 0 {
                // Nothing else held: jump the rest of the way at once.
                self.stats.skipped += seq_diff(target, next).max(0) as u64;
                next = target;
            }
        }
        self.next = Some(next);
        if passed_first_due {
            self.find_first_due();
        }
    }

    fn find_first_due(&mut self) {
        self.first_due = None;
        let Some(next) = self.next else { return };
        if self.held == 0 {
            return;
        }
        let span = seq_diff(self.highest, next).max(0) as u32;
        for k in 0..=span {
            let e = self.window[self.slot(next.wrapping_add(k))];
            if e.is_packet() && self.first_due.is_none_or(|(_, d)| e.deadline < d) {
                self.first_due = Some((e.seq, e.deadline));
            }
        }
    }

    /// When something is next due: a held packet reaches its deadline, or the next one in
    /// order its hold. (Call after draining [`ReorderBuffer::pop`].)
    pub fn deadline(&self) -> Option<Instant> {
        let due = self.first_due.map(|(_, d)| d);
        let head = self
            .next
            .and_then(|n| self.window.get(self.slot(n)).copied())
            .filter(|e| e.is_packet() && self.ready.is_empty());
        match (due, head) {
            (Some(d), Some(h)) => Some(d.min(h.hold_until)),
            (d, h) => d.or(h.map(|h| h.hold_until)),
        }
    }

    /// Gives up on every hole in front of a packet that reached its deadline.
    pub fn release_expired(&mut self, now: Instant) {
        while let Some((seq, deadline)) = self.first_due {
            if deadline > now {
                break;
            }
            self.stats.overdue_max_us = self.stats.overdue_max_us.max((now - deadline).as_micros());
            self.advance_to(seq.wrapping_add(1));
        }
    }

    /// Copies the next deliverable packet into `out` and returns its length.
    pub fn pop(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let (buffer, arrived) = match self.ready.pop_front() {
            Some(r) => r,
            None => loop {
                let next = self.next?;
                let slot = self.slot(next);
                let e = *self.window.get(slot)?;
                if e.buffer == NO_BUFFER || (e.is_packet() && e.hold_until > now) {
                    return None;
                }
                self.window[slot] = EMPTY;
                self.held -= 1;
                self.next = Some(next.wrapping_add(1));
                if !e.is_packet() {
                    continue;
                }
                if self.first_due.is_some_and(|(s, _)| s == next) {
                    self.find_first_due();
                }
                if e.hold_until > e.arrived {
                    self.stats.equalized += 1;
                }
                break (e.buffer, e.arrived);
            },
        };
        let len = self.lens[buffer as usize] as usize;
        let start = buffer as usize * self.slot_len;
        out[..len].copy_from_slice(&self.storage[start..start + len]);
        self.free.push(buffer);
        let waited = (now - arrived).as_micros();
        self.stats.reordered += 1;
        self.stats.wait_total_us += waited;
        self.stats.wait_max_us = self.stats.wait_max_us.max(waited);
        Some(len)
    }

    /// A new peer process whose sequence numbers start at `first`: release everything held
    /// (in order), and expect `first` next.
    pub fn restart(&mut self, first: u32) {
        if self.held > 0 {
            self.advance_to(self.highest.wrapping_add(1));
        }
        self.next = Some(first);
        self.newest_bulk = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }
    const WAIT: Duration = Duration::from_millis(50);

    /// Offers `seq` and returns what the caller would deliver now, in order.
    fn offer(r: &mut ReorderBuffer, now: Instant, seq: u32) -> Vec<u32> {
        let mut out = Vec::new();
        if r.arrive(now, seq, &seq.to_be_bytes(), WAIT, Duration::ZERO) == Arrival::Deliver {
            out.push(seq);
        }
        out.extend(drain(r, now));
        out
    }

    fn drain(r: &mut ReorderBuffer, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16];
        while let Some(n) = r.pop(now, &mut buf) {
            out.push(u32::from_be_bytes(buf[..n].try_into().unwrap()));
        }
        out
    }

    #[test]
    fn in_order_packets_pass_straight_through() {
        let mut r = ReorderBuffer::new(8, 16);
        for s in 100..120 {
            assert_eq!(r.arrive(t(0), s, b"x", WAIT, Duration::ZERO), Arrival::Deliver);
        }
        assert_eq!(r.stats.in_order, 20);
        assert!(r.is_empty());
        assert_eq!(r.peak(), 0, "nothing held, no buffer touched");
    }

    #[test]
    fn fills_a_hole_and_releases_in_order() {
        let mut r = ReorderBuffer::new(8, 16);
        assert_eq!(offer(&mut r, t(0), 1), [1]);
        assert_eq!(offer(&mut r, t(1), 3), Vec::<u32>::new());
        assert_eq!(offer(&mut r, t(2), 4), Vec::<u32>::new());
        assert_eq!(offer(&mut r, t(3), 2), [2, 3, 4]);
        assert_eq!(offer(&mut r, t(4), 5), [5]);
        assert_eq!(r.peak(), 2, "3 and 4 were held at once");
    }

    #[test]
    fn sparse_packets_pass_holes_and_holds_and_the_sequence_goes_on_past_them() {
        let mut r = ReorderBuffer::new(16, 16);
        offer(&mut r, t(0), 0);
        offer(&mut r, t(1), 2); // hole at 1
        assert_eq!(r.pass(3), Arrival::Deliver, "a sparse packet does not wait for 1");
        assert_eq!(r.pass(3), Arrival::Duplicate);
        assert_eq!(offer(&mut r, t(2), 4), Vec::<u32>::new());
        // 1 arrives: 2 and 4 follow; 3 was delivered already and is not waited for.
        assert_eq!(offer(&mut r, t(3), 1), [1, 2, 4]);
        assert_eq!(r.pass(5), Arrival::Deliver);
        assert_eq!(offer(&mut r, t(4), 6), [6], "in order again");
        assert_eq!(r.pass(0), Arrival::Behind);
        assert_eq!(r.stats.passed, 2);
        assert_eq!(r.stats.skipped, 0);
        assert!(r.is_empty());
    }

    #[test]
    fn a_hold_delays_even_in_order_packets_and_keeps_the_order() {
        let mut r = ReorderBuffer::new(16, 16);
        let hold = Duration::from_millis(30);
        let arrive =
            |r: &mut ReorderBuffer, now, seq: u32, hold| r.arrive(now, seq, &seq.to_be_bytes(), WAIT, hold);
        assert_eq!(arrive(&mut r, t(0), 0, hold), Arrival::Held);
        assert_eq!(r.deadline(), Some(t(30)));
        assert_eq!(arrive(&mut r, t(5), 1, hold), Arrival::Held);
        // From the slowest link, no hold; but it is behind 0 and 1.
        assert_eq!(arrive(&mut r, t(20), 2, Duration::ZERO), Arrival::Held);
        assert_eq!(drain(&mut r, t(29)), Vec::<u32>::new());
        assert_eq!(drain(&mut r, t(30)), [0]);
        assert_eq!(r.deadline(), Some(t(35)));
        assert_eq!(drain(&mut r, t(35)), [1, 2]);
        assert_eq!(r.stats.equalized, 2);
        assert_eq!(r.deadline(), None);
        // A sparse packet overtakes a held one.
        assert_eq!(arrive(&mut r, t(40), 3, hold), Arrival::Held);
        assert_eq!(r.pass(4), Arrival::Deliver);
        assert_eq!(drain(&mut r, t(70)), [3]);
        assert!(r.is_empty());
    }

    #[test]
    fn late_packets_are_handed_back_and_duplicates_dropped() {
        let mut r = ReorderBuffer::new(8, 16);
        offer(&mut r, t(0), 10);
        assert_eq!(r.arrive(t(0), 10, b"a", WAIT, Duration::ZERO), Arrival::Behind);
        assert_eq!(r.arrive(t(0), 9, b"a", WAIT, Duration::ZERO), Arrival::Behind);
        assert_eq!(r.arrive(t(0), 12, b"a", WAIT, Duration::ZERO), Arrival::Held);
        assert_eq!(r.arrive(t(0), 12, b"a", WAIT, Duration::ZERO), Arrival::Duplicate);
        assert_eq!(r.stats.late, 2);
        assert_eq!(r.stats.duplicate, 1);
    }

    #[test]
    fn a_hole_is_skipped_when_the_oldest_packet_times_out_not_later() {
        let mut r = ReorderBuffer::new(16, 16);
        offer(&mut r, t(0), 0);
        offer(&mut r, t(10), 2); // hole at 1
        assert_eq!(r.deadline(), Some(t(60)));
        // Later arrivals must not push the deadline back.
        for (i, s) in (3..8).enumerate() {
            offer(&mut r, t(20 + i as u64 * 10), s);
        }
        assert_eq!(r.deadline(), Some(t(60)));
        r.release_expired(t(59));
        assert_eq!(drain(&mut r, t(59)), Vec::<u32>::new());
        r.release_expired(t(60));
        assert_eq!(drain(&mut r, t(60)), [2, 3, 4, 5, 6, 7]);
        assert_eq!(r.stats.skipped, 1);
        assert_eq!(r.stats.wait_max_us, 50_000);
        assert_eq!(
            r.arrive(t(61), 1, b"x", WAIT, Duration::ZERO),
            Arrival::Behind,
            "given up: out of order now"
        );
    }

    #[test]
    fn each_packet_keeps_the_deadline_it_arrived_with() {
        let mut r = ReorderBuffer::new(16, 16);
        offer(&mut r, t(0), 0);
        r.arrive(t(0), 3, &3u32.to_be_bytes(), Duration::from_millis(80), Duration::ZERO);
        r.arrive(t(10), 2, &2u32.to_be_bytes(), Duration::from_millis(20), Duration::ZERO);
        // 2 is due first (at 30), even though 3 arrived earlier: 1 is given up at 30, 2 goes,
        // and 3 is next in line, so it goes too.
        assert_eq!(r.deadline(), Some(t(30)));
        r.release_expired(t(30));
        assert_eq!(drain(&mut r, t(30)), [2, 3]);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn deadline_follows_the_next_oldest_after_release() {
        let mut r = ReorderBuffer::new(16, 16);
        offer(&mut r, t(0), 0);
        offer(&mut r, t(0), 2); // waits for 1
        offer(&mut r, t(30), 5); // waits for 3, 4
        r.release_expired(t(50));
        assert_eq!(drain(&mut r, t(50)), [2]);
        assert_eq!(r.deadline(), Some(t(80)));
        r.release_expired(t(80));
        assert_eq!(drain(&mut r, t(80)), [5]);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn a_packet_beyond_the_window_pushes_it_forward_in_order() {
        let mut r = ReorderBuffer::new(4, 16);
        offer(&mut r, t(0), 0);
        offer(&mut r, t(0), 2);
        offer(&mut r, t(0), 3);
        // 9 needs the window [6, 10): 1, 4 and 5 are given up, 2 and 3 go out first.
        assert_eq!(offer(&mut r, t(0), 9), [2, 3]);
        assert_eq!(offer(&mut r, t(0), 6), [6]);
        assert_eq!(offer(&mut r, t(0), 8), Vec::<u32>::new());
        assert_eq!(offer(&mut r, t(0), 7), [7, 8, 9]);
        assert_eq!(r.stats.skipped, 3);
    }

    #[test]
    fn huge_jumps_do_not_loop_over_the_gap() {
        let mut r = ReorderBuffer::new(4, 16);
        offer(&mut r, t(0), 0);
        assert_eq!(offer(&mut r, t(0), 2_000_000_000), Vec::<u32>::new());
        assert_eq!(offer(&mut r, t(0), 1_999_999_997), [1_999_999_997]);
        assert_eq!(r.stats.skipped, 1_999_999_996);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = ReorderBuffer::new(8, 16);
        offer(&mut r, t(0), u32::MAX - 1);
        assert_eq!(offer(&mut r, t(0), 0), Vec::<u32>::new());
        assert_eq!(offer(&mut r, t(0), u32::MAX), [u32::MAX, 0]);
        assert_eq!(offer(&mut r, t(0), 1), [1]);
    }

    #[test]
    fn undrained_releases_are_never_overtaken() {
        let mut r = ReorderBuffer::new(4, 16);
        offer(&mut r, t(0), 0);
        r.arrive(t(0), 2, &2u32.to_be_bytes(), WAIT, Duration::ZERO);
        r.release_expired(t(100)); // 2 is now ready but not popped
        // 3 is "next", but 2 is queued ahead of it: 3 must be held, not delivered.
        assert_eq!(r.arrive(t(100), 3, &3u32.to_be_bytes(), WAIT, Duration::ZERO), Arrival::Held);
        assert_eq!(drain(&mut r, t(100)), [2, 3]);
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut r = ReorderBuffer::new(4, 16);
        offer(&mut r, t(0), 0);
        for s in 2..5 {
            assert_eq!(r.arrive(t(0), s, b"x", WAIT, Duration::ZERO), Arrival::Held);
        }
        // Overflow releases 2..4 to the ready queue; without a drain the pool is exhausted.
        assert_eq!(r.arrive(t(0), 8, b"x", WAIT, Duration::ZERO), Arrival::Held);
        assert_eq!(r.len(), 4);
        assert_eq!(r.arrive(t(0), 12, b"x", WAIT, Duration::ZERO), Arrival::Full);
        assert_eq!(r.arrive(t(0), 12, &[0; 17], WAIT, Duration::ZERO), Arrival::TooBig);
    }

    #[test]
    fn restart_releases_what_is_held_and_resynchronises() {
        let mut r = ReorderBuffer::new(8, 16);
        offer(&mut r, t(0), 100);
        r.arrive(t(0), 103, &103u32.to_be_bytes(), WAIT, Duration::ZERO);
        r.restart(4);
        assert_eq!(drain(&mut r, t(1)), [103]);
        assert_eq!(offer(&mut r, t(1), 5), Vec::<u32>::new());
        assert_eq!(offer(&mut r, t(1), 4), [4, 5]);
    }

    #[test]
    fn random_arrivals_never_deliver_out_of_order_or_twice() {
        let mut r = ReorderBuffer::new(32, 16);
        let mut x = 12345u64;
        let mut delivered = Vec::new();
        let mut now = 0;
        for base in 0..5000u32 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let seq = base.saturating_sub((x >> 33) as u32 % 40);
            now += 1;
            r.release_expired(t(now));
            delivered.extend(offer(&mut r, t(now), seq));
        }
        assert!(delivered.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
        assert!(delivered.len() > 2000);
    }
}
