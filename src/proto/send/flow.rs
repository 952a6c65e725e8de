//! What a packet from the TUN device is: its flow, and whether it looks real-time.
//!
//! The send queue is fair between flows ([`super::fq`]): a flow is the 5-tuple (addresses,
//! protocol, ports) of an IPv4 or IPv6 packet, hashed with a per-process key so that no host
//! behind the tunnel can aim its flows at another's queue. Fragments, protocols without ports
//! and what does not parse hash by addresses and protocol, or by nothing (one flow for the
//! unparsable: they are rare, and none of them can starve the others).
//!
//! A packet is *real-time* when losing or delaying it costs more than sending it twice
//! ([`crate::proto::tunnel`] duplicates it within a budget): UDP marked DSCP EF, CS5 or AF4x (RFC 4594's
//! telephony, signalling and multimedia-conferencing classes), small UDP (a voice frame or a
//! game update: at most [`REALTIME_MAX`] bytes), or any packet to or from a port the user lists.

use crate::proto::sparse::SPARSE_MAX;

/// The largest unmarked UDP packet taken for real-time: G.711 at 20 ms is 200 bytes with its
/// headers, Opus and game updates are smaller; bulk UDP (QUIC, video) fills its packets.
pub const REALTIME_MAX: usize = SPARSE_MAX;

pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERNET_HEADER: usize = 14;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// DSCP code points of RFC 4594's real-time classes: EF (46, telephony), CS5 (40, signalling)
/// and AF41/42/43 (34/36/38, multimedia conferencing).
const REALTIME_DSCP: [u8; 5] = [46, 40, 34, 36, 38];

/// The IP packet inside `packet`: itself, or past the Ethernet header of an IP frame (`None`
/// for other frames: ARP and the like).
pub fn ip_of(packet: &[u8], ethernet: bool) -> Option<&[u8]> {
    if !ethernet {
        return Some(packet);
    }
    match packet.get(12..ETHERNET_HEADER) {
        Some(&[a, b]) if matches!(u16::from_be_bytes([a, b]), ETHERTYPE_IPV4 | ETHERTYPE_IPV6) => {
            packet.get(ETHERNET_HEADER..)
        }
        _ => None,
    }
}

/// An IP packet's addresses, its protocol and DSCP, and its transport header and payload when
/// it is not a fragment (an IPv6 packet is read as carrying its first next header directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpView<'a> {
    pub addresses: &'a [u8],
    pub protocol: u8,
    pub dscp: u8,
    pub transport: Option<&'a [u8]>,
}

impl<'a> IpView<'a> {
    pub fn parse(ip: &'a [u8]) -> Option<IpView<'a>> {
        let first = *ip.first()?;
        match first >> 4 {
            4 => {
                let ihl = usize::from(first & 0x0f) * 4;
                let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff;
                Some(IpView {
                    addresses: ip.get(12..20)?,
                    protocol: *ip.get(9)?,
                    dscp: ip[1] >> 2,
                    transport: if ihl < 20 || fragment != 0 { None } else { ip.get(ihl..) },
                })
            }
            6 => Some(IpView {
                addresses: ip.get(8..40)?,
                protocol: ip[6],
                dscp: (u16::from_be_bytes([ip[0], ip[1]]) >> 6) as u8 & 0x3f,
                transport: ip.get(40..),
            }),
            _ => None,
        }
    }

    /// Source and destination ports of a TCP or UDP packet.
    pub fn ports(&self) -> Option<(u16, u16)> {
        let t = self.transport.filter(|_| matches!(self.protocol, TCP | UDP))?;
        Some((u16::from_be_bytes([*t.first()?, *t.get(1)?]), u16::from_be_bytes([*t.get(2)?, *t.get(3)?])))
    }
}

/// Which packets count as real-time, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Duplicate {
    /// Nothing is sent twice.
    Off,
    /// Marked or small UDP, and listed ports.
    #[default]
    Auto,
    /// Every packet (engarde's mode: bandwidth of one link, the loss of none).
    All,
}

impl Duplicate {
    /// The configuration's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Duplicate::Off => "off",
            Duplicate::Auto => "auto",
            Duplicate::All => "all",
        }
    }
}

/// Ports whose packets are real-time whatever their size or marking (`duplicate_ports`).
pub type PortList = heapless::Vec<(u16, u16), 8>;

/// The flow and class of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// Hash of the flow's 5-tuple, keyed.
    pub hash: u32,
    pub realtime: bool,
}

/// Hashes flows with a secret key and tells real-time packets.
#[derive(Debug, Clone)]
pub struct Classifier {
    key: u32,
    pub duplicate: Duplicate,
    pub ports: PortList,
}

impl Classifier {
    pub fn new(key: u32, duplicate: Duplicate, ports: PortList) -> Self {
        Classifier { key, duplicate, ports }
    }

