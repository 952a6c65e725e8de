//! Two engines joined by simulated links, a virtual clock, traffic sources and recorders.
//!
//! The clock jumps from one event to the next: a datagram arriving, an engine timer, a source
//! emitting a packet. Everything random is drawn from RNGs seeded from the scenario's seed, so
//! a run is reproducible bit for bit.

use super::net::{Path, PathConfig, Rng};
use super::tcp::{self, TcpFlow, TcpReceiver, TcpSender};
use mlvpn::proto::wire::DATA_OVERHEAD;
use mlvpn::proto::{
    Config, Duration, Event, Instant, LinkConfig, LinkState, Mode, Received, SchedulerKind, Tunnel, kdf,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

pub const MTU: usize = 1400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// The password's key, derived once per test process (stretching takes a moment).
pub fn psk() -> &'static mlvpn::proto::crypto::Key {
    static PSK: OnceLock<mlvpn::proto::crypto::Key> = OnceLock::new();
    PSK.get_or_init(|| kdf::psk_from_password(b"correct horse battery staple"))
}

pub fn ms(v: u64) -> Instant {
    Instant::from_micros(v * 1000)
}

/// One link: a path each way and the two endpoints' addresses.
#[derive(Debug)]
pub struct SimLink {
    /// Client → server.
    pub up: Path,
    /// Server → client.
    pub down: Path,
    pub client_addr: SocketAddr,
    pub server_addr: SocketAddr,
}

impl SimLink {
    pub fn blackhole(&mut self, on: bool) {
        self.up.blackhole = on;
        self.down.blackhole = on;
    }
}

/// A datagram on the wire.
#[derive(Debug)]
struct Flight {
    at: Instant,
    order: u64,
    to: Side,
    link: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Flight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Flight {}
impl PartialOrd for Flight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Flight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(o.at, o.order))
    }
}

/// A constant-rate packet source feeding one side's TUN.
#[derive(Debug, Clone)]
pub struct Source {
    pub side: Side,
    pub rate_bps: u64,
    pub size: usize,
    pub next: Instant,
    pub stop: Instant,
    pub seq: u64,
    /// Real IPv4/UDP packets (a call: [`Sim::add_call`]) rather than the simulator's bare ones.
    pub udp: bool,
}

/// Where a call packet's sequence number and send time sit: after its IPv4 and UDP headers.
pub const CALL_PAYLOAD: usize = 28;

/// A packet the application received.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    pub seq: u64,
    pub sent: Instant,
    pub at: Instant,
    pub len: usize,
    /// A packet of a call ([`Sim::add_call`]).
    pub call: bool,
}

/// What one side saw.
#[derive(Debug, Default)]
pub struct Log {
    pub deliveries: Vec<Delivery>,
    pub events: Vec<(Instant, Event)>,
    /// Packets the application handed to the engine that it refused.
    pub tun_drops: u64,
    /// Datagrams the engine wanted sent back to whoever sent them (handshake answers).
    pub replies: Vec<(Instant, usize, SocketAddr, usize)>,
}

impl Log {
    /// Times at which `link` entered `state`.
    pub fn entered(&self, link: usize, state: LinkState) -> Vec<Instant> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Link { link: l, to, .. } if *l == link && *to == state => Some(*t),
                _ => None,
            })
            .collect()
    }

    /// App bytes delivered with delivery time in `[from, to)`.
    pub fn bytes_between(&self, from: Instant, to: Instant) -> u64 {
        self.deliveries.iter().filter(|d| d.at >= from && d.at < to).map(|d| d.len as u64).sum()
    }

    /// App bytes delivered (whenever) of packets sent in `[from, to)`: for a steady source this
    /// is the delivered rate, without the edge effects of packets buffered across the window.
    pub fn bytes_sent_between(&self, from: Instant, to: Instant) -> u64 {
        self.deliveries.iter().filter(|d| d.sent >= from && d.sent < to).map(|d| d.len as u64).sum()
    }
}

