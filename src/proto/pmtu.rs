//! How large a datagram one link's path carries: packetization-layer path MTU discovery
//! (DPLPMTUD, RFC 8899) over our own probes.
//!
//! ICMP "fragmentation needed" is filtered on many paths (MLVPN#89, #91, #125), so a path
//! smaller than our datagrams does not complain: large datagrams just vanish while keepalives
//! pass. Only the peer can say what arrived, so we ask it: a [`super::wire::Probe`] padded to the
//! size under test, sealed like any message, answered on the same link. Sizes are counted here
//! in UDP payload bytes (the datagram); the path MTU reported adds the IP and UDP headers.
//!
//! * **Search.** When a link comes up, a probe tries the size the tunnel needs; if it goes
//!   unanswered, one round probes at once the common smaller path MTUs ([`COMMON`]: PPPoE,
//!   DS-Lite, LTE carriers) and the least a link must carry ([`PathMtu::new`]'s floor: IPv6's
//!   1280 inside). The largest acknowledged size is
//!   a lower bound, the smallest lost [`MAX_PROBES`] times an upper bound; further rounds split
//!   the gap until it is [`GRANULARITY`] bytes wide. A round waits for the link's retransmission
//!   timeout (its RTT, so a 600 ms satellite link converges too), at least
//!   [`PROBE_TIMEOUT_MIN`]. Probing several sizes at once, as RFC 8899 section 5.3.2 allows,
//!   is what makes a search converge in two or three round trips rather than a dozen.
//! * **Until it is known**, data may use the needed size (most paths carry it; waiting would
//!   delay every link's first second); after the first round without an answer at that size,
//!   only what was acknowledged.
//! * **Black holes** (RFC 8899 section 4.3). A path that shrinks shows as losses: under load
//!   as a run of [`SUSPECT_RUN`] or more packets lost while later ones arrive (every large
//!   packet lost, keepalives pass). Then the link is *suspect*: large packets leave it at once
//!   and the size in use is probed together with the common smaller sizes. Ordinary losses
//!   start a quieter check, at most every [`CONFIRM_INTERVAL`], with the floor beside the size
//!   in use. The verdict needs evidence, not just a lost probe: tries in which a smaller probe
//!   came back and the large one did not within [`ACK_SLACK`] ([`EVIDENCE_SUSPECT`] after a
//!   long run, [`EVIDENCE`] otherwise), and none of it counts while the link's queue stands
//!   ([`STANDING_QUEUE`]: a full queue drops runs too, and large packets first). Then data uses
//!   the largest size that came back, and the search goes on below the old size. Waiting for
//!   three probe timeouts instead lost 0.55 s of a 40 Mbit/s link's packets in the simulator,
//!   more than the resend buffer holds, and a CUBIC flow took 5 s to recover; a false alarm
//!   costs the link its large packets for a round trip.
//! * **Hints**: what the host's routing says (an interface's MTU, an ICMP message) is a size
//!   worth a probe ([`PathMtu::on_hint`]), never a verdict: ICMP can be forged.
//! * **Raising**: a path found smaller is probed above again every [`RAISE_INTERVAL`].
//! * **Unusable**: a path that carries not even the floor is reported so, carries no data,
//!   and is searched again every [`UNUSABLE_RETRY`].

use super::time::{Duration, Instant};

