//! A server engine fed by a fuzzer that plays the client: garbage before authentication, and,
//! through a real session, arbitrary *authenticated* bodies of every transport kind — so the
//! code behind decryption (keepalive arithmetic, the reorder buffer, state changes, path MTU
//! discovery) is reached.
//!
//! Input: a sequence of records `[op, len_hi, len_lo, bytes...]`; `op` picks what to do with
//! the bytes and how far the clock moves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlvpn::proto::crypto::Csprng;
use mlvpn::proto::handshake;
use mlvpn::proto::kdf::{handshake_key, key_id, psk_from_password, session_keys};
use mlvpn::proto::session::Session;
use mlvpn::proto::wire::{Challenge, Confirm, Header, Hello, Kind, TRANSPORT_HEADER_LEN};
use mlvpn::proto::{Config, Duration, Instant, LinkConfig, Mode, Received, Tunnel};
use std::net::SocketAddr;
use std::sync::OnceLock;

fn psk() -> &'static mlvpn::proto::crypto::Key {
    static PSK: OnceLock<mlvpn::proto::crypto::Key> = OnceLock::new();
    PSK.get_or_init(|| psk_from_password(b"fuzz"))
}

/// A server and a client session to it, made through the real handshake.
fn connect(now: Instant) -> (Tunnel, Session) {
    let config = Config {
        mode: Mode::Server,
        scheduler: Default::default(),
        links: vec![LinkConfig::new("a"), LinkConfig::new("b")],
        reorder_buffer_size: 16,
        mtu: 1400,
        retransmit_buffer_size: 16,
        ethernet: false,
        duplicate: Default::default(),
        duplicate_ports: Default::default(),
        duplicate_budget: Default::default(),
    };
    let mut server = Tunnel::new(config, psk(), [3; 32], now);
    let hk = handshake_key(psk());
    let mut rng = Csprng::new([4; 32]);
    let from: SocketAddr = "10.0.0.2:4000".parse().unwrap();
    let mut buf = [0u8; 256];
    let hello = Hello { instance: 1, client_random: [5; 32], timestamp: 0 };
    let n = handshake::seal(&hk, key_id(psk()), &mut rng, Kind::Hello, 77, &mut buf, |b| hello.emit(b));
    let Received::Reply(n) = server.handle_datagram(now, 0, from, &mut buf[..n]) else { panic!("no challenge") };
    let h = Header::parse(&buf[..n]).unwrap();
    let challenge = Challenge::parse(handshake::open(&hk, &h, &mut buf[..n]).unwrap()).unwrap();
    let confirm = Confirm {
        instance: 1,
        client_random: [5; 32],
        server_random: challenge.server_random,
        epoch: challenge.epoch,
        echo_timestamp: challenge.timestamp,
    };
    let n = handshake::seal(&hk, key_id(psk()), &mut rng, Kind::Confirm, 77, &mut buf, |b| confirm.emit(b));
    assert_eq!(server.handle_datagram(now, 0, from, &mut buf[..n]), Received::Consumed);
    let keys = session_keys(psk(), &[5; 32], &challenge.server_random);
    (server, Session::new(77, keys, true, challenge.instance))
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::from_micros(1_000_000);
    let (mut server, mut client) = connect(now);
    let from: SocketAddr = "10.0.0.2:4000".parse().unwrap();
    let mut rest = data;
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 2048];
    while rest.len() >= 3 {
        let op = rest[0];
        let len = (usize::from(rest[1]) << 8 | usize::from(rest[2])).min(rest.len() - 3).min(1500);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        now += Duration::from_micros(u64::from(op >> 3) * 997);
        let link = usize::from(op & 1);
        let n = match (op >> 1) & 3 {
            // Raw bytes, as an attacker would send them.
            0 => {
                buf[..len].copy_from_slice(bytes);
                len
            }
            // An authenticated data, keepalive, disconnect, NACK, path MTU probe or probe
            // acknowledgement with this body (the top bit of `op` picks the second three).
            k => {
                let kinds = [Kind::Data, Kind::Keepalive, Kind::Disconnect, Kind::Nack, Kind::Probe, Kind::ProbeAck];
                let kind = kinds[usize::from(k) - 1 + 3 * usize::from(op >> 7)];
                let n = TRANSPORT_HEADER_LEN + 16 + len;
                buf[TRANSPORT_HEADER_LEN + 16..n].copy_from_slice(bytes);
                client.seal(kind, &mut buf[..n]);
                n
            }
        };
        let _ = server.handle_datagram(now, link, from, &mut buf[..n]);
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        while server.poll_transmit(now, &mut out).is_some() {}
        while server.poll_deliver(now, &mut out).is_some() {}
        while server.poll_event().is_some() {}
    }
});