pub struct Sim {
    pub now: Instant,
    pub client: Tunnel,
    pub server: Tunnel,
    pub client_config: Config,
    pub server_config: Config,
    pub links: Vec<SimLink>,
    pub sources: Vec<Source>,
    pub client_log: Log,
    pub server_log: Log,
    /// Every datagram put on the wire, when capture is on (for attack scenarios).
    pub capture: Option<Vec<Captured>>,
    /// The server sends back every packet of this length it receives (a ping responder).
    pub echo_len: Option<usize>,
    /// A TCP flow from the client to the server ([`Sim::add_tcp`]).
    pub tcp: Option<TcpFlow>,
    /// Whether the flow's segments follow the tunnel's MTU, as a kernel's follow the TUN
    /// device's (true); false keeps them at the configured size, which is what a tunnel that
    /// only keeps large packets off a small path (and keeps its MTU) offers.
    pub tcp_follows_tunnel_mtu: bool,
    flights: BinaryHeap<Reverse<Flight>>,
    order: u64,
    buf: Vec<u8>,
    engine_seeds: u64,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sim(t={:?})", self.now)
    }
}

/// A datagram seen on the wire: who sent it, on which link, from where.
#[derive(Debug, Clone)]
pub struct Captured {
    pub side: Side,
    pub link: usize,
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
}

/// How a scenario describes one link.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub up: PathConfig,
    pub down: PathConfig,
    pub config: LinkConfig,
}

impl LinkSpec {
    /// A symmetric link of `rate_mbps` and `delay_ms` one way.
    pub fn new(name: &str, rate_mbps: f64, delay_ms: u64) -> Self {
        LinkSpec {
            up: PathConfig::new(rate_mbps, delay_ms),
            down: PathConfig::new(rate_mbps, delay_ms),
            config: LinkConfig::new(name),
        }
    }

    pub fn weight_from_rate(mut self) -> Self {
        self.config.bandwidth_upload = self.up.rate_bps.map(|b| b / 8);
        self
    }
}

fn addr(a: u8, b: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, 1)), port)
}

impl Sim {
    /// Two engines with the default scheduler and loss recovery.
    pub fn new(seed: u64, specs: &[LinkSpec], reorder_buffer_size: usize) -> Sim {
        let retransmit = usize::from(mlvpn::config::DEFAULT_RETRANSMIT_BUFFER_SIZE);
        Sim::with_options(seed, specs, reorder_buffer_size, SchedulerKind::default(), retransmit)
    }

    pub fn with_scheduler(
        seed: u64,
        specs: &[LinkSpec],
        reorder_buffer_size: usize,
        scheduler: SchedulerKind,
    ) -> Sim {
        Sim::with_options(seed, specs, reorder_buffer_size, scheduler, 512)
    }

