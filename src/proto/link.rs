//! One link: its session, its health, and what it owes the peer.
//!
//! ## Liveness
//!
//! * **While data flows** the receiver acknowledges within [`FEEDBACK_DELAY`] (a keepalive whose
//!   `rx_highest_pn` covers what it got). The sender remembers when it first sent data that is
//!   not yet covered; after an RTO without cover it *probes* (a keepalive asking for an
//!   immediate answer), and after [`dead_after`] it declares the link down. That is at most
//!   about 0.3 s on a link with a short RTT, yet it scales with `SRTT + 4 RTTVAR`, so a healthy
//!   link with heavy jitter — whose variance shows in RTTVAR — is never declared dead.
//! * **When idle** each side sends a keepalive every second, and a link that hears nothing for
//!   its `timeout` is down (MLVPN's meaning of `timeout`).
//! * **Coming back**: a client re-handshakes a down link every [`HANDSHAKE_RETRY`]; a server
//!   keeps probing a link it declared dead and marks it up when a probe is acknowledged.
//!
//! ## States
//!
//! `Down` → (client sends hello) `Authenticating` → `Up`, and from `Up`: `Lossy` when the
//! outbound loss over the window reaches `loss_tolerance`, `Slow` when SRTT reaches
//! `latency_tolerance`. Only `Up` links carry data; `Lossy` and `Slow` links keep being measured
//! (with acknowledged keepalives) and return to `Up` by themselves; a lossy link only once a
//! fresh window shows less than half the tolerance, so it does not flap.

use super::capacity::{Capacity, Report};
use super::handshake::{ConfirmLog, Pending};
use super::loss::LossWindow;
use super::owd::OwdTracker;
use super::pmtu::PathMtu;
use super::rtt::RttEstimator;
use super::session::Session;
use super::time::{Duration, Instant};
use super::timer::{LinkTimer, Timer, TimerTable};
use super::wire::{Keepalive, ProbeAck, flags};
use std::net::SocketAddr;

/// Keepalive period of an idle link (MLVPN's).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(1);
/// Keepalive period while we send data on the link, or while it is slow: frequent enough for
/// the peer to follow our one-way delay and for RTT samples, cheap enough not to matter (20
/// packets of 74 bytes a second: 12 kbit/s).
pub const KEEPALIVE_ACTIVE: Duration = Duration::from_millis(50);
/// Keepalive period of a lossy link, each answered at once: 40 small packets a second measure
/// its loss afresh in under a second.
pub const KEEPALIVE_LOSSY: Duration = Duration::from_millis(25);
/// Packets a lossy link's loss is judged over before it may carry data again (it must then be
/// under half the tolerance).
pub const LOSSY_EXIT_PACKETS: u32 = 32;
/// Longest a receiver waits before acknowledging data.
pub const FEEDBACK_DELAY: Duration = Duration::from_millis(20);
/// A link that carried data and then nothing for this long sends a keepalive behind it (with
/// loss recovery on). The peer finds a lost packet only when a later one arrives on the same
/// link; on a link that carries a packet now and then, the next one may come a keepalive period
/// later, long after the reorder buffer gave up on the hole. Like TCP's tail loss probe
/// (RFC 8985, §7), but sent after a few milliseconds, not a round trip: it costs one 74-byte
/// packet per burst, and none on a link in steady use (packets a millisecond apart or less).
pub const TAIL_PROBE: Duration = Duration::from_millis(5);
/// Floor of the probe timeout.
pub const PROBE_MIN: Duration = Duration::from_millis(50);
/// Floor of the dead timeout: low enough to detect a dead link within 0.5 s, high enough that
/// a scheduling hiccup of the machine is not a dead link.
pub const DEAD_MIN: Duration = Duration::from_millis(300);
/// Time between handshake attempts of a client link that is down. A round trip may be longer
/// (a geostationary satellite: 600 ms), so the hello before the last one is still answered
/// ([`Link::previous_pending`]); replacing it, such a link never connected.
pub const HANDSHAKE_RETRY: Duration = Duration::from_millis(500);
/// Handshake attempts without an answer before we report it (once).
pub const UNANSWERED_REPORT_AFTER: u32 = 3;
/// RTO assumed before the first RTT sample.
pub const INITIAL_RTO: Duration = Duration::from_secs(1);

/// A link's settings, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    pub name: String,
    /// Down after this long without hearing from the peer.
    pub timeout: Duration,
    /// Outbound loss, in percent, at which the link is lossy; 100 turns it off.
    pub loss_tolerance: u8,
    /// SRTT at which the link is slow.
    pub latency_tolerance: Duration,
    /// Carries data only when no normal link is usable.
    pub fallback_only: bool,
    /// Upload capacity in bytes per second: the scheduler's weight.
    pub bandwidth_upload: Option<u64>,
}