/// Probes of one size lost in a row before that size is taken as too big (RFC 8899 section
/// 5.1.2, MAX_PROBES).
pub const MAX_PROBES: u8 = 3;
/// The shortest a round waits for acknowledgements.
pub const PROBE_TIMEOUT_MIN: Duration = Duration::from_millis(100);
/// How often a path found smaller is probed above again (RFC 8899 section 5.1.1,
/// PMTU_RAISE_TIMER).
pub const RAISE_INTERVAL: Duration = Duration::from_secs(600);
/// The most often a lossy link's current size is checked (a long run of losses is checked at
/// once): a link whose queue overflows loses probes as it loses data.
pub const CONFIRM_INTERVAL: Duration = Duration::from_secs(10);
/// Tries in which a smaller probe passed and the one at the size in use did not, before the
/// path is taken to have shrunk: after a long run of losses, and after ordinary losses. Loss
/// of a probe alone proves nothing: a full queue drops probes as it drops data (a link
/// overloaded by 10 % in the simulator lost three in a row often enough to halve its share).
/// After a long run one try suffices: a second one cost the simulator's CUBIC flow 3.5 s
/// below half rate instead of 0.5. A false verdict (the large probe lost by chance after an
/// outage) costs little: the search that follows finds the size in use again, less a few
/// bytes.
pub const EVIDENCE_SUSPECT: u8 = 1;
pub const EVIDENCE: u8 = MAX_PROBES;
/// How often a path that carries not even the floor is searched again.
pub const UNUSABLE_RETRY: Duration = Duration::from_secs(10);
/// Packets lost in a row, reported by the peer, that make a link suspect of a black hole.
pub const SUSPECT_RUN: u16 = 8;
/// Queueing on the link (as the peer measures our packets' delay) above which its losses are
/// congestion: a full queue drops runs of packets too, and, counting bytes, drops a large
/// probe where a small one still fits. Twice the queue the scheduler keeps on a link
/// ([`super::arrival::QUEUE_LIMIT`]). Without it, a link that fell from 40 to 10 Mbit/s
/// was taken for a black hole and its flow took 5 s instead of 0.5 to recover.
pub const STANDING_QUEUE: Duration = Duration::from_millis(20);
/// When checking a size, how long after a smaller probe's acknowledgement the one at the size
/// in use still has to be acknowledged: both left together, so only jitter separates them.
/// A try then takes a round trip, not a retransmission timeout.
pub const ACK_SLACK: Duration = Duration::from_millis(20);
/// A search stops when the gap between what passed and what did not is this narrow.
pub const GRANULARITY: usize = 4;
/// Path MTUs met often enough to try first, largest first: Ethernet, PPPoE, a 20-byte inner
/// header, DS-Lite's 1460 (IPv4 in IPv6), and the 1400-1440 of many LTE carriers and nested
/// tunnels.
pub const COMMON: [usize; 7] = [1500, 1492, 1480, 1460, 1440, 1420, 1400];
/// Probes in one round: the needed size, [`COMMON`] and the floor.
const ROUND: usize = 9;

/// Where a link's search stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmtuState {
    /// The first search since the link came up.
    Searching,
    /// Known; checked again when the link loses packets, and raised from time to time.
    Done,
    /// The size in use stopped passing; searching below it.
    BlackHole,
    /// The path does not carry the floor: no data goes there.
    Unusable,
}

impl PmtuState {
    pub const ALL: [PmtuState; 4] =
        [PmtuState::Searching, PmtuState::Done, PmtuState::BlackHole, PmtuState::Unusable];

    pub fn name(self) -> &'static str {
        match self {
            PmtuState::Searching => "searching",
            PmtuState::Done => "done",
            PmtuState::BlackHole => "black_hole",
            PmtuState::Unusable => "unusable",
        }
    }
}

/// Counters of one link's probing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PmtuStats {
    pub probes_sent: u64,
    /// Probes not acknowledged within their round (each try counts).
    pub probes_lost: u64,
    pub black_holes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    id: u32,
    size: usize,
    tries: u8,
    owed: bool,
}

/// Why a round of probes is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Finding the size ([`PmtuState::Searching`] or [`PmtuState::BlackHole`]).
    Search,
    /// Checking the size in use still passes.
    Confirm,
    /// Looking for more than the size in use.
    Raise,
}

/// One link's path MTU discovery. Sans-IO: the tunnel sends what [`PathMtu::poll_probe`] asks
/// for, and feeds acknowledgements, timeouts and losses back.
#[derive(Debug, Clone)]
pub struct PathMtu {
    /// IP and UDP headers in front of our datagrams (28 on IPv4, 48 on IPv6).
    overhead: usize,
    /// The datagram the tunnel's configured MTU needs; never probed above.
    needed: usize,
    /// The least a link must carry.
    floor: usize,
    state: PmtuState,
    /// What data may use now.
    effective: usize,
    purpose: Option<Purpose>,
    round: heapless::Vec<Probe, ROUND>,
    /// The largest size acknowledged in this search, and the smallest lost.
    passed: usize,
    too_big: usize,
    due: Option<Instant>,
    next_id: u32,
    last_confirm: Option<Instant>,
    /// A long run of losses: only small packets until the confirmation decides.
    suspect: bool,
    /// The first search probes the needed size alone (most paths carry it, and a burst of
    /// probes would delay a slow link's first packets); the smaller sizes go when it times out.
    expand_below: bool,
    /// A queue stands on the link ([`STANDING_QUEUE`]): its losses say nothing of sizes.
    queue_standing: bool,
    /// Confirming: tries in which a smaller probe passed and the size in use did not, and
    /// whether a smaller one passed in the current try.
    evidence: u8,
    small_passed: bool,
    reported: Option<(usize, PmtuState)>,
    pub stats: PmtuStats,
}

