//! The whole engine of one tunnel endpoint.
//!
//! # Call order
//!
//! ```text
//! let mut t = Tunnel::new(config, &psk, seed_from_getrandom, now);
//! loop {
//!     // inputs, each with the current time:
//!     t.handle_tun(now, &mut buf, len)            -> Ok(Some(Transmit)) | Ok(None): kept | Err(DropReason)
//!     t.handle_datagram(now, link, from, &mut dg) -> Deliver(range) | Reply(len) | Consumed | Dropped
//!     t.handle_timeout(now)                       when poll_timeout() has passed
//!     // then drain every output until it returns None:
//!     while let Some(tx) = t.poll_transmit(now, &mut buf) { send buf[..tx.len] on tx.link to tx.dst }
//!     while let Some(n)  = t.poll_deliver(now, &mut buf)  { write buf[..n] to the TUN device }
//!     while let Some(ev) = t.poll_event()                 { log, run hooks }
//!     sleep until t.poll_timeout(), or until an fd is readable
//! }
//! ```
//!
//! The caller owns every byte: a TUN packet is read into `buf[DATA_OVERHEAD..]` and sealed in
//! place; a datagram is opened in place and, if in order, delivered straight from the caller's
//! buffer. Only packets held for reordering, kept to be resent, or waiting for room on the links
//! (`Ok(None)`: they come out of `poll_transmit` later, [`super::fq`]) are copied, into
//! storage allocated at start. Nothing here allocates per packet, reads a clock or touches a
//! file.

use super::arrival::{ArrivalScheduler, QUEUE_LIMIT, REALTIME_QUEUE_LIMIT};
use super::crypto::{Csprng, Key};
use super::delivered::DeliveredWindow;
use super::duplicate::{Budget, BudgetLimit, Copies, DupStats};
use super::flow::{Classifier, Duplicate, PortList};
use super::fq::{CODEL_TARGET, FairQueue, FqStats, SEND_QUEUE_LIMIT, SEND_QUEUE_SLOTS};
use super::handshake::{self, CookieJar, HandshakeError, Pending};
use super::kdf::{handshake_key, key_id, session_keys};
use super::link::{
    DownReason, FEEDBACK_DELAY, HANDSHAKE_RETRY, Link, LinkConfig, LinkState, LinkTimers, TAIL_PROBE,
    Transition, UNANSWERED_REPORT_AFTER,
};
use super::owd::wrapping_diff;
use super::pmtu::{PathMtu, PmtuState};
use super::reorder::{Arrival, ReorderBuffer, ReorderStats};
use super::replay::Replay;
use super::retransmit::{self, GapList, RetransmitStore};
use super::sched::{LinkView, Pick, Scheduler, WeightedRoundRobin, any_normal, is_candidate};
use super::session::{OpenError, Session};
use super::sparse::is_sparse;
use super::time::{Duration, Instant, mul_div};
use super::timer::{LinkTimer, Timer, TimerTable, TunnelTimer};
use super::wire::{
    self, Challenge, Confirm, DATA_OVERHEAD, Disconnect, DisconnectReason, Header, Hello, Keepalive, Kind,
    Nack, Probe, ProbeAck, TRANSPORT_HEADER_LEN, WireError,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;

/// Floor and ceiling of the reorder timeout, and the margin added to the measured spread.
pub const REORDER_MIN: Duration = Duration::from_millis(5);
pub const REORDER_MAX: Duration = Duration::from_secs(1);
pub const REORDER_MARGIN: Duration = Duration::from_millis(5);
/// Reorder timeout before any RTT is known.
pub const REORDER_DEFAULT: Duration = Duration::from_millis(100);
/// Links whose one-way delays differ by less than this are equal for the reorder holds
/// ([`Tunnel::update_reorder_holds`]): less than a poll wake-up's resolution.
pub const HOLD_MIN: Duration = Duration::from_millis(1);
/// Packets this small (TCP acknowledgements, pings, DNS queries) are never refused for
/// congestion: they weigh nothing, and dropping an acknowledgement slows a whole flow.
pub const SMALL_PACKET: usize = 128;
/// The links' queues stay short ([`REALTIME_QUEUE_LIMIT`]) until this long after the last
/// real-time packet: longer than a call's silences between packets.
pub const REALTIME_HOLD: Duration = Duration::from_secs(1);
/// Events kept for `poll_event`; more are counted and dropped.
const EVENT_QUEUE: usize = 256;
/// How long every connected link's path must have carried a larger tunnel MTU before it is
/// raised: lowering is immediate, raising waits, so that a link that comes and goes does not
/// make every flow's MSS follow it.
pub const TUNNEL_MTU_RAISE_HOLD: Duration = Duration::from_secs(60);
/// The least a link's path must carry inside the tunnel: IPv6's minimum MTU (RFC 8200
/// section 5). A path that cannot is unusable rather than the tunnel's limit.
pub const MIN_INNER_MTU: usize = 1280;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Client,
    Server,
}

/// Which scheduler spreads packets over the links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulerKind {
    /// Plans for arrival order from measured delays and capacities ([`super::arrival`]).
    #[default]
    Arrival,
    /// Weighted round-robin by `bandwidth_upload`, as MLVPN did ([`super::sched`]).
    Wrr,
}

/// The engine's settings. The shell builds this from `mlvpn.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub scheduler: SchedulerKind,
    pub links: Vec<LinkConfig>,
    /// Slots of the reorder buffer; 0 delivers packets in arrival order.
    pub reorder_buffer_size: usize,
    /// Largest IP packet carried (the TUN device's MTU).
    pub mtu: usize,
    /// Data packets kept to be resent when the peer reports them lost; 0 turns loss recovery
    /// off ([`super::retransmit`]).
    pub retransmit_buffer_size: usize,
    /// Packets are Ethernet frames (a TAP device), not IP packets.
    pub ethernet: bool,
    /// Which packets are sent twice ([`super::duplicate`]).
    pub duplicate: Duplicate,
    /// Ports whose packets are real-time whatever their size (`duplicate_ports`).
    pub duplicate_ports: PortList,
    /// What sending twice may cost.
    pub duplicate_budget: BudgetLimit,
}

/// A datagram to send: `buf[..len]` on link `link` to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub link: usize,
    pub dst: SocketAddr,
    pub len: usize,
}

/// What to do with a datagram handed to [`Tunnel::handle_datagram`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Received {
    /// Write `buf[range]` to the TUN device now.
    Deliver(Range<usize>),
    /// Send `buf[..len]` back to the sender, on the same link.
    Reply(usize),
    /// Used by the engine; nothing to do.
    Consumed,
    /// Refused and counted.
    Dropped(DropReason),
}

/// Why a packet was dropped. Each has a counter in [`DropCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Does not parse: truncated, unknown version or kind, wrong length.
    Malformed,
    /// Did not authenticate: forged, corrupted, or sealed with another password.
    Unauthenticated,
    /// A packet number seen before or older than the replay window.
    Replayed,
    /// A session this link does not have (for example after our restart).
    UnknownSession,
    /// A handshake message that is not an answer to anything current.
    StaleHandshake,
    /// A message this side never accepts (a hello sent to a client...).
    Unexpected,
    /// Larger than the MTU.
    TooBig,
    /// No link can carry it.
    NoLink,
    /// Every link's queue is at its limit: the tunnel is at capacity.
    Congested,
    /// Too old to tell whether it was delivered already ([`super::delivered`]).
    Late,
    /// Arrived twice (resent while the original was only late, or copied in the network).
    Duplicate,
    /// The reorder buffer was full.
    ReorderFull,
    /// A handshake whose key id names no site of this server ([`super::sites`]).
    UnknownSite,
    /// A handshake for a session id another site's link holds ([`super::sites`]).
    SessionCollision,
    /// A packet from a site whose inner source address routes to another site, or nowhere.
    SourceRejected,
    /// A packet for the tunnel whose destination is in no site's addresses or routes.
    NoRoute,
}

/// Dropped packets by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub malformed: u64,
    pub unauthenticated: u64,
    pub replayed: u64,
    pub unknown_session: u64,
    pub stale_handshake: u64,
    pub unexpected: u64,
    pub too_big: u64,
    pub no_link: u64,
    pub congested: u64,
    pub late: u64,
    pub duplicate: u64,
    pub reorder_full: u64,
    pub unknown_site: u64,
    pub session_collision: u64,
    pub source_rejected: u64,
    pub no_route: u64,
}

impl DropCounters {
    pub fn count(&mut self, d: DropReason) {
        let c = match d {
            DropReason::Malformed => &mut self.malformed,
            DropReason::Unauthenticated => &mut self.unauthenticated,
            DropReason::Replayed => &mut self.replayed,
            DropReason::UnknownSession => &mut self.unknown_session,
            DropReason::StaleHandshake => &mut self.stale_handshake,
            DropReason::Unexpected => &mut self.unexpected,
            DropReason::TooBig => &mut self.too_big,
            DropReason::NoLink => &mut self.no_link,
            DropReason::Congested => &mut self.congested,
            DropReason::Late => &mut self.late,
            DropReason::Duplicate => &mut self.duplicate,
            DropReason::ReorderFull => &mut self.reorder_full,
            DropReason::UnknownSite => &mut self.unknown_site,
            DropReason::SessionCollision => &mut self.session_collision,
            DropReason::SourceRejected => &mut self.source_rejected,
            DropReason::NoRoute => &mut self.no_route,
        };
        *c += 1;
    }