impl LinkConfig {
    /// A link with MLVPN's defaults.
    pub fn new(name: &str) -> Self {
        LinkConfig {
            name: name.to_string(),
            timeout: Duration::from_secs(60),
            loss_tolerance: 100,
            latency_tolerance: Duration::from_millis(1000),
            fallback_only: false,
            bandwidth_upload: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// No working session.
    Down,
    /// Client: a handshake is under way.
    Authenticating,
    /// Carries data.
    Up,
    /// Connected, but losing too much to carry data.
    Lossy,
    /// Connected, but too slow to carry data.
    Slow,
}

impl LinkState {
    /// Has a working session with the peer (whether or not it carries data).
    pub fn is_connected(self) -> bool {
        matches!(self, LinkState::Up | LinkState::Lossy | LinkState::Slow)
    }

    /// MLVPN's status string, which existing monitoring expects.
    pub fn mlvpn_name(self) -> &'static str {
        match self {
            LinkState::Down => "disconnected",
            LinkState::Authenticating => "waiting peer",
            LinkState::Up => "connected",
            LinkState::Lossy => "lossy link",
            LinkState::Slow => "slow link",
        }
    }
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing heard for `timeout`.
    Timeout,
    /// Data sent and not acknowledged in time.
    Unanswered,
    /// The peer said it is closing.
    PeerDisconnected,
    /// The peer process restarted; its old sessions are gone.
    PeerRestarted,
    /// We are closing.
    Closed,
}

/// Per-link counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_data_packets: u64,
    pub rx_data_packets: u64,
    /// Times the link went down.
    pub disconnects: u64,
    pub handshakes: u64,
    /// Handshake messages that did not authenticate or were not fresh.
    pub handshake_failures: u64,
    pub probes: u64,
    /// Data packets sent again after the peer reported them lost.
    pub retransmits: u64,
    /// Second copies of real-time packets sent on this link ([`super::duplicate`]).
    pub duplicates_sent: u64,
    /// Data packets received here after another copy had been delivered: duplicated copies
    /// that lost the race, resent packets whose original was only late.
    pub duplicates_dropped: u64,
}

/// The part of the timer table that belongs to one link.
#[derive(Debug)]
pub struct LinkTimers<'a> {
    pub table: &'a mut TimerTable,
    pub link: usize,
}

impl LinkTimers<'_> {
    fn set(&mut self, t: LinkTimer, at: Instant) {
        self.table.set(Timer::Link(self.link, t), at);
    }
    fn set_earliest(&mut self, t: LinkTimer, at: Instant) {
        self.table.set_earliest(Timer::Link(self.link, t), at);
    }
    fn stop(&mut self, t: LinkTimer) {
        self.table.stop(Timer::Link(self.link, t));
    }
}

/// A change of state the tunnel must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: LinkState,
    pub to: LinkState,
    pub reason: Option<DownReason>,
}

/// Two state changes made in one call, reported as one: from where the first started to where
/// the second ended. Reporting only the second (say Up → Lossy after Down → Up) would hide that
/// the link connected, and the tunnel's count of connected links would go wrong.
fn chain(first: Option<Transition>, then: Option<Transition>) -> Option<Transition> {
    match (first, then) {
        (Some(a), Some(b)) if a.from == b.to => None,
        (Some(a), Some(b)) => Some(Transition { from: a.from, to: b.to, reason: b.reason.or(a.reason) }),
        (a, b) => b.or(a),
    }
}

