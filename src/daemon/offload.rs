//! TUN offloads: taking TCP (and UDP) super-packets from the kernel and cutting them into
//! segments, as the kernel would have; completing checksums it left for "hardware".
//!
//! With `IFF_VNET_HDR` and `TUNSETOFFLOAD(TSO4 | TSO6 | CSUM)` the kernel hands the TUN device
//! TCP packets of up to 64 KiB with a `virtio_net_hdr` in front saying how to cut them
//! (`gso_size` bytes of payload per segment), and lets checksums be filled in later. One read
//! then moves ~45 full-size packets, and the sending host's TCP stack works in 64 KiB units
//! instead of 1.4 KiB ones. With `USO4 | USO6` too (Linux 6.2) the same goes for UDP sent with
//! `UDP_SEGMENT` (QUIC stacks do), and we may write UDP super-packets ([`super::gro`]). The segments we make are complete (every checksum filled in), so
//! the peer's kernel needs no offload to accept them. The same idea as wireguard-go's
//! `tun/offload_linux.go`; the arithmetic is RFC 1071's and TCP's (RFC 9293).
//!
//! On the way in we prefix each packet with a header that says "checksum already verified"
//! (`VIRTIO_NET_HDR_F_DATA_VALID`): the packet was authenticated end to end by Poly1305, so
//! the receiving stack need not sum it again.

/// `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

pub const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const GSO_ECN: u8 = 0x80;

/// The header as the kernel wrote it. Its fields are little-endian: we ask for that
/// (`TUNSETVNETLE`, virtio 1.0's convention) rather than take the kernel's own byte order, so
/// that a big-endian build reads them right under an emulator on a little-endian kernel too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// Writes the header (little-endian, as [`VnetHdr::parse`] reads it).
    pub fn write(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [self.hdr_len, self.gso_size, self.csum_start, self.csum_offset].into_iter().enumerate()
        {
            b[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// The header we put in front of a packet we deliver: complete, checksum verified.
    pub fn write_delivered(b: &mut [u8]) {
        b[..VNET_HDR_LEN].fill(0);
        b[0] = F_DATA_VALID;
    }

    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }
}

/// Why a packet from the kernel could not be handled (it is dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// Not an IPv4/IPv6 TCP packet with sane lengths, or a GSO kind we did not ask for.
    Unsupported,
    /// A segment would not fit the output buffer.
    TooBig,
}

/// RFC 1071 one's-complement sum of `data`, added to `sum`.
pub(super) fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

