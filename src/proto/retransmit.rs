//! Recent data packets, kept so that one lost on a link can be sent again on another.
//!
//! TCP inside the tunnel reads any loss as congestion: 2% random loss on one 4G link of a bond
//! would shrink a flow across all links to a fraction of their capacity. So the receiver asks
//! for what a link lost (a gap in that link's packet numbers: links keep their own order) with
//! a NACK, and the sender, which remembers which tunnel packet each packet number carried, sends
//! it again — usually over a faster link — while the receiver's reorder buffer holds the packets
//! behind the hole. TCP sees a short delay instead of a loss.
//!
//! Storage is a ring of at most `capacity` slots allocated once; the oldest packet makes room
//! for the newest. A packet older than [`MAX_AGE`] is not resent: the receiver has given up on
//! it. The ring starts at [`FIRST_SLOTS`] and doubles, up to `capacity`, only when it comes
//! round to a packet still worth keeping (younger than the retention the tunnel sets from its
//! links' round trips): the memory behind the slots it never reaches is never touched, so a
//! router carrying a few Mbit/s keeps a few hundred KiB resident, not the whole 1.4 MiB.

use super::time::{Duration, Instant};
use std::collections::VecDeque;

/// Beyond this age a resent packet would arrive after the receiver skipped its hole.
pub const MAX_AGE: Duration = Duration::from_millis(500);

/// Slots the ring starts with, before traffic shows it needs more.
pub const FIRST_SLOTS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u32,
    len: u16,
    /// The link and packet number it went out on last.
    link: u16,
    pn: u64,
    sent: Instant,
    used: bool,
    /// Already queued to be resent.
    queued: bool,
}

const FREE: Slot = Slot { seq: 0, len: 0, link: 0, pn: 0, sent: Instant::ZERO, used: false, queued: false };

/// Its slots are allocated with the first packet recorded: a server's idle sites (connected,
/// carrying keepalives only) keep none.
#[derive(Debug)]
pub struct RetransmitStore {
    capacity: usize,
    links: usize,
    slots: Vec<Slot>,
    data: Vec<u8>,
    slot_len: usize,
    next: usize,
    /// Slots the ring goes round now (`FIRST_SLOTS ..= capacity`).
    active: usize,
    /// How long a packet may still be asked for (at most [`MAX_AGE`]).
    keep: Duration,
    /// Per link, slot indices by `pn % capacity`.
    by_pn: Vec<Vec<u32>>,
    queue: VecDeque<u32>,
    /// Packets resent, and NACKs for packets no longer (or never) here.
    pub resent: u64,
    pub unknown: u64,
}

impl RetransmitStore {
    pub fn new(capacity: usize, slot_len: usize, links: usize) -> Self {
        RetransmitStore {
            capacity,
            links,
            slots: Vec::new(),
            data: Vec::new(),
            slot_len,
            next: 0,
            active: capacity.min(FIRST_SLOTS),
            keep: MAX_AGE,
            by_pn: Vec::new(),
            queue: VecDeque::new(),
            resent: 0,
            unknown: 0,
        }
    }