#[derive(Debug)]
pub struct Link {
    pub config: LinkConfig,
    pub state: LinkState,
    pub is_client: bool,
    /// The current session, and the one it replaced (still accepted on receive, so packets
    /// in flight across a re-handshake are not lost).
    pub session: Option<Session>,
    pub previous: Option<Session>,
    /// Client: the handshake in progress, and the unanswered hello it replaced (whose challenge
    /// may still come, on a link slower than [`HANDSHAKE_RETRY`]).
    pub pending: Option<Pending>,
    pub previous_pending: Option<Pending>,
    /// Server: recent confirms.
    pub confirms: ConfirmLog,
    /// Where to send: the configured remote (client) or the learned peer (server).
    pub peer: Option<SocketAddr>,
    pub rtt: RttEstimator,
    /// How long the peer's packets take to reach us (for the peer, and for our reorder wait).
    pub owd: OwdTracker,
    /// What the peer last said of our packets' delay on this link: (smoothed, minimum).
    pub peer_owd: Option<(u32, u32)>,
    /// How fast this link carries our packets.
    pub capacity: Capacity,
    /// How large a datagram its path carries.
    pub pmtu: PathMtu,
    /// The peer's path MTU probes that arrived, to acknowledge on this link.
    pub owe_probe_acks: heapless::Vec<ProbeAck, 4>,
    loss_out: LossWindow,
    loss_in: LossWindow,
    last_rx: Instant,
    last_data_tx: Option<Instant>,
    last_keepalive_tx: Instant,
    /// The peer's latest keepalive timestamp and when it arrived, to echo.
    peer_timestamp: Option<(u32, Instant)>,
    /// The echo we last took an RTT sample from (each echo is sampled once).
    last_echo: Option<u32>,
    /// When the link last became connected: echoes of keepalives older than that are not
    /// round-trip samples (see [`Self::on_keepalive`]).
    established_at: Instant,
    /// The first packet sent that the peer has not yet covered: (when, packet number).
    unacked: Option<(Instant, u64)>,
    /// Probe timer expiries since the peer last covered our data: the first asks the peer for
    /// an immediate answer, a second means that went unanswered too (see [`Self::is_suspect`]).
    probes_unanswered: u8,
    /// A keepalive is owed; `owe_ack_request` asks the peer to answer it at once.
    pub owe_keepalive: bool,
    pub owe_ack_request: bool,
    /// Client: a hello is owed.
    pub owe_hello: bool,
    /// Unanswered hellos in a row.
    pub hellos_unanswered: u32,
    pub stats: LinkStats,
    /// Whether an authentication failure or unanswered handshake was reported since the link
    /// last authenticated (we report once, not once per packet).
    pub auth_problem_reported: bool,
}

impl Link {
    pub fn new(config: LinkConfig, is_client: bool, pmtu: PathMtu) -> Self {
        let capacity = Capacity::new(config.bandwidth_upload, Instant::ZERO);
        Link {
            config,
            state: LinkState::Down,
            is_client,
            session: None,
            previous: None,
            pending: None,
            previous_pending: None,
            confirms: ConfirmLog::default(),
            peer: None,
            rtt: RttEstimator::default(),
            owd: OwdTracker::default(),
            peer_owd: None,
            capacity,
            pmtu,
            owe_probe_acks: heapless::Vec::new(),
            loss_out: LossWindow::default(),
            loss_in: LossWindow::default(),
            last_rx: Instant::ZERO,
            last_data_tx: None,
            last_keepalive_tx: Instant::ZERO,
            peer_timestamp: None,
            last_echo: None,
            established_at: Instant::ZERO,
            unacked: None,
            probes_unanswered: 0,
            owe_keepalive: false,
            owe_ack_request: false,
            owe_hello: false,
            hellos_unanswered: 0,
            stats: LinkStats::default(),
            auth_problem_reported: false,
        }
    }

    /// Carries data now.
    pub fn is_usable(&self) -> bool {
        self.state == LinkState::Up
    }

    /// Outbound loss in percent over the window, if known.
    pub fn loss_out(&self) -> Option<u8> {
        self.loss_out.percent()
    }

    /// Inbound loss in percent over the window, if known.
    pub fn loss_in(&self) -> Option<u8> {
        self.loss_in.percent()
    }

    /// The link may be dead: data went unacknowledged past the probe delay, and the probe that
    /// asked the peer for an immediate answer went unanswered for a retransmission timeout
    /// too (about 2 RTOs in all; [`Self::dead_after`] is 3). New data goes elsewhere while
    /// another link can carry it, until the peer answers or the link is declared dead.
    ///
    /// Not at the first expiry: the acknowledgement of data waits for the link's queue and the
    /// peer's feedback delay besides the round trip, and one lost keepalive delays it by a
    /// keepalive period, so on a 60 ms link with 1 % loss the first expiry came often enough
    /// to cost a flow a fifth of its rate.
    pub fn is_suspect(&self) -> bool {
        self.probes_unanswered >= 2 && self.state.is_connected()
    }

    /// The highest packet number of ours the peer has reported receiving in this session:
    /// anything sent after it may be lost when the link fails.
    pub fn peer_acked(&self) -> Option<u64> {
        self.loss_out.highest()
    }

    /// When we last heard from the peer on this link.
    pub fn last_rx(&self) -> Instant {
        self.last_rx
    }

    fn rto(&self) -> Duration {
        self.rtt.rto_or(INITIAL_RTO)
    }

    /// How long a path MTU probe may take to be acknowledged: the retransmission timeout (the
    /// acknowledgement goes back at once).
    pub fn probe_timeout(&self) -> Duration {
        self.rto()
    }

    fn probe_after(&self) -> Duration {
        self.rto().max(PROBE_MIN) + FEEDBACK_DELAY
    }

    /// How long data may stay unacknowledged before the link is declared dead.
    pub fn dead_after(&self) -> Duration {
        (self.rto().saturating_mul(3) + FEEDBACK_DELAY).max(DEAD_MIN)
    }

