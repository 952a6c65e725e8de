//! One server engine, several sites ([`mlvpn::proto::sites`]): each site a client engine of
//! its own with two links, all reaching the server's same two ports through simulated paths.
//!
//! What is proven: packets go to the site their destination routes to and nowhere else; a
//! site's packets are accepted only from its own addresses; a key no site has gets no answer
//! and builds nothing; two sites choosing one session id do not mix; one site restarting, or
//! removed by a reload, leaves the other's flow alone.

use super::harness::ms;
use super::net::{Path, PathConfig, Rng};
use mlvpn::proto::crypto::{Csprng, Key};
use mlvpn::proto::route::Prefix;
use mlvpn::proto::sites::{Layout, Secret, SiteConfig, Sites};
use mlvpn::proto::wire::{DATA_OVERHEAD, Hello, Kind};
use mlvpn::proto::{Config, Duration, Instant, LinkConfig, Mode, Received, Tunnel, handshake, kdf};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

const MTU: usize = 1400;
const LINKS: usize = 2;

/// Stretched once per test process: one key per site name.
fn key(name: &str) -> Key {
    static KEYS: OnceLock<Vec<(String, Key)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        ["paris", "lyon", "rogue"]
            .iter()
            .map(|n| (n.to_string(), kdf::psk_from_password(format!("{n} password").as_bytes())))
            .collect()
    });
    keys.iter().find(|(n, _)| n == name).expect("a known site").1.clone()
}

fn config(mode: Mode) -> Config {
    Config {
        mode,
        scheduler: Default::default(),
        links: (0..LINKS).map(|i| LinkConfig::new(&format!("wan{i}"))).collect(),
        reorder_buffer_size: 256,
        mtu: MTU,
        retransmit_buffer_size: 256,
        ethernet: false,
        duplicate: Default::default(),
        duplicate_ports: Default::default(),
        duplicate_budget: Default::default(),
    }
}

/// Site `n` (0, 1...): tunnel address 10.42.0.(n+2), LAN 192.168.(n+1)0.0/24.
fn site_config(name: &str, n: u8) -> SiteConfig {
    SiteConfig {
        name: name.into(),
        secret: Secret::Key(key(name)),
        prefixes: vec![
            Prefix::new(IpAddr::V4(Ipv4Addr::new(10, 42, 0, n + 2)), 32).unwrap(),
            Prefix::new(IpAddr::V4(Ipv4Addr::new(192, 168, (n + 1) * 10, 0)), 24).unwrap(),
        ],
    }
}

fn lan_host(n: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, (n + 1) * 10, host)
}

/// A UDP-in-IPv4 packet of `len` bytes whose payload starts with `id`.
fn packet(src: Ipv4Addr, dst: Ipv4Addr, len: usize, id: u32) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    p[28..32].copy_from_slice(&id.to_be_bytes());
    p
}

fn server_addr(link: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, link as u8, 1)), 5080 + link as u16)
}

/// Where client `c`'s link `link` sends from.
fn client_addr(c: usize, link: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1 + c as u8, link as u8, 2)), 40_000)
}

struct Client {
    name: &'static str,
    engine: Tunnel,
    up: Vec<Path>,
    down: Vec<Path>,
    /// Packets delivered to this client's TUN: (destination, id).
    got: Vec<(Ipv4Addr, u32, Instant)>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Flight {
    at: Instant,
    order: u64,
    /// `None`: to the server; `Some(c)`: to client `c`.
    to: Option<usize>,
    link: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
}

struct World {
    now: Instant,
    server: Sites,
    clients: Vec<Client>,
    flights: BinaryHeap<Reverse<Flight>>,
    order: u64,
    seeds: u64,
    /// Packets the server delivered to its TUN: (source, id).
    server_got: Vec<(Ipv4Addr, u32)>,
    /// Datagrams the server sent to an address that is none of the clients'.
    strays: u64,
    buf: Vec<u8>,
}

fn seed_bytes(s: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&s.to_le_bytes());
    b
}