    /// Allocates the slots, once (out of line: the send path keeps only the test).
    #[cold]
    #[inline(never)]
    fn allocate(&mut self) {
        {
            self.slots = vec![FREE; self.capacity];
            self.data = vec![0; self.capacity * self.slot_len];
            self.by_pn = vec![vec![u32::MAX; self.capacity]; self.links];
            self.queue = VecDeque::with_capacity(self.capacity);
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of one slot.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// Slots in use so far: the ring grows to `capacity` only as traffic needs.
    pub fn active(&self) -> usize {
        self.active
    }

    /// How long after sending a packet a NACK for it may still come (capped at [`MAX_AGE`]).
    pub fn set_retention(&mut self, keep: Duration) {
        self.keep = keep.clamp_to(Duration::ZERO, MAX_AGE);
    }

    /// The links changed: link `i` now is old link `from[i]` (or new).
    pub fn remap_links(&mut self, from: &[Option<usize>]) {
        self.links = from.len();
        if self.slots.is_empty() {
            return;
        }
        let capacity = self.capacity;
        self.by_pn = from
            .iter()
            .map(|f| f.and_then(|i| self.by_pn.get(i).cloned()).unwrap_or_else(|| vec![u32::MAX; capacity]))
            .collect();
        // Slots remember their link's old index: forget what cannot be mapped back.
        for s in &mut self.slots {
            match from.iter().position(|f| *f == Some(s.link as usize)) {
                Some(new) => s.link = new as u16,
                None => s.used = false,
            }
        }
        self.queue.clear();
    }

    fn index(&self, pn: u64) -> usize {
        (pn % self.capacity as u64) as usize
    }

    /// Remembers data packet `seq` (`payload`), sent on `link` as packet number `pn`.
    pub fn record(&mut self, now: Instant, link: usize, pn: u64, seq: u32, payload: &[u8]) {
        if payload.len() > self.slot_len {
            return;
        }
        if self.slots.is_empty() {
            self.allocate();
        }
        let i = self.next;
        self.next = i + 1;
        if self.next == self.active {
            // Round the ring again, unless that would overwrite a packet that may still be asked
            // for: then take fresh slots first (the oldest are overwritten a round later).
            let oldest = self.slots[0];
            if self.active < self.slots.len() && oldest.used && now - oldest.sent < self.keep {
                self.active = (self.active * 2).min(self.slots.len());
            } else {
                self.next = 0;
            }
        }
        let start = i * self.slot_len;
        self.data[start..start + payload.len()].copy_from_slice(payload);
        self.slots[i] = Slot {
            seq,
            len: payload.len() as u16,
            link: link as u16,
            pn,
            sent: now,
            used: true,
            queued: false,
        };
        let k = self.index(pn);
        self.by_pn[link][k] = i as u32;
    }

    /// A packet of ours resent under a new packet number: a NACK for that one finds it too.
    pub fn resent_as(&mut self, slot: usize, link: usize, pn: u64) {
        let s = &mut self.slots[slot];
        s.link = link as u16;
        s.pn = pn;
        let k = self.index(pn);
        self.by_pn[link][k] = slot as u32;
        self.resent += 1;
    }

    /// The peer did not get packet numbers `first .. first + count` on `link`.
    pub fn nack(&mut self, now: Instant, link: usize, first: u64, count: u16) {
        if self.slots.is_empty() {
            self.unknown += u64::from(count);
            return;
        }
        for pn in first..first.saturating_add(u64::from(count)) {
            let k = self.index(pn);
            let i = self.by_pn[link][k];
            let hit = self.slots.get(i as usize).filter(|s| {
                s.used && s.link as usize == link && s.pn == pn && !s.queued && now - s.sent <= MAX_AGE
            });
            if hit.is_some() {
                self.slots[i as usize].queued = true;
                self.queue.push_back(i);
            } else {
                self.unknown += 1;
            }
        }
    }

    /// `link` may have failed: queue every packet sent on it after packet number `acked` (the
    /// last the peer reported receiving; `None`: all), oldest first. Resending one that did
    /// arrive costs a duplicate the receiver drops; not resending one that was lost costs the
    /// inner flow a loss, and a dead link has no later packets to reveal the gap by NACK.
    pub fn requeue_unacked(&mut self, now: Instant, link: usize, acked: Option<u64>) -> usize {
        let mut queued = 0;
        if self.slots.is_empty() {
            return 0;
        }
        for i in (self.next..self.active).chain(0..self.next) {
            let s = &mut self.slots[i];
            let lost = s.used && s.link as usize == link && acked.is_none_or(|a| s.pn > a);
            if lost && !s.queued && now - s.sent <= MAX_AGE {
                s.queued = true;
                self.queue.push_back(i as u32);
                queued += 1;
            }
        }
        queued
    }

    /// The next packet to resend: (slot, tunnel sequence, payload, the link it was lost on).
    pub fn pop(&mut self, now: Instant) -> Option<(usize, u32, &[u8], usize)> {
        while let Some(i) = self.queue.pop_front() {
            let s = &mut self.slots[i as usize];
            s.queued = false;
            if s.used && now - s.sent <= MAX_AGE {
                let start = i as usize * self.slot_len;
                let (seq, len, link) = (s.seq, s.len as usize, usize::from(s.link));
                return Some((i as usize, seq, &self.data[start..start + len], link));
            }
        }
        None
    }

    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }
}

/// Gaps in the links' received packet numbers, to report in the next NACK.
#[derive(Debug, Clone, Default)]
pub struct GapList {
    /// (session id, first missing packet number, how many).
    gaps: heapless::Vec<(u32, u64, u16), { GapList::MAX }>,
    pub dropped: u64,
}

impl GapList {
    pub const MAX: usize = super::wire::Nack::MAX;
    /// Of a longer gap only the last this many packets are worth asking for again: the older
    /// ones are given up by now. The gap is reported whole all the same: a long run lost while
    /// later packets pass is how a path that stopped carrying large packets shows
    /// ([`super::pmtu`]); at 40 Mbit/s, 50 ms between keepalives are 170 packets.
    pub const LONGEST: u64 = 64;