    fn set_state(&mut self, to: LinkState, reason: Option<DownReason>) -> Option<Transition> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        Some(Transition { from, to, reason })
    }

    /// A session is working: from the server's side on a valid confirm, from the client's on
    /// the server's first packet, or on either after a probe came back.
    pub fn established(&mut self, now: Instant, timers: &mut LinkTimers<'_>) -> Option<Transition> {
        self.last_rx = now;
        self.established_at = now;
        self.capacity.forget_reports();
        self.unacked = None;
        self.probes_unanswered = 0;
        self.hellos_unanswered = 0;
        self.auth_problem_reported = false;
        self.pending = None;
        self.previous_pending = None;
        timers.stop(LinkTimer::Handshake);
        timers.stop(LinkTimer::Probe);
        timers.set(LinkTimer::Idle, now + self.config.timeout);
        timers.set_earliest(LinkTimer::Keepalive, now + KEEPALIVE_IDLE);
        let t = self.set_state(LinkState::Up, None);
        chain(t, self.evaluate())
    }

    /// A new session replaces the current one; its counters start afresh.
    pub fn install(&mut self, session: Session) {
        self.previous = self.session.replace(session);
        self.loss_out.reset();
        self.loss_in.reset();
        self.last_echo = None;
        self.peer_timestamp = None;
        self.unacked = None;
        self.owd = OwdTracker::default();
        self.peer_owd = None;
    }

    /// Any authenticated packet from the peer.
    pub fn on_rx(&mut self, now: Instant, len: usize, timers: &mut LinkTimers<'_>) {
        self.last_rx = now;
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += len as u64;
        if self.state.is_connected() {
            timers.set(LinkTimer::Idle, now + self.config.timeout);
        }
    }

    /// An authenticated data packet: the peer is owed an acknowledgement.
    pub fn on_data_rx(&mut self, now: Instant, timers: &mut LinkTimers<'_>) {
        self.stats.rx_data_packets += 1;
        timers.set_earliest(LinkTimer::Feedback, now + FEEDBACK_DELAY);
    }

    /// An authenticated keepalive. `backlogged` says since when the scheduler has kept this link
    /// busy (so a delivery rate measured since is the link's limit, not our demand).
    pub fn on_keepalive(
        &mut self,
        now: Instant,
        ka: &Keepalive,
        backlogged: Option<Instant>,
        timers: &mut LinkTimers<'_>,
    ) -> Option<Transition> {
        self.peer_timestamp = Some((ka.timestamp, now));
        self.owd.on_sample(now, ka.timestamp);
        let owd = (ka.flags & flags::HAS_OWD != 0).then_some((ka.owd, ka.owd_min));
        if owd.is_some() {
            self.peer_owd = owd;
        }
        self.capacity.set_busy(backlogged);
        let round = self.rtt.srtt_or(Duration::from_millis(100));
        let report = Report {
            peer_ts: ka.timestamp,
            rx_bytes: ka.rx_bytes,
            owd,
            echo: (ka.flags & flags::HAS_ECHO != 0).then_some(ka.echo_timestamp),
        };
        if self.state.is_connected() {
            // Not while down: what a probe's answer says of the queue (its delay held on the
            // path through the outage) moved the scheduler's model of the link by 0.5 s.
            self.capacity.on_report(now, report, round, self.rtt.rttvar());
        }
        if ka.flags & flags::HAS_ECHO != 0 && self.last_echo != Some(ka.echo_timestamp) {
            self.last_echo = Some(ka.echo_timestamp);
            let age = now.wire_timestamp().wrapping_sub(ka.echo_timestamp);
            let rtt = age.wrapping_sub(ka.echo_delay);
            // Only echoes of keepalives sent while the link is connected: the probes a side
            // sends into an outage can be held on the path (a neighbour entry resolving again
            // queues them) and come out together when it ends, answered at once — samples of
            // 2.07, 1.57 and 1.07 s on a 20 ms link, which left it at an SRTT of 290 ms and
            // underused for seconds. A sample over a minute is a wrapped or bogus echo.
            let fresh =
                self.state.is_connected() && u64::from(age) <= (now - self.established_at).as_micros();
            if fresh && (rtt as u64) < Duration::from_secs(60).as_micros() {
                self.rtt.on_sample(Duration::from_micros(rtt as u64));
            }
        }
        self.loss_out.on_report(ka.rx_highest_pn, ka.rx_packets);
        if ka.flags & flags::ACK_REQUESTED != 0 {
            self.owe_keepalive = true;
        }
        let mut transition = None;
        if let Some((_, pn)) = self.unacked {
            if ka.rx_highest_pn >= pn {
                self.unacked = None;
                self.probes_unanswered = 0;
                timers.stop(LinkTimer::Probe);
                if self.state == LinkState::Down && !self.is_client && self.session.is_some() {
                    // A server probe came back: the link works both ways again.
                    transition = self.established(now, timers);
                }
            }
        }
        chain(transition, self.evaluate())
    }

    /// Re-derives Up/Lossy/Slow from the measurements.
    fn evaluate(&mut self) -> Option<Transition> {
        if !self.state.is_connected() {
            return None;
        }
        let tolerance = self.config.loss_tolerance;
        let lossy = if tolerance >= 100 {
            false
        } else if self.state != LinkState::Lossy {
            self.loss_out.percent().is_some_and(|p| p >= tolerance)
        } else if self.loss_out.packets() < LOSSY_EXIT_PACKETS {
            true
        } else {
            // Judge each fresh window once, with hysteresis: a link whose loss hovers around
            // the tolerance must not flap in and out, carrying data into the loss each time.
            let clean = self.loss_out.percent().is_some_and(|p| p < tolerance / 2);
            if !clean {
                self.loss_out.clear();
            }
            !clean
        };
        let slow = self.rtt.srtt().is_some_and(|s| s >= self.config.latency_tolerance);
        let to = if lossy {
            LinkState::Lossy
        } else if slow {
            LinkState::Slow
        } else {
            LinkState::Up
        };
        if to == LinkState::Lossy && self.state != LinkState::Lossy {
            self.loss_out.clear();
        }
        self.set_state(to, None)
    }

    /// We sent a data packet with packet number `pn`; `tail_probe`: the peer asks for what
    /// this link loses, so make sure it finds out soon ([`TAIL_PROBE`]).
    pub fn on_data_sent(
        &mut self,
        now: Instant,
        pn: u64,
        len: usize,
        tail_probe: bool,
        timers: &mut LinkTimers<'_>,
    ) {
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        self.stats.tx_data_packets += 1;
        self.last_data_tx = Some(now);
        if self.unacked.is_none() {
            self.unacked = Some((now, pn));
            timers.set(LinkTimer::Probe, now + self.probe_after());
        }
        timers.set_earliest(LinkTimer::Keepalive, self.last_keepalive_tx + KEEPALIVE_ACTIVE);
        if tail_probe {
            timers.set(LinkTimer::TailProbe, now + TAIL_PROBE);
        }
    }

    /// The keepalive to send now. Call [`Link::on_keepalive_sent`] once it is sealed.
    pub fn keepalive(&self, now: Instant) -> Keepalive {
        let session = self.session.as_ref();
        let mut ka = Keepalive {
            flags: 0,
            timestamp: now.wire_timestamp(),
            rx_highest_pn: session.map_or(0, |s| s.rx_highest()),
            rx_packets: session.map_or(0, |s| s.rx_packets),
            rx_bytes: session.map_or(0, |s| s.rx_bytes),
            ..Keepalive::default()
        };
        if self.owe_ack_request || !matches!(self.state, LinkState::Up) {
            ka.flags |= flags::ACK_REQUESTED;
        }
        if let Some((ts, at)) = self.peer_timestamp {
            ka.flags |= flags::HAS_ECHO;
            ka.echo_timestamp = ts;
            ka.echo_delay = (now - at).as_micros().min(u32::MAX as u64) as u32;
        }
        if self.owd.has_samples() {
            ka.flags |= flags::HAS_OWD;
            ka.owd = self.owd.smoothed();
            ka.owd_min = self.owd.smoothed_min();
        }
        ka
    }

    pub fn on_keepalive_sent(
        &mut self,
        now: Instant,
        ka: &Keepalive,
        pn: u64,
        len: usize,
        timers: &mut LinkTimers<'_>,
    ) {
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        self.last_keepalive_tx = now;
        self.owe_keepalive = false;
        self.owe_ack_request = false;
        self.loss_in.on_report(ka.rx_highest_pn, ka.rx_packets);
        timers.stop(LinkTimer::Feedback);
        timers.stop(LinkTimer::TailProbe);
        if ka.flags & flags::ACK_REQUESTED != 0 {
            self.stats.probes += 1;
            if self.unacked.is_none() {
                self.unacked = Some((now, pn));
                if self.state != LinkState::Down {
                    timers.set(LinkTimer::Probe, now + self.probe_after());
                }
            }
        }
        let active = self.last_data_tx.is_some_and(|t| now - t < KEEPALIVE_IDLE);
        let period = match self.state {
            LinkState::Up if !active => KEEPALIVE_IDLE,
            LinkState::Down => HANDSHAKE_RETRY,
            LinkState::Lossy => KEEPALIVE_LOSSY,
            _ => KEEPALIVE_ACTIVE,
        };
        timers.set(LinkTimer::Keepalive, now + period);
    }

    /// A timer of this link expired.
    pub fn on_timer(
        &mut self,
        now: Instant,
        timer: LinkTimer,
        timers: &mut LinkTimers<'_>,
    ) -> Option<Transition> {
        match timer {
            LinkTimer::Keepalive | LinkTimer::Feedback | LinkTimer::TailProbe => {
                if self.session.is_some() && (self.state.is_connected() || !self.is_client) {
                    self.owe_keepalive = true;
                }
                None
            }
            LinkTimer::Probe => {
                let (since, _) = self.unacked?;
                let dead_at = since + self.dead_after();
                if now >= dead_at {
                    return self.go_down(now, DownReason::Unanswered, timers);
                }
                self.probes_unanswered = self.probes_unanswered.saturating_add(1);
                self.owe_keepalive = true;
                self.owe_ack_request = true;
                timers.set(LinkTimer::Probe, (now + self.rto().max(PROBE_MIN)).min(dead_at));
                None
            }
            LinkTimer::Idle => {
                let due = self.last_rx + self.config.timeout;
                if now >= due {
                    self.go_down(now, DownReason::Timeout, timers)
                } else {
                    timers.set(LinkTimer::Idle, due);
                    None
                }
            }
            LinkTimer::Handshake => {
                if self.is_client && !self.state.is_connected() {
                    if self.pending.is_some() {
                        self.hellos_unanswered += 1;
                    }
                    self.owe_hello = true;
                    timers.set(LinkTimer::Handshake, now + HANDSHAKE_RETRY);
                }
                None
            }
            // The tunnel runs path MTU discovery ([`super::tunnel::Tunnel::handle_timeout`]).
            LinkTimer::PathMtu => None,
        }
    }

    /// Takes the link down. A client starts re-handshaking at once; a server keeps probing
    /// a session it may still have, or forgets it when the peer is gone.
    pub fn go_down(
        &mut self,
        now: Instant,
        reason: DownReason,
        timers: &mut LinkTimers<'_>,
    ) -> Option<Transition> {
        let was_connected = self.state.is_connected();
        self.unacked = None;
        self.probes_unanswered = 0;
        self.owe_ack_request = false;
        self.pmtu.stop();
        self.owe_probe_acks.clear();
        timers.stop(LinkTimer::Probe);
        timers.stop(LinkTimer::PathMtu);
        timers.stop(LinkTimer::Feedback);
        timers.stop(LinkTimer::TailProbe);
        timers.stop(LinkTimer::Idle);
        if was_connected {
            self.stats.disconnects += 1;
        }
        if self.is_client {
            self.pending = None;
            self.previous_pending = None;
            self.owe_keepalive = false;
            timers.stop(LinkTimer::Keepalive);
            if reason == DownReason::Closed {
                timers.stop(LinkTimer::Handshake);
            } else {
                timers.set(LinkTimer::Handshake, now);
            }
        } else if reason == DownReason::Unanswered {
            // Probe the peer; give up on it when it has been silent for `timeout`.
            timers.set(LinkTimer::Keepalive, now);
            timers.set(LinkTimer::Idle, self.last_rx + self.config.timeout);
        } else {
            self.previous = None;
            self.session = None;
            self.owe_keepalive = false;
            timers.stop(LinkTimer::Keepalive);
        }
        self.set_state(LinkState::Down, Some(reason))
    }

    /// Client: the hello went out; the link is authenticating.
    pub fn on_hello_sent(&mut self, pending: Pending) -> Option<Transition> {
        self.previous_pending = self.pending.replace(pending).filter(|p| !p.confirmed);
        self.owe_hello = false;
        self.stats.tx_packets += 1;
        self.set_state(LinkState::Authenticating, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::crypto::Key;
    use crate::proto::kdf::session_keys;

    fn ms(v: u64) -> Instant {
        Instant::from_micros(v * 1000)
    }

    fn connected(is_client: bool) -> (Link, TimerTable) {
        let mut table = TimerTable::new(1);
        let pmtu = PathMtu::new(1452, 1313);
        let mut link = Link::new(LinkConfig { loss_tolerance: 20, ..LinkConfig::new("a") }, is_client, pmtu);
        link.install(Session::new(1, session_keys(&Key([0; 32]), &[1; 32], &[2; 32]), is_client, 9));
        link.established(ms(0), &mut LinkTimers { table: &mut table, link: 0 });
        (link, table)
    }

    fn ack(highest: u64, count: u32) -> Keepalive {
        Keepalive { rx_highest_pn: highest, rx_packets: count, ..Keepalive::default() }
    }

    /// Runs the link's expired timers up to `now`.
    fn run_to(link: &mut Link, table: &mut TimerTable, now: Instant) -> Vec<Transition> {
        let mut out = vec![];
        while let Some(t) = table.next().filter(|&t| t <= now) {
            for k in LinkTimer::ALL {
                if table.expire(Timer::Link(0, k), t) {
                    out.extend(link.on_timer(t, k, &mut LinkTimers { table, link: 0 }));
                }
            }
        }
        out
    }

    #[test]
    fn unacknowledged_data_takes_the_link_down_within_half_a_second() {
        let (mut link, mut table) = connected(true);
        for _ in 0..20 {
            link.rtt.on_sample(Duration::from_millis(30));
        }
        link.on_data_sent(ms(1000), 5, 100, false, &mut LinkTimers { table: &mut table, link: 0 });
        let t = run_to(&mut link, &mut table, ms(1290));
        assert!(t.is_empty() && link.owe_ack_request, "probing, not yet down");
        let t = run_to(&mut link, &mut table, ms(1400));
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].to, t[0].reason), (LinkState::Down, Some(DownReason::Unanswered)));
        assert!(link.dead_after() <= Duration::from_millis(320));
    }

    #[test]
    fn acknowledged_data_keeps_the_link_up() {
        let (mut link, mut table) = connected(true);
        link.rtt.on_sample(Duration::from_millis(30));
        for k in 0..100u64 {
            let now = ms(1000 + k * 10);
            link.on_data_sent(now, k, 100, false, &mut LinkTimers { table: &mut table, link: 0 });
            link.on_keepalive(
                now,
                &ack(k, k as u32 + 1),
                None,
                &mut LinkTimers { table: &mut table, link: 0 },
            );
            assert!(run_to(&mut link, &mut table, now).is_empty());
        }
        assert_eq!(link.state, LinkState::Up);
    }

    #[test]
    fn jitter_widens_the_dead_timeout() {
        let (mut link, _) = connected(true);
        for k in 0..50 {
            link.rtt.on_sample(Duration::from_millis(if k % 2 == 0 { 40 } else { 240 }));
        }
        assert!(link.dead_after() > Duration::from_millis(600), "{:?}", link.dead_after());
    }

    #[test]
    fn idle_link_goes_down_after_its_timeout_only() {
        let (mut link, mut table) = connected(false);
        link.config.timeout = Duration::from_secs(5);
        link.established(ms(0), &mut LinkTimers { table: &mut table, link: 0 });
        assert!(run_to(&mut link, &mut table, ms(4999)).iter().all(|t| t.to != LinkState::Down));
        let t = run_to(&mut link, &mut table, ms(5000));
        assert_eq!(t.last().map(|t| t.reason), Some(Some(DownReason::Timeout)));
        assert!(link.session.is_none(), "server forgets a peer that timed out");
    }

    #[test]
    fn loss_makes_a_link_lossy_and_a_clean_window_brings_it_back() {
        let (mut link, mut table) = connected(true);
        let mut tm = LinkTimers { table: &mut table, link: 0 };
        link.on_keepalive(ms(1), &ack(0, 1), None, &mut tm);
        let t = link.on_keepalive(ms(2), &ack(100, 71), None, &mut tm);
        assert_eq!(t.map(|t| t.to), Some(LinkState::Lossy));
        assert!(!link.is_usable());
        // The window restarts; until it holds enough packets the link stays lossy.
        assert_eq!(link.on_keepalive(ms(3), &ack(110, 81), None, &mut tm), None);
        // A window at 12% (over half the tolerance of 20) keeps it lossy, and starts afresh.
        assert_eq!(link.on_keepalive(ms(4), &ack(160, 125), None, &mut tm), None);
        // A clean window brings it back.
        let t = link.on_keepalive(ms(5), &ack(200, 165), None, &mut tm);
        assert_eq!(t.map(|t| t.to), Some(LinkState::Up));
    }

    #[test]
    fn a_link_that_connects_lossy_reports_that_it_connected() {
        // Loss over the tolerance measured, then the link goes down and its session comes back:
        // one call takes it Down → Up → Lossy, and the tunnel must see it leave Down.
        let (mut link, mut table) = connected(true);
        let mut tm = LinkTimers { table: &mut table, link: 0 };
        link.on_keepalive(ms(1), &ack(0, 1), None, &mut tm);
        link.go_down(ms(2), DownReason::Unanswered, &mut tm);
        link.loss_out.on_report(100, 1);
        link.loss_out.on_report(200, 2);
        let t = link.established(ms(3), &mut tm).expect("a state change");
        assert_eq!((t.from, t.to), (LinkState::Down, LinkState::Lossy));
        assert_eq!(chain(Some(t), Some(Transition { from: t.to, to: t.from, reason: None })), None);
    }

    #[test]
    fn high_srtt_makes_a_link_slow() {
        let (mut link, mut table) = connected(true);
        link.config.latency_tolerance = Duration::from_millis(200);
        link.rtt.on_sample(Duration::from_millis(300));
        let t = link.on_keepalive(ms(1), &ack(0, 1), None, &mut LinkTimers { table: &mut table, link: 0 });
        assert_eq!(t.map(|t| t.to), Some(LinkState::Slow));
    }

    #[test]
    fn rtt_is_sampled_from_echoes_once_each() {
        let (mut link, mut table) = connected(true);
        let mut tm = LinkTimers { table: &mut table, link: 0 };
        let echo = Keepalive {
            flags: flags::HAS_ECHO,
            echo_timestamp: ms(1000).wire_timestamp(),
            echo_delay: 5_000,
            ..Keepalive::default()
        };
        link.on_keepalive(ms(1045), &echo, None, &mut tm);
        assert_eq!(link.rtt.srtt(), Some(Duration::from_millis(40)));
        link.on_keepalive(ms(1245), &echo, None, &mut tm);
        assert_eq!(link.rtt.srtt(), Some(Duration::from_millis(40)), "same echo is not resampled");
    }

    #[test]
    fn echoes_of_keepalives_sent_before_the_link_came_up_are_not_round_trips() {
        let (mut link, mut table) = connected(false);
        let mut tm = LinkTimers { table: &mut table, link: 0 };
        link.go_down(ms(1000), DownReason::Unanswered, &mut tm);
        let echo_of = |sent: u64| Keepalive {
            flags: flags::HAS_ECHO,
            echo_timestamp: ms(sent).wire_timestamp(),
            ..Keepalive::default()
        };
        // Probes sent into the outage, held on the path, answered as they come out at 3 s.
        link.on_keepalive(ms(3000), &echo_of(1000), None, &mut tm);
        link.established(ms(3000), &mut tm);
        link.on_keepalive(ms(3000), &echo_of(1500), None, &mut tm);
        assert_eq!(link.rtt.srtt(), None, "no sample from the outage");
        link.on_keepalive(ms(3060), &echo_of(3020), None, &mut tm);
        assert_eq!(link.rtt.srtt(), Some(Duration::from_millis(40)));
    }

    #[test]
    fn a_server_stops_probing_a_peer_silent_for_its_timeout() {
        let (mut link, mut table) = connected(false);
        link.config.timeout = Duration::from_secs(3);
        link.established(ms(0), &mut LinkTimers { table: &mut table, link: 0 });
        link.go_down(ms(500), DownReason::Unanswered, &mut LinkTimers { table: &mut table, link: 0 });
        run_to(&mut link, &mut table, ms(2900));
        assert!(link.session.is_some(), "still probing");
        run_to(&mut link, &mut table, ms(3000));
        assert!(link.session.is_none(), "forgotten after the timeout");
        assert_eq!(table.next(), None, "nothing left to do for this link");
    }

    #[test]
    fn a_server_probe_that_comes_back_restores_the_link() {
        let (mut link, mut table) = connected(false);
        let mut tm = LinkTimers { table: &mut table, link: 0 };
        link.go_down(ms(10), DownReason::Unanswered, &mut tm);
        assert!(link.session.is_some());
        let ka = link.keepalive(ms(20));
        assert!(ka.flags & flags::ACK_REQUESTED != 0);
        link.on_keepalive_sent(ms(20), &ka, 7, 50, &mut tm);
        let t = link.on_keepalive(ms(60), &ack(7, 1), None, &mut tm);
        assert_eq!(t.map(|t| t.to), Some(LinkState::Up));
    }

    #[test]
    fn a_burst_of_data_is_followed_by_a_tail_probe_and_steady_data_is_not() {
        let (mut link, mut table) = connected(true);
        run_to(&mut link, &mut table, ms(99));
        let ka = link.keepalive(ms(99));
        link.on_keepalive_sent(ms(99), &ka, 1, 50, &mut LinkTimers { table: &mut table, link: 0 });
        // Data every millisecond for 20 ms: no probe due.
        for k in 0..20u64 {
            link.on_data_sent(ms(100 + k), k, 1000, true, &mut LinkTimers { table: &mut table, link: 0 });
            run_to(&mut link, &mut table, ms(100 + k));
            assert!(!link.owe_keepalive, "{k}");
        }
        // Then nothing: a keepalive goes behind the last packet after TAIL_PROBE.
        run_to(&mut link, &mut table, ms(119) + TAIL_PROBE - Duration::from_micros(1));
        assert!(!link.owe_keepalive);
        run_to(&mut link, &mut table, ms(119) + TAIL_PROBE);
        assert!(link.owe_keepalive);
    }
}