pub(super) fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Fills in the checksum the kernel left partial: the field at `csum_start + csum_offset`
/// holds the pseudo-header sum, and the sum over everything from `csum_start` completes it.
pub fn complete_checksum(h: &VnetHdr, packet: &mut [u8]) -> Result<(), OffloadError> {
    if h.flags & F_NEEDS_CSUM == 0 {
        return Ok(());
    }
    let start = usize::from(h.csum_start);
    let field = start + usize::from(h.csum_offset);
    if field + 2 > packet.len() {
        return Err(OffloadError::Unsupported);
    }
    // As the kernel's skb_checksum_help: a sum of 0 goes out as 0xffff (the same value in
    // one's complement), since 0 means "no checksum" to UDP.
    let c = match !fold(sum(0, &packet[start..])) {
        0 => 0xffff,
        c => c,
    };
    packet[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Where the headers are, for one TCP or UDP packet.
#[derive(Debug)]
pub(super) struct Layout {
    pub v6: bool,
    pub udp: bool,
    pub ip_len: usize,
    /// The TCP or UDP header's length.
    pub l4_len: usize,
}

impl Layout {
    pub fn headers(&self) -> usize {
        self.ip_len + self.l4_len
    }

    /// Where the transport checksum is, from the transport header's start.
    pub fn checksum_offset(&self) -> usize {
        if self.udp { 6 } else { 16 }
    }

    fn protocol(&self) -> u8 {
        if self.udp { PROTO_UDP } else { PROTO_TCP }
    }
}

pub(super) fn layout(p: &[u8]) -> Result<Layout, OffloadError> {
    let bad = OffloadError::Unsupported;
    let version = p.first().ok_or(bad)? >> 4;
    let (v6, ip_len, proto) = match version {
        4 => (false, usize::from(p[0] & 0x0f) * 4, *p.get(9).ok_or(bad)?),
        6 => (true, 40, *p.get(6).ok_or(bad)?),
        _ => return Err(bad),
    };
    if ip_len < 20 || p.len() < ip_len + 8 {
        return Err(bad);
    }
    let (udp, l4_len) = match proto {
        PROTO_UDP => (true, 8),
        PROTO_TCP if p.len() >= ip_len + 20 => (false, usize::from(p[ip_len + 12] >> 4) * 4),
        _ => return Err(bad),
    };
    if (!udp && l4_len < 20) || p.len() < ip_len + l4_len {
        return Err(bad);
    }
    Ok(Layout { v6, udp, ip_len, l4_len })
}

/// The TCP or UDP checksum of `seg` (headers and payload), over the pseudo-header of RFC 9293
/// §3.1 and RFC 768 (RFC 8200 §8.1 for IPv6). UDP's 0 ("no checksum") is sent as 0xffff.
fn l4_checksum(seg: &[u8], l: &Layout) -> u16 {
    let l4 = &seg[l.ip_len..];
    let field = l.checksum_offset();
    let mut acc = pseudo_header_sum(seg, l.v6, l.protocol(), l4.len());
    // The checksum field counts as zero.
    acc = sum(acc, &l4[..field]);
    acc = sum(acc, &l4[field + 2..]);
    match !fold(acc) {
        0 if l.udp => 0xffff,
        c => c,
    }
}

/// The unfolded sum of the pseudo-header of `packet` (addresses, `protocol`, `l4_len`).
pub(super) fn pseudo_header_sum(packet: &[u8], v6: bool, protocol: u8, l4_len: usize) -> u32 {
    let addresses = if v6 { &packet[8..40] } else { &packet[12..20] };
    sum(0, addresses) + u32::from(protocol) + l4_len as u32
}

/// Cuts a TCP or UDP super-packet into segments of `gso_size` payload bytes, one at a time
/// ([`Segmenter::next`] builds each in the caller's buffer).
#[derive(Debug)]
pub struct Segmenter<'a> {
    packet: &'a [u8],
    layout: Layout,
    mss: usize,
    index: usize,
    count: usize,
    seq0: u32,
    id0: u16,
    flags0: u8,
}

impl<'a> Segmenter<'a> {
    pub fn new(h: &VnetHdr, packet: &'a [u8]) -> Result<Segmenter<'a>, OffloadError> {
        let kind = h.gso_type & !GSO_ECN;
        let l = layout(packet)?;
        let matches = match kind {
            GSO_TCPV4 => !l.udp && !l.v6,
            GSO_TCPV6 => !l.udp && l.v6,
            GSO_UDP_L4 => l.udp,
            _ => false,
        };
        let mss = usize::from(h.gso_size);
        if !matches || mss == 0 {
            return Err(OffloadError::Unsupported);
        }
        let payload = packet.len() - l.headers();
        Ok(Segmenter {
            seq0: if l.udp {
                0
            } else {
                u32::from_be_bytes(packet[l.ip_len + 4..l.ip_len + 8].try_into().expect("4"))
            },
            id0: u16::from_be_bytes([packet[4], packet[5]]),
            flags0: if l.udp { 0 } else { packet[l.ip_len + 13] },
            count: payload.div_ceil(mss).max(1),
            packet,
            layout: l,
            mss,
            index: 0,
        })
    }

    /// How many segments the packet makes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Builds the next segment in `out` and returns its length; `None` when done.
    pub fn next(&mut self, out: &mut [u8]) -> Option<Result<usize, OffloadError>> {
        if self.index >= self.count {
            return None;
        }
        let (l, i) = (&self.layout, self.index);
        self.index += 1;
        let hdrs = l.headers();
        let payload = &self.packet[hdrs..];
        let from = (i * self.mss).min(payload.len());
        let chunk = &payload[from..(from + self.mss).min(payload.len())];
        let len = hdrs + chunk.len();
        if len > out.len() {
            return Some(Err(OffloadError::TooBig));
        }
        let seg = &mut out[..len];
        seg[..hdrs].copy_from_slice(&self.packet[..hdrs]);
        seg[hdrs..].copy_from_slice(chunk);
        if l.v6 {
            seg[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        } else {
            seg[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            seg[4..6].copy_from_slice(&self.id0.wrapping_add(i as u16).to_be_bytes());
            seg[10..12].fill(0);
            let c = !fold(sum(0, &seg[..l.ip_len]));
            seg[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let t = l.ip_len;
        if l.udp {
            seg[t + 4..t + 6].copy_from_slice(&((len - t) as u16).to_be_bytes());
        } else {
            let seq = self.seq0.wrapping_add((i * self.mss) as u32);
            seg[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
            // FIN and PSH belong to the last segment only, CWR to the first only.
            let mut f = self.flags0;
            if i + 1 < self.count {
                f &= !(0x01 | 0x08);
            }
            if i > 0 {
                f &= !0x80;
            }
            seg[t + 13] = f;
        }
        let c = l4_checksum(seg, l);
        let field = t + l.checksum_offset();
        seg[field..field + 2].copy_from_slice(&c.to_be_bytes());
        Some(Ok(len))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An IPv4 TCP packet with `payload`, checksums correct.
    pub fn tcp4(payload: &[u8], flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        let total = (40 + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 42, 0, 2]);
        p[16..20].copy_from_slice(&[10, 42, 0, 1]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&5201u16.to_be_bytes());
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = flags;
        p.extend_from_slice(payload);
        let c = !fold(sum(0, &p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let l = layout(&p).unwrap();
        let c = l4_checksum(&p, &l);
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// An IPv6 TCP packet with `payload` at `seq`, checksum correct.
    pub fn tcp6(payload: &[u8], seq: u32, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 60];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p[8..24].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p[24..40].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p[40..42].copy_from_slice(&40000u16.to_be_bytes());
        p[42..44].copy_from_slice(&5201u16.to_be_bytes());
        p[44..48].copy_from_slice(&seq.to_be_bytes());
        p[52] = 5 << 4;
        p[53] = flags;
        p.extend_from_slice(payload);
        let l = layout(&p).unwrap();
        let c = l4_checksum(&p, &l);
        p[56..58].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// An IPv4 UDP datagram with `payload` and IP ID `id`, checksums correct.
    pub fn udp4(payload: &[u8], id: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((28 + payload.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 42, 0, 2]);
        p[16..20].copy_from_slice(&[10, 42, 0, 1]);
        p[20..22].copy_from_slice(&4433u16.to_be_bytes());
        p[22..24].copy_from_slice(&443u16.to_be_bytes());
        p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(payload);
        let c = !fold(sum(0, &p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let l = layout(&p).unwrap();
        let c = l4_checksum(&p, &l);
        p[26..28].copy_from_slice(&c.to_be_bytes());
        p
    }

    pub fn valid(p: &[u8]) -> bool {
        let l = layout(p).unwrap();
        let ip_ok = l.v6 || fold(sum(0, &p[..l.ip_len])) == 0xffff;
        let f = l.ip_len + l.checksum_offset();
        let stored = u16::from_be_bytes([p[f], p[f + 1]]);
        ip_ok && l4_checksum(p, &l) == stored
    }

    #[test]
    fn rfc1071_example_sums() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (one's complement, folded).
        assert_eq!(fold(sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
        assert!(valid(&tcp4(b"hello", 0x18)));
    }

    #[test]
    fn a_super_packet_becomes_valid_segments_that_add_up() {
        let payload: Vec<u8> = (0..3500u32).map(|i| i as u8).collect();
        let big = tcp4(&payload, 0x19); // FIN + PSH + ACK
        let h = VnetHdr { gso_type: GSO_TCPV4, gso_size: 1400, flags: F_NEEDS_CSUM, ..VnetHdr::default() };
        let mut out = vec![0u8; 2000];
        let mut segs = Vec::new();
        let mut cut = Segmenter::new(&h, &big).unwrap();
        assert_eq!(cut.count(), 3);
        while let Some(n) = cut.next(&mut out) {
            segs.push(out[..n.unwrap()].to_vec());
        }
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert!(valid(s), "segment {i} checksums");
            assert_eq!(u16::from_be_bytes([s[2], s[3]]) as usize, s.len());
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16);
            let seq = u32::from_be_bytes(s[24..28].try_into().unwrap());
            assert_eq!(seq, 1000 + (i * 1400) as u32);
            let last = i == 2;
            assert_eq!(s[33] & 0x09 != 0, last, "FIN/PSH only on the last");
            joined.extend_from_slice(&s[40..]);
        }
        assert_eq!(joined, payload);
        assert_eq!(segs[2].len(), 40 + 700);
    }

    #[test]
    fn a_udp_super_packet_becomes_the_datagrams_it_stands_for() {
        let payload: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
        let big = udp4(&payload, 0x10);
        let h = VnetHdr { gso_type: GSO_UDP_L4, gso_size: 1200, flags: F_NEEDS_CSUM, ..VnetHdr::default() };
        let mut out = vec![0u8; 2000];
        let mut cut = Segmenter::new(&h, &big).unwrap();
        assert_eq!(cut.count(), 3);
        let mut joined = Vec::new();
        let mut i = 0;
        while let Some(n) = cut.next(&mut out) {
            let d = &out[..n.unwrap()];
            assert!(valid(d), "datagram {i} checksums");
            assert_eq!(usize::from(u16::from_be_bytes([d[24], d[25]])), d.len() - 20, "UDP length");
            assert_eq!(u16::from_be_bytes([d[4], d[5]]), 0x10 + i, "IP ID");
            joined.extend_from_slice(&d[28..]);
            i += 1;
        }
        assert_eq!(joined, payload);
        let tcp_kind = VnetHdr { gso_type: GSO_TCPV4, ..h };
        assert!(Segmenter::new(&tcp_kind, &big).is_err(), "kind must match the packet");
    }

    #[test]
    fn partial_checksums_are_completed() {
        let mut p = tcp4(&[7u8; 301], 0x18);
        // What the kernel leaves: the pseudo-header sum in the field, uncomplemented.
        let l = layout(&p).unwrap();
        let mut pseudo = sum(0, &p[12..20]);
        pseudo += 6 + (p.len() - 20) as u32;
        p[36..38].copy_from_slice(&fold(pseudo).to_be_bytes());
        assert!(!valid(&p));
        let h = VnetHdr { flags: F_NEEDS_CSUM, csum_start: 20, csum_offset: 16, ..VnetHdr::default() };
        complete_checksum(&h, &mut p).unwrap();
        assert!(valid(&p));
        let _ = l;
    }

    #[test]
    fn nonsense_is_refused_not_panicked_on() {
        let h = VnetHdr { gso_type: GSO_TCPV4, gso_size: 1400, ..VnetHdr::default() };
        for bad in [&[][..], &[0x45], &[0x60; 30], &tcp4(b"x", 0)[..30]] {
            assert!(Segmenter::new(&h, bad).is_err());
        }
        let zero = VnetHdr { gso_size: 0, ..h };
        assert!(Segmenter::new(&zero, &tcp4(b"xx", 0)).is_err());
        let v6 = VnetHdr { gso_type: GSO_TCPV6, ..h };
        assert!(Segmenter::new(&v6, &tcp4(b"xx", 0)).is_err(), "kind must match the packet");
        let mut small = [0u8; 30];
        let packet = tcp4(&[1; 100], 0);
        let mut cut = Segmenter::new(&h, &packet).unwrap();
        assert_eq!(cut.next(&mut small), Some(Err(OffloadError::TooBig)));
        let bad_csum = VnetHdr { flags: F_NEEDS_CSUM, csum_start: 60, csum_offset: 16, ..VnetHdr::default() };
        assert!(complete_checksum(&bad_csum, &mut tcp4(b"x", 0)).is_err());
        assert!(VnetHdr::parse(&[0; 9]).is_none());
    }
}
