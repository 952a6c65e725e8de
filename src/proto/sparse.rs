//! Which packets carry no bulk data, and so skip the reorder buffer.
//!
//! The reorder buffer holds a packet until the ones sent before it have arrived
//! ([`super::reorder`]): a bulk TCP or QUIC flow reads reordering as loss, and it pays the wait
//! only once per window. A packet that carries no bulk data — a pure TCP acknowledgement, a
//! ping, a DNS query, a voice or game datagram — gains nothing from waiting behind other flows'
//! packets, and waiting is exactly what it must not do. Those are *sparse*: delivered the moment
//! they arrive, out of the tunnel's order if need be (RFC 8290's "sparse flows" are the same
//! idea at the sending side).
//!
//! A TCP segment is sparse when it carries no payload and no SYN: acknowledgements, FIN and RST
//! alone. (A SYN takes the bulk path: its round trip is the first one a TCP sender measures, and
//! it must be the one the flow's data will see.) Any other packet is sparse when it is at most
//! [`SPARSE_MAX`] bytes. Fragments and what does not parse are judged by size alone.

use super::flow::{IpView, TCP, ip_of};

/// The largest non-TCP packet that is sparse: a voice frame (G.711 at 20 ms: 200 bytes with its
/// headers), a game update, a DNS query, a ping. Bulk UDP (QUIC, video, tunnels) fills packets:
/// QUIC's are at least 1200 bytes.
pub const SPARSE_MAX: usize = 256;

/// Whether `packet` (an IP packet; an Ethernet frame when `ethernet`) is sparse.
pub fn is_sparse(packet: &[u8], ethernet: bool) -> bool {
    let Some(ip) = ip_of(packet, ethernet) else { return packet.len() <= SPARSE_MAX };
    match IpView::parse(ip) {
        Some(IpView { protocol: TCP, transport: Some(tcp), .. }) => tcp_is_sparse(tcp),
        _ => ip.len() <= SPARSE_MAX,
    }
}

const TCP_SYN: u8 = 0x02;

fn tcp_is_sparse(tcp: &[u8]) -> bool {
    let (Some(&offset), Some(&flags)) = (tcp.get(12), tcp.get(13)) else { return tcp.len() <= SPARSE_MAX };
    let header = usize::from(offset >> 4) * 4;
    flags & TCP_SYN == 0 && tcp.len() <= header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::flow::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};

    fn ipv4(protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p.extend_from_slice(l4);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p
    }

    fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p.extend_from_slice(&[0; 32]);
        p.extend_from_slice(l4);
        p
    }

    /// A TCP header (20 bytes, or 32 with timestamps) with `flags`, then `payload` bytes.
    fn tcp(flags: u8, options: bool, payload: usize) -> Vec<u8> {
        let words = if options { 8 } else { 5 };
        let mut t = vec![0u8; words * 4];
        t[12] = (words as u8) << 4;
        t[13] = flags;
        t.extend(std::iter::repeat_n(0xaa, payload));
        t
    }

    const ACK: u8 = 0x10;

    #[test]
    fn tcp_acks_and_fins_are_sparse_data_and_syns_are_not() {
        for make in [ipv4, ipv6] {
            assert!(is_sparse(&make(TCP, &tcp(ACK, true, 0)), false), "pure ack");
            assert!(is_sparse(&make(TCP, &tcp(ACK | 0x01, false, 0)), false), "fin");
            assert!(!is_sparse(&make(TCP, &tcp(ACK, true, 1)), false), "one byte of data");
            assert!(!is_sparse(&make(TCP, &tcp(ACK, true, 1348)), false), "a full segment");
            assert!(!is_sparse(&make(TCP, &tcp(TCP_SYN, true, 0)), false), "syn");
            assert!(!is_sparse(&make(TCP, &tcp(TCP_SYN | ACK, true, 0)), false), "syn-ack");
        }
    }

    #[test]
    fn other_packets_are_sparse_up_to_the_size_limit() {
        let udp = |n: usize| ipv4(17, &vec![0u8; n - 20]);
        assert!(is_sparse(&udp(200), false), "a voice frame");
        assert!(is_sparse(&udp(SPARSE_MAX), false));
        assert!(!is_sparse(&udp(SPARSE_MAX + 1), false));
        assert!(!is_sparse(&udp(1252), false), "QUIC");
        assert!(is_sparse(&ipv6(58, &[0u8; 64]), false), "ICMPv6 echo");
    }

    #[test]
    fn fragments_truncations_and_garbage_are_judged_by_size() {
        let mut frag = ipv4(TCP, &tcp(ACK, false, 0));
        frag[6] = 0x20; // more fragments
        assert!(is_sparse(&frag, false), "small fragment");
        let mut big = ipv4(TCP, &tcp(ACK, false, 600));
        big[7] = 0x10; // fragment offset
        assert!(!is_sparse(&big, false));
        assert!(is_sparse(&ipv4(TCP, &[0u8; 4]), false), "truncated TCP header");
        assert!(is_sparse(&[], false));
        assert!(!is_sparse(&[0x45; 300], false), "300 bytes of garbage");
    }

    #[test]
    fn ethernet_frames_are_read_past_their_header() {
        let frame = |ethertype: u16, payload: &[u8]| {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend_from_slice(payload);
            f
        };
        let ack = ipv4(TCP, &tcp(ACK, true, 0));
        let data = ipv4(TCP, &tcp(ACK, true, 1000));
        assert!(is_sparse(&frame(ETHERTYPE_IPV4, &ack), true));
        assert!(!is_sparse(&frame(ETHERTYPE_IPV4, &data), true));
        assert!(!is_sparse(&frame(ETHERTYPE_IPV6, &ipv6(TCP, &tcp(ACK, true, 1000))), true));
        assert!(is_sparse(&frame(0x0806, &[0u8; 28]), true), "ARP");
        assert!(!is_sparse(&data, true), "an IP packet read as a frame is judged by size");
    }
}
