//! The TUN offload paths on arbitrary packets: cutting super-packets (what the kernel hands us,
//! with any `virtio_net_hdr`), completing checksums, and joining what the peer sends (a peer
//! that holds the key can send any IP packet). None may panic or write out of bounds; every
//! segment fits the buffer; a joined packet is never longer than 64 KiB plus its header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlvpn::daemon::gro::Coalescer;
use mlvpn::daemon::offload::{Segmenter, VNET_HDR_LEN, VnetHdr, complete_checksum};

fuzz_target!(|data: &[u8]| {
    let Some(h) = VnetHdr::parse(data) else { return };
    let packet = &data[VNET_HDR_LEN..];
    let mut copy = packet.to_vec();
    let _ = complete_checksum(&h, &mut copy);
    if let Ok(mut cut) = Segmenter::new(&h, packet) {
        let mut out = [0u8; 2048];
        for _ in 0..cut.count() + 1 {
            match cut.next(&mut out) {
                Some(Ok(n)) => assert!(n <= out.len()),
                Some(Err(_)) => {}
                None => break,
            }
        }
    }
    // The same bytes as a run of packets from the peer: split at each 0xff byte.
    let mut c = Coalescer::new(true);
    for p in packet.split(|&b| b == 0xff) {
        if !c.push(p) {
            let _ = c.take();
            let _ = c.push(p);
        }
    }
    if let Some(out) = c.take() {
        assert!(out.len() <= VNET_HDR_LEN + 65_535);
    }
});
