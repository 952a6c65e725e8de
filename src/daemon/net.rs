//! Link sockets: resolving the configured addresses and binding one UDP socket per link.

use crate::config::{Config, Link};
use crate::proto::Mode;
use crate::sys::udp::UdpLink;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Socket buffers asked for: a burst of a few thousand full-size packets, so that the kernel
/// does not drop what a busy loop round has not read yet. (The C original lost 15-20% of its
/// packets at its receive buffer under load.)
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Why a link has no socket yet.
#[derive(Debug)]
pub enum LinkAddrError {
    Resolve { host: String, error: String },
    Bind { addr: SocketAddr, error: io::Error },
}

impl std::fmt::Display for LinkAddrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkAddrError::Resolve { host, error } => write!(f, "cannot resolve {host}: {error}"),
            LinkAddrError::Bind { addr, error } => write!(f, "cannot bind {addr}: {error}"),
        }
    }
}

/// Binds a link's socket; a server's default `[::]` falls back to `0.0.0.0` where the system
/// has no IPv6.
pub fn bind(addr: SocketAddr) -> io::Result<UdpLink> {
    match UdpLink::bind(addr) {
        Err(e)
            if addr.ip().is_unspecified()
                && addr.is_ipv6()
                && e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            UdpLink::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port()))
        }
        r => r,
    }
}

/// Resolves `host:port`, preferring addresses of `family` when given (the bind address's).
/// Blocking: the C library's resolver has no other interface. It runs at start, on reload and
/// on retries of a link whose lookup failed, never per packet.
pub fn resolve(host: &str, port: u16, family: Option<bool>) -> Result<SocketAddr, LinkAddrError> {
    let err = |e: String| LinkAddrError::Resolve { host: host.to_string(), error: e };
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(|e| err(e.to_string()))?.collect();
    addrs
        .iter()
        .find(|a| family.is_none_or(|v6| a.is_ipv6() == v6))
        .or(addrs.first())
        .copied()
        .ok_or_else(|| err("no address".into()))
}

/// The local address a link binds, and (client) the remote it sends to.
pub fn link_addresses(
    config: &Config,
    link: &Link,
) -> Result<(SocketAddr, Option<SocketAddr>), LinkAddrError> {
    let bind_ip = match &link.bind_host {
        Some(h) => Some(resolve(h, link.bind_port, None)?.ip()),
        None => None,
    };
    match config.mode {
        Mode::Server => {
            let ip = bind_ip.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            Ok((SocketAddr::new(ip, link.bind_port), None))
        }
        Mode::Client => {
            let host = link.remote_host.as_deref().unwrap_or_default();
            let port = link.remote_port.unwrap_or_default();
            let remote = resolve(host, port, bind_ip.map(|ip| ip.is_ipv6()))?;
            let ip = bind_ip.unwrap_or(if remote.is_ipv6() {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
            Ok((SocketAddr::new(ip, link.bind_port), Some(remote)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_literals_and_prefers_the_family() {
        assert_eq!(resolve("127.0.0.1", 5, None).unwrap(), "127.0.0.1:5".parse().unwrap());
        assert_eq!(resolve("::1", 5, Some(true)).unwrap(), "[::1]:5".parse().unwrap());
        assert!(resolve("no-such-host.invalid", 5, None).is_err());
    }
}
