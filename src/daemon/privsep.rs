//! Privilege separation, as OpenBSD's daemons and OpenSSH's monitor do it.
//!
//! Started as root (without `--yes-run-as-root`), mlvpn opens everything it needs while it is
//! root — the TUN device, the link sockets, the control socket — then forks. The **child** drops
//! to `--user` (default `nobody`), locks itself into an empty directory, forbids itself new
//! privileges, and only then reads a packet: it runs the whole data path. The **parent** stays
//! root and does only what needs root, on the child's request, over a socketpair:
//!
//! | request (child → parent) | allowed | answer |
//! |---|---|---|
//! | `OpenLink(i)` | link `i` of the current configuration | the bound socket's fd, or why not |
//! | `Hook(event)` | events of configured links (current or previous configuration) | none: the parent runs the script |
//! | `SetMtu(n)` | from IPv6's 1280 to the configured `mtu` (path MTU discovery lowers it) | none: the parent sets the device's MTU |
//!
//! and on its own initiative: on SIGHUP it re-reads the configuration (the child can no longer
//! read it), checks it, and sends its text to the child; on SIGTERM it passes the signal on.
//! Messages are small, fixed-layout and length-checked ([`ToParent`], [`ToChild`]); anything
//! else is fatal — a compromised child can ask for nothing beyond this table.
//!
//! With `--yes-run-as-root`, or when not started as root, there is one process and
//! [`Privileges::Own`] does the same work directly.

use super::hooks::{HookEvent, Hooks};
use super::net;
use crate::config::{Config, Link};
use crate::log_error;
use crate::sys::privsep::Channel;
use crate::sys::udp::UdpLink;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

/// Largest message either way.
pub const MAX_MESSAGE: usize = 4096;
/// Config text per chunk.
const CHUNK: usize = MAX_MESSAGE - 3;
/// A link name in a hook request.
const MAX_NAME: usize = 64;

/// What is wrong with a message: always fatal to the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage(pub &'static str);

/// Child → parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToParent {
    OpenLink {
        index: u16,
    },
    Hook(HookEvent),
    /// The device MTU path MTU discovery asks for.
    SetMtu {
        mtu: u16,
    },
}

/// Parent → child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToChild {
    /// The socket travels as the message's fd.
    LinkOpened {
        index: u16,
        remote: Option<SocketAddr>,
    },
    LinkFailed {
        index: u16,
        reason: String,
    },
    /// A new configuration file's text, in order; [`ToChild::ConfigEnd`] completes it.
    ConfigChunk(Vec<u8>),
    ConfigEnd,
}

fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_MESSAGE - 3);
    out.clear();
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

fn unframe(msg: &[u8]) -> Result<(u8, &[u8]), BadMessage> {
    if msg.len() < 3 {
        return Err(BadMessage("short message"));
    }
    let len = usize::from(u16::from_be_bytes([msg[1], msg[2]]));
    if msg.len() != 3 + len {
        return Err(BadMessage("length does not match"));
    }
    Ok((msg[0], &msg[3..]))
}

fn name_bytes(name: &str) -> Result<&[u8], BadMessage> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > MAX_NAME {
        return Err(BadMessage("link name length"));
    }
    Ok(b)
}

fn name_from(b: &[u8]) -> Result<String, BadMessage> {
    if b.is_empty() || b.len() > MAX_NAME {
        return Err(BadMessage("link name length"));
    }
    let s = std::str::from_utf8(b).map_err(|_| BadMessage("link name not UTF-8"))?;
    if !s.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c)) {
        return Err(BadMessage("link name characters"));
    }
    Ok(s.to_string())
}

