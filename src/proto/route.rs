//! Which site an inner address belongs to: longest-prefix match over every site's addresses
//! and networks, the way WireGuard's cryptokey routing ties allowed IPs to a peer.
//!
//! The table is one sorted map per prefix length in use (most servers use two or three
//! lengths: a /32 per site's tunnel address, a /24 per site's LAN), searched from the longest
//! length down: a lookup costs a binary search per length (7 comparisons each for 100
//! sites).

use super::sorted::SortedMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address with a prefix length: `192.168.10.0/24`, `2001:db8::/48`, or a host address
/// (a missing length means the whole address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address with the bits beyond `len` cleared.
    addr: IpAddr,
    len: u8,
}

/// Why a prefix did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    Address,
    Length,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrefixError::Address => "not an IPv4 or IPv6 address",
            PrefixError::Length => "prefix length out of range (0-32 for IPv4, 0-128 for IPv6)",
        })
    }
}

fn bits(addr: IpAddr) -> (u128, u8, bool) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32, false),
        IpAddr::V6(a) => (u128::from(a), 128, true),
    }
}

fn masked(value: u128, width: u8, len: u8) -> u128 {
    if len == 0 { 0 } else { value & (u128::MAX << (width - len)) & (u128::MAX >> (128 - width)) }
}

impl Prefix {
    /// `addr/len`, its host bits cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let (value, width, v6) = bits(addr);
        if len > width {
            return Err(PrefixError::Length);
        }
        let value = masked(value, width, len);
        let addr = if v6 { IpAddr::V6(value.into()) } else { IpAddr::V4((value as u32).into()) };
        Ok(Prefix { addr, len })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        let (value, width, v6) = bits(a);
        let (mine, my_width, my_v6) = bits(self.addr);
        v6 == my_v6 && width == my_width && masked(value, width, self.len) == mine
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| PrefixError::Address)?;
        let len = match len {
            None => bits(addr).1,
            Some(l) => l.parse().map_err(|_| PrefixError::Length)?,
        };
        Prefix::new(addr, len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Longest-prefix match from an address to a value (a site's index).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Per family (IPv4, IPv6): the lengths in use, longest first, each with its prefixes.
    families: [Vec<(u8, SortedMap<u128, usize>)>; 2],
}

impl RouteTable {
    /// Adds `prefix` for `value`. Returns the value already there if the same prefix was
    /// added before (the table keeps the first).
    pub fn insert(&mut self, prefix: Prefix, value: usize) -> Option<usize> {
        let (bits, _, v6) = bits(prefix.addr);
        let family = &mut self.families[usize::from(v6)];
        let at = match family.iter().position(|(len, _)| *len <= prefix.len) {
            Some(i) if family[i].0 == prefix.len => i,
            Some(i) => {
                family.insert(i, (prefix.len, SortedMap::default()));
                i
            }
            None => {
                family.push((prefix.len, SortedMap::default()));
                family.len() - 1
            }
        };
        family[at].1.insert_first(bits, value)
    }

    /// The value of the longest prefix that contains `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<usize> {
        let (value, width, v6) = bits(addr);
        self.families[usize::from(v6)].iter().find_map(|(len, map)| map.get(masked(value, width, *len)))
    }
}

/// Which address of an IP packet to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

/// The source or destination address of the IPv4 or IPv6 packet `packet`, or `None` if it is
/// neither or too short to tell.
pub fn packet_addr(packet: &[u8], side: Side) -> Option<IpAddr> {
    let src = side == Side::Source;
    match packet.first()? >> 4 {
        4 => {
            let at = if src { 12 } else { 16 };
            let b: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        6 => {
            let at = if src { 8 } else { 24 };
            let b: [u8; 16] = packet.get(at..at + 16)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_parse_clear_host_bits_and_refuse_bad_lengths() {
        assert_eq!(p("192.168.10.77/24").to_string(), "192.168.10.0/24");
        assert_eq!(p("10.0.0.2").to_string(), "10.0.0.2/32");
        assert_eq!(p("2001:db8:1:2::5/48").to_string(), "2001:db8:1::/48");
        assert_eq!(p("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!("10.0.0.0/33".parse::<Prefix>(), Err(PrefixError::Length));
        assert_eq!("::/129".parse::<Prefix>(), Err(PrefixError::Length));
        assert_eq!("10.0.0/8".parse::<Prefix>(), Err(PrefixError::Address));
        assert_eq!("10.0.0.0/x".parse::<Prefix>(), Err(PrefixError::Length));
        assert!(p("10.1.0.0/16").contains(ip("10.1.255.3")));
        assert!(!p("10.1.0.0/16").contains(ip("10.2.0.1")));
        assert!(!p("0.0.0.0/0").contains(ip("::1")), "families never mix");
    }

    #[test]
    fn the_longest_prefix_wins_in_each_family() {
        let mut t = RouteTable::default();
        assert_eq!(t.insert(p("10.0.0.0/8"), 1), None);
        assert_eq!(t.insert(p("10.1.0.0/16"), 2), None);
        assert_eq!(t.insert(p("10.1.2.3/32"), 3), None);
        assert_eq!(t.insert(p("2001:db8::/32"), 4), None);
        assert_eq!(t.insert(p("10.1.0.0/16"), 9), Some(2), "the same prefix twice is reported");
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.4")), Some(2));
        assert_eq!(t.lookup(ip("10.200.0.1")), Some(1));
        assert_eq!(t.lookup(ip("11.0.0.1")), None);
        assert_eq!(t.lookup(ip("2001:db8:ffff::1")), Some(4));
        assert_eq!(t.lookup(ip("2001:db9::1")), None);
        t.insert(p("0.0.0.0/0"), 5);
        assert_eq!(t.lookup(ip("11.0.0.1")), Some(5));
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(3));
    }

    #[test]
    fn addresses_come_from_either_header_and_short_packets_give_none() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[10, 0, 0, 1]);
        v4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(packet_addr(&v4, Side::Source), Some(ip("10.0.0.1")));
        assert_eq!(packet_addr(&v4, Side::Destination), Some(ip("10.0.0.2")));
        assert_eq!(packet_addr(&v4[..19], Side::Destination), None);
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[23] = 1;
        v6[39] = 2;
        assert_eq!(packet_addr(&v6, Side::Source), Some(ip("::1")));
        assert_eq!(packet_addr(&v6, Side::Destination), Some(ip("::2")));
        assert_eq!(packet_addr(&[0x50; 40], Side::Source), None);
        assert_eq!(packet_addr(&[], Side::Source), None);
    }
}
