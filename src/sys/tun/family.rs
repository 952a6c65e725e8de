//! The 4-byte header of the BSDs' TUN devices: the packet's address family, in network byte
//! order (FreeBSD's `tun(4)` with `TUNSIFHEAD`, OpenBSD's `tun(4)` always). Plain functions over
//! bytes, with the families as arguments, so that Linux runs their tests with either system's
//! numbers (`AF_INET6` is 28 on FreeBSD, 24 on OpenBSD).

/// The families of one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    pub inet: u32,
    pub inet6: u32,
}

/// The header to write before `packet`, from its IP version; `None` for neither 4 nor 6 (the
/// kernel would refuse it anyway).
pub fn header_for(packet: &[u8], af: Families) -> Option<[u8; 4]> {
    match packet.first()? >> 4 {
        4 => Some(af.inet.to_be_bytes()),
        6 => Some(af.inet6.to_be_bytes()),
        _ => None,
    }
}

/// Whether a read packet's header names a family we carry: anything else (a packet of another
/// protocol the kernel routed to the device) is skipped.
pub fn carries(header: [u8; 4], af: Families) -> bool {
    let family = u32::from_be_bytes(header);
    family == af.inet || family == af.inet6
}

#[cfg(test)]
mod tests {
    use super::*;

    const FREEBSD: Families = Families { inet: 2, inet6: 28 };
    const OPENBSD: Families = Families { inet: 2, inet6: 24 };

    #[test]
    fn headers_follow_the_ip_version_in_network_order() {
        let v4 = [0x45u8, 0, 0, 20];
        let v6 = [0x60u8, 0, 0, 0];
        assert_eq!(header_for(&v4, FREEBSD), Some([0, 0, 0, 2]));
        assert_eq!(header_for(&v6, FREEBSD), Some([0, 0, 0, 28]));
        assert_eq!(header_for(&v6, OPENBSD), Some([0, 0, 0, 24]));
        assert_eq!(header_for(&[0x50], OPENBSD), None);
        assert_eq!(header_for(&[], OPENBSD), None);
    }

    #[test]
    fn read_headers_are_checked_against_the_system_s_families() {
        assert!(carries([0, 0, 0, 2], OPENBSD));
        assert!(carries([0, 0, 0, 24], OPENBSD));
        assert!(!carries([0, 0, 0, 28], OPENBSD), "FreeBSD's AF_INET6 is another family on OpenBSD");
        assert!(carries([0, 0, 0, 28], FREEBSD));
        assert!(!carries([2, 0, 0, 0], FREEBSD), "host byte order is not the header's");
        for p in [[0x45u8, 0], [0x60, 0]] {
            assert!(carries(header_for(&p, FREEBSD).unwrap(), FREEBSD), "round trip");
        }
    }
}