impl ToParent {
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), BadMessage> {
        match self {
            ToParent::OpenLink { index } => frame(1, &index.to_be_bytes(), out),
            ToParent::Hook(e) => {
                let (code, name, site) = match e {
                    HookEvent::TuntapUp => (1u8, None, None),
                    HookEvent::TuntapDown => (2, None, None),
                    HookEvent::RtunUp(n, s) => (3, Some(n), s.as_ref()),
                    HookEvent::RtunDown(n, s) => (4, Some(n), s.as_ref()),
                    HookEvent::SiteUp(s) => (5, Some(s), None),
                    HookEvent::SiteDown(s) => (6, Some(s), None),
                };
                let mut p = vec![code];
                if let Some(n) = name {
                    p.extend_from_slice(name_bytes(n)?);
                }
                // A link's site follows a NUL, which no name holds.
                if let Some(s) = site {
                    p.push(0);
                    p.extend_from_slice(name_bytes(s)?);
                }
                frame(2, &p, out);
            }
            ToParent::SetMtu { mtu } => frame(3, &mtu.to_be_bytes(), out),
        }
        Ok(())
    }

    pub fn decode(msg: &[u8]) -> Result<ToParent, BadMessage> {
        let (kind, p) = unframe(msg)?;
        match kind {
            1 if p.len() == 2 => Ok(ToParent::OpenLink { index: u16::from_be_bytes([p[0], p[1]]) }),
            3 if p.len() == 2 => Ok(ToParent::SetMtu { mtu: u16::from_be_bytes([p[0], p[1]]) }),
            2 if !p.is_empty() => {
                let (code, rest) = (p[0], &p[1..]);
                let (name, site) = match rest.iter().position(|&b| b == 0) {
                    Some(at) => (&rest[..at], Some(name_from(&rest[at + 1..])?)),
                    None => (rest, None),
                };
                Ok(ToParent::Hook(match (code, site) {
                    (1, None) if name.is_empty() => HookEvent::TuntapUp,
                    (2, None) if name.is_empty() => HookEvent::TuntapDown,
                    (3, site) => HookEvent::RtunUp(name_from(name)?, site),
                    (4, site) => HookEvent::RtunDown(name_from(name)?, site),
                    (5, None) => HookEvent::SiteUp(name_from(name)?),
                    (6, None) => HookEvent::SiteDown(name_from(name)?),
                    _ => return Err(BadMessage("hook event")),
                }))
            }
            _ => Err(BadMessage("unknown request")),
        }
    }
}

fn put_addr(p: &mut Vec<u8>, a: Option<SocketAddr>) {
    match a {
        None => p.push(0),
        Some(SocketAddr::V4(v)) => {
            p.push(4);
            p.extend_from_slice(&v.ip().octets());
            p.extend_from_slice(&v.port().to_be_bytes());
        }
        Some(SocketAddr::V6(v)) => {
            p.push(6);
            p.extend_from_slice(&v.ip().octets());
            p.extend_from_slice(&v.port().to_be_bytes());
        }
    }
}

fn get_addr(p: &[u8]) -> Result<Option<SocketAddr>, BadMessage> {
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match p {
        [0] => Ok(None),
        [4, rest @ ..] if rest.len() == 6 => {
            let ip: [u8; 4] = rest[..4].try_into().expect("4");
            Ok(Some(SocketAddr::new(IpAddr::from(ip), port(&rest[4..]))))
        }
        [6, rest @ ..] if rest.len() == 18 => {
            let ip: [u8; 16] = rest[..16].try_into().expect("16");
            Ok(Some(SocketAddr::new(IpAddr::from(ip), port(&rest[16..]))))
        }
        _ => Err(BadMessage("address")),
    }
}

/// The longest failure reason the parent sends (an error message; longer ones are cut).
const MAX_REASON: usize = 512;

impl ToChild {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ToChild::LinkOpened { index, remote } => {
                let mut p = index.to_be_bytes().to_vec();
                put_addr(&mut p, *remote);
                frame(10, &p, out);
            }
            ToChild::LinkFailed { index, reason } => {
                let mut p = index.to_be_bytes().to_vec();
                // At most MAX_REASON bytes, cut at a character boundary.
                let end = (0..=reason.len().min(MAX_REASON)).rev().find(|&i| reason.is_char_boundary(i));
                p.extend_from_slice(&reason.as_bytes()[..end.unwrap_or(0)]);
                frame(11, &p, out);
            }
            ToChild::ConfigChunk(bytes) => frame(12, bytes, out),
            ToChild::ConfigEnd => frame(13, &[], out),
        }
    }

    pub fn decode(msg: &[u8]) -> Result<ToChild, BadMessage> {
        let (kind, p) = unframe(msg)?;
        match kind {
            10 if p.len() >= 3 => Ok(ToChild::LinkOpened {
                index: u16::from_be_bytes([p[0], p[1]]),
                remote: get_addr(&p[2..])?,
            }),
            11 if p.len() >= 2 && p.len() - 2 <= MAX_REASON => Ok(ToChild::LinkFailed {
                index: u16::from_be_bytes([p[0], p[1]]),
                reason: String::from_utf8(p[2..].to_vec()).map_err(|_| BadMessage("reason text"))?,
            }),
            12 => Ok(ToChild::ConfigChunk(p.to_vec())),
            13 if p.is_empty() => Ok(ToChild::ConfigEnd),
            _ => Err(BadMessage("unknown message")),
        }
    }
}

/// Sends a configuration's text to the child, in chunks.
pub fn send_config(channel: &Channel, text: &str) -> io::Result<()> {
    let mut out = Vec::with_capacity(MAX_MESSAGE);
    for chunk in text.as_bytes().chunks(CHUNK) {
        ToChild::ConfigChunk(chunk.to_vec()).encode(&mut out);
        channel.send(&out, None)?;
    }
    ToChild::ConfigEnd.encode(&mut out);
    channel.send(&out, None)
}

