//! Receive-side coalescing for the TUN device: consecutive TCP segments (or UDP datagrams) of
//! one flow, as the tunnel delivers them, joined into one super-packet and written with one
//! `write(2)`.
//!
//! The receiving kernel then runs its TCP input once per super-packet instead of once per
//! segment, which is most of what a TUN write costs; for UDP it queues the datagrams to the
//! socket in one go, with one wake-up. It is what the kernel's own GRO does for a NIC
//! (`tcp_gro_receive`, `udp_gro_receive`), and what wireguard-go does for its TUN device; the
//! rules for what may be joined are the kernel's. TCP: same addresses, ports, ACK number,
//! flags and options, consecutive sequence numbers, all segments of the first one's size but
//! the last, no SYN/FIN/RST/URG/CWR/ECE; a PSH or a short segment ends the super-packet. UDP
//! (only where the kernel takes UDP super-packets, Linux 6.2): same addresses and ports, all
//! datagrams of the first one's size but the last, at most 64. Both: on IPv4 the same TOS and
//! TTL, no options, no fragments, and IDs that count up (or DF set); on IPv6 the same traffic
//! class, flow label and hop limit, no extension headers.
//!
//! The result goes to the kernel with a `virtio_net_hdr` saying "TCP (UDP) GSO, segments of
//! `gso_size`, checksum partial": the checksum field holds the pseudo-header sum, as for a
//! packet the kernel built itself. Forwarded on, it is cut again by the kernel (or the NIC).

use super::offload::{self, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, VNET_HDR_LEN};

/// The largest super-packet: an IPv4 total length, or an IPv6 payload length, is 16 bits.
const MAX_PACKET: usize = 65_535;

/// The most datagrams the kernel joins into one UDP super-packet (`UDP_GRO_CNT_MAX`).
const MAX_UDP_SEGMENTS: u16 = 64;

const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

/// The super-packet being built, in a buffer of its own (allocated once).
#[derive(Debug)]
pub struct Coalescer {
    /// Whether UDP datagrams may be joined (the kernel takes UDP super-packets).
    udp_allowed: bool,
    /// A `virtio_net_hdr`, then the packet.
    buf: Box<[u8]>,
    /// Bytes of packet after the header; 0 when nothing is held.
    len: usize,
    segments: u16,
    udp: bool,
    ip_len: usize,
    hdrs: usize,
    v6: bool,
    mss: usize,
    next_seq: u32,
    /// A PSH or a short segment was joined: nothing more may follow it.
    closed: bool,
}

/// The parts of a packet that decide whether it may be joined.
struct Segment {
    v6: bool,
    udp: bool,
    ip_len: usize,
    hdrs: usize,
    payload: usize,
    flags: u8,
}

impl Segment {
    /// A TCP segment with data and nothing but ACK (and PSH) set, or a UDP datagram with data;
    /// IPv4 without options or fragments, IPv6 without extension headers.
    fn parse(p: &[u8]) -> Option<Segment> {
        let l = offload::layout(p).ok()?;
        let stated = if l.v6 {
            40 + usize::from(u16::from_be_bytes([p[4], p[5]]))
        } else {
            if l.ip_len != 20 || u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
                return None;
            }
            usize::from(u16::from_be_bytes([p[2], p[3]]))
        };
        let hdrs = l.headers();
        if stated != p.len() || p.len() <= hdrs {
            return None;
        }
        let flags = if l.udp {
            let udp_len = usize::from(u16::from_be_bytes([p[l.ip_len + 4], p[l.ip_len + 5]]));
            if udp_len != p.len() - l.ip_len {
                return None;
            }
            0
        } else {
            let flags = p[l.ip_len + 13];
            if flags & !(TCP_ACK | TCP_PSH) != 0 || flags & TCP_ACK == 0 {
                return None;
            }
            flags
        };
        Some(Segment { v6: l.v6, udp: l.udp, ip_len: l.ip_len, hdrs, payload: p.len() - hdrs, flags })
    }
}

fn seq_of(p: &[u8], ip_len: usize) -> u32 {
    u32::from_be_bytes(p[ip_len + 4..ip_len + 8].try_into().expect("4 bytes"))
}