impl World {
    /// A server of `sites` and, for each name in `clients`, a client with that site's key.
    fn new(seed: u64, sites: Vec<SiteConfig>, clients: &[&'static str]) -> World {
        let mut seeds = Rng::fork(seed, 77);
        let mut next = || {
            seeds = Rng::new(seeds).next_u64();
            seeds
        };
        let server = Sites::new(config(Mode::Server), Layout::Many(sites), seed_bytes(next()), Instant::ZERO)
            .expect("a valid layout");
        let clients = clients
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let mut engine =
                    Tunnel::new(config(Mode::Client), &key(name), seed_bytes(next()), Instant::ZERO);
                for l in 0..LINKS {
                    engine.set_remote(l, server_addr(l));
                }
                let path =
                    |k: u64| Path::new(PathConfig::new(20.0, 10 + 5 * k), Rng::fork(seed, 10 * c as u64 + k));
                Client {
                    name,
                    engine,
                    up: (0..LINKS as u64).map(path).collect(),
                    down: (0..LINKS as u64).map(|k| path(k + 5)).collect(),
                    got: Vec::new(),
                }
            })
            .collect();
        World {
            now: Instant::ZERO,
            server,
            clients,
            flights: BinaryHeap::new(),
            order: 0,
            seeds: next(),
            server_got: Vec::new(),
            strays: 0,
            buf: vec![0; 4096],
        }
    }

    fn fly(&mut self, to: Option<usize>, link: usize, from: SocketAddr, bytes: &[u8], at: Option<Instant>) {
        let Some(at) = at else { return };
        self.order += 1;
        let f = Flight { at, order: self.order, to, link, from, bytes: bytes.to_vec() };
        self.flights.push(Reverse(f));
    }

    /// The client and link an address of theirs belongs to.
    fn client_at(&self, a: SocketAddr) -> Option<(usize, usize)> {
        (0..self.clients.len()).find_map(|c| (0..LINKS).find(|&l| client_addr(c, l) == a).map(|l| (c, l)))
    }

    fn server_sends(&mut self, link: usize, dst: SocketAddr, len: usize) {
        let Some((c, l)) = self.client_at(dst) else {
            self.strays += 1;
            return;
        };
        assert_eq!(l, link, "a datagram for link {l} left on link {link}");
        let bytes = self.buf[..len].to_vec();
        let at = self.clients[c].down[link].send(self.now, len);
        self.fly(Some(c), link, server_addr(link), &bytes, at);
    }

    fn client_sends(&mut self, c: usize, link: usize, len: usize) {
        let bytes = self.buf[..len].to_vec();
        let at = self.clients[c].up[link].send(self.now, len);
        self.fly(None, link, client_addr(c, link), &bytes, at);
    }

    /// Drains every engine's outputs.
    fn drain(&mut self) {
        let now = self.now;
        while let Some(tx) = self.server.poll_transmit(now, &mut self.buf) {
            self.server_sends(tx.link, tx.dst, tx.len);
        }
        while let Some(n) = self.server.poll_deliver(now, &mut self.buf) {
            self.record_server(0..n);
        }
        while self.server.poll_event().is_some() {}
        for c in 0..self.clients.len() {
            while let Some(tx) = self.clients[c].engine.poll_transmit(now, &mut self.buf) {
                self.client_sends(c, tx.link, tx.len);
            }
            while let Some(n) = self.clients[c].engine.poll_deliver(now, &mut self.buf) {
                self.record_client(c, 0..n);
            }
            while self.clients[c].engine.poll_event().is_some() {}
        }
    }

    fn record_server(&mut self, r: std::ops::Range<usize>) {
        let p = &self.buf[r];
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        self.server_got.push((src, u32::from_be_bytes(p[28..32].try_into().unwrap())));
    }

    fn record_client(&mut self, c: usize, r: std::ops::Range<usize>) {
        let p = &self.buf[r];
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let id = u32::from_be_bytes(p[28..32].try_into().unwrap());
        let now = self.now;
        self.clients[c].got.push((dst, id, now));
    }

    fn next_timer(&self) -> Option<Instant> {
        let clients = self.clients.iter().filter_map(|c| c.engine.poll_timeout());
        self.server.poll_timeout().into_iter().chain(clients).min()
    }

    fn run_until(&mut self, end: Instant) {
        loop {
            let flight = self.flights.peek().map(|Reverse(f)| f.at);
            let next = [flight, self.next_timer()].into_iter().flatten().min();
            let Some(at) = next.filter(|&t| t <= end) else { break };
            self.now = self.now.max(at);
            if flight == Some(at) {
                let Reverse(mut f) = self.flights.pop().expect("peeked");
                self.arrive(&mut f);
            } else {
                self.server.handle_timeout(self.now);
                for c in &mut self.clients {
                    if c.engine.poll_timeout().is_some_and(|t| t <= self.now) {
                        c.engine.handle_timeout(self.now);
                    }
                }
            }
            self.drain();
        }
        self.now = end;
    }

    fn arrive(&mut self, f: &mut Flight) {
        let now = self.now;
        match f.to {
            None => match self.server.handle_datagram(now, f.link, f.from, &mut f.bytes) {
                Received::Deliver(r) => {
                    self.buf[..r.len()].copy_from_slice(&f.bytes[r.clone()]);
                    self.record_server(0..r.len());
                }
                Received::Reply(n) => {
                    self.buf[..n].copy_from_slice(&f.bytes[..n]);
                    self.server_sends(f.link, f.from, n);
                }
                _ => {}
            },
            Some(c) => match self.clients[c].engine.handle_datagram(now, f.link, f.from, &mut f.bytes) {
                Received::Deliver(r) => {
                    self.buf[..r.len()].copy_from_slice(&f.bytes[r.clone()]);
                    self.record_client(c, 0..r.len());
                }
                Received::Reply(n) => {
                    self.buf[..n].copy_from_slice(&f.bytes[..n]);
                    self.client_sends(c, f.link, n);
                }
                _ => {}
            },
        }
    }

    /// The server's TUN hands it `p`.
    fn server_tun_reads(&mut self, p: &[u8]) {
        self.buf[DATA_OVERHEAD..DATA_OVERHEAD + p.len()].copy_from_slice(p);
        if let Ok(Some(tx)) = self.server.handle_tun(self.now, &mut self.buf, p.len()) {
            self.server_sends(tx.link, tx.dst, tx.len);
        }
        self.drain();
    }

    /// Client `c`'s TUN hands it `p`.
    fn client_tun_reads(&mut self, c: usize, p: &[u8]) {
        self.buf[DATA_OVERHEAD..DATA_OVERHEAD + p.len()].copy_from_slice(p);
        if let Ok(Some(tx)) = self.clients[c].engine.handle_tun(self.now, &mut self.buf, p.len()) {
            self.client_sends(c, tx.link, tx.len);
        }
        self.drain();
    }

    /// Packets both ways for every client, `pps` a second each way, from `from` to `to`.
    fn traffic(&mut self, from: Instant, to: Instant, pps: u64) {
        let step = Duration::from_micros(1_000_000 / pps);
        let mut t = from;
        let mut id = 0;
        while t < to {
            self.run_until(t);
            for c in 0..self.clients.len() {
                let n = c as u8;
                id += 1;
                self.server_tun_reads(&packet(Ipv4Addr::new(10, 42, 0, 1), lan_host(n, 7), 600, id));
                self.client_tun_reads(c, &packet(lan_host(n, 7), Ipv4Addr::new(10, 42, 0, 1), 600, id));
            }
            t += step;
        }
        self.run_until(to);
    }

    fn all_up(&self, c: usize) -> bool {
        self.clients[c].engine.connected_links() == LINKS
    }

    fn restart_client(&mut self, c: usize) {
        self.seeds = Rng::new(self.seeds).next_u64();
        let name = self.clients[c].name;
        let mut engine = Tunnel::new(config(Mode::Client), &key(name), seed_bytes(self.seeds), self.now);
        for l in 0..LINKS {
            engine.set_remote(l, server_addr(l));
        }
        self.clients[c].engine = engine;
    }
}