/// Binds link `link`'s socket (and ties it to its interface when configured): the privileged
/// part of opening a link, shared by both modes.
pub fn open_link_socket(config: &Config, link: &Link) -> Result<(UdpLink, Option<SocketAddr>), String> {
    let (local, remote) = net::link_addresses(config, link).map_err(|e| e.to_string())?;
    let socket = net::bind(local).map_err(|e| format!("cannot bind {local}: {e}"))?;
    if let Some(dev) = &link.bind_interface {
        crate::sys::privsep::bind_to_device(socket.as_raw_fd(), dev)
            .map_err(|e| format!("cannot bind to interface {dev}: {e}"))?;
    }
    Ok((socket, remote))
}

/// Outcome of a failed receive.
#[derive(Debug)]
enum Received {
    WouldBlock,
    Fatal(String),
}

/// The child's end: asks the parent, and collects configurations it sends.
#[derive(Debug)]
pub struct ParentLink {
    channel: Channel,
    config_text: Vec<u8>,
    /// A complete new configuration, waiting to be applied.
    pub new_config: Option<String>,
    out: Vec<u8>,
}

/// Who does the privileged work.
#[derive(Debug)]
pub enum Privileges {
    /// This process: no separation.
    Own(Hooks),
    /// The parent, over the channel.
    Parent(ParentLink),
}

impl Privileges {
    /// The child's side: requests go to the parent over `channel`, which is read without
    /// blocking from the poll loop (and blocking only while waiting for an answer).
    pub fn child(channel: Channel) -> Privileges {
        if let Err(e) = channel.set_nonblocking(true) {
            log_error!("privileged parent channel: {e}");
        }
        Privileges::Parent(ParentLink {
            channel,
            config_text: Vec::new(),
            new_config: None,
            out: Vec::with_capacity(MAX_MESSAGE),
        })
    }

    pub fn channel(&self) -> Option<&Channel> {
        match self {
            Privileges::Own(_) => None,
            Privileges::Parent(p) => Some(&p.channel),
        }
    }

    /// Runs (or has the parent run) a hook.
    pub fn hook(&mut self, now: crate::proto::Instant, event: HookEvent) {
        match self {
            Privileges::Own(h) => h.push(now, event),
            Privileges::Parent(p) => {
                let sent = match ToParent::Hook(event).encode(&mut p.out) {
                    Ok(()) => p.channel.send(&p.out, None).map_err(|e| e.to_string()),
                    Err(e) => Err(e.0.to_string()),
                };
                if let Err(e) = sent {
                    log_error!("hook: cannot ask the privileged parent to run it: {e}");
                }
            }
        }
    }

    /// Sets the device's MTU (`tun` is this process's handle on it): directly, or by asking
    /// the parent.
    pub fn set_mtu(&mut self, tun: &crate::sys::tun::Tun, mtu: u16) -> Result<(), String> {
        match self {
            Privileges::Own(_) => tun.set_mtu(u32::from(mtu)).map_err(|e| e.to_string()),
            Privileges::Parent(p) => {
                ToParent::SetMtu { mtu }.encode(&mut p.out).map_err(|e| e.0.to_string())?;
                p.channel.send(&p.out, None).map_err(|e| format!("privileged parent: {e}"))
            }
        }
    }

    /// Opens link `index`'s socket: directly, or by asking the parent and waiting for the fd.
    pub fn open_link(
        &mut self,
        config: &Config,
        index: usize,
    ) -> Result<(UdpLink, Option<SocketAddr>), String> {
        match self {
            Privileges::Own(_) => open_link_socket(config, &config.links[index]),
            Privileges::Parent(p) => p.open_link(index),
        }
    }
}

impl ParentLink {
    fn open_link(&mut self, index: usize) -> Result<(UdpLink, Option<SocketAddr>), String> {
        let ask = ToParent::OpenLink { index: index as u16 };
        ask.encode(&mut self.out).map_err(|e| e.0.to_string())?;
        self.channel.send(&self.out, None).map_err(|e| format!("privileged parent: {e}"))?;
        // The answer comes next, perhaps after configuration chunks already on their way.
        self.channel.set_nonblocking(false).map_err(|e| e.to_string())?;
        let result = loop {
            let (msg, fd) = match self.receive() {
                Ok(Some(m)) => m,
                Ok(None) => break Err("privileged parent is gone".to_string()),
                Err(Received::WouldBlock) => continue,
                Err(Received::Fatal(e)) => break Err(e),
            };
            match msg {
                ToChild::LinkOpened { index: i, remote } if usize::from(i) == index => match fd {
                    Some(fd) => break Ok((UdpLink::from_fd(fd), remote)),
                    None => break Err("no socket came with the answer".into()),
                },
                ToChild::LinkFailed { index: i, reason } if usize::from(i) == index => break Err(reason),
                other => {
                    if let Err(e) = self.take_config_part(other) {
                        break Err(e);
                    }
                }
            }
        };
        let _ = self.channel.set_nonblocking(true);
        result
    }