impl Coalescer {
    /// `udp`: join UDP datagrams too (only where the kernel takes UDP super-packets).
    pub fn new(udp: bool) -> Coalescer {
        Coalescer {
            udp_allowed: udp,
            buf: vec![0; VNET_HDR_LEN + MAX_PACKET].into_boxed_slice(),
            len: 0,
            segments: 0,
            udp: false,
            ip_len: 0,
            hdrs: 0,
            v6: false,
            mss: 0,
            next_seq: 0,
            closed: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds `packet`: joined to the super-packet being built, or as the start of one when
    /// nothing is held. False when it cannot be: the caller writes out what is held
    /// ([`Coalescer::take`]) and offers the packet again, or, when nothing is held, writes
    /// the packet as it is.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        let Some(s) = Segment::parse(packet) else { return false };
        if s.udp && !self.udp_allowed {
            return false;
        }
        if self.len == 0 {
            self.start(packet, &s);
            return true;
        }
        if !self.continues(packet, &s) {
            return false;
        }
        let at = VNET_HDR_LEN + self.len;
        self.buf[at..at + s.payload].copy_from_slice(&packet[s.hdrs..]);
        self.len += s.payload;
        self.segments += 1;
        self.next_seq = self.next_seq.wrapping_add(s.payload as u32);
        if s.flags & TCP_PSH != 0 {
            self.buf[VNET_HDR_LEN + self.ip_len + 13] |= TCP_PSH;
        }
        self.closed =
            s.payload < self.mss || s.flags & TCP_PSH != 0 || (self.udp && self.segments >= MAX_UDP_SEGMENTS);
        true
    }

    fn start(&mut self, packet: &[u8], s: &Segment) {
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + packet.len()].copy_from_slice(packet);
        self.len = packet.len();
        self.segments = 1;
        self.udp = s.udp;
        self.ip_len = s.ip_len;
        self.hdrs = s.hdrs;
        self.v6 = s.v6;
        self.mss = s.payload;
        self.next_seq = if s.udp { 0 } else { seq_of(packet, s.ip_len).wrapping_add(s.payload as u32) };
        self.closed = s.flags & TCP_PSH != 0;
    }

