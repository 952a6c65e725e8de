//! A server of three sites ([`mlvpn::proto::sites`]), one of them connected, fed arbitrary
//! datagrams (some naming a real site's key id), TUN packets, timeouts and reloads. Nothing
//! may panic; a handshake naming no site's key is dropped without a datagram in answer; every
//! packet delivered comes from an address of the site that sent it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlvpn::proto::crypto::Key;
use mlvpn::proto::kdf::key_id;
use mlvpn::proto::route::Prefix;
use mlvpn::proto::sites::{Layout, Secret, SiteConfig, Sites};
use mlvpn::proto::wire::{DATA_OVERHEAD, Header, Kind};
use mlvpn::proto::{Config, Duration, Instant, LinkConfig, Mode, Received, Tunnel};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn config(mode: Mode) -> Config {
    Config {
        mode,
        scheduler: Default::default(),
        links: vec![LinkConfig::new("a"), LinkConfig::new("b")],
        reorder_buffer_size: 16,
        mtu: 1400,
        retransmit_buffer_size: 16,
        ethernet: false,
        duplicate: Default::default(),
        duplicate_ports: Default::default(),
        duplicate_budget: Default::default(),
    }
}

fn site(n: u8) -> SiteConfig {
    SiteConfig {
        name: format!("s{n}"),
        secret: Secret::Key(Key([n + 1; 32])),
        prefixes: vec![
            Prefix::new(IpAddr::V4(Ipv4Addr::new(10, 42, 0, n + 2)), 32).unwrap(),
            Prefix::new(IpAddr::V4(Ipv4Addr::new(192, 168, n, 0)), 24).unwrap(),
        ],
    }
}

fn allowed(src: IpAddr) -> bool {
    (0..3).any(|n| site(n).prefixes.iter().any(|p| p.contains(src)))
}

/// The server, and site 0's client connected on link 0.
fn connect(now: Instant) -> (Sites, Tunnel) {
    let mut server =
        Sites::new(config(Mode::Server), Layout::Many((0..3).map(site).collect()), [1; 32], now).unwrap();
    let mut client = Tunnel::new(config(Mode::Client), &Key([1; 32]), [2; 32], now);
    let server_addr: SocketAddr = "10.0.0.1:5080".parse().unwrap();
    client.set_remote(0, server_addr);
    let from: SocketAddr = "10.0.0.2:4000".parse().unwrap();
    let mut buf = vec![0u8; 2048];
    for _ in 0..4 {
        while let Some(tx) = client.poll_transmit(now, &mut buf) {
            if tx.link != 0 {
                continue;
            }
            if let Received::Reply(n) = server.handle_datagram(now, 0, from, &mut buf[..tx.len]) {
                let _ = client.handle_datagram(now, 0, server_addr, &mut buf[..n]);
            }
        }
    }
    (server, client)
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::from_micros(1_000_000);
    let (mut server, _client) = connect(now);
    let known: Vec<u32> = (0..3).map(|n| key_id(&Key([n + 1; 32]))).collect();
    let from: SocketAddr = "10.0.0.2:4000".parse().unwrap();
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 2048];
    let mut rest = data;
    while rest.len() >= 3 {
        let (op, arg) = (rest[0], rest[1]);
        let len = usize::from(rest[2]).min(rest.len() - 3);
        let chunk = &rest[3..3 + len];
        rest = &rest[3 + len..];
        match op % 4 {
            0 => {
                let dg = &mut buf[..chunk.len()];
                dg.copy_from_slice(chunk);
                // Half the time, name a real site's key id, so the lookup lets it through.
                if arg & 0x80 != 0 && dg.len() >= 9 {
                    dg[5..9].copy_from_slice(&known[usize::from(arg) % 3].to_be_bytes());
                }
                let unknown = Header::parse(dg).is_ok_and(|h| {
                    matches!(h.kind, Kind::Hello | Kind::Confirm) && !known.contains(&h.key_id())
                });
                let r = server.handle_datagram(now, usize::from(arg & 1), from, dg);
                if unknown {
                    assert!(matches!(r, Received::Dropped(_)), "an unknown key was answered: {r:?}");
                }
                if let Received::Deliver(range) = r {
                    let p = &dg[range];
                    let src = mlvpn::proto::route::packet_addr(p, mlvpn::proto::route::Side::Source);
                    assert!(src.is_some_and(allowed), "delivered from {src:?}");
                }
            }
            1 => {
                let n = chunk.len().min(1400);
                buf[DATA_OVERHEAD..DATA_OVERHEAD + n].copy_from_slice(&chunk[..n]);
                let _ = server.handle_tun(now, &mut buf, n);
            }
            2 => {
                now = now + Duration::from_millis(u64::from(arg) * 10);
                server.handle_timeout(now);
            }
            _ => {
                // A reload keeping the sites whose bit is set.
                let sites = (0..3).filter(|n| arg & (1 << n) != 0).map(site).collect();
                let _ = server.reconfigure(now, config(Mode::Server), Layout::Many(sites));
            }
        }
        while server.poll_transmit(now, &mut out).is_some() {}
        while let Some(n) = server.poll_deliver(now, &mut out) {
            let src = mlvpn::proto::route::packet_addr(&out[..n], mlvpn::proto::route::Side::Source);
            assert!(src.is_some_and(allowed), "delivered from {src:?}");
        }
        while server.poll_event().is_some() {}
    }
});