    /// Every counter with its name, for status and metrics (one list, so none is forgotten).
    pub fn named(&self) -> [(&'static str, u64); 16] {
        [
            ("malformed", self.malformed),
            ("unauthenticated", self.unauthenticated),
            ("replayed", self.replayed),
            ("unknown_session", self.unknown_session),
            ("stale_handshake", self.stale_handshake),
            ("unexpected", self.unexpected),
            ("too_big", self.too_big),
            ("no_link", self.no_link),
            ("congested", self.congested),
            ("late", self.late),
            ("duplicate", self.duplicate),
            ("reorder_full", self.reorder_full),
            ("unknown_site", self.unknown_site),
            ("session_collision", self.session_collision),
            ("source_rejected", self.source_rejected),
            ("no_route", self.no_route),
        ]
    }

    /// All drops of packets that came from the network.
    pub fn received_total(&self) -> u64 {
        self.malformed
            + self.unauthenticated
            + self.replayed
            + self.unknown_session
            + self.stale_handshake
            + self.unexpected
            + self.late
            + self.duplicate
            + self.reorder_full
            + self.unknown_site
            + self.session_collision
            + self.source_rejected
    }
}

/// Something the shell may want to log or act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A link changed state.
    Link { link: usize, from: LinkState, to: LinkState, reason: Option<DownReason> },
    /// The first link connected (after its `Link` event): bring the tunnel up.
    TunnelUp,
    /// The last link disconnected (after its `Link` event).
    TunnelDown,
    /// The peer process restarted: sequence numbering starts afresh.
    PeerRestarted,
    /// A handshake message on `link` failed to authenticate (reported once until the link
    /// authenticates again): most likely a wrong password.
    AuthenticationFailed { link: usize, from: SocketAddr },
    /// Client: several hellos on `link` went unanswered (reported once until it comes up):
    /// the server is down, unreachable, or has another password.
    HandshakeUnanswered { link: usize },
    /// Server: the client's address on `link` changed (NAT rebinding, new WAN address).
    PeerMoved { link: usize, to: SocketAddr },
    /// What `link`'s path carries changed ([`super::pmtu`]): the path MTU in use (IP packet
    /// bytes) and where its discovery stands.
    PathMtu { link: usize, mtu: usize, state: PmtuState },
    /// The largest packet the tunnel now carries on every link (the engine's MTU: for TAP,
    /// with the Ethernet header): the shell sets the device's MTU to it, so the kernel tells
    /// senders (ICMP "fragmentation needed", "packet too big") instead of our dropping.
    TunnelMtu { mtu: usize },
}

/// Use of a pool of packet buffers allocated once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// The most buffers ever in use at once (for the resend ring: the slots it goes round).
    pub peak: usize,
    pub slots: usize,
    /// Bytes of one buffer.
    pub slot_len: usize,
}

impl PoolUse {
    fn new(peak: usize, slots: usize, slot_len: usize) -> Self {
        PoolUse { peak, slots, slot_len }
    }
}

/// One tunnel endpoint: client or server, N links.
#[derive(Debug)]
pub struct Tunnel {
    mode: Mode,
    psk: Key,
    handshake_key: Key,
    /// Names `psk` in our handshake headers ([`super::kdf::key_id`]).
    key_id: u32,
    cookies: CookieJar,
    rng: Csprng,
    /// Random per process: tells the peer when we restarted.
    instance: u64,
    links: Vec<Link>,
    timers: TimerTable,
    scheduler: Box<dyn Scheduler>,
    scheduler_kind: SchedulerKind,
    views: Vec<LinkView>,
    reorder: Option<ReorderBuffer>,
    /// The data packets delivered, so that none is delivered twice.
    delivered: DeliveredWindow,
    /// How long a packet arriving on each link may wait in the reorder buffer.
    reorder_waits: Vec<Duration>,
    /// How long a bulk packet arriving on each link is held, in order or not, so that it is
    /// delivered at the latency of the slowest link ([`Tunnel::update_reorder_wait`]).
    reorder_holds: Vec<Duration>,
    ethernet: bool,
    retransmit: Option<RetransmitStore>,
    /// Data packets waiting for room on the links, a queue per flow (arrival scheduler only).
    sendq: Option<FairQueue>,
    classifier: Classifier,
    budget: Budget,
    /// Second copies of real-time packets, to seal for their link.
    copies: Copies,
    dup_stats: DupStats,
    /// A request for lost packets still to send on a second link ([`Tunnel::transmit_nack`]).
    nack_copy: Option<(usize, Nack)>,
    /// Until when the links' queues are kept short for real-time packets.
    realtime_until: Option<Instant>,
    /// Packet numbers the peer's links lost, to ask for.
    gaps: GapList,
    tx_seq: u32,
    peer_instance: Option<u64>,
    events: VecDeque<Event>,
    events_dropped: u64,
    drops: DropCounters,
    connected: usize,
    /// Links still owed a disconnect (after [`Tunnel::close`]).
    owe_disconnect: Vec<bool>,
    closed: bool,
    transmit_cursor: usize,
    mtu: usize,
    /// The tunnel MTU announced last ([`Event::TunnelMtu`]), and since when the links have
    /// allowed a larger one.
    tunnel_mtu: usize,
    tunnel_mtu_raise_since: Option<Instant>,
    /// Bytes of the send queue's head packet as sealed, to know which links can take it.
    sendq_head_len: usize,
}

/// Path MTU discovery for one link of a tunnel carrying up to `mtu` bytes.
fn new_path_mtu(mtu: usize, ethernet: bool) -> PathMtu {
    let inner_floor = MIN_INNER_MTU + if ethernet { 14 } else { 0 };
    PathMtu::new(DATA_OVERHEAD + mtu, DATA_OVERHEAD + inner_floor)
}

/// IP and UDP header bytes in front of our datagrams to `peer`.
/// (The shell hands IPv4 peers of a dual-stack socket over as IPv4 addresses.)
fn ip_udp_overhead(peer: Option<SocketAddr>) -> usize {
    match peer {
        Some(SocketAddr::V6(_)) => 40 + 8,
        _ => 20 + 8,
    }
}

fn new_scheduler(kind: SchedulerKind, links: usize) -> Box<dyn Scheduler> {
    match kind {
        SchedulerKind::Arrival => Box::new(ArrivalScheduler::new(links)),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin::new(links)),
    }
}

fn new_send_queue(kind: SchedulerKind, mtu: usize) -> Option<FairQueue> {
    (kind == SchedulerKind::Arrival).then(|| FairQueue::new(SEND_QUEUE_SLOTS, mtu))
}

/// The scheduler's view of configured links before anything is measured.
fn initial_views(links: &[LinkConfig]) -> Vec<LinkView> {
    let weights_known = links.iter().any(|l| l.bandwidth_upload.is_some());
    let set: Vec<u64> = links.iter().filter_map(|l| l.bandwidth_upload).collect();
    let mean = (set.iter().sum::<u64>() / set.len().max(1) as u64).max(1);
    links
        .iter()
        .map(|l| LinkView {
            usable: false,
            fallback_only: l.fallback_only,
            // Unset among set ones: the mean, so a forgotten value does not starve a link.
            weight: if weights_known { l.bandwidth_upload.unwrap_or(mean).max(1) } else { 1 },
            rate: 0,
            delay_us: 0,
            probing: true,
            max_len: usize::MAX,
        })
        .collect()
}

/// Why [`Tunnel::reconfigure`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconfigureError {
    /// Client and server cannot swap roles in a running process.
    ModeChanged,
}

/// What [`Tunnel::reconfigure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfigured {
    /// For each link of the new configuration, the index it had before, or `None` if new.
    pub continued_from: Vec<Option<usize>>,
    /// Disconnects for links that are gone: (old link index, destination, datagram). Send them
    /// on the old sockets before closing those.
    pub goodbyes: Vec<(usize, SocketAddr, Vec<u8>)>,
}

/// The round trip measured by a handshake message that echoes our timestamp. (The echo is
/// authenticated and answers a fresh message of ours, so it is at most a few seconds old.)
fn handshake_rtt(now: Instant, echo: u32) -> Duration {
    Duration::from_micros(now.wire_timestamp().wrapping_sub(echo) as u64)
}

fn is_client(mode: Mode) -> bool {
    mode == Mode::Client
}

impl Tunnel {
    /// A new engine. `psk` comes from [`super::kdf::psk_from_password`]; `seed` must be 32
    /// bytes from the operating system's CSPRNG (`getrandom(2)`) — everything random the
    /// engine does (session randoms, ids, nonces) comes from it.
    pub fn new(config: Config, psk: &Key, seed: [u8; 32], now: Instant) -> Self {
        let mut rng = Csprng::new(seed);
        let cookies = CookieJar::new(&mut rng);
        let instance = rng.next_u64();
        let flow_key = rng.next_u32();
        let n = config.links.len();
        let views = initial_views(&config.links);
        let client = is_client(config.mode);
        let mut t = Tunnel {
            mode: config.mode,
            handshake_key: handshake_key(psk),
            key_id: key_id(psk),
            psk: psk.clone(),
            cookies,
            rng,
            instance,
            links: config
                .links
                .into_iter()
                .map(|c| Link::new(c, client, new_path_mtu(config.mtu, config.ethernet)))
                .collect(),
            timers: TimerTable::new(n),
            scheduler_kind: config.scheduler,
            scheduler: new_scheduler(config.scheduler, n),
            views,
            reorder: (config.reorder_buffer_size > 0)
                .then(|| ReorderBuffer::new(config.reorder_buffer_size, config.mtu)),
            delivered: DeliveredWindow::default(),
            reorder_waits: vec![REORDER_DEFAULT; n],
            reorder_holds: vec![Duration::ZERO; n],
            ethernet: config.ethernet,
            retransmit: (config.retransmit_buffer_size > 0)
                .then(|| RetransmitStore::new(config.retransmit_buffer_size, config.mtu + 4, n)),
            sendq: new_send_queue(config.scheduler, config.mtu),
            classifier: Classifier::new(flow_key, config.duplicate, config.duplicate_ports),
            budget: Budget::new(config.duplicate_budget),
            copies: Copies::new(config.mtu),
            dup_stats: DupStats::default(),
            realtime_until: None,
            nack_copy: None,
            gaps: GapList::default(),
            tx_seq: 0,
            peer_instance: None,
            // Grows as events pile up (state changes, not packets), to at most EVENT_QUEUE.
            events: VecDeque::with_capacity(8),
            events_dropped: 0,
            drops: DropCounters::default(),
            connected: 0,
            owe_disconnect: vec![false; n],
            closed: false,
            transmit_cursor: 0,
            mtu: config.mtu,
            tunnel_mtu: config.mtu,
            tunnel_mtu_raise_since: None,
            sendq_head_len: DATA_OVERHEAD + config.mtu,
        };
        if client {
            for i in 0..n {
                t.timers.set(Timer::Link(i, LinkTimer::Handshake), now);
            }
        }
        t
    }

