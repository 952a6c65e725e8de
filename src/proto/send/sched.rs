//! Which link carries the next packet.
//!
//! A [`Scheduler`] sees one [`LinkView`] per configured link and picks one. The policy every
//! scheduler shares lives in [`candidates`]: only usable links (up; not down, lossy or slow)
//! carry data, and `fallback_only` links only when no normal link is usable.
//!
//! Two schedulers: [`super::arrival::ArrivalScheduler`] (the default) plans for arrival order
//! from each link's measured delay and capacity; [`WeightedRoundRobin`] (`scheduler = wrr`)
//! splits by the configured `bandwidth_upload`, as MLVPN did, only exactly.
//!
//! [`WeightedRoundRobin`] is stride scheduling (Waldspurger & Weihl, 1995) over bytes: each link
//! keeps a virtual time that advances by `len / weight` for each packet it carries, and the next
//! packet goes to the link that would finish it first. Byte shares then match the weights
//! exactly (the C original's round-robin turned weights 50/30/20 into 50/25/25), and the links
//! are interleaved smoothly rather than in bursts.

use crate::proto::time::{Duration, Instant};

/// What the scheduler may know of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkView {
    /// Up, and neither lossy nor slow.
    pub usable: bool,
    pub fallback_only: bool,
    /// Relative share of bytes; `bandwidth_upload` in bytes/s, or 1 when none is configured.
    pub weight: u64,
    /// Bytes per second the link may carry now (its capacity estimate times the pacing gain).
    pub rate: u64,
    /// One-way delay in microseconds relative to the other links (only differences count).
    pub delay_us: i64,
    /// The link's capacity is still being found: its `rate` is a lower bound, so its queue
    /// is not limited (refusing packets on the strength of a guess would starve a fast link).
    pub probing: bool,
    /// The largest datagram its path carries ([`crate::proto::pmtu`]): larger packets go
    /// elsewhere.
    pub max_len: usize,
}

impl Default for LinkView {
    fn default() -> Self {
        LinkView {
            usable: false,
            fallback_only: false,
            weight: 0,
            rate: 0,
            delay_us: 0,
            probing: false,
            max_len: usize::MAX,
        }
    }
}

/// A scheduler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Link(usize),
    /// No link is usable.
    NoLink,
    /// Every usable link is full: sending now would only lengthen a queue. The packet is
    /// dropped, which is how the sender (TCP) learns the tunnel's capacity.
    Congested,
}

pub trait Scheduler {
    /// The link for a packet of `len` bytes.
    fn pick(&mut self, now: Instant, links: &[LinkView], len: usize) -> Pick;

    /// Like [`Scheduler::pick`], but a packet that must go (a small one, or one sent again)
    /// is never refused as congestion: it goes where it arrives first, full or not.
    fn pick_urgent(&mut self, now: Instant, links: &[LinkView], len: usize) -> Pick {
        self.pick(now, links, len)
    }

    /// Since when `link` has had more queued than it can carry right away, without a break
    /// (while it has, its delivery rate measures its capacity, not our demand).
    fn backlogged_since(&self, _now: Instant, _link: usize) -> Option<Instant> {
        None
    }

    /// How long a packet sent on `link` now would wait behind what the scheduler has put
    /// there, by its own model (zero for a scheduler without one).
    fn planned_queue(&self, _now: Instant, _link: usize) -> Duration {
        Duration::ZERO
    }

    /// The receiver measured `link`'s queue `by_us` longer (or shorter, if negative) than the
    /// model says: move the model ([`crate::proto::capacity::Capacity::take_correction`]).
    fn correct_queue(&mut self, _now: Instant, _link: usize, _by_us: i64) {}

    /// Most queueing to put on a link from now on ([`super::arrival::QUEUE_LIMIT`] by default;
    /// less while a call runs, whose packets wait behind it).
    fn set_queue_limit(&mut self, _limit: Duration) {}

    /// `link` (re)connected: whatever the model held for it before is gone.
    fn forget_queue(&mut self, _link: usize) {}

    /// After [`Pick::Congested`]: the earliest time a link whose path carries `len` bytes may
    /// have room for them (`None`: no link will, or the scheduler never refuses).
    fn next_room(&self, _now: Instant, _links: &[LinkView], _len: usize) -> Option<Instant> {
        None
    }
}

/// Names the scheduler only: a derived `Debug` would keep every scheduler's formatting code in
/// the routers' binary through the trait object's vtable (1 KB on MIPS) for a view nobody reads.
impl std::fmt::Debug for dyn Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scheduler")
    }
}

/// The links allowed to carry a datagram of `len` bytes now: usable normal links whose path
/// carries it, or if there are none, such fallback links.
pub fn candidates(links: &[LinkView], len: usize) -> impl Iterator<Item = usize> + '_ {
    let any_normal = any_normal(links, len);
    links.iter().enumerate().filter(move |(_, l)| is_candidate(l, any_normal, len)).map(|(i, _)| i)
}

/// Whether a normal (not `fallback_only`) link can carry `len` bytes now.
pub(crate) fn any_normal(links: &[LinkView], len: usize) -> bool {
    links.iter().any(|l| l.usable && !l.fallback_only && len <= l.max_len)
}

pub(crate) fn is_candidate(l: &LinkView, any_normal: bool, len: usize) -> bool {
    l.usable && len <= l.max_len && l.fallback_only != any_normal
}

/// Scale of virtual time: a byte on a link of weight `w` costs `SCALE / w`.
const SCALE: u64 = 1 << 32;

