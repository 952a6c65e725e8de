//! The default scheduler: send each packet where it will arrive first, and never queue more
//! than [`QUEUE_LIMIT`] on any link.
//!
//! For each link we keep a model of its bottleneck queue: the bytes we put into it, drained at
//! the link's rate (its capacity estimate, [`crate::proto::capacity`]), and moved to the real queue
//! whenever the receiver's reports show the two apart ([`Scheduler::correct_queue`]). A packet
//! sent now on link `i` would arrive after the link's one-way delay plus the time to drain what
//! is queued before it plus its own transmission:
//!
//! ```text
//! arrival(i) = delay(i) + (queued(i) + len) / rate(i)
//! ```
//!
//! Picking the smallest makes consecutive packets arrive nearly in order across links of
//! different latency and capacity — the idea of DAPS (Kuhn et al., ICC 2014), BLEST (Ferlin et
//! al., IFIP Networking 2016) and ECF (Lim et al., CoNEXT 2017): the fast links fill first, and
//! a slow link takes what they cannot carry.
//!
//! A link whose modelled queue already holds [`QUEUE_LIMIT`] takes nothing more (unless its
//! capacity is still being found: then its rate is only a lower bound). The link's bottleneck
//! buffer belongs to someone else, may be small, and drops what overflows it; and a ping, or a
//! packet resent to fill a hole, that goes through the link waits behind all of it. When every
//! link is that full the packet is not sent ([`Pick::Congested`]): the tunnel keeps it in its
//! own queue ([`super::fq`]) until a link has room ([`Scheduler::next_room`]), or drops it if
//! that queue is full too — which is how the TCP flows inside learn the tunnel's capacity, as
//! from any router. Small packets (TCP acknowledgements, pings, DNS) and resent ones never wait
//! or drop ([`Scheduler::pick_urgent`]): they go where they arrive first, full or not.

use super::sched::{LinkView, Pick, Scheduler, any_normal, is_candidate};
use crate::proto::time::{Duration, Instant, mul_div};

/// Most queueing we put on a link. Short: a ping or a resent packet waits behind it, and every
/// link's buffer holds this much (access links commonly buffer 50 ms or more; our model of the
/// queue is a few percent off the real one between two reports). Long enough that a link does
/// not run dry between two wake-ups of the engine, and that a burst spreads over the links in
/// order of arrival. Measured in the simulator with a CUBIC flow (`tests/sim/unequal.rs`): 10 ms
/// and the send queue's 40 ms filled every scenario of issue 4 to 99%, where 20 and 40 ms per
/// link did no better and let pings and resent packets wait longer.
pub const QUEUE_LIMIT: Duration = Duration::from_millis(10);
/// The limit while real-time packets flow ([`super::duplicate`]): they go to the link where
/// they arrive first, but behind what is queued there, and a call's one-way budget has no room
/// for 10 ms of someone's upload on every packet. The bulk that no longer fits waits in the
/// tunnel's flow-fair queue instead ([`super::fq`]), which the call's packets skip.
/// Measured by setting this constant and running `MLVPN_CALLS_DIR=up MLVPN_CALLS_CONFIG=none
/// MLVPN_CALLS_BOTTLENECK=emu MLVPN_CALLS_CC=cubic cargo bench --bench calls` (a call beside a
/// CUBIC upload over 3 x 40 Mbit/s at 20/30/40 ms, 5 % loss on the fastest link): the call's
/// median one-way delay was 29 ms at 10 ms, 25 at 4, 22.6-22.8 at 3 and 21.6-22.8 at 2; the
/// upload beside the call kept 92, 106 and 104 % of its rate alone at 3 ms, and 78, 88, 80, 67
/// and 119 % at 2 ms (links run dry between wake-ups).
pub const REALTIME_QUEUE_LIMIT: Duration = Duration::from_millis(3);