impl PathMtu {
    /// `needed` and `floor` in datagram bytes.
    pub fn new(needed: usize, floor: usize) -> Self {
        PathMtu {
            overhead: 28,
            needed,
            floor: floor.min(needed),
            state: PmtuState::Searching,
            effective: needed,
            purpose: None,
            round: heapless::Vec::new(),
            passed: 0,
            too_big: usize::MAX,
            due: None,
            next_id: 0,
            last_confirm: None,
            suspect: false,
            expand_below: false,
            queue_standing: false,
            evidence: 0,
            small_passed: false,
            reported: None,
            stats: PmtuStats::default(),
        }
    }

    pub fn state(&self) -> PmtuState {
        self.state
    }

    /// The largest datagram data may use on this link now (0: none).
    pub fn max_datagram(&self) -> usize {
        match self.state {
            PmtuState::Unusable => 0,
            _ if self.suspect => self.floor.min(self.effective),
            _ => self.effective,
        }
    }

    /// The path MTU in use: [`Self::max_datagram`] with the IP and UDP headers.
    pub fn path_mtu(&self) -> usize {
        self.effective + self.overhead
    }

    /// The datagram the path is known to carry: once a search has ended on it, or after a
    /// black hole as soon as a smaller size passed (the search may still raise it a little).
    /// `None` while the first search runs: the tunnel's MTU does not follow a guess.
    pub fn settled(&self) -> Option<usize> {
        match self.state {
            PmtuState::Done => Some(self.effective),
            // Only the floor known: the tunnel keeps its MTU (larger packets stay off this
            // link) until the search finds more, rather than drop to the floor and stay there
            // for the raise's hold.
            PmtuState::BlackHole if self.effective > self.floor => Some(self.effective),
            _ => None,
        }
    }

    /// What to report, if it changed since the last call: (path MTU, state). A suspect link's
    /// fall-back to small packets is not news; its outcome is.
    pub fn take_report(&mut self) -> Option<(usize, PmtuState)> {
        let now = (self.path_mtu(), self.state);
        (self.reported != Some(now)).then(|| {
            self.reported = Some(now);
            now
        })
    }

    /// When [`Self::on_timeout`] must run.
    pub fn timeout(&self) -> Option<Instant> {
        self.due
    }

    fn upper(&self) -> usize {
        self.needed
    }

    /// The link (re)connected over a path with `overhead` bytes of IP and UDP headers: search
    /// from scratch, the path may be another one.
    pub fn start(&mut self, now: Instant, overhead: usize) {
        self.overhead = overhead;
        self.state = PmtuState::Searching;
        self.effective = self.upper();
        (self.passed, self.too_big) = (0, usize::MAX);
        self.new_round(Purpose::Search);
        self.add_probe(self.upper());
        self.expand_below = true;
        let _ = now;
    }

    /// The link went down: nothing to probe.
    pub fn stop(&mut self) {
        self.suspect = false;
        self.purpose = None;
        self.round.clear();
        self.due = None;
    }

    /// Something outside said the path carries `path_mtu` (the route's MTU as the kernel
    /// knows it: the device's, or what an ICMP message told it). Anyone on the path can forge
    /// ICMP, so this is only a size worth a probe: below the size in use, the size in use is
    /// checked with it. True if what data may use changed (never, until a probe says so).
    #[inline(never)]
    pub fn on_hint(&mut self, now: Instant, path_mtu: usize) -> bool {
        let size = path_mtu.saturating_sub(self.overhead);
        if size >= self.effective || size < self.floor || self.round.iter().any(|p| p.size == size) {
            return false;
        }
        match self.purpose {
            Some(_) => {
                self.add_probe(size);
            }
            None if self.state == PmtuState::Done => {
                self.begin_confirm(now);
                self.add_probe(size);
            }
            None => {}
        }
        false
    }

    /// How long our packets queue on the link now, as the peer measures it.
    pub fn on_queueing(&mut self, queueing: Duration) {
        self.queue_standing = queueing > STANDING_QUEUE;
    }

