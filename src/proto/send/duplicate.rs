//! Real-time packets sent twice, on the two links that deliver them first.
//!
//! A call or a game cannot wait for a lost packet to be resent: by the time the receiver has
//! noticed the hole and asked, the packet is past its deadline (150 ms one way for a
//! comfortable call, ITU-T G.114). Sending it on two links at once costs its bytes twice and
//! hides the loss, or the outage, of either link; the receiver keeps the first copy
//! ([`crate::proto::delivered`] drops the second). This is engarde's design, and Speedify's and
//! Peplink's "redundant" modes, limited here to the packets that need it ([`super::flow`]) and
//! to a [`Budget`] of the bond's capacity, so that a flood of small UDP cannot double itself.
//!
//! The second copy is sealed for its own link after the first has gone: it waits in [`Copies`]
//! (a few preallocated buffers) and leaves with the next [`crate::proto::Tunnel::poll_transmit`].
//! A packet sent twice is not kept to be resent: its two copies are its recovery.

use crate::proto::time::{Duration, Instant, mul_div};

/// How much duplication may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetLimit {
    /// Percent of the bond's estimated capacity (the usable links' rates).
    Percent(u8),
    /// Bytes per second.
    Rate(u64),
}

/// The default: 5 % of the bond. A 64 kbit/s call costs 100 kbit/s with its headers; 5 % of a
/// single 10 Mbit/s DSL line is 500 kbit/s: five calls, or a video call's audio and more.
pub const DEFAULT_BUDGET: BudgetLimit = BudgetLimit::Percent(5);

impl Default for BudgetLimit {
    fn default() -> Self {
        DEFAULT_BUDGET
    }
}

/// Burst the budget allows: this long at its rate, and at least [`MIN_BURST`] bytes (a few
/// voice packets: a call's first packets go twice even before the links are measured).
const BURST: Duration = Duration::from_millis(200);
const MIN_BURST: u64 = 4 * 1500;

/// A token bucket of bytes that may be sent a second time.
#[derive(Debug, Clone)]
pub struct Budget {
    limit: BudgetLimit,
    tokens: u64,
    at: Instant,
}

impl Budget {
    pub fn new(limit: BudgetLimit) -> Self {
        Budget { limit, tokens: MIN_BURST, at: Instant::ZERO }
    }

    /// Takes `len` bytes from the budget if it has them, the bond carrying `bond_rate` bytes/s.
    pub fn take(&mut self, now: Instant, bond_rate: u64, len: usize) -> bool {
        let rate = match self.limit {
            BudgetLimit::Percent(p) => mul_div(bond_rate, u64::from(p), 100),
            BudgetLimit::Rate(r) => r,
        };
        let burst = mul_div(rate, BURST.as_micros(), 1_000_000).max(MIN_BURST);
        let earned = mul_div(rate, now.saturating_since(self.at).as_micros(), 1_000_000);
        self.tokens = self.tokens.saturating_add(earned).min(burst);
        self.at = now;
        let len = len as u64;
        if self.tokens < len {
            return false;
        }
        self.tokens -= len;
        true
    }
}

/// Second copies waiting to be sealed for their link: [`COPIES`] preallocated buffers.
#[derive(Debug)]
pub struct Copies {
    slot_len: usize,
    storage: Vec<u8>,
    /// (link, sequence number, length, whether it copies a resent packet) of each waiting
    /// copy, oldest first.
    waiting: heapless::Deque<(u8, u32, u16, bool), COPIES>,
    next: usize,
}

/// Copies that can wait at once: the engine's caller drains `poll_transmit` after each packet
/// read, so one would do; a batch of reads between two drains may leave a few.
pub const COPIES: usize = 16;

impl Copies {
    /// Its buffers come with the first copy: a server's idle sites keep none.
    pub fn new(slot_len: usize) -> Self {
        Copies { slot_len, storage: Vec::new(), waiting: heapless::Deque::new(), next: 0 }
    }

    /// Keeps `packet` to be sent as `seq` on `link` (`resend`: a copy of a packet sent again);
    /// `false` if every buffer is taken.
    pub fn push(&mut self, link: usize, seq: u32, packet: &[u8], resend: bool) -> bool {
        if packet.len() > self.slot_len || self.waiting.is_full() {
            return false;
        }
        if self.storage.is_empty() {
            self.storage = vec![0; COPIES * self.slot_len];
        }
        let slot = (self.next + self.waiting.len()) % COPIES;
        self.storage[slot * self.slot_len..][..packet.len()].copy_from_slice(packet);
        self.waiting.push_back((link as u8, seq, packet.len() as u16, resend)).is_ok()
    }

    /// The oldest copy: (link, sequence number, packet, whether it copies a resent packet).
    pub fn front(&self) -> Option<(usize, u32, &[u8], bool)> {
        let &(link, seq, len, resend) = self.waiting.front()?;
        Some((usize::from(link), seq, &self.storage[self.next * self.slot_len..][..usize::from(len)], resend))
    }

    pub fn pop(&mut self) {
        if self.waiting.pop_front().is_some() {
            self.next = (self.next + 1) % COPIES;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn clear(&mut self) {
        while !self.is_empty() {
            self.pop();
        }
    }
}

/// What duplication did, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DupStats {
    /// Packets sent twice.
    pub packets: u64,
    /// Bytes of the second copies (datagrams).
    pub bytes: u64,
    /// Real-time packets sent once because the budget was spent.
    pub over_budget: u64,
    /// Real-time packets sent once because only one link could carry them.
    pub one_link: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    #[test]
    fn a_percent_budget_follows_the_bond_and_refills() {
        let mut b = Budget::new(BudgetLimit::Percent(5));
        // 5 % of 12.5 MB/s (100 Mbit/s): 625 kB/s, a burst of 125 kB.
        let mut sent = 0u64;
        let mut ms = 0;
        while ms < 2000 {
            if b.take(at(ms), 12_500_000, 1000) {
                sent += 1000;
            }
            ms += 1;
        }
        // A packet a millisecond (1 MB/s) offered: 625 kB/s pass, and the 6 kB it starts with.
        assert!((1_245_000..=1_265_000).contains(&sent), "{sent}");
        let mut idle = Budget::new(BudgetLimit::Percent(5));
        assert!(idle.take(at(0), 0, 1500), "the minimum burst before any link is measured");
    }

    #[test]
    fn a_rate_budget_ignores_the_bond() {
        let mut b = Budget::new(BudgetLimit::Rate(10_000));
        let passed = (0..1000).filter(|&ms| b.take(at(ms), u64::MAX, 200)).count();
        // 10 kB/s for a second plus the 6 kB floor of the burst: ~80 packets of 200 bytes.
        assert!((75..=85).contains(&passed), "{passed}");
    }

    #[test]
    fn copies_wait_in_order_and_a_full_ring_refuses() {
        let mut c = Copies::new(100);
        for k in 0..COPIES {
            assert!(c.push(k % 3, k as u32, &[k as u8; 10], k % 2 == 0));
        }
        assert!(!c.push(0, 99, &[0; 10], false));
        assert!(!Copies::new(100).push(0, 0, &[0; 101], false), "longer than a buffer");
        for k in 0..COPIES {
            let (link, seq, p, resend) = c.front().unwrap();
            assert_eq!((link, seq, p, resend), (k % 3, k as u32, &[k as u8; 10][..], k % 2 == 0));
            c.pop();
            assert!(c.push(1, 100 + k as u32, &[7; 5], false), "a freed buffer is reused");
        }
        assert_eq!(c.front().unwrap().1, 100);
        c.clear();
        assert!(c.is_empty() && c.front().is_none());
    }
}