/// Weighted round-robin by bytes (stride scheduling).
#[derive(Debug, Clone)]
pub struct WeightedRoundRobin {
    /// Virtual finish time of each link's last packet.
    finish: Vec<u64>,
    /// Start time of the most recent pick: a link that sat out (down, or not a candidate)
    /// restarts from here instead of claiming the time it missed as a burst.
    now: u64,
    /// Whether each link was a candidate at the previous pick.
    was_candidate: Vec<bool>,
}

impl WeightedRoundRobin {
    pub fn new(links: usize) -> Self {
        WeightedRoundRobin { finish: vec![0; links], now: 0, was_candidate: vec![false; links] }
    }

    fn cost(len: usize, weight: u64) -> u64 {
        (len.max(1) as u64).saturating_mul(SCALE / weight.max(1))
    }
}

impl Scheduler for WeightedRoundRobin {
    fn pick(&mut self, _now: Instant, links: &[LinkView], len: usize) -> Pick {
        debug_assert_eq!(links.len(), self.finish.len());
        let mut best: Option<(u64, usize)> = None;
        let any_normal = any_normal(links, len);
        for (i, l) in links.iter().enumerate() {
            let candidate = is_candidate(l, any_normal, len);
            if candidate && !self.was_candidate[i] {
                self.finish[i] = self.finish[i].max(self.now);
            }
            self.was_candidate[i] = candidate;
            if !candidate {
                continue;
            }
            let end = self.finish[i].saturating_add(Self::cost(len, l.weight));
            if best.is_none_or(|(b, _)| end < b) {
                best = Some((end, i));
            }
        }
        let Some((end, i)) = best else { return Pick::NoLink };
        self.now = self.finish[i];
        self.finish[i] = end;
        if self.now > u64::MAX / 2 {
            // Renormalise long before overflow; relative order is all that matters.
            let base = self.now;
            self.finish.iter_mut().for_each(|f| *f = f.saturating_sub(base));
            self.now = 0;
        }
        Pick::Link(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(weight: u64) -> LinkView {
        LinkView { usable: true, weight, ..LinkView::default() }
    }

    fn pick(s: &mut impl Scheduler, links: &[LinkView], len: usize) -> Option<usize> {
        match s.pick(Instant::ZERO, links, len) {
            Pick::Link(i) => Some(i),
            _ => None,
        }
    }

    fn shares(
        s: &mut impl Scheduler,
        links: &[LinkView],
        n: usize,
        len: impl Fn(usize) -> usize,
    ) -> Vec<f64> {
        let mut bytes = vec![0usize; links.len()];
        let mut total = 0;
        for k in 0..n {
            let l = len(k);
            if let Some(i) = pick(s, links, l) {
                bytes[i] += l;
                total += l;
            }
        }
        bytes.iter().map(|&b| b as f64 / total as f64).collect()
    }

    #[test]
    fn weights_50_30_20_give_exact_shares() {
        let links = [view(50), view(30), view(20)];
        let mut s = WeightedRoundRobin::new(3);
        let got = shares(&mut s, &links, 10_000, |_| 1400);
        for (g, want) in got.iter().zip([0.5, 0.3, 0.2]) {
            assert!((g - want).abs() < 0.001, "{got:?}");
        }
    }

    #[test]
    fn byte_shares_hold_with_mixed_packet_sizes() {
        let links = [view(6_250_000), view(3_750_000), view(2_500_000)];
        let mut s = WeightedRoundRobin::new(3);
        let got = shares(&mut s, &links, 30_000, |k| [60, 1400, 576, 1200, 40][k % 5]);
        for (g, want) in got.iter().zip([0.5, 0.3, 0.2]) {
            assert!((g - want).abs() < 0.005, "{got:?}");
        }
    }

    #[test]
    fn interleaves_rather_than_bursts() {
        let links = [view(1), view(1)];
        let mut s = WeightedRoundRobin::new(2);
        let picks: Vec<_> = (0..6).map(|_| pick(&mut s, &links, 100).unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn unusable_and_fallback_links_follow_the_policy() {
        let mut links = [view(1), view(1), LinkView { fallback_only: true, ..view(1) }];
        let mut s = WeightedRoundRobin::new(3);
        for _ in 0..10 {
            assert_ne!(pick(&mut s, &links, 100), Some(2), "fallback idle while normal links are up");
        }
        links[0].usable = false;
        for _ in 0..10 {
            assert_eq!(pick(&mut s, &links, 100), Some(1));
        }
        links[1].usable = false;
        for _ in 0..10 {
            assert_eq!(pick(&mut s, &links, 100), Some(2), "fallback carries everything");
        }
        links[2].usable = false;
        assert_eq!(pick(&mut s, &links, 100), None);
    }

    #[test]
    fn a_returning_link_gets_its_share_not_a_burst() {
        let mut links = [view(1), view(1)];
        let mut s = WeightedRoundRobin::new(2);
        links[1].usable = false;
        for _ in 0..1000 {
            pick(&mut s, &links, 100);
        }
        links[1].usable = true;
        let picks: Vec<_> = (0..10).map(|_| pick(&mut s, &links, 100).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 5, "{picks:?}");
    }

    #[test]
    fn survives_virtual_time_renormalisation() {
        let links = [view(1), view(3)];
        let mut s = WeightedRoundRobin::new(2);
        s.now = u64::MAX / 2 - 10;
        s.finish = vec![s.now, s.now];
        s.was_candidate = vec![true, true];
        let got = shares(&mut s, &links, 4000, |_| 1000);
        assert!((got[1] - 0.75).abs() < 0.01, "{got:?}");
    }
}