#[derive(Debug, Clone, Copy, Default)]
struct Queue {
    /// Bytes queued when last updated ...
    bytes: u64,
    /// ... at this time, ...
    at: Instant,
    /// ... draining at this rate (bytes/s), ...
    rate: u64,
    /// ... not empty since then.
    since: Instant,
}

impl Queue {
    /// Bytes still queued at `now` if the link drains at `rate`.
    fn at(&self, now: Instant, rate: u64) -> u64 {
        self.bytes.saturating_sub(mul_div(rate, (now - self.at).as_micros(), 1_000_000))
    }
}

#[derive(Debug, Clone)]
pub struct ArrivalScheduler {
    queues: Vec<Queue>,
    limit_us: i64,
}

impl ArrivalScheduler {
    pub fn new(links: usize) -> Self {
        ArrivalScheduler { queues: vec![Queue::default(); links], limit_us: QUEUE_LIMIT.as_micros() as i64 }
    }

    /// Microseconds to send `bytes` at `rate` bytes/s.
    fn drain_us(bytes: u64, rate: u64) -> i64 {
        mul_div(bytes, 1_000_000, rate.max(1)).min(i64::MAX as u64) as i64
    }
}

impl ArrivalScheduler {
    /// Queueing link `l` may hold before it takes no more full packets; `None`: unlimited (its
    /// capacity is still being found).
    fn limit_us(&self, l: &LinkView) -> Option<i64> {
        (!l.probing).then_some(self.limit_us)
    }

    fn choose(&mut self, now: Instant, links: &[LinkView], len: usize, limited: bool) -> Pick {
        let any_normal = any_normal(links, len);
        let mut best: Option<(i64, usize, u64)> = None;
        let mut candidates = false;
        for (i, l) in links.iter().enumerate() {
            if !is_candidate(l, any_normal, len) {
                continue;
            }
            candidates = true;
            let queued = self.queues[i].at(now, l.rate);
            let full = self.limit_us(l).is_some_and(|limit| Self::drain_us(queued, l.rate) >= limit);
            if limited && full {
                continue;
            }
            let arrival = l.delay_us + Self::drain_us(queued + len as u64, l.rate);
            if best.is_none_or(|(b, _, _)| arrival < b) {
                best = Some((arrival, i, queued));
            }
        }
        match best {
            Some((_, i, queued)) => {
                let since = if queued == 0 { now } else { self.queues[i].since };
                self.queues[i] = Queue { bytes: queued + len as u64, at: now, rate: links[i].rate, since };
                Pick::Link(i)
            }
            None if candidates => Pick::Congested,
            None => Pick::NoLink,
        }
    }
}

impl Scheduler for ArrivalScheduler {
    fn pick(&mut self, now: Instant, links: &[LinkView], len: usize) -> Pick {
        self.choose(now, links, len, true)
    }

    fn pick_urgent(&mut self, now: Instant, links: &[LinkView], len: usize) -> Pick {
        self.choose(now, links, len, false)
    }

    fn backlogged_since(&self, now: Instant, link: usize) -> Option<Instant> {
        // Data queued in the model without a break: we sent at least as fast as the link drains.
        let q = self.queues[link];
        (q.at(now, q.rate) > 0).then_some(q.since)
    }

    fn planned_queue(&self, now: Instant, link: usize) -> Duration {
        let q = self.queues[link];
        Duration::from_micros(Self::drain_us(q.at(now, q.rate), q.rate) as u64)
    }

    fn correct_queue(&mut self, now: Instant, link: usize, by_us: i64) {
        let q = &mut self.queues[link];
        let queued = q.at(now, q.rate);
        let by_bytes = mul_div(by_us.unsigned_abs(), q.rate, 1_000_000);
        let bytes = if by_us < 0 { queued.saturating_sub(by_bytes) } else { queued.saturating_add(by_bytes) };
        let since = if queued == 0 { now } else { q.since };
        *q = Queue { bytes, at: now, rate: q.rate, since };
    }

    fn set_queue_limit(&mut self, limit: Duration) {
        self.limit_us = limit.as_micros() as i64;
    }