    /// Whether `p` is the next segment of the held flow and fits.
    fn continues(&self, p: &[u8], s: &Segment) -> bool {
        let held = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.hdrs];
        let t = self.ip_len;
        let same_ip = if self.v6 {
            // Version, traffic class, flow label; hop limit; addresses.
            p[..4] == held[..4] && p[7] == held[7] && p[8..40] == held[8..40]
        } else {
            let id = u16::from_be_bytes([p[4], p[5]]);
            let first_id = u16::from_be_bytes([held[4], held[5]]);
            let df = p[6] & 0x40 != 0;
            let ids_ok = id == first_id.wrapping_add(self.segments) || (df && held[6] & 0x40 != 0);
            p[1] == held[1]
                && p[6] & 0x40 == held[6] & 0x40
                && p[8] == held[8]
                && p[12..20] == held[12..20]
                && ids_ok
        };
        let same_transport = if self.udp {
            // Ports.
            p[t..t + 4] == held[t..t + 4]
        } else {
            // Ports, the next sequence number, ACK number; flags but PSH; options.
            p[t..t + 4] == held[t..t + 4]
                && seq_of(p, t) == self.next_seq
                && p[t + 8..t + 12] == held[t + 8..t + 12]
                && p[t + 13] & !TCP_PSH == held[t + 13] & !TCP_PSH
                && p[t + 20..s.hdrs] == held[t + 20..self.hdrs]
        };
        !self.closed
            && s.udp == self.udp
            && s.v6 == self.v6
            && s.hdrs == self.hdrs
            && s.payload <= self.mss
            && self.len + s.payload <= MAX_PACKET
            && same_ip
            && same_transport
    }

    /// What is held, ready to write to the TUN device (header included), and empties the
    /// coalescer; `None` when nothing is held.
    pub fn take(&mut self) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let len = std::mem::take(&mut self.len);
        if self.segments == 1 {
            offload::VnetHdr::write_delivered(&mut self.buf);
        } else {
            self.finish(len);
        }
        Some(&self.buf[..VNET_HDR_LEN + len])
    }

    /// Header, lengths, the IPv4 header checksum and the partial checksum of a joined packet
    /// of `len` bytes.
    fn finish(&mut self, len: usize) {
        let (ip, v6, udp) = (self.ip_len, self.v6, self.udp);
        let h = offload::VnetHdr {
            flags: offload::F_NEEDS_CSUM,
            gso_type: match (udp, v6) {
                (true, _) => GSO_UDP_L4,
                (false, false) => GSO_TCPV4,
                (false, true) => GSO_TCPV6,
            },
            hdr_len: self.hdrs as u16,
            gso_size: self.mss as u16,
            csum_start: ip as u16,
            csum_offset: if udp { 6 } else { 16 },
        };
        let (hdr, p) = self.buf.split_at_mut(VNET_HDR_LEN);
        h.write(hdr);
        let p = &mut p[..len];
        if v6 {
            p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        } else {
            p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            p[10..12].fill(0);
            let c = !offload::fold(offload::sum(0, &p[..ip]));
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let (proto, field) = if udp { (17, ip + 6) } else { (6, ip + 16) };
        if udp {
            p[ip + 4..ip + 6].copy_from_slice(&((len - ip) as u16).to_be_bytes());
        }
        let pseudo = offload::pseudo_header_sum(p, v6, proto, len - ip);
        p[field..field + 2].copy_from_slice(&offload::fold(pseudo).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::offload::tests::{tcp4, tcp6, udp4, valid};
    use crate::daemon::offload::{Segmenter, VnetHdr};

    /// Segments `seq`, `seq + mss`, ... of one flow with `sizes` bytes of payload each.
    fn flow(sizes: &[usize], flags: u8) -> Vec<Vec<u8>> {
        let mut seq = 1000u32;
        let mut out = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..n).map(|k| (seq as usize + k) as u8).collect();
            let mut p = tcp4(&payload, flags);
            p[4..6].copy_from_slice(&(0x1234 + i as u16).to_be_bytes());
            p[24..28].copy_from_slice(&seq.to_be_bytes());
            reseal(&mut p);
            out.push(p);
            seq += n as u32;
        }
        out
    }

    /// Checksums of an edited IPv4 test packet.
    fn reseal(p: &mut [u8]) {
        p[10..12].fill(0);
        let c = !offload::fold(offload::sum(0, &p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[36..38].fill(0);
        let c = !offload::fold(offload::sum(offload::pseudo_header_sum(p, false, 6, p.len() - 20), &p[20..]));
        p[36..38].copy_from_slice(&c.to_be_bytes());
    }

    /// Cuts a coalesced packet again, as the kernel would if it forwarded it.
    fn recut(out: &[u8]) -> Vec<Vec<u8>> {
        let h = VnetHdr::parse(out).unwrap();
        let mut packet = out[VNET_HDR_LEN..].to_vec();
        if !h.is_gso() {
            return vec![packet];
        }
        offload::complete_checksum(&h, &mut packet).unwrap();
        let mut cut = Segmenter::new(&h, &packet).unwrap();
        let mut segs = Vec::new();
        let mut buf = vec![0u8; 2000];
        while let Some(n) = cut.next(&mut buf) {
            segs.push(buf[..n.unwrap()].to_vec());
        }
        segs
    }

    #[test]
    fn a_run_of_full_segments_becomes_one_packet_that_cuts_back_into_them() {
        let segs = flow(&[1000, 1000, 1000, 400], 0x10);
        let mut c = Coalescer::new(true);
        for s in &segs {
            assert!(c.push(s));
        }
        let out = c.take().unwrap().to_vec();
        assert!(c.is_empty() && c.take().is_none());
        let h = VnetHdr::parse(&out).unwrap();
        assert_eq!(
            (h.gso_type, h.gso_size, h.hdr_len, h.csum_start, h.csum_offset),
            (GSO_TCPV4, 1000, 40, 20, 16)
        );
        assert_eq!(out.len(), VNET_HDR_LEN + 40 + 3400);
        let ip = &out[VNET_HDR_LEN..];
        assert_eq!(offload::fold(offload::sum(0, &ip[..20])), 0xffff, "IPv4 header checksum");
        assert_eq!(recut(&out), segs, "the kernel's cut gives back the very segments");
    }

    #[test]
    fn a_lone_packet_goes_as_it_came_marked_verified() {
        let segs = flow(&[500], 0x18);
        let mut c = Coalescer::new(true);
        assert!(c.push(&segs[0]));
        let out = c.take().unwrap();
        assert_eq!(out[0], 2, "VIRTIO_NET_HDR_F_DATA_VALID");
        assert_eq!(&out[VNET_HDR_LEN..], &segs[0][..]);
    }

    #[test]
    fn what_must_not_be_joined_is_refused() {
        let segs = flow(&[1000, 1000, 1000], 0x10);
        let held = |c: &mut Coalescer| {
            let mut c2 = Coalescer::new(true);
            assert!(c2.push(&segs[0]));
            *c = c2;
        };
        let mut c = Coalescer::new(true);
        let mut refused = |edit: &dyn Fn(&mut Vec<u8>), why: &str| {
            held(&mut c);
            let mut p = segs[1].clone();
            edit(&mut p);
            assert!(!c.push(&p), "{why}");
        };
        refused(&|p| p[24..28].copy_from_slice(&5u32.to_be_bytes()), "sequence gap");
        refused(&|p| p[28..32].copy_from_slice(&9u32.to_be_bytes()), "another ACK number");
        refused(&|p| p[22..24].copy_from_slice(&80u16.to_be_bytes()), "another port");
        refused(&|p| p[16..20].copy_from_slice(&[10, 9, 9, 9]), "another address");
        refused(&|p| p[8] = 3, "another TTL");
        refused(&|p| p[1] = 3, "another TOS (ECN CE)");
        refused(&|p| p[4..6].copy_from_slice(&7u16.to_be_bytes()), "an IP ID out of step, DF clear");
        refused(&|p| p[33] = 0x90, "CWR");
        let mut c = Coalescer::new(true);
        assert!(!c.push(&flow(&[100], 0x11)[0]), "FIN");
        assert!(!c.push(&flow(&[100], 0x02)[0]), "SYN");
        assert!(!c.push(&tcp4(b"", 0x10)), "no data");
        assert!(!c.push(&[0x45, 0, 0]), "nonsense");
        let mut frag = segs[0].clone();
        frag[6] = 0x20;
        assert!(!c.push(&frag), "a fragment");
        // A bigger segment after the first, and anything after a short one or a PSH.
        let mut c = Coalescer::new(true);
        let f = flow(&[500, 1000], 0x10);
        assert!(c.push(&f[0]) && !c.push(&f[1]), "bigger than the first");
        let mut c = Coalescer::new(true);
        let f = flow(&[1000, 500, 1000], 0x10);
        assert!(c.push(&f[0]) && c.push(&f[1]) && !c.push(&f[2]), "after a short one");
        let mut c = Coalescer::new(true);
        let f = flow(&[1000, 1000, 1000], 0x18);
        assert!(c.push(&f[0]) && !c.push(&f[1]), "after PSH");
    }

    #[test]
    fn psh_on_the_last_is_kept_and_ids_may_be_fixed_with_df() {
        let mut segs = flow(&[1000, 1000], 0x10);
        segs[1][33] = 0x18;
        for s in &mut segs {
            s[6] = 0x40; // DF
            s[4..6].copy_from_slice(&0u16.to_be_bytes());
            reseal(s);
        }
        let mut c = Coalescer::new(true);
        assert!(c.push(&segs[0]) && c.push(&segs[1]));
        let out = c.take().unwrap().to_vec();
        assert_eq!(out[VNET_HDR_LEN + 33], 0x18, "PSH carried");
        let back = recut(&out);
        assert_eq!(back[0][33], 0x10);
        assert_eq!(back[1][33], 0x18);
        assert!(back.iter().all(|b| valid(b)));
    }

    #[test]
    fn the_size_limit_holds() {
        let segs = flow(&[1400; 60], 0x10);
        let mut c = Coalescer::new(true);
        let taken = segs.iter().take_while(|s| c.push(s)).count();
        assert_eq!(taken, (MAX_PACKET - 40) / 1400);
        assert!(c.take().unwrap().len() <= VNET_HDR_LEN + MAX_PACKET);
    }

    #[test]
    fn ipv6_segments_join_too() {
        let a = tcp6(&[1u8; 1200], 1000, 0x10);
        let b = tcp6(&[2u8; 1200], 2200, 0x10);
        let mut c = Coalescer::new(true);
        assert!(c.push(&a) && c.push(&b));
        let out = c.take().unwrap().to_vec();
        assert_eq!(VnetHdr::parse(&out).unwrap().gso_type, GSO_TCPV6);
        assert_eq!(recut(&out), vec![a, b]);
    }

    #[test]
    fn udp_datagrams_of_one_flow_join_where_allowed() {
        let mut d: Vec<Vec<u8>> = (0..5u16).map(|i| udp4(&[i as u8; 1000], 0x100 + i)).collect();
        d.push(udp4(&[9; 300], 0x105));
        let mut c = Coalescer::new(true);
        for x in &d {
            assert!(c.push(x));
        }
        assert!(!c.push(&udp4(&[1; 100], 0x106)), "nothing after the short one");
        let out = c.take().unwrap().to_vec();
        let h = VnetHdr::parse(&out).unwrap();
        assert_eq!((h.gso_type, h.gso_size, h.hdr_len, h.csum_offset), (GSO_UDP_L4, 1000, 28, 6));
        assert_eq!(recut(&out), d, "the kernel's cut gives back the very datagrams");

        let mut other_port = udp4(&[0; 1000], 0x101);
        other_port[20] ^= 1;
        let mut c = Coalescer::new(true);
        assert!(c.push(&d[0]) && !c.push(&other_port), "another flow");
        let mut c = Coalescer::new(true);
        assert!(c.push(&d[0]) && !c.push(&udp4(&[0; 1000], 0x999)), "IP ID out of step");
        let mut c = Coalescer::new(false);
        assert!(!c.push(&d[0]), "the kernel takes no UDP super-packets");
        let mut c = Coalescer::new(true);
        assert!(!c.push(&udp4(&[], 1)), "no payload");
    }

    #[test]
    fn at_most_64_udp_datagrams_join() {
        let mut c = Coalescer::new(true);
        let taken = (0..80u16).take_while(|&i| c.push(&udp4(&[1; 100], i))).count();
        assert_eq!(taken, 64);
    }
}