    /// Packet `pn` arrived after `previous_highest` on `session`.
    pub fn on_packet(&mut self, session: u32, previous_highest: Option<u64>, pn: u64) {
        let Some(h) = previous_highest else { return };
        if pn <= h + 1 {
            return;
        }
        let count = u16::try_from(pn - h - 1).unwrap_or(u16::MAX);
        if self.gaps.push((session, h + 1, count)).is_err() {
            self.dropped += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.gaps.is_empty()
    }

    /// Takes what is to be reported.
    pub fn take(&mut self) -> heapless::Vec<(u32, u64, u16), { GapList::MAX }> {
        core::mem::take(&mut self.gaps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_micros(v * 1000)
    }

    #[test]
    fn a_nacked_packet_comes_back_once_with_its_sequence_and_bytes() {
        let mut r = RetransmitStore::new(8, 32, 2);
        r.record(ms(0), 0, 10, 100, b"ten");
        r.record(ms(0), 1, 5, 101, b"five");
        r.nack(ms(10), 1, 5, 1);
        r.nack(ms(11), 1, 5, 1);
        let (slot, seq, bytes, lost_on) = r.pop(ms(12)).unwrap();
        assert_eq!((seq, bytes, lost_on), (101, &b"five"[..], 1));
        r.resent_as(slot, 0, 11);
        assert!(r.pop(ms(12)).is_none(), "asked twice, sent once");
        // Lost again on its new link: asking for the new number finds it.
        r.nack(ms(20), 0, 11, 1);
        assert_eq!(r.pop(ms(21)).map(|p| (p.1, p.3)), Some((101, 0)), "lost on link 0 this time");
    }

    #[test]
    fn a_failed_links_unacknowledged_packets_are_requeued_oldest_first() {
        let mut r = RetransmitStore::new(8, 32, 2);
        for pn in 1..=4 {
            r.record(ms(pn), 0, pn, 100 + pn as u32, b"x");
            r.record(ms(pn), 1, pn, 200 + pn as u32, b"y");
        }
        r.nack(ms(5), 0, 4, 1);
        // The peer reported link 0 up to pn 2; pn 4 is queued already.
        assert_eq!(r.requeue_unacked(ms(6), 0, Some(2)), 1);
        let seqs: Vec<u32> = std::iter::from_fn(|| r.pop(ms(7)).map(|p| p.1)).collect();
        assert_eq!(seqs, [104, 103]);
        // Nothing reported yet: all of it, but none older than MAX_AGE.
        assert_eq!(r.requeue_unacked(ms(2) + MAX_AGE, 1, None), 3);
    }

    #[test]
    fn unknown_old_and_overwritten_packets_are_not_resent() {
        let mut r = RetransmitStore::new(2, 32, 1);
        r.record(ms(0), 0, 1, 1, b"a");
        r.record(ms(0), 0, 2, 2, b"b");
        r.record(ms(0), 0, 3, 3, b"c"); // overwrites pn 1
        r.nack(ms(1), 0, 1, 1);
        r.nack(ms(1), 0, 99, 1);
        assert!(r.pop(ms(1)).is_none());
        assert_eq!(r.unknown, 2);
        r.nack(ms(1), 0, 3, 1);
        assert!(r.pop(ms(1) + MAX_AGE + Duration::from_millis(1)).is_none(), "too old by then");
    }

    #[test]
    fn the_ring_grows_only_while_its_oldest_packet_may_still_be_asked_for() {
        let mut r = RetransmitStore::new(1024, 32, 1);
        r.set_retention(Duration::from_millis(100));
        // 10 packets a millisecond: 100 ms of them is 1000 packets, so the ring grows to 1024.
        let send = |r: &mut RetransmitStore, pn: u64, at_us: u64| {
            r.record(Instant::from_micros(at_us), 0, pn, pn as u32, b"x");
        };
        for k in 0..3000 {
            send(&mut r, k, k * 100);
        }
        assert_eq!(r.active(), 1024);
        // A packet sent 100 ms before the last one is still there to resend.
        r.nack(ms(300), 0, 2999 - 1000, 1);
        assert!(r.pop(ms(300)).is_some());

        // One packet every 10 ms: 100 ms is 10 packets, the first 64 slots are plenty.
        let mut slow = RetransmitStore::new(1024, 32, 1);
        slow.set_retention(Duration::from_millis(100));
        for k in 0..3000 {
            send(&mut slow, k, k * 10_000);
        }
        assert_eq!(slow.active(), FIRST_SLOTS);
        // What the retention covers is kept: the packet sent 60 ms before the last one.
        slow.nack(ms(29_990), 0, 2999 - 6, 1);
        assert!(slow.pop(ms(29_990)).is_some());
    }

    #[test]
    fn gaps_are_reported_whole() {
        let mut g = GapList::default();
        g.on_packet(7, None, 5);
        g.on_packet(7, Some(5), 6);
        g.on_packet(7, Some(6), 9);
        g.on_packet(7, Some(9), 9 + GapList::LONGEST + 2);
        g.on_packet(7, Some(100), 100_000);
        assert_eq!(&g.take()[..], &[(7, 7, 2), (7, 10, 65), (7, 101, u16::MAX)]);
        assert!(g.is_empty());
    }
}