    /// The link lost `run` packets in a row: if we are not busy finding out anything else,
    /// check the size in use still passes. True if what data may use changed (a long run makes
    /// the link suspect: the check then probes the smaller sizes too, so that a black hole is
    /// known with its new size after one probe timeout).
    #[inline(never)]
    pub fn on_loss(&mut self, now: Instant, run: u16) -> bool {
        let suspect = run >= SUSPECT_RUN && !self.queue_standing;
        if suspect && !self.suspect && self.purpose == Some(Purpose::Confirm) {
            // A check for ordinary losses is running: it becomes a suspect's.
            self.suspect = true;
            self.add_candidates(0, self.effective - 1);
            return true;
        }
        if self.state != PmtuState::Done
            || self.purpose.is_some_and(|p| p != Purpose::Raise)
            || (!suspect && self.last_confirm.is_some_and(|t| now < t + CONFIRM_INTERVAL))
        {
            return false;
        }
        self.suspect = suspect;
        self.begin_confirm(now);
        suspect
    }

    /// Probes the size in use with smaller ones beside it: all the common sizes below on a
    /// suspect link (its new size is then known from the same round), the floor otherwise.
    fn begin_confirm(&mut self, now: Instant) {
        self.last_confirm = Some(now);
        (self.passed, self.too_big) = (0, usize::MAX);
        (self.evidence, self.small_passed) = (0, false);
        self.new_round(Purpose::Confirm);
        self.add_probe(self.effective);
        if self.suspect {
            self.add_candidates(0, self.effective - 1);
        } else {
            self.add_probe(self.floor);
        }
    }

    /// The next probe to send: (id, datagram length). Arms the round's timer with `timeout`
    /// (the link's retransmission timeout) at the first.
    #[inline(never)]
    pub fn poll_probe(&mut self, now: Instant, timeout: Duration) -> Option<(u32, usize)> {
        let p = self.round.iter_mut().find(|p| p.owed)?;
        p.owed = false;
        p.tries += 1;
        self.stats.probes_sent += 1;
        let probe = (p.id, p.size);
        if self.due.is_none() {
            self.due = Some(now + timeout.max(PROBE_TIMEOUT_MIN));
        }
        Some(probe)
    }

    /// The peer received probe `id` as a datagram of `len` bytes. True if what data may use
    /// or the state changed.
    #[inline(never)]
    pub fn on_ack(&mut self, now: Instant, id: u32, len: usize) -> bool {
        let Some(k) = self.round.iter().position(|p| p.id == id && p.size == len) else {
            return false;
        };
        let size = self.round[k].size;
        self.passed = self.passed.max(size);
        self.round.retain(|p| p.size > size);
        if self.round.is_empty() {
            return self.resolve(now);
        }
        if self.purpose == Some(Purpose::Confirm) {
            // A smaller probe is back and the one at the size in use, sent with it, is not:
            // this try is over soon.
            self.small_passed = true;
            self.due = Some(self.due.map_or(now, |d| d.min(now + ACK_SLACK)));
        }
        false
    }

    /// A round's time is up, or a timer of ours is due. True if what data may use or the
    /// state changed.
    #[inline(never)]
    pub fn on_timeout(&mut self, now: Instant) -> bool {
        if self.due.is_none_or(|t| now < t) {
            return false;
        }
        self.due = None;
        let Some(purpose) = self.purpose else {
            // No round: time to look above, or to try an unusable path again.
            match self.state {
                PmtuState::Done if self.effective < self.upper() => {
                    (self.passed, self.too_big) = (self.effective, usize::MAX);
                    self.new_round(Purpose::Raise);
                    self.add_candidates(self.effective, self.upper());
                }
                PmtuState::Unusable => self.start(now, self.overhead),
                _ => {}
            }
            return false;
        };
        for p in self.round.iter_mut().filter(|p| !p.owed) {
            self.stats.probes_lost += 1;
            if p.tries >= MAX_PROBES {
                self.too_big = self.too_big.min(p.size);
            } else {
                p.owed = true;
            }
        }
        let before = self.max_datagram();
        if purpose == Purpose::Confirm {
            return self.confirm_timeout(now) || before != self.max_datagram();
        }
        let too_big = self.too_big;
        self.round.retain(|p| p.size < too_big);
        if purpose == Purpose::Search && self.expand_below {
            self.expand_below = false;
            self.add_candidates(0, self.upper() - 1);
        }
        if purpose == Purpose::Search && self.state != PmtuState::Done && self.passed > 0 {
            // The larger sizes went unanswered: until the search ends, what passed.
            self.effective = self.passed;
        }
        let changed = before != self.max_datagram();
        if self.round.is_empty() { self.resolve(now) || changed } else { changed }
    }