    /// Client: where link `link` sends (the shell resolves `remotehost`).
    pub fn set_remote(&mut self, link: usize, addr: SocketAddr) {
        self.links[link].peer = Some(addr);
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Applies a new configuration in place. Links are matched by name: a link that stays keeps
    /// its session, its measurements and its place in the reorder sequence, so traffic over it
    /// does not notice (its settings — timeout, tolerances, bandwidth, fallback — change in
    /// place). A new link starts handshaking (client) or waits for its peer (server); a removed
    /// one says goodbye. `psk` may change: established sessions keep their keys, new handshakes
    /// use the new one.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        config: Config,
        psk: &Key,
    ) -> Result<Reconfigured, ReconfigureError> {
        if config.mode != self.mode {
            return Err(ReconfigureError::ModeChanged);
        }
        let continued_from: Vec<Option<usize>> =
            config.links.iter().map(|c| self.links.iter().position(|l| l.config.name == c.name)).collect();
        let connected_before = self.connected;
        let goodbyes = self.goodbyes(|i| continued_from.contains(&Some(i)));
        let mut old: Vec<Option<Link>> = std::mem::take(&mut self.links).into_iter().map(Some).collect();
        let client = is_client(self.mode);
        let n = config.links.len();
        self.links = config
            .links
            .iter()
            .zip(&continued_from)
            .map(|(c, from)| match from.and_then(|i| old[i].take()) {
                Some(mut link) => {
                    link.config = c.clone();
                    link.capacity.set_cap(c.bandwidth_upload);
                    link
                }
                None => Link::new(c.clone(), client, new_path_mtu(config.mtu, config.ethernet)),
            })
            .collect();
        if config.mtu != self.mtu || config.ethernet != self.ethernet {
            // The shell set the device to the new MTU: search again for it.
            self.tunnel_mtu = config.mtu;
            self.tunnel_mtu_raise_since = None;
            for l in &mut self.links {
                l.pmtu = new_path_mtu(config.mtu, config.ethernet);
                if l.state.is_connected() {
                    l.pmtu.start(now, ip_udp_overhead(l.peer));
                }
            }
        }
        let same_links = continued_from.iter().enumerate().all(|(i, f)| *f == Some(i)) && old.len() == n;
        self.timers = self.timers.remapped(&continued_from);
        for (i, from) in continued_from.iter().enumerate() {
            if from.is_none() && client {
                self.timers.set(Timer::Link(i, LinkTimer::Handshake), now);
            }
        }
        self.views = initial_views(&config.links);
        if config.scheduler != self.scheduler_kind || config.mtu != self.mtu {
            let dropped = self.sendq.as_mut().map_or(0, |q| q.clear());
            self.drops.no_link += dropped as u64;
            self.sendq = new_send_queue(config.scheduler, config.mtu);
            self.copies = Copies::new(config.mtu);
        }
        // Copies name links by their old index.
        self.copies.clear();
        self.nack_copy = None;
        let key = self.rng.next_u32();
        self.classifier = Classifier::new(key, config.duplicate, config.duplicate_ports);
        self.budget = Budget::new(config.duplicate_budget);
        if !same_links || config.scheduler != self.scheduler_kind {
            self.scheduler = new_scheduler(config.scheduler, n);
            self.scheduler_kind = config.scheduler;
        }
        // The next real-time packet, if `duplicate` still calls it one, shortens them again.
        self.realtime_until = None;
        self.scheduler.set_queue_limit(QUEUE_LIMIT);
        if let Some(q) = &mut self.sendq {
            q.set_target(CODEL_TARGET);
        }
        self.reorder_waits = continued_from
            .iter()
            .map(|f| {
                f.map_or(REORDER_DEFAULT, |i| self.reorder_waits.get(i).copied().unwrap_or(REORDER_DEFAULT))
            })
            .collect();
        self.reorder_holds = vec![Duration::ZERO; n];
        self.ethernet = config.ethernet;
        self.owe_disconnect = vec![false; n];
        self.transmit_cursor = 0;
        let sizes_changed = config.mtu != self.mtu
            || self.reorder.as_ref().map_or(0, |r| r.capacity()) != config.reorder_buffer_size
            || self.retransmit.as_ref().map_or(0, |r| r.capacity()) != config.retransmit_buffer_size;
        if sizes_changed {
            self.mtu = config.mtu;
            let mut reorder = (config.reorder_buffer_size > 0)
                .then(|| ReorderBuffer::new(config.reorder_buffer_size, config.mtu));
            if let (Some(r), Some(old)) = (&mut reorder, &self.reorder) {
                r.resume_at(old.next_expected());
            }
            self.reorder = reorder;
            self.retransmit = (config.retransmit_buffer_size > 0)
                .then(|| RetransmitStore::new(config.retransmit_buffer_size, config.mtu + 4, n));
        } else if !same_links {
            if let Some(r) = &mut self.retransmit {
                r.remap_links(&continued_from);
            }
        }
        if *psk != self.psk {
            self.psk = psk.clone();
            self.handshake_key = handshake_key(psk);
            self.key_id = key_id(psk);
        }
        self.connected = self.links.iter().filter(|l| l.state.is_connected()).count();
        if connected_before > 0 && self.connected == 0 {
            self.push_event(Event::TunnelDown);
        }
        self.update_views();
        self.update_reorder_wait(now);
        self.update_reorder_timer();
        Ok(Reconfigured { continued_from, goodbyes })
    }

