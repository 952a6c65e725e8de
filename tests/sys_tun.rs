//! The TUN/TAP device against the real kernel. Needs root and `/dev/net/tun`; skipped, loudly,
//! without them.
//!
//! Each test runs in a thread of its own moved into a fresh network namespace
//! (`sys::netns::unshare_thread`), so the devices, addresses and routes it creates are invisible
//! to the host and vanish with the thread, also when an assertion fails half-way. Addresses
//! are from TEST-NET-1 (192.0.2.0/24, RFC 5737) and exist only inside that namespace.

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mlvpn::sys::netns;
use mlvpn::sys::poll::{Interest, Poller};
use mlvpn::sys::process::effective_uid;
use mlvpn::sys::tun::{Tun, TunKind};
use mlvpn::sys::udp::UdpLink;

const OURS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Whether this test can run here; if not, says so on stderr past the harness's capture.
fn can_run(test: &str) -> bool {
    let missing = if effective_uid() != 0 {
        "root"
    } else if !Path::new("/dev/net/tun").exists() {
        "/dev/net/tun"
    } else {
        return true;
    };
    let _ = writeln!(std::io::stderr(), "SKIPPED (needs {missing}): {test}");
    false
}

/// Runs `body` in a new thread inside a fresh network namespace; its panics become ours.
fn in_fresh_netns(body: impl FnOnce() + Send + 'static) {
    let joined = std::thread::spawn(move || {
        netns::unshare_thread().expect("unshare(CLONE_NEWNET)");
        body();
    })
    .join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `ip ARGS` in the calling thread's network namespace.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?}: {status}");
}

/// Whether the calling thread's network namespace has an interface `name`.
fn interface_exists(name: &str) -> bool {
    std::fs::read_to_string("/proc/thread-self/net/dev")
        .expect("read /proc/thread-self/net/dev")
        .lines()
        .skip(2)
        .any(|line| line.split(':').next().map(str::trim) == Some(name))
}

#[test]
fn open_name_mtu_and_up() {
    if !can_run("open_name_mtu_and_up") {
        return;
    }
    in_fresh_netns(|| {
        let tun = Tun::open("mlvt%d", TunKind::Tun).unwrap();
        // A fresh namespace has no other mlvt device: the kernel numbers this one 0.
        assert_eq!(tun.name(), "mlvt0");
        assert_eq!(tun.kind(), TunKind::Tun);
        assert!(interface_exists("mlvt0"));
        let second = Tun::open("mlvt%d", TunKind::Tun).unwrap();
        assert_eq!(second.name(), "mlvt1");

        tun.set_mtu(1400).unwrap();
        assert_eq!(tun.mtu().unwrap(), 1400);
        assert!(tun.set_mtu(u32::MAX).is_err());

        // Nothing queued (the device is down, so the kernel sent nothing yet): a read says
        // WouldBlock rather than blocking the loop.
        let err = tun.read(&mut [0u8; 2000]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);

        assert!(!tun.is_up().unwrap());
        tun.set_up(true).unwrap();
        assert!(tun.is_up().unwrap());
        tun.set_up(false).unwrap();
        assert!(!tun.is_up().unwrap());
    });
}

#[test]
fn tap_with_fixed_name() {
    if !can_run("tap_with_fixed_name") {
        return;
    }
    in_fresh_netns(|| {
        let tap = Tun::open("mlvpn-tap", TunKind::Tap).unwrap();
        assert_eq!(tap.name(), "mlvpn-tap");
        assert_eq!(tap.kind(), TunKind::Tap);
        tap.set_mtu(1300).unwrap();
        assert_eq!(tap.mtu().unwrap(), 1300);
        // The name is taken while the device exists.
        assert!(Tun::open("mlvpn-tap", TunKind::Tun).is_err());
    });
}