    /// A try of a confirmation is over without an answer at the size in use.
    fn confirm_timeout(&mut self, now: Instant) -> bool {
        if self.small_passed && !self.queue_standing {
            self.evidence += 1;
        }
        self.small_passed = false;
        let needed = if self.suspect { EVIDENCE_SUSPECT } else { EVIDENCE };
        if self.evidence >= needed {
            // The path shrank. Data uses what passed at once; the round goes on as a search
            // below the size that no longer passes, over the common sizes (a suspect's round
            // has them already, some perhaps still on their way back).
            let old = self.effective;
            self.suspect = false;
            self.stats.black_holes += 1;
            self.state = PmtuState::BlackHole;
            self.purpose = Some(Purpose::Search);
            self.too_big = self.too_big.min(old);
            self.effective = self.passed;
            self.round.retain(|p| p.size < old);
            self.add_candidates(self.passed, old - 1);
            if self.round.is_empty() {
                self.resolve(now);
            }
            return true;
        }
        let size_in_use = self.round.iter().find(|p| p.size > self.passed.max(self.floor)).map(|p| p.tries);
        if size_in_use.is_none_or(|tries| tries >= MAX_PROBES) {
            // Lost every time without the evidence: plain loss. Nothing changes.
            let changed = self.suspect;
            self.suspect = false;
            self.finish(now);
            return changed;
        }
        // Another try: the size in use again, with a smaller probe beside it.
        let companion = if self.passed > 0 { self.passed } else { self.floor };
        self.round.retain(|p| p.size > companion);
        self.add_probe(companion);
        false
    }

    /// Every probe of the round is answered or given up: decide.
    fn resolve(&mut self, now: Instant) -> bool {
        let before = (self.state, self.max_datagram());
        let purpose = self.purpose.take();
        self.due = None;
        self.suspect = false;
        if purpose == Some(Purpose::Confirm)
            || (purpose == Some(Purpose::Raise) && self.passed <= self.effective)
        {
            // The size in use passed (a confirmation ends early only so); or nothing larger did.
            self.finish(now);
        } else if self.passed == 0 {
            self.state = PmtuState::Unusable;
            self.due = Some(now + UNUSABLE_RETRY);
        } else {
            // Anything that passed is safe to use; narrow the gap above it.
            self.effective = self.passed;
            let (lo, hi) = (self.passed, self.too_big.min(self.upper() + 1));
            if hi.saturating_sub(lo) > GRANULARITY {
                let step = ((hi - lo) / (ROUND - 1)).max(1);
                self.new_round(purpose.unwrap_or(Purpose::Search));
                for size in (1..ROUND).map(|k| lo + k * step).take_while(|&s| s < hi) {
                    self.add_probe(size);
                }
            } else {
                self.finish(now);
            }
        }
        before != (self.state, self.max_datagram())
    }

    fn finish(&mut self, now: Instant) {
        self.state = PmtuState::Done;
        self.round.clear();
        self.purpose = None;
        self.due = (self.effective < self.upper()).then(|| now + RAISE_INTERVAL);
    }

    /// Adds a probe of `size` to the round, unless one is there or the round is full.
    fn add_probe(&mut self, size: usize) {
        if self.round.iter().any(|p| p.size == size) {
            return;
        }
        if self.round.push(Probe { id: self.next_id, size, tries: 0, owed: true }).is_ok() {
            self.next_id = self.next_id.wrapping_add(1);
        }
    }

    /// Adds the sizes worth a probe in `(lo, hi]`: `hi`, the [`COMMON`] path MTUs between,
    /// and the floor.
    #[inline(never)]
    fn add_candidates(&mut self, lo: usize, hi: usize) {
        let common = COMMON.map(|p| p.saturating_sub(self.overhead));
        for size in [hi].iter().chain(&common).chain(&[self.floor]) {
            if *size > lo && *size <= hi && *size >= self.floor {
                self.add_probe(*size);
            }
        }
    }

