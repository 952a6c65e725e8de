//! A `Status` built from real engines (a client and a server joined in memory), as the daemon
//! will build it: states, counters, RTT and shares come through, and the documents parse.

mod control_common;

use control_common::python;
use mlvpn::control::{ShellInfo, tunnel_snapshot as snapshot};
use mlvpn::proto::wire::MAX_CONTROL_LEN;
use mlvpn::proto::{Config, Duration, Instant, LinkConfig, Mode, Received, Tunnel, kdf};
use std::net::SocketAddr;

fn server_addr(link: usize) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 5080 + link as u16))
}

fn client_addr(link: usize) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, link as u8 + 1], 40000))
}

/// Two engines joined by perfect links with a fixed one-way delay folded into the clock.
struct Pair {
    client: Tunnel,
    server: Tunnel,
    now: Instant,
    a: Vec<u8>,
}

impl Pair {
    fn carry(&mut self, to_server: bool, link: usize, len: usize) {
        self.now += Duration::from_millis(5);
        let (to, from) = if to_server {
            (&mut self.server, client_addr(link))
        } else {
            (&mut self.client, server_addr(link))
        };
        if let Received::Reply(n) = to.handle_datagram(self.now, link, from, &mut self.a[..len]) {
            self.carry(!to_server, link, n);
        }
    }

    fn settle(&mut self) {
        for _ in 0..32 {
            let mut quiet = true;
            for to_server in [true, false] {
                let engine = if to_server { &mut self.client } else { &mut self.server };
                if engine.poll_timeout().is_some_and(|t| t <= self.now) {
                    engine.handle_timeout(self.now);
                }
                if let Some(tx) = engine.poll_transmit(self.now, &mut self.a[..MAX_CONTROL_LEN]) {
                    quiet = false;
                    self.carry(to_server, tx.link, tx.len);
                }
                let mut out = vec![0; 2048];
                for e in [&mut self.client, &mut self.server] {
                    while e.poll_deliver(self.now, &mut out).is_some() {}
                    while e.poll_event().is_some() {}
                }
            }
            if quiet {
                return;
            }
        }
    }
}

#[test]
fn status_from_real_engines() {
    let mut links: Vec<LinkConfig> = ["dsl", "lte", "sat"].iter().map(|n| LinkConfig::new(n)).collect();
    links[0].bandwidth_upload = Some(1_000_000);
    links[1].bandwidth_upload = Some(250_000);
    let psk = kdf::psk_from_password(b"pw");
    let config = |mode, links: &[LinkConfig]| Config {
        mode,
        links: links.to_vec(),
        reorder_buffer_size: 32,
        mtu: 1400,
        scheduler: Default::default(),
        retransmit_buffer_size: 32,
        ethernet: false,
        duplicate: Default::default(),
        duplicate_ports: Default::default(),
        duplicate_budget: Default::default(),
    };
    let mut p = Pair {
        client: Tunnel::new(config(Mode::Client, &links), &psk, [1; 32], Instant::ZERO),
        // The server's third link never hears from the client: it stays down.
        server: Tunnel::new(config(Mode::Server, &links), &psk, [2; 32], Instant::ZERO),
        now: Instant::ZERO,
        a: vec![0; 2048],
    };
    for i in 0..2 {
        p.client.set_remote(i, server_addr(i));
    }
    for _ in 0..200 {
        p.now += Duration::from_millis(20);
        p.settle();
    }
    assert_eq!(p.client.connected_links(), 2);
    for k in 0..100u64 {
        p.a[64..72].copy_from_slice(&k.to_be_bytes());
        let tx = p.client.handle_tun(p.now, &mut p.a, 1000).unwrap().expect("sent at once");
        p.carry(true, tx.link, tx.len);
        p.settle();
    }

    let local = [Some("0.0.0.0:0".parse().unwrap()), Some("198.51.100.2:40000".parse().unwrap()), None];
    let shell = ShellInfo {
        name: "mlvpn",
        version: "0.1.0",
        pid: 7,
        now: p.now,
        unix_now: 1_700_000_000,
        started: Instant::ZERO,
        last_reload: 1_699_999_990,
        tuntap_type: "tun",
        tuntap_name: "mlvpn0",
        tuntap_mtu: 1419,
        local: &local,
        shell_drops: &[("tun_write", 0), ("send", 2)],
    };
    let s = snapshot(&p.client, &shell);
    assert_eq!((s.mode.as_str(), s.links.len(), s.uptime_secs), ("client", 3, p.now.as_micros() / 1_000_000));
    let [dsl, lte, sat] = &s.links[..] else { panic!() };
    assert_eq!((dsl.state, dsl.status, lte.state, sat.state), ("up", "connected", "up", "down"));
    assert_eq!(
        (dsl.bindaddr.as_str(), dsl.bindport, dsl.destaddr.as_str(), dsl.destport),
        ("", 0, "192.0.2.1", 5080)
    );
    assert_eq!((lte.bindaddr.as_str(), lte.bindport), ("198.51.100.2", 40000));
    assert_eq!((sat.destaddr.as_str(), sat.destport, sat.last_packet, sat.srtt), ("", 0, 0, None));
    // 5 ms each way.
    let srtt = dsl.srtt.unwrap();
    assert!((Duration::from_millis(9)..=Duration::from_millis(11)).contains(&srtt), "{srtt:?}");
    assert!(
        dsl.share.den == lte.share.den
            && dsl.share.num + lte.share.num == dsl.share.den
            && dsl.share.num > lte.share.num,
        "{:?} {:?}",
        dsl.share,
        lte.share
    );
    assert!(dsl.sent_packets > 0 && dsl.recv_bytes > 0 && dsl.handshakes == 1);
    assert!(dsl.last_packet <= 1_700_000_000 && dsl.last_packet >= 1_700_000_000 - 1);
    assert_eq!(dsl.timeout, LinkConfig::new("x").timeout.as_millis() / 1000);
    // This carrier drains the engines with control-sized buffers, so no probe leaves: the
    // search is under way at the size the tunnel needs (1400 + 33 + 28).
    assert_eq!((dsl.path_mtu.state, dsl.path_mtu.mtu), ("searching", 1461));
    assert_eq!((sat.path_mtu.state, sat.path_mtu.mtu), ("", 0));
    assert_eq!(s.drops.last(), Some(&("send", 2)));
    assert_eq!(s.reorder.as_ref().map(|r| r.size), Some(32));

    let server = snapshot(&p.server, &ShellInfo { local: &[], ..shell });
    assert_eq!(server.mode, "server");
    assert_eq!(server.links[0].destaddr, "198.51.100.1");
    assert_eq!(server.links[2].state, "down");
    let r = server.reorder.unwrap();
    assert_eq!(r.in_order + r.reordered, 100, "{r:?}");

    let mut json = String::new();
    s.write_json(&mut json);
    if let Some(out) = python(
        "import json,sys\nd=json.loads(sys.stdin.read())\nprint(d['tunnels'][0]['status'], d['tunnels'][2]['destport'] == '')",
        &json,
        "json",
    ) {
        assert_eq!(out, "connected True\n");
    }
}