fn two_sites(seed: u64) -> World {
    World::new(seed, vec![site_config("paris", 0), site_config("lyon", 1)], &["paris", "lyon"])
}

#[test]
fn sites_connect_and_get_only_the_packets_routed_to_them() {
    for seed in super::SEEDS {
        let mut w = two_sites(seed);
        w.run_until(ms(3000));
        assert!(w.all_up(0) && w.all_up(1), "seed {seed}: both sites up on both links");
        w.traffic(ms(3000), ms(5000), 200);
        w.run_until(ms(6000));
        for c in 0..2 {
            let mine: Vec<_> =
                w.clients[c].got.iter().filter(|(dst, _, _)| *dst == lan_host(c as u8, 7)).collect();
            assert_eq!(mine.len(), w.clients[c].got.len(), "seed {seed}: site {c} got another site's packet");
            assert!(mine.len() >= 390, "seed {seed}: site {c} got {} of 400", mine.len());
            let from_c = w.server_got.iter().filter(|(src, _)| *src == lan_host(c as u8, 7)).count();
            assert!(from_c >= 390, "seed {seed}: the server got {from_c} of site {c}'s 400");
        }
        assert_eq!(w.strays, 0);
        assert_eq!(w.server.drops().source_rejected, 0);
        // A destination no site has is dropped and counted.
        w.server_tun_reads(&packet(Ipv4Addr::new(10, 42, 0, 1), Ipv4Addr::new(172, 16, 0, 1), 100, 1));
        assert_eq!(w.server.drops().no_route, 1);
        println!(
            "seed {seed}: paris got {}, lyon got {}, server got {}",
            w.clients[0].got.len(),
            w.clients[1].got.len(),
            w.server_got.len()
        );
    }
}