    pub fn with_options(
        seed: u64,
        specs: &[LinkSpec],
        reorder_buffer_size: usize,
        scheduler: SchedulerKind,
        retransmit_buffer_size: usize,
    ) -> Sim {
        let links: Vec<LinkConfig> = specs.iter().map(|s| s.config.clone()).collect();
        let config = |mode, links| Config {
            mode,
            scheduler,
            links,
            reorder_buffer_size,
            mtu: MTU,
            retransmit_buffer_size,
            ethernet: false,
            duplicate: Default::default(),
            duplicate_ports: Default::default(),
            duplicate_budget: Default::default(),
        };
        let client_config = config(Mode::Client, links.clone());
        let server_config = config(Mode::Server, links);
        let sim_links = specs
            .iter()
            .enumerate()
            .map(|(i, s)| SimLink {
                up: Path::new(s.up, Rng::fork(seed, 2 * i as u64)),
                down: Path::new(s.down, Rng::fork(seed, 2 * i as u64 + 1)),
                client_addr: addr(1, i as u8, 40_000 + i as u16),
                server_addr: addr(2, i as u8, 5080 + i as u16),
            })
            .collect();
        let mut engine_seeds = Rng::fork(seed, 1000);
        let mut next_seed = || {
            engine_seeds = Rng::new(engine_seeds).next_u64();
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&engine_seeds.to_le_bytes());
            s
        };
        let client = Tunnel::new(client_config.clone(), psk(), next_seed(), Instant::ZERO);
        let server = Tunnel::new(server_config.clone(), psk(), next_seed(), Instant::ZERO);
        let mut sim = Sim {
            now: Instant::ZERO,
            client,
            server,
            client_config,
            server_config,
            links: sim_links,
            sources: Vec::new(),
            client_log: Log::default(),
            server_log: Log::default(),
            capture: None,
            echo_len: None,
            tcp: None,
            tcp_follows_tunnel_mtu: true,
            flights: BinaryHeap::new(),
            order: 0,
            buf: vec![0u8; 65_536],
            engine_seeds,
        };
        for i in 0..sim.links.len() {
            let a = sim.links[i].server_addr;
            sim.client.set_remote(i, a);
        }
        sim
    }

    fn fresh_seed(&mut self) -> [u8; 32] {
        self.engine_seeds = Rng::new(self.engine_seeds).next_u64();
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&self.engine_seeds.to_le_bytes());
        s
    }

    /// Replaces the server with a freshly started one (a restart: all state lost).
    pub fn restart_server(&mut self) {
        let seed = self.fresh_seed();
        self.server = Tunnel::new(self.server_config.clone(), psk(), seed, self.now);
    }

    /// Replaces the client with a freshly started one.
    pub fn restart_client(&mut self) {
        let seed = self.fresh_seed();
        self.client = Tunnel::new(self.client_config.clone(), psk(), seed, self.now);
        for i in 0..self.links.len() {
            let a = self.links[i].server_addr;
            self.client.set_remote(i, a);
        }
    }

    /// Reloads one side's engine with links `specs` (matched by name). Links new to the
    /// simulation are appended; a goodbye for a removed link goes out on its old path.
    pub fn reconfigure(&mut self, side: Side, specs: &[LinkSpec]) -> mlvpn::proto::Reconfigured {
        for s in specs.iter().skip(self.links.len()) {
            let i = self.links.len();
            self.links.push(SimLink {
                up: Path::new(s.up, Rng::fork(self.engine_seeds, 2 * i as u64)),
                down: Path::new(s.down, Rng::fork(self.engine_seeds, 2 * i as u64 + 1)),
                client_addr: addr(1, i as u8, 40_000 + i as u16),
                server_addr: addr(2, i as u8, 5080 + i as u16),
            });
        }
        let links: Vec<LinkConfig> = specs.iter().map(|s| s.config.clone()).collect();
        let config = match side {
            Side::Client => &mut self.client_config,
            Side::Server => &mut self.server_config,
        };
        config.links = links;
        let config = config.clone();
        let now = self.now;
        let r = self.engine(side).reconfigure(now, config, psk()).expect("same mode");
        for (old, _, datagram) in &r.goodbyes {
            let from = self.own_addr(side, *old);
            self.inject(side, *old, from, datagram);
        }
        if side == Side::Client {
            for i in 0..specs.len() {
                let a = self.links[i].server_addr;
                self.client.set_remote(i, a);
            }
        }
        self.drain(side);
        r
    }

    /// Adds a constant-rate source on `side` from `start` to `stop`.
    pub fn add_source(&mut self, side: Side, rate_mbps: f64, size: usize, start: Instant, stop: Instant) {
        self.sources.push(Source {
            side,
            rate_bps: (rate_mbps * 1e6) as u64,
            size,
            next: start,
            stop,
            seq: 0,
            udp: false,
        });
    }

    /// Adds a call on `side`: `pps` IPv4/UDP packets a second of `size` bytes from `start` to
    /// `stop` (small UDP at a steady rate: what the engine takes for real-time).
    pub fn add_call(&mut self, side: Side, pps: u64, size: usize, start: Instant, stop: Instant) {
        self.sources.push(Source {
            side,
            rate_bps: pps * size as u64 * 8,
            size,
            next: start,
            stop,
            seq: 0,
            udp: true,
        });
    }

    /// Adds a TCP flow (CUBIC, see [`tcp`]) from the client to the server, sending from
    /// `start` until `stop`.
    pub fn add_tcp(&mut self, start: Instant, stop: Instant) {
        self.tcp = Some(TcpFlow {
            sender: TcpSender::new(start, stop),
            receiver: TcpReceiver::default(),
            refused: 0,
        });
    }

    /// Lets the TCP flow act at the end of an event: the receiver acknowledges what the event
    /// delivered, the sender sends what its window allows.
    fn tcp_pump(&mut self) {
        let Some(flow) = &mut self.tcp else { return };
        let now = self.now;
        flow.sender.on_timeout(now);
        let ack = flow.receiver.poll_ack(now);
        let mut segments = Vec::new();
        while let Some(n) = flow.sender.poll_send(now) {
            segments.push(n);
        }
        let mut buf = std::mem::take(&mut self.buf);
        if let Some((cum, sacks)) = &ack {
            let packet = &mut buf[DATA_OVERHEAD..DATA_OVERHEAD + tcp::ACK_LEN];
            packet.fill(0);
            packet[..8].copy_from_slice(&cum.to_be_bytes());
            packet[8..16].copy_from_slice(&now.as_micros().to_be_bytes());
            tcp::encode_ack(packet, *cum, sacks);
            self.tun_in(Side::Server, &mut buf, tcp::ACK_LEN);
        }
        // Like a kernel's TCP, segments follow the route's MTU: the tunnel's, as path MTU
        // discovery sets it.
        let segment = if self.tcp_follows_tunnel_mtu {
            tcp::SEGMENT.min(self.client.tunnel_mtu())
        } else {
            tcp::SEGMENT
        };
        for n in &segments {
            let packet = &mut buf[DATA_OVERHEAD..DATA_OVERHEAD + segment];
            packet.fill(0);
            packet[..8].copy_from_slice(&n.to_be_bytes());
            packet[8..16].copy_from_slice(&now.as_micros().to_be_bytes());
            packet[16] = tcp::DATA_MARK;
            if !self.tun_in(Side::Client, &mut buf, segment) {
                if let Some(f) = &mut self.tcp {
                    f.refused += 1;
                }
            }
        }
        self.buf = buf;
        if ack.is_some() {
            self.drain(Side::Server);
        }
        if !segments.is_empty() {
            self.drain(Side::Client);
        }
    }

    pub fn engine(&mut self, side: Side) -> &mut Tunnel {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    fn log_mut(&mut self, side: Side) -> &mut Log {
        match side {
            Side::Client => &mut self.client_log,
            Side::Server => &mut self.server_log,
        }
    }

    /// Puts `bytes` on the wire from `side` over `link` (what an engine, or an attacker at
    /// `from`, sends).
    pub fn inject(&mut self, from_side: Side, link: usize, from: SocketAddr, bytes: &[u8]) {
        if let Some(c) = &mut self.capture {
            c.push(Captured { side: from_side, link, from, bytes: bytes.to_vec() });
        }
        let l = &mut self.links[link];
        let path = match from_side {
            Side::Client => &mut l.up,
            Side::Server => &mut l.down,
        };
        if let Some(at) = path.send(self.now, bytes.len()) {
            let mut bytes = bytes.to_vec();
            if let Some(bit) = path.corruption(bytes.len()) {
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
            self.order += 1;
            self.flights.push(Reverse(Flight {
                at,
                order: self.order,
                to: from_side.other(),
                link,
                from,
                bytes,
            }));
        }
    }

    fn own_addr(&self, side: Side, link: usize) -> SocketAddr {
        match side {
            Side::Client => self.links[link].client_addr,
            Side::Server => self.links[link].server_addr,
        }
    }

    /// Drains every output of one engine.
    fn drain(&mut self, side: Side) {
        let now = self.now;
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(tx) = self.engine(side).poll_transmit(now, &mut buf) {
            let from = self.own_addr(side, tx.link);
            self.inject(side, tx.link, from, &buf[..tx.len]);
        }
        while let Some(n) = self.engine(side).poll_deliver(now, &mut buf) {
            self.record_delivery(side, &buf[..n]);
        }
        while let Some(e) = self.engine(side).poll_event() {
            self.log_mut(side).events.push((now, e));
        }
        self.buf = buf;
    }

    fn record_delivery(&mut self, side: Side, packet: &[u8]) {
        let call = packet[0] == 0x45;
        let at = if call { CALL_PAYLOAD } else { 0 };
        let seq = u64::from_be_bytes(packet[at..at + 8].try_into().unwrap());
        let sent = Instant::from_micros(u64::from_be_bytes(packet[at + 8..at + 16].try_into().unwrap()));
        let now = self.now;
        self.log_mut(side).deliveries.push(Delivery { seq, sent, at: now, len: packet.len(), call });
        if let Some(flow) = &mut self.tcp {
            match (side, packet.get(16)) {
                (Side::Server, Some(&tcp::DATA_MARK)) if packet.len() > tcp::ACK_LEN => {
                    flow.receiver.on_segment(now, seq)
                }
                (Side::Client, Some(&tcp::ACK_MARK)) if packet.len() == tcp::ACK_LEN => {
                    let (cum, sacks) = tcp::decode_ack(packet);
                    flow.sender.on_ack(now, cum, &sacks);
                }
                _ => {}
            }
        }
        if side == Side::Server && self.echo_len == Some(packet.len()) {
            self.echo(packet);
        }
    }

    /// The server answers a ping: the same bytes back through the tunnel.
    fn echo(&mut self, packet: &[u8]) {
        let mut buf = vec![0u8; DATA_OVERHEAD + packet.len()];
        buf[DATA_OVERHEAD..].copy_from_slice(packet);
        self.tun_in(Side::Server, &mut buf, packet.len());
    }

    fn arrive(&mut self, f: Flight) {
        if f.link >= self.engine(f.to).links().len() {
            return; // a link this side no longer has
        }
        let now = self.now;
        let mut buf = std::mem::take(&mut self.buf);
        let n = f.bytes.len();
        buf[..n].copy_from_slice(&f.bytes);
        let r = self.engine(f.to).handle_datagram(now, f.link, f.from, &mut buf[..n]);
        match r {
            Received::Deliver(range) => {
                let packet = buf[range].to_vec();
                self.record_delivery(f.to, &packet);
            }
            Received::Reply(len) => {
                self.log_mut(f.to).replies.push((now, f.link, f.from, len));
                let from = self.own_addr(f.to, f.link);
                // A reply goes back to whoever sent the datagram; if that is not the real peer,
                // it leaves the simulated network (we only record it).
                if f.from == self.own_addr(f.to.other(), f.link) {
                    let bytes = buf[..len].to_vec();
                    self.inject(f.to, f.link, from, &bytes);
                }
            }
            Received::Consumed | Received::Dropped(_) => {}
        }
        self.buf = buf;
        self.drain(f.to);
    }

    fn emit(&mut self, k: usize) {
        let now = self.now;
        let s = &mut self.sources[k];
        let (side, size, seq, udp) = (s.side, s.size, s.seq, s.udp);
        s.seq += 1;
        s.next = now + Duration::from_micros(size as u64 * 8 * 1_000_000 / s.rate_bps);
        let mut buf = std::mem::take(&mut self.buf);
        let packet = &mut buf[DATA_OVERHEAD..DATA_OVERHEAD + size];
        packet.fill(0);
        let at = if udp {
            // IPv4 (no options, DF) from 192.168.1.2 to 10.9.0.1, UDP 40000 -> 3478.
            packet[..20]
                .copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 168, 1, 2, 10, 9, 0, 1]);
            packet[2..4].copy_from_slice(&(size as u16).to_be_bytes());
            packet[20..24].copy_from_slice(&[0x9c, 0x40, 0x0d, 0x96]);
            packet[24..26].copy_from_slice(&(size as u16 - 20).to_be_bytes());
            CALL_PAYLOAD
        } else {
            0
        };
        packet[at..at + 8].copy_from_slice(&seq.to_be_bytes());
        packet[at + 8..at + 16].copy_from_slice(&now.as_micros().to_be_bytes());
        self.tun_in(side, &mut buf, size);
        self.buf = buf;
        self.drain(side);
    }

    /// Hands the packet at `buf[DATA_OVERHEAD..][..len]` to `side`'s engine as if read from its
    /// TUN device, and puts what the engine sends at once on the wire (what it keeps comes out
    /// of `poll_transmit` later). False if the engine refused the packet.
    fn tun_in(&mut self, side: Side, buf: &mut [u8], len: usize) -> bool {
        let now = self.now;
        match self.engine(side).handle_tun(now, buf, len) {
            Ok(Some(tx)) => {
                let from = self.own_addr(side, tx.link);
                let bytes = buf[..tx.len].to_vec();
                self.inject(side, tx.link, from, &bytes);
                true
            }
            Ok(None) => true,
            Err(_) => {
                self.log_mut(side).tun_drops += 1;
                false
            }
        }
    }

    /// An attacker next to `to` hands it `bytes` on `link` from `from`, now. Returns what the
    /// engine made of it; a reply goes back to `from` only (it is recorded, not delivered).
    pub fn attack(&mut self, to: Side, link: usize, from: SocketAddr, bytes: &[u8]) -> Received {
        let now = self.now;
        let mut buf = std::mem::take(&mut self.buf);
        buf[..bytes.len()].copy_from_slice(bytes);
        let r = self.engine(to).handle_datagram(now, link, from, &mut buf[..bytes.len()]);
        if let Received::Reply(len) = r {
            self.log_mut(to).replies.push((now, link, from, len));
        }
        self.buf = buf;
        self.drain(to);
        r
    }

    /// Runs the simulation until `end`.
    pub fn run_until(&mut self, end: Instant) {
        let mut same_instant = 0u32;
        loop {
            let flight = self.flights.peek().map(|f| f.0.at);
            let client_t = self.client.poll_timeout();
            let server_t = self.server.poll_timeout();
            let source = self
                .sources
                .iter()
                .enumerate()
                .filter(|(_, s)| s.next < s.stop)
                .min_by_key(|(_, s)| s.next)
                .map(|(i, s)| (s.next, i));
            let tcp_t = self.tcp.as_ref().and_then(|f| f.poll_timeout());
            let t = [flight, client_t, server_t, source.map(|s| s.0), tcp_t].into_iter().flatten().min();
            let Some(t) = t.filter(|&t| t <= end) else {
                self.now = end;
                return;
            };
            if t <= self.now {
                same_instant += 1;
                assert!(same_instant < 100_000, "engine busy-loops at {:?}", self.now);
            } else {
                same_instant = 0;
                self.now = t;
            }
            if flight.is_some_and(|f| f <= self.now) {
                let f = self.flights.pop().unwrap().0;
                self.arrive(f);
            } else if client_t.is_some_and(|c| c <= self.now) {
                self.client.handle_timeout(self.now);
                self.drain(Side::Client);
            } else if server_t.is_some_and(|c| c <= self.now) {
                self.server.handle_timeout(self.now);
                self.drain(Side::Server);
            } else if source.is_some_and(|s| s.0 <= self.now) {
                self.emit(source.unwrap().1);
            }
            self.tcp_pump();
        }
    }

    /// Runs until every link is up on both sides, or panics after `limit`.
    pub fn run_until_all_up(&mut self, limit: Instant) {
        while !self.all_up() {
            assert!(self.now < limit, "links not up by {limit:?}");
            let step = self.now + Duration::from_millis(1);
            self.run_until(step);
        }
    }

    pub fn all_up(&self) -> bool {
        let up = |t: &Tunnel| t.links().iter().all(|l| l.state == LinkState::Up);
        up(&self.client) && up(&self.server)
    }
}

/// Throughput in Mbit/s of `bytes` over `secs`.
pub fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs / 1e6
}

/// Percentile (0..=100) of a sample, by nearest rank.
pub fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank]
}