    fn forget_queue(&mut self, link: usize) {
        self.queues[link] = Queue::default();
    }

    fn next_room(&self, now: Instant, links: &[LinkView], len: usize) -> Option<Instant> {
        let any_normal = any_normal(links, len);
        links
            .iter()
            .enumerate()
            .filter(|(_, l)| is_candidate(l, any_normal, len))
            .map(|(i, l)| match self.limit_us(l) {
                None => now,
                Some(limit) => {
                    let drain = Self::drain_us(self.queues[i].at(now, l.rate), l.rate);
                    now + Duration::from_micros((drain - limit + 1).max(0) as u64)
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(rate_mbps: u64, delay_ms: i64) -> LinkView {
        LinkView {
            usable: true,
            rate: rate_mbps * 125_000,
            delay_us: delay_ms * 1000,
            weight: 1,
            ..LinkView::default()
        }
    }

    /// Offers `pps` packets a second of `len` bytes for `secs`; returns bytes per link, drops,
    /// and the largest arrival disorder (how much earlier a later packet arrived), in µs.
    fn run(links: &[LinkView], pps: u64, len: usize, secs: u64) -> (Vec<u64>, u64, i64) {
        let mut s = ArrivalScheduler::new(links.len());
        let mut bytes = vec![0u64; links.len()];
        let mut drops = 0;
        let mut last_arrival = 0i64;
        let mut disorder = 0i64;
        let gap = 1_000_000 / pps;
        for k in 0..pps * secs {
            let now = Instant::from_micros(k * gap);
            match s.pick(now, links, len) {
                Pick::Link(i) => {
                    bytes[i] += len as u64;
                    let q = s.queues[i].bytes;
                    let arrival = now.as_micros() as i64
                        + links[i].delay_us
                        + ArrivalScheduler::drain_us(q, links[i].rate);
                    disorder = disorder.max(last_arrival - arrival);
                    last_arrival = last_arrival.max(arrival);
                }
                Pick::Congested => drops += 1,
                Pick::NoLink => panic!("no link"),
            }
        }
        (bytes, drops, disorder)
    }

    #[test]
    fn fills_links_in_proportion_to_capacity_when_overloaded() {
        let links = [link(40, 5), link(25, 20), link(15, 40)];
        // 100 Mbit/s offered to 80 Mbit/s of links.
        let (bytes, drops, _) = run(&links, 100_000_000 / 8 / 1250, 1250, 5);
        let total: u64 = bytes.iter().sum();
        let shares: Vec<f64> = bytes.iter().map(|&b| b as f64 / total as f64).collect();
        for (got, want) in shares.iter().zip([0.5, 0.3125, 0.1875]) {
            assert!((got - want).abs() < 0.01, "{shares:?}");
        }
        let carried = total as f64 * 8.0 / 5.0 / 1e6;
        assert!((79.0..=81.0).contains(&carried), "{carried}");
        assert!(drops > 0, "the surplus is refused");
    }

    #[test]
    fn light_load_goes_to_the_fastest_link_only() {
        let links = [link(40, 40), link(40, 5)];
        let (bytes, drops, disorder) = run(&links, 1000, 1250, 2);
        assert_eq!(bytes[0], 0);
        assert_eq!(drops, 0);
        assert_eq!(disorder, 0);
    }

    #[test]
    fn packets_arrive_nearly_in_order_across_unequal_delays() {
        // 8 ms apart: within the queue limit, the fast link's queue absorbs the difference.
        let links = [link(50, 5), link(50, 13)];
        // 90 Mbit/s: both links needed.
        let (bytes, drops, disorder) = run(&links, 9000, 1250, 3);
        assert!(bytes[1] > 0 && bytes[0] > bytes[1]);
        assert_eq!(drops, 0);
        // Never more than a packet's transmission time out of order.
        assert!(disorder <= 250, "{disorder} us");
    }

    #[test]
    fn a_delay_gap_beyond_the_queue_limit_is_left_to_the_reorder_buffer() {
        // 55 ms apart: keeping the fast link's queue short wins; the receiver reorders.
        let links = [link(50, 5), link(50, 60)];
        let (_, drops, disorder) = run(&links, 9000, 1250, 3);
        assert_eq!(drops, 0);
        assert!(disorder <= 55_000 - QUEUE_LIMIT.as_micros() as i64 + 250, "{disorder} us");
    }

    #[test]
    fn urgent_packets_go_even_when_every_link_is_full() {
        let links = [link(10, 5), link(10, 30)];
        let mut s = ArrivalScheduler::new(2);
        let now = Instant::ZERO;
        while s.pick(now, &links, 1250) != Pick::Congested {}
        assert_eq!(s.pick_urgent(now, &links, 60), Pick::Link(0), "the fast link, full or not");
    }

    #[test]
    fn queues_never_exceed_the_limit() {
        let links = [link(10, 5)];
        let mut s = ArrivalScheduler::new(1);
        for k in 0..10_000u64 {
            let now = Instant::from_micros(k * 100);
            s.pick(now, &links, 1250);
            let queued = s.queues[0].at(now, links[0].rate);
            assert!(
                ArrivalScheduler::drain_us(queued, links[0].rate) <= QUEUE_LIMIT.as_micros() as i64 + 1000
            );
        }
    }

    #[test]
    fn a_shorter_limit_set_while_a_call_runs_holds_and_can_be_lifted() {
        let links = [link(10, 5)];
        let mut s = ArrivalScheduler::new(1);
        s.set_queue_limit(REALTIME_QUEUE_LIMIT);
        let now = Instant::ZERO;
        while s.pick(now, &links, 1250) != Pick::Congested {}
        let short = s.planned_queue(now, 0);
        // At most one packet (1 ms at 10 Mbit/s) beyond the limit, and far below the usual one.
        assert!(short >= REALTIME_QUEUE_LIMIT && short <= REALTIME_QUEUE_LIMIT + Duration::from_millis(1));
        s.set_queue_limit(QUEUE_LIMIT);
        assert!(matches!(s.pick(now, &links, 1250), Pick::Link(0)), "room again under the usual limit");
        while s.pick(now, &links, 1250) != Pick::Congested {}
        assert!(s.planned_queue(now, 0) >= QUEUE_LIMIT);
    }

    #[test]
    fn a_full_scheduler_says_when_a_link_has_room_again() {
        let links = [link(10, 5), link(10, 30)];
        let mut s = ArrivalScheduler::new(2);
        let now = Instant::ZERO;
        while s.pick(now, &links, 1250) != Pick::Congested {}
        // Both hold QUEUE_LIMIT (and one packet more at most): room in about a packet's time.
        let at = s.next_room(now, &links, 1000).unwrap();
        assert!(at - now <= Duration::from_millis(1), "{at:?}");
        assert!(matches!(s.pick(at, &links, 1250), Pick::Link(_)));
    }

    #[test]
    fn corrections_move_the_model_and_backlog_is_continuous() {
        let links = [link(10, 5)];
        let mut s = ArrivalScheduler::new(1);
        let t0 = Instant::from_micros(1_000);
        assert_eq!(s.pick(t0, &links, 1250), Pick::Link(0));
        assert_eq!(s.backlogged_since(t0, 0), Some(t0));
        // 1250 bytes at 10 Mbit/s: 1 ms. The receiver says the real queue is 4 ms longer.
        s.correct_queue(t0, 0, 4_000);
        assert_eq!(s.planned_queue(t0, 0), Duration::from_millis(5));
        let t1 = t0 + Duration::from_millis(3);
        assert_eq!(s.backlogged_since(t1, 0), Some(t0), "no break in the backlog");
        // And 10 ms shorter: the model is empty, nothing is backlogged.
        s.correct_queue(t1, 0, -10_000);
        assert_eq!(s.planned_queue(t1, 0), Duration::ZERO);
        assert_eq!(s.backlogged_since(t1, 0), None);
    }
}