#[test]
fn a_site_cannot_send_from_another_sites_addresses() {
    let mut w = two_sites(1);
    w.run_until(ms(3000));
    let before = w.server_got.len();
    // Paris forges Lyon's LAN, Lyon's tunnel address, and an address of no site.
    for (i, src) in
        [lan_host(1, 9), Ipv4Addr::new(10, 42, 0, 3), Ipv4Addr::new(8, 8, 8, 8)].into_iter().enumerate()
    {
        w.client_tun_reads(0, &packet(src, Ipv4Addr::new(10, 42, 0, 1), 200, 900 + i as u32));
    }
    // And one honest packet, which passes.
    w.client_tun_reads(0, &packet(Ipv4Addr::new(10, 42, 0, 2), Ipv4Addr::new(10, 42, 0, 1), 200, 999));
    w.run_until(ms(4000));
    let got: Vec<u32> = w.server_got[before..].iter().map(|(_, id)| *id).collect();
    assert_eq!(got, [999], "only the packet from paris's own address entered");
    assert_eq!(w.server.drops().source_rejected, 3);
}

#[test]
fn an_unknown_key_gets_no_answer_and_builds_no_site() {
    // The server knows paris and lyon; a router with a third password tries for 5 s.
    let mut w = World::new(1, vec![site_config("paris", 0), site_config("lyon", 1)], &["rogue"]);
    w.run_until(ms(5000));
    assert_eq!(w.clients[0].engine.connected_links(), 0);
    assert!(w.server.drops().unknown_site >= 10, "{} hellos dropped", w.server.drops().unknown_site);
    assert!(w.clients[0].down.iter().all(|p| p.stats.sent == 0), "the server answered nothing");
    assert!(w.server.iter().all(|(_, tunnel, _)| tunnel.is_none()), "no site was built");
    // A hello that names paris's key id but is sealed with another key: refused, nothing built.
    let mut rng = Csprng::new([9; 32]);
    let mut buf = [0u8; 256];
    let hello = Hello { instance: 1, client_random: [5; 32], timestamp: 0 };
    let forged = kdf::handshake_key(&key("rogue"));
    let paris_id = kdf::key_id(&key("paris"));
    let n = handshake::seal(&forged, paris_id, &mut rng, Kind::Hello, 77, &mut buf, |b| hello.emit(b));
    let r = w.server.handle_datagram(w.now, 0, client_addr(0, 0), &mut buf[..n]);
    assert_eq!(r, Received::Dropped(mlvpn::proto::DropReason::Unauthenticated));
    assert!(w.server.iter().all(|(_, tunnel, _)| tunnel.is_none()), "still no site built");
}