    fn receive(&mut self) -> Result<Option<(ToChild, Option<OwnedFd>)>, Received> {
        let mut buf = [0u8; MAX_MESSAGE];
        let (n, fd) = match self.channel.recv(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Received::WouldBlock),
            Err(e) => return Err(Received::Fatal(format!("privileged parent: {e}"))),
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = ToChild::decode(&buf[..n])
            .map_err(|e| Received::Fatal(format!("privileged parent sent garbage: {}", e.0)))?;
        Ok(Some((msg, fd)))
    }

    fn take_config_part(&mut self, msg: ToChild) -> Result<(), String> {
        match msg {
            ToChild::ConfigChunk(b)
                if self.config_text.len() + b.len() <= crate::config::MAX_FILE_SIZE as usize =>
            {
                self.config_text.extend_from_slice(&b);
                Ok(())
            }
            ToChild::ConfigEnd => {
                let text = std::mem::take(&mut self.config_text);
                self.new_config =
                    Some(String::from_utf8(text).map_err(|_| "configuration not UTF-8".to_string())?);
                Ok(())
            }
            ToChild::ConfigChunk(_) => Err("configuration from the privileged parent too long".into()),
            ToChild::LinkOpened { index, .. } | ToChild::LinkFailed { index, .. } => {
                Err(format!("unexpected answer from the privileged parent for link {index}"))
            }
        }
    }

    /// Reads what the parent sent unasked (the channel is readable). `Err` is fatal.
    pub fn read(&mut self) -> Result<(), String> {
        loop {
            match self.receive() {
                Ok(Some((msg, _fd))) => self.take_config_part(msg)?,
                Ok(None) => return Err("privileged parent is gone".into()),
                Err(Received::WouldBlock) => return Ok(()),
                Err(Received::Fatal(e)) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let mut out = Vec::new();
        for m in [
            ToParent::OpenLink { index: 3 },
            ToParent::Hook(HookEvent::TuntapUp),
            ToParent::Hook(HookEvent::RtunDown("lte-2".into(), None)),
            ToParent::Hook(HookEvent::RtunUp("lte-2".into(), Some("paris".into()))),
            ToParent::Hook(HookEvent::SiteUp("paris".into())),
            ToParent::Hook(HookEvent::SiteDown("lyon-1".into())),
            ToParent::SetMtu { mtu: 1339 },
        ] {
            m.encode(&mut out).unwrap();
            assert_eq!(ToParent::decode(&out), Ok(m));
        }
        assert!(ToParent::decode(&[2, 0, 5, 3, b'a', b' ', b'b', b'c']).is_err(), "space in a name");
        assert!(ToParent::decode(&[2, 0, 1, 3]).is_err(), "empty name");
        assert!(ToParent::decode(&[2, 0, 2, 1, b'x']).is_err(), "tuntap_up takes no name");
        assert!(ToParent::decode(&[1, 0, 3, 0, 1, 2]).is_err(), "wrong length");
        assert!(ToParent::decode(&[9, 0, 0]).is_err());
        assert!(ToParent::decode(&[1, 0]).is_err());
        assert!(ToParent::Hook(HookEvent::RtunUp("x".repeat(65), None)).encode(&mut out).is_err());
    }

    #[test]
    fn answers_round_trip() {
        let mut out = Vec::new();
        for m in [
            ToChild::LinkOpened { index: 1, remote: Some("192.0.2.1:5080".parse().unwrap()) },
            ToChild::LinkOpened { index: 2, remote: Some("[2001:db8::1]:5081".parse().unwrap()) },
            ToChild::LinkOpened { index: 0, remote: None },
            ToChild::LinkFailed { index: 4, reason: "no such host".into() },
            ToChild::ConfigChunk(b"[general]\n".to_vec()),
            ToChild::ConfigEnd,
        ] {
            m.encode(&mut out);
            assert_eq!(ToChild::decode(&out), Ok(m));
        }
        assert!(ToChild::decode(&[10, 0, 3, 0, 1, 5]).is_err(), "bad address family");
        assert!(ToChild::decode(&[13, 0, 1, 0]).is_err());
        // A long reason is cut to 512 bytes at a character boundary, and still decodes.
        let long = ToChild::LinkFailed { index: 1, reason: "é".repeat(400) };
        long.encode(&mut out);
        assert_eq!(ToChild::decode(&out), Ok(ToChild::LinkFailed { index: 1, reason: "é".repeat(256) }));
        let mut bad = out.clone();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert!(ToChild::decode(&bad).is_err(), "not UTF-8");
    }
}
