//! `SocketAddr` to and from the kernel's `sockaddr_in`/`sockaddr_in6`, and the canonical form of
//! addresses on dual-stack sockets.
//!
//! A socket bound to `[::]` with `IPV6_V6ONLY` off receives IPv4 datagrams with the source shown
//! as an IPv4-mapped IPv6 address (`[::ffff:192.0.2.7]:5000`). The rest of the daemon compares
//! peers with the addresses in its configuration, which are written as IPv4, so we hand out the
//! canonical form ([`canonical`]) and map back when sending ([`for_family`]).

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// IPv4-mapped IPv6 socket addresses become plain IPv4; everything else is returned unchanged.
pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::V4(SocketAddrV4::new(ip, a.port())),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// The form of `addr` that a socket of the given family accepts: an IPv4 destination on an
/// IPv6 socket becomes IPv4-mapped; an IPv4-mapped destination on an IPv4 socket becomes IPv4.
pub(super) fn for_family(addr: SocketAddr, v6_socket: bool) -> SocketAddr {
    match (addr, v6_socket) {
        (SocketAddr::V4(a), true) => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        (SocketAddr::V6(_), false) => canonical(addr),
        _ => addr,
    }
}

/// Writes `addr` into `storage` and returns the length to pass to the kernel.
pub(super) fn write(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: all-zero is a valid sockaddr_in (integers and a byte array).
            let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) };
            // SAFETY: sockaddr_storage is larger than and at least as aligned as sockaddr_in
            // (that is its purpose), and `storage` is a live exclusive reference.
            unsafe { (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>().write(sin) };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: all-zero is a valid sockaddr_in6 (integers and byte arrays).
            let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            // Like std, the flow label is copied as is (the kernel treats it as network order).
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            sin6.sin6_scope_id = a.scope_id();
            // SAFETY: as above, for sockaddr_in6.
            unsafe { (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>().write(sin6) };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads the address the kernel wrote into `storage` (`len` bytes of it); `None` for a family
/// other than IPv4/IPv6 or a length too short for the family.
pub(super) fn read(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the kernel wrote a sockaddr_in, which fits in and is no
            // more aligned than sockaddr_storage; every bit pattern is a valid sockaddr_in.
            let sin =
                unsafe { (storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>().read() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { (storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>().read() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)))
        }
        _ => None,
    }
}

/// An all-zero `sockaddr_storage`, the starting value of every buffer the kernel writes into.
pub(super) fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid sockaddr_storage (integers and padding).
    unsafe { mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(addr: SocketAddr) -> Option<SocketAddr> {
        let mut storage = zeroed_storage();
        let len = write(&addr, &mut storage);
        read(&storage, len)
    }

    #[test]
    fn v4_and_v6_round_trip() {
        for s in ["192.0.2.7:5000", "0.0.0.0:0", "[2001:db8::1]:65535", "[::]:1"] {
            let addr: SocketAddr = s.parse().unwrap();
            assert_eq!(round_trip(addr), Some(addr), "{s}");
        }
        let scoped = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 7, 0, 3));
        assert_eq!(round_trip(scoped), Some(scoped));
    }

    #[test]
    fn port_is_in_network_order() {
        let mut storage = zeroed_storage();
        write(&"192.0.2.7:258".parse().unwrap(), &mut storage);
        // SAFETY: we just wrote a sockaddr_in there.
        let sin = unsafe { (&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>().read() };
        assert_eq!(sin.sin_port.to_ne_bytes(), [1, 2]);
        assert_eq!(sin.sin_addr.s_addr.to_ne_bytes(), [192, 0, 2, 7]);
    }

    #[test]
    fn short_or_foreign_addresses_are_rejected() {
        let mut storage = zeroed_storage();
        let len = write(&"192.0.2.7:1".parse().unwrap(), &mut storage);
        assert_eq!(read(&storage, len - 1), None);
        storage.ss_family = libc::AF_UNIX as libc::sa_family_t;
        assert_eq!(read(&storage, len), None);
    }

    #[test]
    fn mapped_addresses_are_canonicalised_both_ways() {
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:9".parse().unwrap();
        let plain: SocketAddr = "192.0.2.7:9".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        assert_eq!(canonical(mapped), plain);
        assert_eq!(canonical(v6), v6);
        assert_eq!(for_family(plain, true), mapped);
        assert_eq!(for_family(mapped, false), plain);
        assert_eq!(for_family(plain, false), plain);
        assert_eq!(for_family(v6, true), v6);
    }
}