    pub fn classify(&self, packet: &[u8], ethernet: bool) -> Classified {
        let Some(ip) = ip_of(packet, ethernet).and_then(IpView::parse) else {
            return Classified { hash: self.key, realtime: self.duplicate == Duplicate::All };
        };
        let ports = ip.ports();
        let mut h = Fnv(self.key ^ 0x811c_9dc5);
        h.write(ip.addresses);
        h.write(&[ip.protocol]);
        if let Some((src, dst)) = ports {
            h.write(&src.to_be_bytes());
            h.write(&dst.to_be_bytes());
        }
        let realtime = match self.duplicate {
            Duplicate::Off => false,
            Duplicate::All => true,
            Duplicate::Auto => {
                let listed = ports.is_some_and(|(s, d)| self.is_listed(s) || self.is_listed(d));
                let udp = ip.protocol == UDP;
                listed || (udp && (REALTIME_DSCP.contains(&ip.dscp) || packet.len() <= REALTIME_MAX))
            }
        };
        Classified { hash: h.0, realtime }
    }

    fn is_listed(&self, port: u16) -> bool {
        self.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
    }
}

/// FNV-1a, 32 bits: a few instructions a byte, and keyed by its starting value (the flows are
/// chosen by hosts behind the tunnel, not by the Internet; a collision only shares a queue).
struct Fnv(u32);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4 packet of `len` bytes from 10.0.0.`host`, DSCP `dscp`, with ports.
    pub(crate) fn ipv4(protocol: u8, host: u8, sport: u16, dport: u16, dscp: u8, len: usize) -> Vec<u8> {
        let mut p =
            vec![0x45, dscp << 2, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0, 10, 0, 0, host, 10, 1, 0, 1];
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.resize(len.max(24), 0);
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p
    }

    fn ipv6(protocol: u8, sport: u16, dport: u16, dscp: u8, len: usize) -> Vec<u8> {
        let tc = dscp << 2;
        let mut p = vec![0x60 | (tc >> 4), tc << 4, 0, 0, 0, 0, protocol, 64];
        p.extend_from_slice(&[1; 32]);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.resize(len.max(44), 0);
        p
    }

    fn auto(ports: &[(u16, u16)]) -> Classifier {
        Classifier::new(7, Duplicate::Auto, ports.iter().copied().collect())
    }

    #[test]
    fn marked_small_or_listed_packets_are_real_time_and_bulk_is_not() {
        let c = auto(&[(5060, 5061)]);
        assert!(c.classify(&ipv4(UDP, 1, 4000, 4001, 0, 200), false).realtime, "a voice frame");
        assert!(!c.classify(&ipv4(UDP, 1, 4000, 443, 0, 1252), false).realtime, "QUIC");
        assert!(c.classify(&ipv4(UDP, 1, 4000, 4001, 46, 1200), false).realtime, "EF video");
        assert!(c.classify(&ipv6(UDP, 4000, 4001, 34, 1200), false).realtime, "AF41 over IPv6");
        assert!(!c.classify(&ipv4(TCP, 1, 4000, 80, 46, 200), false).realtime, "marked TCP");
        assert!(c.classify(&ipv4(TCP, 1, 5061, 80, 0, 1400), false).realtime, "a listed port");
        let off = Classifier::new(7, Duplicate::Off, PortList::new());
        assert!(!off.classify(&ipv4(UDP, 1, 4000, 4001, 46, 200), false).realtime);
        let all = Classifier::new(7, Duplicate::All, PortList::new());
        assert!(all.classify(&ipv4(TCP, 1, 4000, 80, 0, 1400), false).realtime);
        assert!(all.classify(&[0xff; 3], false).realtime, "everything, even garbage");
    }

    #[test]
    fn flows_hash_by_five_tuple_and_key() {
        let c = auto(&[]);
        let h = |p: &[u8]| c.classify(p, false).hash;
        let a = ipv4(TCP, 1, 4000, 80, 0, 1400);
        assert_eq!(h(&a), h(&ipv4(TCP, 1, 4000, 80, 0, 60)), "one flow, any size");
        assert_ne!(h(&a), h(&ipv4(TCP, 1, 4001, 80, 0, 1400)));
        assert_ne!(h(&a), h(&ipv4(TCP, 2, 4000, 80, 0, 1400)));
        assert_ne!(h(&a), h(&ipv4(UDP, 1, 4000, 80, 0, 1400)));
        let other_key = Classifier::new(8, Duplicate::Auto, PortList::new());
        assert_ne!(h(&a), other_key.classify(&a, false).hash);
        let frag = |sport| {
            let mut f = ipv4(TCP, 1, sport, 80, 0, 600);
            f[7] = 0x10;
            f
        };
        assert_eq!(h(&frag(1)), h(&frag(2)), "a fragment has no ports: one flow per address pair");
        assert_eq!(c.classify(&[], false).hash, c.classify(&[0xff; 30], false).hash);
    }

    #[test]
    fn ethernet_frames_are_read_past_their_header() {
        let c = auto(&[]);
        let ip = ipv4(UDP, 1, 4000, 4001, 46, 1000);
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        frame.extend_from_slice(&ip);
        assert_eq!(c.classify(&frame, true), c.classify(&ip, false));
        assert_eq!(ip_of(&[0u8; 40], true), None, "not IP");
    }
}