    /// A disconnect (reason: reconfigured) for each connected link but those `kept` says to
    /// keep: (link, destination, datagram), for a reload to send before the links go.
    pub fn goodbyes(&mut self, kept: impl Fn(usize) -> bool) -> Vec<(usize, SocketAddr, Vec<u8>)> {
        let mut goodbyes = Vec::new();
        let mut buf = [0u8; wire::DISCONNECT_DATAGRAM_LEN];
        for (i, l) in self.links.iter_mut().enumerate() {
            if kept(i) || !l.state.is_connected() {
                continue;
            }
            if let (Some(s), Some(dst)) = (l.session.as_mut(), l.peer) {
                let len = buf.len();
                Disconnect { reason: DisconnectReason::Reconfigured }.emit(&mut buf[len - Disconnect::LEN..]);
                s.seal(Kind::Disconnect, &mut buf);
                goodbyes.push((i, dst, buf.to_vec()));
            }
        }
        goodbyes
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// What the scheduler sees of each link now.
    pub fn link_views(&self) -> &[LinkView] {
        &self.views
    }

    /// How long a packet sent on `link` now would wait behind what the scheduler put there,
    /// by its model.
    pub fn planned_queue(&self, now: Instant, link: usize) -> Duration {
        self.scheduler.planned_queue(now, link)
    }

    /// Packets waiting in the send queue for room on the links.
    pub fn send_queue_len(&self) -> usize {
        self.sendq.as_ref().map_or(0, |q| q.len())
    }

    /// The send queue now: flows with packets waiting, the longest recent wait, and its
    /// counters (`None` under round-robin, which has no queue).
    pub fn send_queue(&self, now: Instant) -> Option<(usize, Duration, &FqStats)> {
        self.sendq.as_ref().map(|q| (q.active_flows(), q.recent_sojourn(now), q.stats()))
    }

    /// What sending real-time packets twice did.
    pub fn duplication(&self) -> (Duplicate, &DupStats) {
        (self.classifier.duplicate, &self.dup_stats)
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// How far each packet pool has been used: the reorder buffer, the send queue and the
    /// resend store, in that order (`None`: off). Their memory is touched only as far as used.
    pub fn pools(&self) -> [(&'static str, Option<PoolUse>); 3] {
        [
            ("reorder", self.reorder.as_ref().map(|r| PoolUse::new(r.peak(), r.capacity(), r.slot_len()))),
            ("send_queue", self.sendq.as_ref().map(|q| PoolUse::new(q.peak(), q.capacity(), q.slot_len()))),
            (
                "resend",
                self.retransmit.as_ref().map(|r| PoolUse::new(r.active(), r.capacity(), r.slot_len())),
            ),
        ]
    }

    pub fn reorder_stats(&self) -> Option<&ReorderStats> {
        self.reorder.as_ref().map(|r| &r.stats)
    }

    /// The longest a packet may wait in the reorder buffer now (over the links).
    pub fn reorder_wait(&self) -> Option<Duration> {
        self.reorder.as_ref().and_then(|_| self.reorder_waits.iter().max().copied())
    }

    /// The longest a bulk packet is held now to match the slowest link's latency
    /// ([`Tunnel::update_reorder_holds`]).
    pub fn reorder_hold(&self) -> Duration {
        self.reorder_holds.iter().max().copied().unwrap_or(Duration::ZERO)
    }

    /// Links with a working session.
    pub fn connected_links(&self) -> usize {
        self.connected
    }

    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    fn timers_of(&mut self, link: usize) -> (&mut Link, LinkTimers<'_>) {
        (&mut self.links[link], LinkTimers { table: &mut self.timers, link })
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() < EVENT_QUEUE {
            self.events.push_back(e);
        } else {
            self.events_dropped += 1;
        }
    }

    fn dropped(&mut self, d: DropReason) -> Received {
        self.drops.count(d);
        Received::Dropped(d)
    }

    /// What the scheduler knows of each link: rates and relative one-way delays. The delays
    /// are the peer's measurements of our packets when it has sent them for every usable link
    /// (true one-way figures, see [`super::owd`]); otherwise half the RTTs.
    fn update_views(&mut self) {
        let reference = self.links.iter().filter(|l| l.is_usable()).find_map(|l| l.peer_owd.map(|p| p.1));
        let all_one_way = self.links.iter().filter(|l| l.is_usable()).all(|l| l.peer_owd.is_some());
        let any_answering = self.links.iter().any(|l| l.is_usable() && !l.is_suspect());
        for (v, l) in self.views.iter_mut().zip(&self.links) {
            v.usable = l.is_usable() && !(any_answering && l.is_suspect()) && l.pmtu.max_datagram() > 0;
            v.max_len = l.pmtu.max_datagram();
            v.rate = l.capacity.pacing_rate();
            v.probing = l.capacity.probing();
            v.delay_us = match (all_one_way, reference, l.peer_owd) {
                (true, Some(r), Some((_, min))) => wrapping_diff(min, r),
                _ => (l.rtt.min().unwrap_or(Duration::ZERO).as_micros() / 2) as i64,
            };
        }
    }

    fn on_transition(&mut self, now: Instant, link: usize, t: Option<Transition>) {
        let Some(t) = t else { return };
        self.update_views();
        self.push_event(Event::Link { link, from: t.from, to: t.to, reason: t.reason });
        match (t.from.is_connected(), t.to.is_connected()) {
            (false, true) => {
                self.scheduler.forget_queue(link);
                let overhead = ip_udp_overhead(self.links[link].peer);
                self.links[link].pmtu.start(now, overhead);
                self.after_pmtu(now, link, true);
                self.connected += 1;
                if self.connected == 1 {
                    self.push_event(Event::TunnelUp);
                }
            }
            (true, false) => {
                self.reroute_unacked(now, link);
                self.update_tunnel_mtu(now);
                self.connected -= 1;
                if self.connected == 0 {
                    self.push_event(Event::TunnelDown);
                }
            }
            _ => {}
        }
        self.update_reorder_wait(now);
    }

    /// Link `link` went silent or down: what it carried since the peer's last report may be
    /// lost, and a dead link sends no later packets to reveal the gap by NACK. Resend it on the
    /// links that still answer (the receiver's exactly-once window drops what did arrive), so
    /// the inner flows see a delay of one detection time rather than a burst of losses they
    /// would repair themselves, slowly, partly over the same dead link.
    fn reroute_unacked(&mut self, now: Instant, link: usize) {
        let others = self.views.iter().enumerate().any(|(i, v)| i != link && v.usable);
        if let (true, Some(store)) = (others, &mut self.retransmit) {
            store.requeue_unacked(now, link, self.links[link].peer_acked());
        }
    }

    /// How long a packet that arrived on each link may wait for the ones sent before it.
    ///
    /// A packet sent before one that arrived on link `j` left no later than it, so it arrives
    /// at most the slowest link's one-way delay (smoothed plus four deviations) after that
    /// send — which was the arrival minus link `j`'s delay. Hence
    /// `wait(j) = max_k high(k) - min(j)`, with the one-way delays measured on the peer's
    /// packets ([`super::owd`]: clock offsets cancel in the difference). Until every connected
    /// link has been measured, half the spread of the RTTs stands in.
    fn update_reorder_wait(&mut self, _now: Instant) {
        self.update_retention();
        self.update_reorder_holds();
        let connected = || self.links.iter().filter(|l| l.state.is_connected());
        let one_way = connected().all(|l| l.owd.has_samples());
        let reference = connected().find(|l| l.owd.has_samples()).map(|l| l.owd.min());
        // With loss recovery, a hole may also be filled by a resent packet: that takes a NACK
        // and the packet again, about the round trip of the fastest link — with its variance,
        // and the time until a later packet (at worst the tail probe) reveals the gap.
        let resend = if self.retransmit.is_some() {
            connected()
                .filter_map(|l| l.rtt.srtt().map(|_| l.rtt.rto_or(Duration::ZERO)))
                .min()
                .unwrap_or(Duration::ZERO)
                + TAIL_PROBE
                + REORDER_MARGIN
        } else {
            Duration::ZERO
        };
        if let (true, Some(r)) = (one_way, reference) {
            let high = connected().map(|l| wrapping_diff(l.owd.high(), r)).max().unwrap_or(0);
            for (w, l) in self.reorder_waits.iter_mut().zip(&self.links) {
                let spread = (high - wrapping_diff(l.owd.min(), r)).max(0) as u64;
                *w = (Duration::from_micros(spread) + resend + REORDER_MARGIN)
                    .clamp_to(REORDER_MIN, REORDER_MAX);
            }
            return;
        }
        let mut hi: Option<Duration> = None;
        let mut lo: Option<Duration> = None;
        for l in connected() {
            // A link we cannot time yet may be the slowest: wait as long as for the worst.
            let Some(srtt) = l.rtt.srtt() else {
                hi = Some(REORDER_MAX.saturating_mul(2));
                lo = Some(Duration::ZERO);
                break;
            };
            let top = srtt + l.rtt.rttvar().saturating_mul(4);
            hi = Some(hi.map_or(top, |h| h.max(top)));
            lo = Some(lo.map_or(srtt, |v| v.min(srtt)));
        }
        let wait = match (hi, lo) {
            (Some(h), Some(l)) => ((h - l).div(2) + REORDER_MARGIN).clamp_to(REORDER_MIN, REORDER_MAX),
            _ => REORDER_DEFAULT,
        };
        self.reorder_waits.fill(wait);
    }

    /// How long a bulk packet that arrived on each link is held before delivery, in order or
    /// not: the difference between the slowest link's one-way delay and its own (minimums, so
    /// queueing does not feed back), so that bulk packets leave the tunnel at the latency of
    /// the slowest link whichever link carried them.
    ///
    /// Why: a bond's capacity beyond its fastest link lies on slower links, and in-order
    /// delivery makes every packet sent after one on a slow link wait for it. So the round trip
    /// a flow sees grows with its rate, from the fastest link's to the slowest's — which a
    /// model-based sender reads as a queue and will not fill. BBR (Cardwell et al., ACM Queue
    /// 2016) keeps at most twice its bandwidth × minimum round trip in flight (Linux
    /// `tcp_bbr`'s `cwnd_gain`): measured on the fastest link alone, that is too little for a
    /// slow link's round trip, and BBR flows got 51–83 % of 40/25/15 Mbit/s links 5/20/40 ms
    /// apart while CUBIC got 97 %. Held to the slowest link's latency from their first packet
    /// (the SYN is bulk), they see one round trip at every rate. Sparse packets ([`super::sparse`]:
    /// acknowledgements, pings, calls) are never held.
    ///
    /// Links marked `fallback_only` do not count while another is usable; links not measured
    /// yet leave the holds at zero. Holds below [`HOLD_MIN`] are noise and left out.
    fn update_reorder_holds(&mut self) {
        self.reorder_holds.fill(Duration::ZERO);
        let any_normal = self.links.iter().any(|l| l.is_usable() && !l.config.fallback_only);
        // One pass (this runs on every keepalive): the first counted link's minimum is the
        // reference the others' are measured against; any counted link unmeasured: no holds.
        let (mut reference, mut slowest) = (None, 0);
        for l in self.links.iter().filter(|l| l.is_usable() && (!any_normal || !l.config.fallback_only)) {
            if !l.owd.has_samples() {
                return;
            }
            let r = *reference.get_or_insert(l.owd.min());
            slowest = slowest.max(wrapping_diff(l.owd.min(), r));
        }
        let Some(r) = reference else { return };
        for (hold, l) in self.reorder_holds.iter_mut().zip(&self.links) {
            if l.owd.has_samples() {
                let d = Duration::from_micros((slowest - wrapping_diff(l.owd.min(), r)).max(0) as u64);
                *hold = if d < HOLD_MIN { Duration::ZERO } else { d.min(REORDER_MAX) };
            }
        }
    }

    /// How long a sent packet may still be NACKed: the round trip of the slowest link with its
    /// variance (the RTO), plus the time until a later packet or the tail probe shows the gap;
    /// twice that, for a packet lost again when resent. The resend store grows its ring only
    /// as far as that needs.
    fn update_retention(&mut self) {
        let Some(store) = &mut self.retransmit else { return };
        let slowest = self
            .links
            .iter()
            .filter(|l| l.state.is_connected() && l.rtt.srtt().is_some())
            .map(|l| l.rtt.rto_or(Duration::ZERO))
            .max();
        let keep =
            slowest.map_or(retransmit::MAX_AGE, |rto| (rto + TAIL_PROBE + FEEDBACK_DELAY).saturating_mul(2));
        store.set_retention(keep);
    }

    fn update_reorder_timer(&mut self) {
        let timer = Timer::Tunnel(TunnelTimer::ReorderFlush);
        match self.reorder.as_ref().and_then(|r| r.deadline()) {
            Some(at) => self.timers.set(timer, at),
            None => self.timers.stop(timer),
        }
    }

    /// Seals the IP packet at `buf[DATA_OVERHEAD..DATA_OVERHEAD + len]` for the link the
    /// scheduler picks. `Ok(Some(transmit))`: the datagram is `buf[..transmit.len]`, send it.
    /// `Ok(None)`: every link is at its limit, or the packet's flow has packets waiting; it was
    /// copied into the send queue ([`super::fq`]) and comes out of [`Tunnel::poll_transmit`]
    /// when a link has room.
    pub fn handle_tun(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Option<Transmit>, DropReason> {
        if len > self.mtu || buf.len() < DATA_OVERHEAD + len {
            self.drops.count(DropReason::TooBig);
            return Err(DropReason::TooBig);
        }
        let total = DATA_OVERHEAD + len;
        let class = self.classifier.classify(&buf[DATA_OVERHEAD..total], self.ethernet);
        let flow = FairQueue::flow_of(class.hash);
        // Real-time packets go at once, like small ones; `duplicate = all` sends bulk through
        // the queue as usual, twice when there is room.
        let realtime = class.realtime && self.classifier.duplicate != Duplicate::All;
        self.track_realtime(now, realtime);
        let urgent = len <= SMALL_PACKET || realtime;
        let pick = if urgent {
            self.scheduler.pick_urgent(now, &self.views, total)
        } else if self.sendq.as_ref().is_some_and(|q| q.has_queued(flow)) {
            // Behind the packets of its flow already waiting, in order.
            return self.enqueue(now, flow, &buf[DATA_OVERHEAD..total]).map(|()| None);
        } else {
            self.scheduler.pick(now, &self.views, total)
        };
        match pick {
            Pick::Link(i) => {
                let copy_on = if class.realtime { self.second_link(now, i, total, urgent) } else { None };
                self.send_data(now, i, buf, len, copy_on).map(Some)
            }
            Pick::NoLink => {
                self.drops.count(DropReason::NoLink);
                Err(DropReason::NoLink)
            }
            Pick::Congested => self.enqueue(now, flow, &buf[DATA_OVERHEAD..total]).map(|()| None),
        }
    }

    /// Keeps the links' queues short while real-time packets flow, and long again a
    /// [`REALTIME_HOLD`] after the last. The queueing the links shed moves into the send
    /// queue, whose limits (CoDel's target, the byte limit) grow by as much: a bulk flow sees
    /// the same buffer, call or not; only the call no longer waits behind it.
    fn track_realtime(&mut self, now: Instant, realtime: bool) {
        let (limit, until) = match (realtime, self.realtime_until) {
            (true, None) => (REALTIME_QUEUE_LIMIT, Some(now + REALTIME_HOLD)),
            (true, Some(_)) => {
                self.realtime_until = Some(now + REALTIME_HOLD);
                return;
            }
            (false, Some(until)) if now >= until => (QUEUE_LIMIT, None),
            _ => return,
        };
        self.realtime_until = until;
        self.scheduler.set_queue_limit(limit);
        let target = CODEL_TARGET + self.moved_queue();
        if let Some(q) = &mut self.sendq {
            q.set_target(target);
        }
    }

    /// Queueing moved from the links into the send queue while a call runs.
    fn moved_queue(&self) -> Duration {
        if self.realtime_until.is_some() { QUEUE_LIMIT - REALTIME_QUEUE_LIMIT } else { Duration::ZERO }
    }

    /// The link for the second copy of a real-time packet of `total` bytes going on `first`:
    /// the one it would arrive first on after `first`, if the budget allows.
    fn second_link(&mut self, now: Instant, first: usize, total: usize, urgent: bool) -> Option<usize> {
        let any_normal = any_normal(&self.views, total);
        let candidates = self.views.iter().filter(|v| is_candidate(v, any_normal, total));
        let (count, bond_rate) = candidates.fold((0, 0u64), |(n, r), v| (n + 1, r + v.rate));
        if count < 2 {
            self.dup_stats.one_link += 1;
            return None;
        }
        if !self.budget.take(now, bond_rate, total) {
            self.dup_stats.over_budget += 1;
            return None;
        }
        let second = self.pick_but(now, total, Some(first), urgent);
        if second.is_none() {
            self.dup_stats.one_link += 1;
        }
        second
    }

    /// The link the scheduler picks for `total` bytes as if link `not` were not usable
    /// (`urgent`: full links too, [`Scheduler::pick_urgent`]).
    fn pick_but(&mut self, now: Instant, total: usize, not: Option<usize>, urgent: bool) -> Option<usize> {
        let hidden = not.map(|k| (k, std::mem::replace(&mut self.views[k].usable, false)));
        let pick = if urgent {
            self.scheduler.pick_urgent(now, &self.views, total)
        } else {
            self.scheduler.pick(now, &self.views, total)
        };
        if let Some((k, usable)) = hidden {
            self.views[k].usable = usable;
        }
        match pick {
            Pick::Link(i) => Some(i),
            _ => None,
        }
    }

    /// Queues a packet of `flow` that no link has room for; the queue makes room by taking from
    /// its fattest flow past [`SEND_QUEUE_LIMIT`] at the links' rates, and refuses the packet
    /// only if its own flow is the fattest.
    fn enqueue(&mut self, now: Instant, flow: usize, packet: &[u8]) -> Result<(), DropReason> {
        let total = DATA_OVERHEAD + packet.len();
        let any_normal = any_normal(&self.views, total);
        let rate: u64 =
            self.views.iter().filter(|v| is_candidate(v, any_normal, total)).map(|v| v.rate).sum();
        let limit = mul_div(rate, (SEND_QUEUE_LIMIT + self.moved_queue()).as_micros(), 1_000_000);
        let Some(q) = &mut self.sendq else {
            self.drops.count(DropReason::Congested);
            return Err(DropReason::Congested);
        };
        if q.is_empty() {
            self.sendq_head_len = total;
        }
        let pushed = q.push(now, flow, packet, limit);
        self.drops.congested += q.take_drops();
        if pushed.is_err() {
            self.drops.count(DropReason::Congested);
            return Err(DropReason::Congested);
        }
        self.arm_send_queue(now);
        Ok(())
    }

    fn arm_send_queue(&mut self, now: Instant) {
        let timer = Timer::Tunnel(TunnelTimer::SendQueue);
        if self.sendq.as_ref().is_none_or(|q| q.is_empty()) {
            self.timers.stop(timer);
            return;
        }
        // No link will have room (none is usable): try again at once, and find out.
        let at = self.scheduler.next_room(now, &self.views, self.sendq_head_len).unwrap_or(now);
        self.timers.set(timer, at);
    }

    /// Numbers and seals the packet at `buf[DATA_OVERHEAD..][..len]` for link `i`; with
    /// `copy_on`, a second copy goes on that link with the next `poll_transmit`.
    fn send_data(
        &mut self,
        now: Instant,
        i: usize,
        buf: &mut [u8],
        len: usize,
        copy_on: Option<usize>,
    ) -> Result<Transmit, DropReason> {
        let total = DATA_OVERHEAD + len;
        let seq = self.tx_seq;
        let Some(pn) =
            self.links[i].session.as_ref().map(|s| s.next_pn()).filter(|_| self.links[i].peer.is_some())
        else {
            // A usable link always has both; if not, it is our bug, but not worth a panic.
            debug_assert!(false, "usable link without session or peer");
            self.drops.count(DropReason::NoLink);
            return Err(DropReason::NoLink);
        };
        self.tx_seq = seq.wrapping_add(1);
        let payload = &buf[DATA_OVERHEAD..total];
        // Sent twice, it is not also kept to be resent: its copies are its recovery.
        let copied = copy_on.is_some_and(|j| self.copies.push(j, seq, payload, false));
        if !copied {
            if let Some(store) = &mut self.retransmit {
                store.record(now, i, pn, seq, payload);
            }
        }
        let tail_probe = self.retransmit.is_some();
        self.seal_data(now, i, seq, buf, total, tail_probe).map(|(t, _)| t).ok_or(DropReason::NoLink)
    }

    /// Writes `seq` before the data packet at `buf[DATA_OVERHEAD..total]` and seals it for link
    /// `i`; `None` if the link has no session or peer. Returns the packet number too.
    fn seal_data(
        &mut self,
        now: Instant,
        i: usize,
        seq: u32,
        buf: &mut [u8],
        total: usize,
        tail_probe: bool,
    ) -> Option<(Transmit, u64)> {
        buf[TRANSPORT_HEADER_LEN + super::crypto::TAG_LEN..DATA_OVERHEAD].copy_from_slice(&seq.to_be_bytes());
        let (link, mut timers) = (&mut self.links[i], LinkTimers { table: &mut self.timers, link: i });
        let dst = link.peer?;
        let pn = link.session.as_mut()?.seal(Kind::Data, &mut buf[..total]);
        link.on_data_sent(now, pn, total, tail_probe, &mut timers);
        Some((Transmit { link: i, dst, len: total }, pn))
    }

    /// The second copy of a real-time packet, sealed for its link.
    fn transmit_copy(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        loop {
            let (link, seq, packet, resend) = self.copies.front()?;
            let total = DATA_OVERHEAD + packet.len();
            if buf.len() < total {
                return None;
            }
            buf[DATA_OVERHEAD..total].copy_from_slice(packet);
            self.copies.pop();
            if link >= self.links.len() {
                continue;
            }
            // Its link went down since: the first copy is all there is.
            if let Some((t, _)) = self.seal_data(now, link, seq, buf, total, false) {
                if resend {
                    self.links[link].stats.retransmits += 1;
                } else {
                    self.links[link].stats.duplicates_sent += 1;
                    self.dup_stats.packets += 1;
                    self.dup_stats.bytes += total as u64;
                }
                return Some(t);
            }
        }
    }

    /// The next packet of the send queue (new flows first, then the others in turn), if a
    /// link has room for it now.
    fn transmit_queued(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        loop {
            let q = self.sendq.as_mut()?;
            let head = q.peek(now);
            let len = head.map_or(0, |(p, _)| p.len());
            self.sendq_head_len = DATA_OVERHEAD + len;
            let (pick, too_big) = match head {
                None => (None, false),
                // A buffer for control datagrams only: the packet waits for the next call.
                Some(_) if buf.len() < DATA_OVERHEAD + len => (None, false),
                Some((packet, _)) => {
                    let pick = self.scheduler.pick(now, &self.views, DATA_OVERHEAD + len);
                    // Too large for every path that is up (the tunnel MTU is about to drop):
                    // dropped, as the TUN device would have.
                    let too_big = pick == Pick::NoLink && self.views.iter().any(|v| v.usable);
                    if let Pick::Link(_) = pick {
                        buf[DATA_OVERHEAD..DATA_OVERHEAD + len].copy_from_slice(packet);
                    }
                    if too_big || matches!(pick, Pick::Link(_)) {
                        q.pop(now);
                    }
                    (Some(pick), too_big)
                }
            };
            self.drops.congested += q.take_drops();
            if too_big {
                self.drops.count(DropReason::TooBig);
                continue;
            }
            match pick {
                None => return None,
                Some(Pick::Link(i)) => {
                    let t = self.send_data(now, i, buf, len, None).ok();
                    self.arm_send_queue(now);
                    if t.is_some() {
                        return t;
                    }
                }
                Some(Pick::NoLink) => {
                    let n = q.clear();
                    self.drops.no_link += n as u64;
                    self.arm_send_queue(now);
                    return None;
                }
                Some(Pick::Congested) => {
                    self.arm_send_queue(now);
                    return None;
                }
            }
        }
    }

    /// Processes one datagram that arrived on `link` from `from`. `datagram` is exactly the
    /// bytes received; it is decrypted in place.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        link: usize,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Received {
        let header = match Header::parse(datagram) {
            Ok(h) => h,
            Err(WireError::Truncated | WireError::Version | WireError::Kind | WireError::Length) => {
                return self.dropped(DropReason::Malformed);
            }
        };
        if self.closed {
            return self.dropped(DropReason::Unexpected);
        }
        let result = match (header.kind, self.mode) {
            (Kind::Hello, Mode::Server) => self.on_hello(now, link, &header, datagram),
            (Kind::Challenge, Mode::Client) => self.on_challenge(now, link, &header, datagram),
            (Kind::Confirm, Mode::Server) => self.on_confirm(now, link, from, &header, datagram),
            (Kind::Hello | Kind::Challenge | Kind::Confirm, _) => Err(HandshakeError::Unexpected),
            _ => return self.on_transport(now, link, from, &header, datagram),
        };
        match result {
            Ok(r) => r,
            Err(e) => {
                if e == HandshakeError::Unauthenticated && !self.links[link].auth_problem_reported {
                    self.links[link].auth_problem_reported = true;
                    self.push_event(Event::AuthenticationFailed { link, from });
                }
                if e != HandshakeError::Unexpected {
                    self.links[link].stats.handshake_failures += 1;
                }
                self.dropped(match e {
                    HandshakeError::Unauthenticated => DropReason::Unauthenticated,
                    HandshakeError::Malformed => DropReason::Malformed,
                    HandshakeError::Unexpected => DropReason::Unexpected,
                    HandshakeError::Stale => DropReason::StaleHandshake,
                    HandshakeError::Replayed => DropReason::Replayed,
                })
            }
        }
    }

    /// Server: answer a hello that authenticates with a challenge, keeping no state.
    fn on_hello(
        &mut self,
        now: Instant,
        link: usize,
        h: &Header,
        buf: &mut [u8],
    ) -> Result<Received, HandshakeError> {
        let body = handshake::open(&self.handshake_key, h, buf)?;
        let hello = Hello::parse(body).map_err(|_| HandshakeError::Malformed)?;
        let (server_random, epoch) = self.cookies.challenge(now, link as u16, h.session, &hello);
        let challenge = Challenge {
            instance: self.instance,
            client_random: hello.client_random,
            server_random,
            epoch,
            echo_timestamp: hello.timestamp,
            timestamp: now.wire_timestamp(),
        };
        let n = handshake::seal(
            &self.handshake_key,
            self.key_id,
            &mut self.rng,
            Kind::Challenge,
            h.session,
            buf,
            |b| challenge.emit(b),
        );
        self.links[link].stats.tx_packets += 1;
        Ok(Received::Reply(n))
    }

    /// Client: a challenge for our pending hello: make the session, answer with a confirm.
    fn on_challenge(
        &mut self,
        now: Instant,
        link: usize,
        h: &Header,
        buf: &mut [u8],
    ) -> Result<Received, HandshakeError> {
        let l = &self.links[link];
        let answers = |p: &&Pending| p.session == h.session && !p.confirmed;
        let Some(pending) =
            l.pending.as_ref().filter(answers).or(l.previous_pending.as_ref().filter(answers)).cloned()
        else {
            return Err(HandshakeError::Unexpected);
        };
        let body = handshake::open(&self.handshake_key, h, buf)?;
        let challenge = Challenge::parse(body).map_err(|_| HandshakeError::Malformed)?;
        pending.accept(&challenge)?;
        let keys = session_keys(&self.psk, &pending.client_random, &challenge.server_random);
        self.peer_instance_seen(now, link, challenge.instance);
        let l = &mut self.links[link];
        let rtt = handshake_rtt(now, challenge.echo_timestamp);
        l.rtt.on_sample(rtt);
        // The server's first packet is a round trip away: no new hello before it can come.
        let retry = HANDSHAKE_RETRY.max(rtt.saturating_mul(2));
        self.timers.set(Timer::Link(link, LinkTimer::Handshake), now + retry);
        let l = &mut self.links[link];
        l.install(Session::new(h.session, keys, true, challenge.instance));
        l.pending = Some(Pending { confirmed: true, ..pending.clone() });
        l.previous_pending = None;
        l.hellos_unanswered = 0;
        let confirm = Confirm {
            instance: self.instance,
            client_random: pending.client_random,
            server_random: challenge.server_random,
            epoch: challenge.epoch,
            echo_timestamp: challenge.timestamp,
        };
        l.stats.tx_packets += 1;
        let n = handshake::seal(
            &self.handshake_key,
            self.key_id,
            &mut self.rng,
            Kind::Confirm,
            h.session,
            buf,
            |b| confirm.emit(b),
        );
        Ok(Received::Reply(n))
    }

    /// Server: a confirm with a valid cookie creates the session and (re)learns the peer.
    fn on_confirm(
        &mut self,
        now: Instant,
        link: usize,
        from: SocketAddr,
        h: &Header,
        buf: &mut [u8],
    ) -> Result<Received, HandshakeError> {
        let body = handshake::open(&self.handshake_key, h, buf)?;
        let confirm = Confirm::parse(body).map_err(|_| HandshakeError::Malformed)?;
        self.cookies.check(now, link as u16, h.session, &confirm)?;
        self.links[link].confirms.admit(now, &confirm.client_random)?;
        let keys = session_keys(&self.psk, &confirm.client_random, &confirm.server_random);
        self.peer_instance_seen(now, link, confirm.instance);
        let (l, mut timers) = self.timers_of(link);
        l.install(Session::new(h.session, keys, false, confirm.instance));
        l.rtt.on_sample(handshake_rtt(now, confirm.echo_timestamp));
        l.peer = Some(from);
        l.stats.handshakes += 1;
        l.owe_keepalive = true;
        l.owe_ack_request = true;
        let t = l.established(now, &mut timers);
        self.on_transition(now, link, t);
        Ok(Received::Consumed)
    }

    /// The peer's process instance, from a fresh handshake. A new one means the peer (re)started:
    /// its data sequence starts again at 0 (it sends no data before a link is up, and no link is
    /// up before this handshake), and its sessions on other links are gone.
    fn peer_instance_seen(&mut self, now: Instant, link: usize, instance: u64) {
        let old = match self.peer_instance {
            Some(old) if old == instance => return,
            old => old,
        };
        self.peer_instance = Some(instance);
        if let Some(r) = &mut self.reorder {
            r.restart(0);
        }
        self.delivered.reset();
        self.update_reorder_timer();
        let Some(old) = old else { return };
        self.push_event(Event::PeerRestarted);
        for i in (0..self.links.len()).filter(|&i| i != link) {
            if self.links[i].session.as_ref().is_none_or(|s| s.peer_instance != old) {
                continue;
            }
            if !self.links[i].state.is_connected() {
                // Already handshaking (client), or a server probing a dead link: the peer it
                // probes is gone.
                if !is_client(self.mode) {
                    self.links[i].session = None;
                }
                continue;
            }
            let (l, mut timers) = self.timers_of(i);
            let t = l.go_down(now, DownReason::PeerRestarted, &mut timers);
            self.on_transition(now, i, t);
        }
    }

    fn on_transport(
        &mut self,
        now: Instant,
        link: usize,
        from: SocketAddr,
        h: &Header,
        buf: &mut [u8],
    ) -> Received {
        let l = &mut self.links[link];
        let current = l.session.as_ref().is_some_and(|s| s.id == h.session);
        let session = match (current, l.session.as_mut(), l.previous.as_mut()) {
            (true, Some(s), _) => s,
            (false, _, Some(p)) if p.id == h.session => p,
            _ => return self.dropped(DropReason::UnknownSession),
        };
        let previous_highest = session.rx_highest_seen();
        match session.open(h, buf) {
            Ok(()) => {}
            Err(OpenError::Replayed) => return self.dropped(DropReason::Replayed),
            Err(OpenError::Unauthenticated) => return self.dropped(DropReason::Unauthenticated),
        }
        let newest = session.rx_highest() == h.pn;
        if current {
            self.gaps.on_packet(h.session, previous_highest, h.pn);
        }
        let server = !is_client(self.mode);
        let (l, mut timers) = self.timers_of(link);
        l.on_rx(now, buf.len(), &mut timers);
        if !current {
            // The session this one replaced: deliver its data, nothing else.
            return match h.kind {
                Kind::Data => self.on_data(now, link, buf, false),
                _ => Received::Consumed,
            };
        }
        if server && newest && l.peer != Some(from) {
            // Only an authenticated packet newer than any before moves the peer: a replayed
            // or delayed one cannot.
            l.peer = Some(from);
            self.push_event(Event::PeerMoved { link, to: from });
        }
        let (l, mut timers) = self.timers_of(link);
        if l.state == LinkState::Authenticating && l.pending.as_ref().is_some_and(|p| p.confirmed) {
            l.stats.handshakes += 1;
            let t = l.established(now, &mut timers);
            self.on_transition(now, link, t);
        }
        let body_start = TRANSPORT_HEADER_LEN + super::crypto::TAG_LEN;
        match h.kind {
            Kind::Data => self.on_data(now, link, buf, true),
            Kind::Keepalive => {
                let Ok(ka) = Keepalive::parse(&buf[body_start..]) else {
                    return self.dropped(DropReason::Malformed);
                };
                let backlogged = self.scheduler.backlogged_since(now, link);
                let (l, mut timers) = self.timers_of(link);
                let t = l.on_keepalive(now, &ka, backlogged, &mut timers);
                if let Some((smoothed, min)) = l.peer_owd {
                    let queueing = wrapping_diff(smoothed, min).max(0) as u64;
                    l.pmtu.on_queueing(Duration::from_micros(queueing));
                }
                let correction = l.capacity.take_correction();
                if correction != 0 {
                    self.scheduler.correct_queue(now, link, correction);
                }
                self.on_transition(now, link, t);
                self.update_views();
                self.update_reorder_wait(now);
                Received::Consumed
            }
            Kind::Disconnect => {
                if Disconnect::parse(&buf[body_start..]).is_err() {
                    return self.dropped(DropReason::Malformed);
                }
                let (l, mut timers) = self.timers_of(link);
                let t = l.go_down(now, DownReason::PeerDisconnected, &mut timers);
                self.on_transition(now, link, t);
                Received::Consumed
            }
            Kind::Nack => {
                let Ok(nack) = Nack::parse(&buf[body_start..]) else {
                    return self.dropped(DropReason::Malformed);
                };
                self.on_nack(now, &nack);
                Received::Consumed
            }
            Kind::Probe => {
                let Ok(probe) = Probe::parse(&buf[body_start..]) else {
                    return self.dropped(DropReason::Malformed);
                };
                // Answered on the link it came in on: that is the path it measures. A full
                // list means a peer probing faster than we answer; it tries again.
                let size = u16::try_from(buf.len()).unwrap_or(u16::MAX);
                let _ = self.links[link].owe_probe_acks.push(ProbeAck { id: probe.id, size });
                Received::Consumed
            }
            Kind::ProbeAck => {
                let Ok(ack) = ProbeAck::parse(&buf[body_start..]) else {
                    return self.dropped(DropReason::Malformed);
                };
                let changed = self.links[link].pmtu.on_ack(now, ack.id, usize::from(ack.size));
                self.after_pmtu(now, link, changed);
                Received::Consumed
            }
            Kind::Hello | Kind::Challenge | Kind::Confirm => unreachable!("handled by handle_datagram"),
        }
    }

    /// The peer lost some of our packets: queue those we still have to be sent again.
    ///
    /// Losses are also the only sign of a path that stopped carrying our larger datagrams:
    /// the link's path MTU is checked ([`PathMtu::on_loss`]).
    fn on_nack(&mut self, now: Instant, nack: &Nack) {
        for &(session, first, count) in &nack.gaps {
            let link = self.links.iter().position(|l| {
                l.session.as_ref().is_some_and(|s| s.id == session)
                    || l.previous.as_ref().is_some_and(|s| s.id == session)
            });
            let Some(link) = link else { continue };
            if let Some(store) = &mut self.retransmit {
                // The last of a long gap only ([`GapList::LONGEST`]).
                let resend = count.min(GapList::LONGEST as u16);
                store.nack(now, link, first + u64::from(count - resend), resend);
            }
            let suspect = self.links[link].pmtu.on_loss(now, count);
            if suspect {
                // What the link carried since its last report is likely lost too: resend it
                // now rather than after the next report.
                self.reroute_unacked(now, link);
            }
            self.after_pmtu(now, link, suspect);
        }
    }

    /// After link `link`'s path MTU discovery moved: its timer, and if what the path carries
    /// changed (`changed`), the event, the scheduler's view and the tunnel's MTU.
    #[inline(never)]
    fn after_pmtu(&mut self, now: Instant, link: usize, changed: bool) {
        let timer = Timer::Link(link, LinkTimer::PathMtu);
        match self.links[link].pmtu.timeout() {
            Some(at) => self.timers.set(timer, at),
            None => self.timers.stop(timer),
        }
        if changed {
            if let Some((mtu, state)) = self.links[link].pmtu.take_report() {
                self.push_event(Event::PathMtu { link, mtu, state });
            }
            self.update_views();
            self.update_tunnel_mtu(now);
        }
    }

    /// The tunnel's MTU: what the smallest connected path found carries, lowered at once,
    /// raised after [`TUNNEL_MTU_RAISE_HOLD`]. Links still searching, or searching again after
    /// a black hole, do not count yet: meanwhile the scheduler keeps larger packets off them.
    #[inline(never)]
    fn update_tunnel_mtu(&mut self, now: Instant) {
        let timer = Timer::Tunnel(TunnelTimer::TunnelMtu);
        let target = self
            .links
            .iter()
            .filter(|l| l.state.is_connected())
            .filter_map(|l| l.pmtu.settled())
            .min()
            .map_or(self.mtu, |d| d.saturating_sub(DATA_OVERHEAD).min(self.mtu));
        if target >= self.tunnel_mtu {
            if target == self.tunnel_mtu {
                self.tunnel_mtu_raise_since = None;
                self.timers.stop(timer);
                return;
            }
            let since = *self.tunnel_mtu_raise_since.get_or_insert(now);
            if now < since + TUNNEL_MTU_RAISE_HOLD {
                self.timers.set(timer, since + TUNNEL_MTU_RAISE_HOLD);
                return;
            }
        }
        self.tunnel_mtu = target;
        self.tunnel_mtu_raise_since = None;
        self.timers.stop(timer);
        self.push_event(Event::TunnelMtu { mtu: target });
    }

    /// The largest packet every connected link carries now ([`Event::TunnelMtu`]).
    pub fn tunnel_mtu(&self) -> usize {
        self.tunnel_mtu
    }

    /// The shell heard that link `link`'s path carries `path_mtu` bytes (the route's MTU, which
    /// ICMP may have lowered): a size to probe, not to believe ([`PathMtu::on_hint`]).
    pub fn handle_path_mtu_hint(&mut self, now: Instant, link: usize, path_mtu: usize) {
        let Some(l) = self.links.get_mut(link) else { return };
        let changed = l.pmtu.on_hint(now, path_mtu);
        self.after_pmtu(now, link, changed);
    }

    fn on_data(&mut self, now: Instant, link: usize, buf: &mut [u8], current: bool) -> Received {
        let body_start = TRANSPORT_HEADER_LEN + super::crypto::TAG_LEN;
        let Ok((seq, payload)) = wire::parse_data(&buf[body_start..]) else {
            return self.dropped(DropReason::Malformed);
        };
        if current {
            let (l, mut timers) = self.timers_of(link);
            l.on_data_rx(now, &mut timers);
        }
        match self.delivered.accept(seq) {
            Ok(()) => {}
            Err(Replay::Duplicate) => {
                self.links[link].stats.duplicates_dropped += 1;
                return self.dropped(DropReason::Duplicate);
            }
            Err(Replay::TooOld) => return self.dropped(DropReason::Late),
        }
        let range = DATA_OVERHEAD..buf.len();
        let Some(reorder) = &mut self.reorder else {
            return Received::Deliver(range);
        };
        let arrival = if is_sparse(payload, self.ethernet) {
            reorder.pass(seq)
        } else {
            reorder.arrive(now, seq, payload, self.reorder_waits[link], self.reorder_holds[link])
        };
        let r = match arrival {
            // Behind: its hole was given up on, and it is no copy (checked above): out of
            // order now is better than a loss.
            Arrival::Deliver | Arrival::Behind => Received::Deliver(range),
            Arrival::Held => Received::Consumed,
            Arrival::Duplicate => self.dropped(DropReason::Duplicate),
            Arrival::Full => self.dropped(DropReason::ReorderFull),
            Arrival::TooBig => self.dropped(DropReason::TooBig),
        };
        self.update_reorder_timer();
        r
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        // A link has room for the send queue's oldest packet: `poll_transmit` sends it.
        self.timers.expire(Timer::Tunnel(TunnelTimer::SendQueue), now);
        if self.timers.expire(Timer::Tunnel(TunnelTimer::TunnelMtu), now) {
            self.update_tunnel_mtu(now);
        }
        if self.timers.expire(Timer::Tunnel(TunnelTimer::ReorderFlush), now) {
            if let Some(r) = &mut self.reorder {
                r.release_expired(now);
            }
            self.update_reorder_timer();
        }
        for i in 0..self.links.len() {
            for kind in LinkTimer::ALL {
                if kind == LinkTimer::PathMtu {
                    if self.timers.expire(Timer::Link(i, kind), now) {
                        let changed = self.links[i].pmtu.on_timeout(now);
                        self.after_pmtu(now, i, changed);
                    }
                    continue;
                }
                if self.timers.expire(Timer::Link(i, kind), now) {
                    let (l, mut timers) = self.timers_of(i);
                    let was_suspect = l.is_suspect();
                    let t = l.on_timer(now, kind, &mut timers);
                    if kind == LinkTimer::Handshake
                        && l.hellos_unanswered >= UNANSWERED_REPORT_AFTER
                        && !l.auth_problem_reported
                    {
                        l.auth_problem_reported = true;
                        self.push_event(Event::HandshakeUnanswered { link: i });
                    }
                    if !was_suspect && self.links[i].is_suspect() {
                        self.update_views();
                        self.reroute_unacked(now, i);
                    }
                    self.on_transition(now, i, t);
                }
            }
        }
    }

    /// The next control datagram to send, written into `buf` (at least
    /// [`wire::MAX_CONTROL_LEN`] bytes).
    ///
    /// Resent data packets and those that waited in the send queue come through here too: give
    /// a buffer of at least `DATA_OVERHEAD + mtu` bytes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if !self.copies.is_empty() {
            if let Some(t) = self.transmit_copy(now, buf) {
                return Some(t);
            }
        }
        if !self.gaps.is_empty() || self.nack_copy.is_some() {
            if let Some(t) = self.transmit_nack(buf) {
                return Some(t);
            }
        }
        if self.retransmit.as_ref().is_some_and(|r| r.pending()) {
            if let Some(t) = self.transmit_resend(now, buf) {
                return Some(t);
            }
        }
        if self.sendq.as_ref().is_some_and(|q| !q.is_empty()) {
            if let Some(t) = self.transmit_queued(now, buf) {
                return Some(t);
            }
        }
        let n = self.links.len();
        for k in 0..n {
            let i = (self.transmit_cursor + k) % n;
            if let Some(t) = self.transmit_for(now, i, buf) {
                self.transmit_cursor = (i + 1) % n;
                return Some(t);
            }
        }
        None
    }

    /// The usable link with the shortest round trip: the quickest way to tell the peer.
    fn fastest_link(&self) -> Option<usize> {
        self.fastest_link_but(None)
    }

    fn fastest_link_but(&self, not: Option<usize>) -> Option<usize> {
        (0..self.links.len())
            .filter(|&i| Some(i) != not && self.links[i].is_usable() && self.links[i].peer.is_some())
            .min_by_key(|&i| self.links[i].rtt.srtt_or(Duration::MAX))
    }

    /// Asks the peer for what our links lost, on the two fastest links: a lost request is a
    /// packet that is never resent, and a TCP flow inside reads every such hole as congestion
    /// (at 5% loss on the fastest link, the one the requests take, one request in twenty
    /// was lost and a CUBIC upload fell to a few Mbit/s of 120: `tests/sim/calls.rs`).
    fn transmit_nack(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        if let Some((j, nack)) = self.nack_copy.take() {
            if let Some(t) = self.send_nack(j, &nack, buf) {
                return Some(t);
            }
        }
        if self.gaps.is_empty() {
            return None;
        }
        let i = self.fastest_link()?;
        let nack = Nack { gaps: self.gaps.take() };
        let t = self.send_nack(i, &nack, buf);
        self.nack_copy = self.fastest_link_but(Some(i)).map(|j| (j, nack));
        t
    }

    fn send_nack(&mut self, i: usize, nack: &Nack, buf: &mut [u8]) -> Option<Transmit> {
        let len = TRANSPORT_HEADER_LEN + super::crypto::TAG_LEN + nack.len();
        nack.emit(&mut buf[TRANSPORT_HEADER_LEN + super::crypto::TAG_LEN..len]);
        let l = &mut self.links[i];
        let dst = l.peer?;
        l.session.as_mut()?.seal(Kind::Nack, &mut buf[..len]);
        l.stats.tx_packets += 1;
        l.stats.tx_bytes += len as u64;
        Some(Transmit { link: i, dst, len })
    }

    /// Sends again a data packet the peer reported lost, on the link the scheduler picks; if
    /// that is the link that lost it, a copy goes on the next-best link too. A lossy link that
    /// lost a packet once may lose it again, and a packet lost twice is a hole the flow inside
    /// pays for; but a slower link alone may deliver it after the receiver gave the hole up.
    /// (With 5 % loss on the fastest link, resends there alone left a CUBIC upload a few Mbit/s
    /// of 120, `tests/sim/calls.rs`; resends on the other link alone, 7 % of a 50/50 Mbit/s bond
    /// whose other link is 55 ms slower, `tests/sim/unequal.rs`.)
    fn transmit_resend(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let store = self.retransmit.as_mut()?;
        let (slot, seq, payload, lost_on) = store.pop(now)?;
        let len = payload.len();
        if buf.len() < DATA_OVERHEAD + len {
            return None;
        }
        buf[DATA_OVERHEAD..DATA_OVERHEAD + len].copy_from_slice(payload);
        let i = self.resend_link(now, DATA_OVERHEAD + len, None)?;
        if i == lost_on {
            if let Some(j) = self.resend_link(now, DATA_OVERHEAD + len, Some(i)) {
                self.copies.push(j, seq, &buf[DATA_OVERHEAD..DATA_OVERHEAD + len], true);
            }
        }
        let (t, pn) = self.seal_data(now, i, seq, buf, DATA_OVERHEAD + len, true)?;
        self.links[i].stats.retransmits += 1;
        if let Some(store) = &mut self.retransmit {
            store.resent_as(slot, i, pn);
        }
        Some(t)
    }

    /// Where a resent packet of `total` bytes goes, not on link `not`: the arrival scheduler
    /// knows where it lands first; round-robin does not care, so the shortest round trip.
    fn resend_link(&mut self, now: Instant, total: usize, not: Option<usize>) -> Option<usize> {
        match self.scheduler_kind {
            SchedulerKind::Arrival => self.pick_but(now, total, not, true),
            SchedulerKind::Wrr => self.fastest_link_but(not),
        }
    }

    fn transmit_for(&mut self, now: Instant, i: usize, buf: &mut [u8]) -> Option<Transmit> {
        let dst = self.links[i].peer;
        if self.owe_disconnect[i] {
            self.owe_disconnect[i] = false;
            let (l, mut timers) = self.timers_of(i);
            let sent = match (l.session.as_mut(), dst) {
                (Some(s), Some(dst)) => {
                    let len = wire::DISCONNECT_DATAGRAM_LEN;
                    Disconnect { reason: DisconnectReason::Shutdown }
                        .emit(&mut buf[len - Disconnect::LEN..len]);
                    s.seal(Kind::Disconnect, &mut buf[..len]);
                    Some(Transmit { link: i, dst, len })
                }
                _ => None,
            };
            let t = l.go_down(now, DownReason::Closed, &mut timers);
            self.on_transition(now, i, t);
            if sent.is_some() {
                return sent;
            }
        }
        let l = &mut self.links[i];
        if l.owe_hello {
            let dst = dst?;
            let session = self.rng.next_u32();
            let client_random = self.rng.bytes();
            let hello = Hello { instance: self.instance, client_random, timestamp: now.wire_timestamp() };
            let len = handshake::seal(
                &self.handshake_key,
                self.key_id,
                &mut self.rng,
                Kind::Hello,
                session,
                buf,
                |b| hello.emit(b),
            );
            let t = l.on_hello_sent(Pending { session, client_random, confirmed: false });
            self.on_transition(now, i, t);
            return Some(Transmit { link: i, dst, len });
        }
        if l.owe_keepalive {
            let (Some(_), Some(dst)) = (l.session.as_ref(), dst) else {
                l.owe_keepalive = false;
                return None;
            };
            let ka = l.keepalive(now);
            let len = wire::KEEPALIVE_DATAGRAM_LEN;
            ka.emit(&mut buf[len - Keepalive::LEN..len]);
            let pn = l.session.as_mut().expect("checked").seal(Kind::Keepalive, &mut buf[..len]);
            let planned = self.scheduler.planned_queue(now, i);
            let (l, mut timers) = self.timers_of(i);
            let sent = l.stats.tx_bytes;
            l.capacity.on_keepalive_sent(ka.timestamp, planned, sent);
            l.on_keepalive_sent(now, &ka, pn, len, &mut timers);
            return Some(Transmit { link: i, dst, len });
        }
        self.transmit_probing(now, i, buf)
    }

    /// Path MTU discovery's datagrams on link `i`: acknowledgements of the peer's probes, then
    /// our own probes (which need a buffer for the largest datagram).
    #[inline(never)]
    fn transmit_probing(&mut self, now: Instant, i: usize, buf: &mut [u8]) -> Option<Transmit> {
        let l = &mut self.links[i];
        let timeout = l.probe_timeout();
        let (Some(session), Some(dst)) = (l.session.as_mut(), l.peer) else { return None };
        if !l.state.is_connected() {
            return None;
        }
        let body = TRANSPORT_HEADER_LEN + super::crypto::TAG_LEN;
        let (kind, len, probed) = if let Some(ack) = l.owe_probe_acks.pop() {
            ack.emit(&mut buf[body..wire::PROBE_ACK_DATAGRAM_LEN]);
            (Kind::ProbeAck, wire::PROBE_ACK_DATAGRAM_LEN, false)
        } else {
            if buf.len() < DATA_OVERHEAD + self.mtu {
                return None;
            }
            let (id, len) = l.pmtu.poll_probe(now, timeout)?;
            let len = len.max(wire::MIN_PROBE_DATAGRAM_LEN).min(buf.len());
            Probe { id }.emit(&mut buf[body..len]);
            (Kind::Probe, len, true)
        };
        session.seal(kind, &mut buf[..len]);
        l.stats.tx_packets += 1;
        l.stats.tx_bytes += len as u64;
        if probed {
            self.after_pmtu(now, i, false);
        }
        Some(Transmit { link: i, dst, len })
    }

    /// The next packet released by the reorder buffer, copied into `buf` (at least MTU bytes).
    pub fn poll_deliver(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let n = self.reorder.as_mut()?.pop(now, buf);
        if n.is_some() {
            self.update_reorder_timer();
        }
        n
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Tunnel::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Shutting down: every connected link owes the peer a disconnect (drain `poll_transmit`),
    /// and nothing reconnects.
    pub fn close(&mut self, now: Instant) {
        self.closed = true;
        for i in 0..self.links.len() {
            if self.links[i].state.is_connected() && self.links[i].session.is_some() {
                self.owe_disconnect[i] = true;
            } else {
                let (l, mut timers) = self.timers_of(i);
                let t = l.go_down(now, DownReason::Closed, &mut timers);
                self.on_transition(now, i, t);
            }
            self.links[i].owe_hello = false;
        }
    }
}
