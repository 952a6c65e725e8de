//! Every wire decoder on arbitrary bytes: none may panic, and what parses re-emits to the same
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlvpn::proto::wire::{Challenge, Confirm, Disconnect, Header, Hello, Keepalive, Probe, ProbeAck, parse_data};

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(data);
    let _ = parse_data(data);
    let _ = Disconnect::parse(data);
    if let Ok(k) = Keepalive::parse(data) {
        let mut out = [0u8; Keepalive::LEN];
        k.emit(&mut out);
        assert_eq!(&out[..], data);
    }
    if let Ok(c) = Challenge::parse(data) {
        let mut out = [0u8; Challenge::LEN];
        c.emit(&mut out);
        assert_eq!(&out[..], data);
    }
    if let Ok(h) = Hello::parse(data) {
        let mut out = [0u8; Hello::LEN];
        h.emit(&mut out);
        assert_eq!(Hello::parse(&out), Ok(h));
    }
    // Path MTU probes: padded to any size, the padding all zeros.
    if let Ok(p) = Probe::parse(data) {
        let mut out = vec![0xffu8; data.len()];
        p.emit(&mut out);
        assert_eq!(&out[..], data);
    }
    if let Ok(a) = ProbeAck::parse(data) {
        let mut out = [0u8; ProbeAck::LEN];
        a.emit(&mut out);
        assert_eq!(&out[..], data);
    }
    if let Ok(c) = Confirm::parse(data) {
        let mut out = [0u8; Confirm::LEN];
        c.emit(&mut out);
        assert_eq!(Confirm::parse(&out), Ok(c));
    }
});