#[test]
fn device_disappears_when_the_fd_is_closed() {
    if !can_run("device_disappears_when_the_fd_is_closed") {
        return;
    }
    in_fresh_netns(|| {
        let tun = Tun::open("mlvgone", TunKind::Tun).unwrap();
        assert!(interface_exists("mlvgone"));
        drop(tun);
        assert!(!interface_exists("mlvgone"));
        // And the name can be had again.
        let again = Tun::open("mlvgone", TunKind::Tun).unwrap();
        assert_eq!(again.name(), "mlvgone");
    });
}

#[test]
fn packets_flow_both_ways() {
    if !can_run("packets_flow_both_ways") {
        return;
    }
    in_fresh_netns(|| {
        let tun = Tun::open("mlvflow%d", TunKind::Tun).unwrap();
        ip(&["addr", "add", "192.0.2.1/30", "dev", tun.name()]);
        ip(&["link", "set", tun.name(), "up"]);
        let sock = UdpLink::bind(SocketAddr::from((OURS, 0))).unwrap();
        let our_port = sock.local_addr().unwrap().port();

        // Kernel to TUN: a datagram to the peer is routed into the device as an IPv4 packet.
        sock.send_to(b"to the tunnel", SocketAddr::from((PEER, 9999))).unwrap();
        let mut poller = Poller::with_capacity(2);
        let tun_slot = poller.register(&tun, Interest::Read);
        let sock_slot = poller.register(&sock, Interest::Read);
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(5);
        let udp = loop {
            assert!(Instant::now() < deadline, "no packet from the kernel on the TUN");
            poller.wait(Some(Duration::from_millis(100))).unwrap();
            if !poller.readable(tun_slot) {
                continue;
            }
            // Drain: the kernel may also send IPv6 router solicitations or MLD reports.
            let found = loop {
                match tun.read(&mut buf) {
                    Ok(n) => {
                        if let Some(udp) = parse_udp4(&buf[..n]) {
                            break Some(udp);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break None,
                    Err(e) => panic!("tun read: {e}"),
                }
            };
            if let Some(udp) = found {
                break udp;
            }
        };
        assert_eq!(udp.src, SocketAddr::from((OURS, our_port)));
        assert_eq!(udp.dst, SocketAddr::from((PEER, 9999)));
        assert_eq!(udp.payload, b"to the tunnel");

        // TUN to kernel: a packet written into the device is delivered to the local socket.
        let packet = build_udp4((PEER, 7777), (OURS, our_port), b"from the tunnel");
        assert_eq!(tun.write(&packet).unwrap(), packet.len());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < deadline, "the written packet never reached the socket");
            poller.wait(Some(Duration::from_millis(100))).unwrap();
            if poller.readable(sock_slot) {
                break;
            }
        }
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from the tunnel");
        assert_eq!(from, SocketAddr::from((PEER, 7777)));
    });
}

/// The parts of an IPv4/UDP packet the test looks at.
struct Udp4 {
    src: SocketAddr,
    dst: SocketAddr,
    payload: Vec<u8>,
}

/// An IPv4 UDP packet's addresses and payload; `None` for anything else.
fn parse_udp4(p: &[u8]) -> Option<Udp4> {
    if p.len() < 28 || p[0] >> 4 != 4 || p[9] != 17 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if total > p.len() || ihl + 8 > total {
        return None;
    }
    let addr = |ip: &[u8], port: &[u8]| {
        SocketAddr::from((Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]), u16::from_be_bytes([port[0], port[1]])))
    };
    Some(Udp4 {
        src: addr(&p[12..16], &p[ihl..ihl + 2]),
        dst: addr(&p[16..20], &p[ihl + 2..ihl + 4]),
        payload: p[ihl + 8..total].to_vec(),
    })
}

/// An IPv4 UDP packet with a correct header checksum and no UDP checksum (allowed in IPv4).
fn build_udp4(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]); // version 4, 20-byte header; no DSCP
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0]); // id 0, don't fragment
    p.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum (below)
    p.extend_from_slice(&src.0.octets());
    p.extend_from_slice(&dst.0.octets());
    let sum = p.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    p[10..12].copy_from_slice(&checksum.to_be_bytes());
    p.extend_from_slice(&src.1.to_be_bytes());
    p.extend_from_slice(&dst.1.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}