#[test]
fn a_session_id_two_sites_picked_is_refused_to_the_second() {
    let mut w = World::new(1, vec![site_config("paris", 0), site_config("lyon", 1)], &["paris"]);
    w.run_until(ms(3000));
    assert!(w.all_up(0));
    let taken = w.clients[0].engine.links()[0].session.as_ref().expect("a session").id;
    // Lyon's router happens to pick paris's session id on the same link.
    let mut rng = Csprng::new([3; 32]);
    let mut buf = [0u8; 256];
    let hello = Hello { instance: 2, client_random: [6; 32], timestamp: 0 };
    let lyon = key("lyon");
    let mut lyon_hello = |buf: &mut [u8]| {
        handshake::seal(
            &kdf::handshake_key(&lyon),
            kdf::key_id(&lyon),
            &mut rng,
            Kind::Hello,
            taken,
            buf,
            |b| hello.emit(b),
        )
    };
    let n = lyon_hello(&mut buf);
    let r = w.server.handle_datagram(w.now, 0, client_addr(1, 0), &mut buf[..n]);
    assert_eq!(r, Received::Dropped(mlvpn::proto::DropReason::SessionCollision));
    assert_eq!(w.server.drops().session_collision, 1);
    // On another link the id is free: answered.
    let n = lyon_hello(&mut buf);
    assert!(matches!(
        w.server.handle_datagram(w.now, 1, client_addr(1, 1), &mut buf[..n]),
        Received::Reply(_)
    ));
    // Paris's traffic is untouched.
    w.traffic(ms(3000), ms(4000), 100);
    w.run_until(ms(5000));
    assert!(w.clients[0].got.len() >= 95, "paris got {}", w.clients[0].got.len());
}

/// The longest time client `c` went without a packet between `from` and `to`.
fn longest_gap(w: &World, c: usize, from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut gap = Duration::ZERO;
    for &(_, _, at) in w.clients[c].got.iter().filter(|g| g.2 >= from && g.2 <= to) {
        gap = gap.max(at - last);
        last = at;
    }
    gap.max(to - last)
}

#[test]
fn one_site_restarting_leaves_the_others_flow_alone() {
    for seed in super::SEEDS {
        let mut w = two_sites(seed);
        w.run_until(ms(3000));
        w.traffic(ms(3000), ms(4000), 200);
        w.restart_client(1);
        w.traffic(ms(4000), ms(8000), 200);
        let paris_gap = longest_gap(&w, 0, ms(3500), ms(8000));
        assert!(
            paris_gap < Duration::from_millis(50),
            "seed {seed}: paris went {paris_gap:?} without a packet"
        );
        assert!(w.all_up(1), "seed {seed}: lyon reconnected after its restart");
        let lyon_after = w.clients[1].got.iter().filter(|g| g.2 >= ms(7000)).count();
        assert!(lyon_after >= 150, "seed {seed}: lyon got {lyon_after} in its last second");
        println!("seed {seed}: paris's longest gap {paris_gap:?} while lyon restarted");
    }
}

#[test]
fn a_reload_removes_one_site_and_keeps_the_others_sessions() {
    let mut w = two_sites(0xfeed);
    w.run_until(ms(3000));
    let paris_sessions: Vec<u32> =
        w.clients[0].engine.links().iter().map(|l| l.session.as_ref().unwrap().id).collect();
    w.traffic(ms(3000), ms(4000), 200);
    // A packet for lyon that the server has taken and not yet sent when the reload comes.
    let p = packet(Ipv4Addr::new(10, 42, 0, 1), lan_host(1, 7), 600, 7);
    w.buf[DATA_OVERHEAD..DATA_OVERHEAD + p.len()].copy_from_slice(&p);
    let _ = w.server.handle_tun(w.now, &mut w.buf, p.len());
    let r = w
        .server
        .reconfigure(w.now, config(Mode::Server), Layout::Many(vec![site_config("paris", 0)]))
        .expect("a valid layout");
    assert_eq!(r.removed.len(), 1);
    assert_eq!(r.removed[0].name, "lyon");
    assert!(r.removed[0].was_up);
    assert_eq!(r.goodbyes.len(), 2, "lyon's two links say goodbye");
    for (link, dst, datagram) in r.goodbyes {
        w.buf[..datagram.len()].copy_from_slice(&datagram);
        assert_eq!(w.client_at(dst), Some((1, link)), "only to lyon");
        w.server_sends(link, dst, datagram.len());
    }
    w.traffic(ms(4000), ms(6000), 200);
    let paris_gap = longest_gap(&w, 0, ms(3500), ms(6000));
    assert!(paris_gap < Duration::from_millis(50), "paris went {paris_gap:?} without a packet");
    let kept: Vec<u32> = w.clients[0].engine.links().iter().map(|l| l.session.as_ref().unwrap().id).collect();
    assert_eq!(kept, paris_sessions, "paris kept its sessions");
    assert_eq!(w.clients[1].engine.connected_links(), 0, "lyon is told it is gone");
    assert!(w.server.drops().unknown_site > 0, "and its hellos now name no site");
}