    fn new_round(&mut self, purpose: Purpose) {
        self.round.clear();
        self.purpose = Some(purpose);
        self.due = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEEDED: usize = 1452; // 1419 + 33: the default tunnel MTU's datagram
    const FLOOR: usize = 1313; // 1280 + 33
    const RTO: Duration = Duration::from_millis(200);
    const HALF_RTO: Duration = Duration::from_millis(100);

    /// Drives one link's discovery against a path carrying datagrams up to `path_max` bytes,
    /// every probe answered one RTT later unless lost; returns the probes sent.
    fn run(p: &mut PathMtu, now: &mut Instant, path_max: usize, until: Instant) -> u64 {
        run_logged(p, now, path_max, until, &mut Vec::new())
    }

    /// [`run`], noting every (state, size data may use) it passes through.
    fn run_logged(
        p: &mut PathMtu,
        now: &mut Instant,
        path_max: usize,
        until: Instant,
        log: &mut Vec<(PmtuState, usize)>,
    ) -> u64 {
        drive(p, now, path_max, until, log, &mut || false)
    }

    /// Probes up to `path_max` bytes pass unless `lost()` says so; acknowledgements come half
    /// an RTO later.
    fn drive(
        p: &mut PathMtu,
        now: &mut Instant,
        path_max: usize,
        until: Instant,
        log: &mut Vec<(PmtuState, usize)>,
        lost: &mut dyn FnMut() -> bool,
    ) -> u64 {
        let sent_before = p.stats.probes_sent;
        while *now < until {
            let mut answers = Vec::new();
            while let Some((id, len)) = p.poll_probe(*now, RTO) {
                if len <= path_max && !lost() {
                    answers.push((id, len));
                }
            }
            let ack_at = *now + HALF_RTO;
            let next = p.timeout().map_or(until, |t| t.min(until));
            if !answers.is_empty() && ack_at <= next {
                *now = ack_at;
                for (id, len) in answers {
                    p.on_ack(*now, id, len);
                }
            } else {
                *now = next;
                p.on_timeout(*now);
            }
            log.push((p.state(), p.max_datagram()));
        }
        p.stats.probes_sent - sent_before
    }

    fn run_for(p: &mut PathMtu, now: &mut Instant, path_max: usize, d: Duration) -> u64 {
        let until = *now + d;
        run(p, now, path_max, until)
    }

    fn started() -> (PathMtu, Instant) {
        let mut p = PathMtu::new(NEEDED, FLOOR);
        let now = Instant::from_micros(1_000_000);
        p.start(now, 28);
        (p, now)
    }

    #[test]
    fn a_path_that_carries_everything_is_done_in_one_round_trip() {
        let (mut p, mut now) = started();
        let t0 = now;
        run(&mut p, &mut now, 9000, t0 + Duration::from_millis(150));
        assert_eq!(p.state(), PmtuState::Done);
        assert_eq!((p.max_datagram(), p.path_mtu()), (NEEDED, NEEDED + 28));
        assert_eq!(p.timeout(), None, "nothing to raise");
    }

    #[test]
    fn a_1400_path_is_found_within_a_few_round_trips_and_exactly() {
        let (mut p, mut now) = started();
        let t0 = now;
        run(&mut p, &mut now, 1400 - 28, t0 + Duration::from_secs(3));
        assert_eq!(p.state(), PmtuState::Done);
        assert!((1400 - 28 - GRANULARITY..=1400 - 28).contains(&p.max_datagram()), "{}", p.max_datagram());
        assert!(p.stats.probes_sent < 50, "{:?}", p.stats);
        assert!(p.timeout().is_some(), "a raise is planned");
    }

    #[test]
    fn until_the_needed_size_answers_data_uses_what_passed() {
        let (mut p, mut now) = started();
        assert_eq!(p.max_datagram(), NEEDED, "optimistic at first");
        // The needed size alone first: unanswered, and nothing known yet.
        let (_, len) = p.poll_probe(now, RTO).unwrap();
        assert_eq!((len, p.poll_probe(now, RTO)), (NEEDED, None));
        now = p.timeout().unwrap();
        assert!(!p.on_timeout(now));
        // Then the smaller sizes with it: everything up to 1400 answers.
        let mut sent = 0;
        while let Some((id, len)) = p.poll_probe(now, RTO) {
            sent += 1;
            if len <= 1372 {
                p.on_ack(now + HALF_RTO, id, len);
            }
        }
        assert!(sent >= 5, "{sent}");
        now = p.timeout().unwrap();
        assert!(p.on_timeout(now));
        assert_eq!((p.state(), p.max_datagram()), (PmtuState::Searching, 1372));
    }

    #[test]
    fn a_path_below_the_floor_is_unusable_and_tried_again() {
        let (mut p, mut now) = started();
        let t0 = now;
        run(&mut p, &mut now, 1200, t0 + Duration::from_secs(3));
        assert_eq!((p.state(), p.max_datagram()), (PmtuState::Unusable, 0));
        let retry = p.timeout().expect("tried again");
        assert!(retry - t0 >= UNUSABLE_RETRY);
        run(&mut p, &mut now, 9000, retry + Duration::from_secs(1));
        assert_eq!((p.state(), p.max_datagram()), (PmtuState::Done, NEEDED));
    }

    #[test]
    fn a_black_hole_is_confirmed_then_searched_below() {
        let (mut p, mut now) = started();
        let t0 = now;
        run(&mut p, &mut now, 9000, t0 + Duration::from_secs(1));
        assert_eq!(p.state(), PmtuState::Done);
        // The path shrinks; the link reports losses.
        p.on_loss(now, 1);
        let mut log = Vec::new();
        let until = now + Duration::from_secs(3);
        run_logged(&mut p, &mut now, 1400 - 28, until, &mut log);
        let saw_black_hole = log.contains(&(PmtuState::BlackHole, FLOOR));
        assert!(
            log.iter().all(|&(s, d)| s != PmtuState::BlackHole || d <= 1400 - 28),
            "nothing larger than the path meanwhile: {log:?}"
        );
        assert!(saw_black_hole);
        assert_eq!(p.state(), PmtuState::Done);
        assert!((1368..=1372).contains(&p.max_datagram()), "{}", p.max_datagram());
        assert_eq!(p.stats.black_holes, 1);
    }

    #[test]
    fn a_long_run_of_losses_keeps_large_packets_off_until_the_probe_decides() {
        let (mut p, mut now) = started();
        run_for(&mut p, &mut now, 9000, Duration::from_secs(1));
        assert!(p.on_loss(now, SUSPECT_RUN), "suspect at once");
        assert_eq!((p.state(), p.max_datagram()), (PmtuState::Done, FLOOR));
        assert!(!p.on_loss(now, SUSPECT_RUN), "once");
        // A false alarm: the probe passes, and large packets are back.
        run_for(&mut p, &mut now, 9000, Duration::from_millis(500));
        assert_eq!((p.state(), p.max_datagram(), p.stats.black_holes), (PmtuState::Done, NEEDED, 0));
        // A real one: after one probe timeout data uses what passed; the search ends on the
        // new size.
        p.on_loss(now, 100);
        let mut log = Vec::new();
        let until = now + Duration::from_secs(3);
        run_logged(&mut p, &mut now, 1400 - 28, until, &mut log);
        let first = log.iter().position(|e| e.0 == PmtuState::BlackHole).expect("a black hole");
        assert_eq!(log[first].1, 1400 - 28, "the largest common size that passed: {log:?}");
        assert_eq!(p.stats.black_holes, 1);
        assert!((1368..=1372).contains(&p.max_datagram()), "{}", p.max_datagram());
    }

    #[test]
    fn losses_on_a_path_that_still_carries_the_size_change_nothing() {
        let (mut p, mut now) = started();
        let t0 = now;
        run(&mut p, &mut now, 9000, t0 + Duration::from_secs(1));
        p.on_loss(now, 1);
        let sent = run_for(&mut p, &mut now, 9000, Duration::from_millis(500));
        assert_eq!(sent, 2, "one confirmation: the size in use and the floor beside it");
        p.on_loss(now, 1);
        assert_eq!(run_for(&mut p, &mut now, 9000, Duration::from_millis(100)), 0, "at most every 10 s");
        assert_eq!((p.state(), p.max_datagram(), p.stats.black_holes), (PmtuState::Done, NEEDED, 0));
    }

    /// Every probe and every acknowledgement lost with probability `loss` (a deterministic LCG).
    fn run_lossy(p: &mut PathMtu, now: &mut Instant, path_max: usize, d: Duration, loss: f64, rng: &mut u64) {
        let mut once = || {
            *rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((*rng >> 11) as f64 / (1u64 << 53) as f64) < loss
        };
        let until = *now + d;
        drive(p, now, path_max, until, &mut Vec::new(), &mut || once() || once());
    }

    #[test]
    fn random_loss_is_not_a_black_hole_but_a_black_hole_is_found_through_it() {
        let (mut p, mut now) = started();
        let mut rng = 7;
        run_lossy(&mut p, &mut now, 9000, Duration::from_secs(2), 0.0, &mut rng);
        // 10 % of probes and 10 % of acknowledgements lost: 200 checks, one every 10 s.
        for _ in 0..200 {
            p.on_loss(now, 1);
            run_lossy(&mut p, &mut now, 9000, CONFIRM_INTERVAL, 0.1, &mut rng);
        }
        assert_eq!(
            (p.state(), p.max_datagram(), p.stats.black_holes),
            (PmtuState::Done, NEEDED, 0),
            "{:?}",
            p.stats
        );
        // The path shrinks, with the same loss: a check is conclusive when the floor's probe
        // passed in each of its three tries (53 % of the time here: 0.81³).
        let mut checks = 0;
        while p.stats.black_holes == 0 && checks < 5 {
            checks += 1;
            p.on_loss(now, 1);
            run_lossy(&mut p, &mut now, 1400 - 28, CONFIRM_INTERVAL, 0.1, &mut rng);
        }
        assert_eq!(
            (p.state(), p.stats.black_holes),
            (PmtuState::Done, 1),
            "{:?} after {checks} checks",
            p.stats
        );
        assert!((1368..=1372).contains(&p.max_datagram()), "{}", p.max_datagram());
    }

    #[test]
    fn a_path_that_grows_again_is_found_by_the_raise_timer() {
        let (mut p, mut now) = started();
        let t0 = now;
        run(&mut p, &mut now, 1400 - 28, t0 + Duration::from_secs(3));
        assert!(p.max_datagram() <= 1372);
        run(&mut p, &mut now, 9000, t0 + RAISE_INTERVAL - Duration::from_secs(10));
        assert!(p.max_datagram() <= 1372, "not before the raise timer");
        run(&mut p, &mut now, 9000, t0 + RAISE_INTERVAL + Duration::from_secs(5));
        assert_eq!((p.state(), p.max_datagram()), (PmtuState::Done, NEEDED));
    }

    #[test]
    fn a_raise_that_finds_nothing_keeps_the_size() {
        let (mut p, mut now) = started();
        let t0 = now;
        run(&mut p, &mut now, 1400 - 28, t0 + Duration::from_secs(3));
        let found = p.max_datagram();
        run(&mut p, &mut now, 1400 - 28, t0 + RAISE_INTERVAL + Duration::from_secs(5));
        assert_eq!((p.state(), p.max_datagram()), (PmtuState::Done, found));
        assert!(p.timeout().is_some(), "and tries again later");
    }

    #[test]
    fn a_600_ms_round_trip_converges_too() {
        let mut p = PathMtu::new(NEEDED, FLOOR);
        let mut now = Instant::from_micros(1_000_000);
        p.start(now, 48);
        let t0 = now;
        let slow = Duration::from_millis(900);
        while now < t0 + Duration::from_secs(15) && p.state() != PmtuState::Done {
            let mut answers = Vec::new();
            while let Some((id, len)) = p.poll_probe(now, slow) {
                if len <= 1400 - 48 {
                    answers.push((id, len));
                }
            }
            let ack_at = now + Duration::from_millis(600);
            if !answers.is_empty() {
                now = ack_at;
                for (id, len) in answers {
                    p.on_ack(now, id, len);
                }
            } else {
                now = p.timeout().unwrap();
                p.on_timeout(now);
            }
        }
        assert_eq!(p.state(), PmtuState::Done);
        assert!(now - t0 < Duration::from_secs(10), "{:?}", now - t0);
        assert_eq!(p.path_mtu(), p.max_datagram() + 48);
    }

    #[test]
    fn a_hint_is_checked_not_believed() {
        let (mut p, mut now) = started();
        run_for(&mut p, &mut now, 9000, Duration::from_secs(1));
        // A forged "fragmentation needed, 1400": the size in use still passes.
        assert!(!p.on_hint(now, 1400));
        run_for(&mut p, &mut now, 9000, Duration::from_secs(1));
        assert_eq!((p.state(), p.max_datagram()), (PmtuState::Done, NEEDED));
        // A true one (a PPPoE device: 1492 on IPv6 is 1444 of datagram here).
        let mut p = PathMtu::new(NEEDED, FLOOR);
        p.start(now, 48);
        run_for(&mut p, &mut now, 1492 - 48, Duration::from_secs(3));
        let before = p.stats.probes_sent;
        assert!(!p.on_hint(now, 1492), "known already: nothing to probe");
        assert_eq!(run_for(&mut p, &mut now, 1492 - 48, Duration::from_millis(500)), 0);
        assert_eq!((p.state(), p.path_mtu(), p.stats.probes_sent), (PmtuState::Done, 1492, before));
        // The path shrinks to 1420 and the kernel hears of it: found without a long loss run.
        assert!(!p.on_hint(now, 1420));
        run_for(&mut p, &mut now, 1420 - 48, Duration::from_secs(3));
        assert_eq!((p.state(), p.path_mtu()), (PmtuState::Done, 1420));
    }

    #[test]
    fn acks_for_unknown_probes_or_other_sizes_change_nothing() {
        let (mut p, now) = started();
        let (id, len) = p.poll_probe(now, RTO).unwrap();
        assert!(!p.on_ack(now, id.wrapping_add(100), len));
        assert!(!p.on_ack(now, id, len - 1));
        assert_eq!(p.state(), PmtuState::Searching);
    }
}
