//! Every deadline of the engine in one table.
//!
//! Each timer is a slot indexed by [`Timer`]; `None` means disarmed. [`TimerTable::next`] is the
//! earliest armed deadline, which is what the engine reports from `poll_timeout`. Keeping all
//! deadlines in one place (as quinn-proto does) makes "when must the engine run next?" a single
//! scan and makes a forgotten timer easy to spot in a debugger.

use super::time::Instant;

/// Timers that belong to the whole tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelTimer {
    /// The oldest packet held by the reorder buffer reaches its maximum wait.
    ReorderFlush = 0,
    /// A link has room for the oldest packet of the send queue.
    SendQueue = 1,
    /// The links' path MTUs have allowed a larger tunnel MTU for long enough to raise it.
    TunnelMtu = 2,
}

impl TunnelTimer {
    const COUNT: usize = 3;
}

/// Timers of one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTimer {
    /// Periodic keepalive (idle: 1 s; while data flows: faster, for RTT samples).
    Keepalive = 0,
    /// Feedback owed to the peer for data it sent us.
    Feedback = 1,
    /// Data sent and not yet acknowledged: probe again, or declare the link dead.
    Probe = 2,
    /// Nothing received for the link's `timeout`.
    Idle = 3,
    /// Client: (re)send a handshake.
    Handshake = 4,
    /// Data went out and nothing since: a keepalive behind it shows the peer whether the last
    /// packets arrived.
    TailProbe = 5,
    /// Path MTU discovery: a round of probes is due or timed out ([`super::pmtu`]).
    PathMtu = 6,
}

impl LinkTimer {
    pub const COUNT: usize = 7;
    pub const ALL: [LinkTimer; LinkTimer::COUNT] = [
        LinkTimer::Keepalive,
        LinkTimer::Feedback,
        LinkTimer::Probe,
        LinkTimer::Idle,
        LinkTimer::Handshake,
        LinkTimer::TailProbe,
        LinkTimer::PathMtu,
    ];
}

/// The name of one deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    Tunnel(TunnelTimer),
    Link(usize, LinkTimer),
}

/// All deadlines, sized once for the number of links.
#[derive(Debug, Clone)]
pub struct TimerTable {
    slots: Vec<Option<Instant>>,
}

impl TimerTable {
    pub fn new(links: usize) -> Self {
        TimerTable { slots: vec![None; TunnelTimer::COUNT + links * LinkTimer::COUNT] }
    }

    fn index(timer: Timer) -> usize {
        match timer {
            Timer::Tunnel(t) => t as usize,
            Timer::Link(link, t) => TunnelTimer::COUNT + link * LinkTimer::COUNT + t as usize,
        }
    }

    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.slots[Self::index(timer)] = Some(at);
    }

    /// Arms `timer` at `at` unless it is already armed earlier.
    pub fn set_earliest(&mut self, timer: Timer, at: Instant) {
        let slot = &mut self.slots[Self::index(timer)];
        if slot.is_none_or(|t| at < t) {
            *slot = Some(at);
        }
    }

    pub fn stop(&mut self, timer: Timer) {
        self.slots[Self::index(timer)] = None;
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.slots[Self::index(timer)]
    }

    /// Disarms `timer` and says whether it was due at `now`.
    pub fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        let slot = &mut self.slots[Self::index(timer)];
        match *slot {
            Some(t) if t <= now => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    /// Disarms every timer of `link`.
    pub fn stop_link(&mut self, link: usize) {
        for t in LinkTimer::ALL {
            self.stop(Timer::Link(link, t));
        }
    }

    /// The table for a new set of links: link `i` of the result takes the timers of old link
    /// `from[i]`, or none if it is new.
    pub fn remapped(&self, from: &[Option<usize>]) -> TimerTable {
        let mut t = TimerTable::new(from.len());
        t.slots[..TunnelTimer::COUNT].copy_from_slice(&self.slots[..TunnelTimer::COUNT]);
        for (new, old) in from.iter().enumerate() {
            if let Some(old) = old {
                for k in LinkTimer::ALL {
                    t.slots[Self::index(Timer::Link(new, k))] = self.slots[Self::index(Timer::Link(*old, k))];
                }
            }
        }
        t
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let mut t = TimerTable::new(2);
        assert_eq!(t.next(), None);
        t.set(Timer::Link(1, LinkTimer::Idle), Instant::from_micros(50));
        t.set(Timer::Tunnel(TunnelTimer::ReorderFlush), Instant::from_micros(70));
        t.set(Timer::Link(0, LinkTimer::Keepalive), Instant::from_micros(60));
        assert_eq!(t.next(), Some(Instant::from_micros(50)));
        t.stop_link(1);
        assert_eq!(t.next(), Some(Instant::from_micros(60)));
    }

    #[test]
    fn expire_fires_once_and_only_when_due() {
        let mut t = TimerTable::new(1);
        let k = Timer::Link(0, LinkTimer::Probe);
        t.set(k, Instant::from_micros(10));
        assert!(!t.expire(k, Instant::from_micros(9)));
        assert!(t.expire(k, Instant::from_micros(10)));
        assert!(!t.expire(k, Instant::from_micros(11)));
    }

    #[test]
    fn remapping_carries_timers_with_their_links() {
        let mut t = TimerTable::new(3);
        t.set(Timer::Tunnel(TunnelTimer::ReorderFlush), Instant::from_micros(1));
        t.set(Timer::Link(0, LinkTimer::Idle), Instant::from_micros(10));
        t.set(Timer::Link(2, LinkTimer::Probe), Instant::from_micros(30));
        let r = t.remapped(&[Some(2), None]);
        assert_eq!(r.get(Timer::Link(0, LinkTimer::Probe)), Some(Instant::from_micros(30)));
        assert_eq!(r.get(Timer::Link(1, LinkTimer::Idle)), None);
        assert_eq!(r.get(Timer::Tunnel(TunnelTimer::ReorderFlush)), Some(Instant::from_micros(1)));
        assert_eq!(r.next(), Some(Instant::from_micros(1)));
    }

    #[test]
    fn set_earliest_keeps_the_sooner_deadline() {
        let mut t = TimerTable::new(1);
        let k = Timer::Link(0, LinkTimer::Feedback);
        t.set_earliest(k, Instant::from_micros(30));
        t.set_earliest(k, Instant::from_micros(40));
        assert_eq!(t.get(k), Some(Instant::from_micros(30)));
        t.set_earliest(k, Instant::from_micros(20));
        assert_eq!(t.get(k), Some(Instant::from_micros(20)));
    }
}
