//! The daemon: one thread, one `poll(2)` table, the engine in the middle.
//!
//! Slot 0 of the poll table is the signalfd, slot 1 the TUN device, slots 2.. the link sockets.
//! Each round drains every readable fd, at most [`BATCH`] packets per fd so a flooded link
//! cannot starve the others, hands each packet to the engine, and drains the engine's outputs;
//! then the loop sleeps until an fd is readable or the engine's `poll_timeout`.

use super::gro::Coalescer;
use super::hooks::{HookEvent, Hooks};
use super::net::{self, SOCKET_BUFFER};
use super::offload::{self, Segmenter, VNET_HDR_LEN, VnetHdr};
use super::privsep::Privileges;
use crate::config::{self, Config, TunTap};
use crate::control::{self, ControlServer, ShellInfo};
use crate::log::Throttle;
use crate::proto::sites::Sites;
use crate::proto::wire::{DATA_OVERHEAD, MAX_CONTROL_LEN};
use crate::proto::{DownReason, Duration, Event, Instant, LinkState, Received};
use crate::sys::poll::{Interest, Poller};
use crate::sys::proctitle::ProcTitle;
use crate::sys::signals::{Signal, Signals};
use crate::sys::tun::{Tun, TunKind};
use crate::sys::udp::{Batch, GRO_SLOT_SIZE, UdpLink};
use crate::sys::{process, random};
use crate::{log_debug, log_error, log_info, log_warn};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Packets read from one fd per round.
const BATCH: usize = 64;
/// Datagrams moved per `recvmmsg`/`sendmmsg` call.
const SYSCALL_BATCH: usize = 32;

/// Receive slots per `recvmmsg` when each may hold a run of datagrams (see [`rx_batch`]).
const GRO_BATCH: usize = 4;
/// How long to wait before retrying a link whose address could not be resolved or bound.
const LINK_RETRY: Duration = Duration::from_secs(5);
/// A link whose every send fails this long is opened afresh: its WAN went away and came back
/// (a new PPP interface, a new DHCP address), and the old socket is tied to what is gone.
const REBIND_AFTER: Duration = Duration::from_secs(2);
/// How long shutdown waits for the down hooks.
const SHUTDOWN_HOOK_WAIT: Duration = Duration::from_secs(3);
/// At most one log line per this period for a repeating failure.
const THROTTLE: Duration = Duration::from_secs(10);

const SLOT_SIGNALS: usize = 0;
const SLOT_TUN: usize = 1;
/// The channel to the privileged parent (disabled when there is none).
const SLOT_PARENT: usize = 2;
// Slots after the TUN's belong to the control server, then come the links (`link_base`).

/// Fatal at start: the message for the operator, exit status 1.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn start_error(what: &str, e: impl std::fmt::Display) -> StartError {
    StartError(format!("{what}: {e}"))
}

#[derive(Debug)]
struct LinkIo {
    name: String,
    /// The addresses it was opened with (a reload that changes them opens a new socket).
    config: config::Link,
    socket: Option<UdpLink>,
    /// The address `socket` is bound to.
    local: Option<SocketAddr>,
    /// When to try resolving and binding again, if `socket` is missing.
    retry_at: Option<Instant>,
    /// Since when every send has failed (the WAN is gone, or its address changed).
    failing_since: Option<Instant>,
    /// Datagrams waiting for the next `sendmmsg`.
    tx: Batch,
    send_errors: Throttle,
    recv_errors: Throttle,
    /// A send was refused as larger than the interface (`EMSGSIZE`), and logged: ask the
    /// route's MTU.
    too_big: bool,
}

impl LinkIo {
    fn new(config: &config::Link, now: Instant, slot: usize) -> Self {
        LinkIo {
            tx: Batch::new(SYSCALL_BATCH, slot),
            name: config.name.clone(),
            config: config.clone(),
            socket: None,
            local: None,
            retry_at: Some(now),
            failing_since: None,
            send_errors: Throttle::new(THROTTLE),
            recv_errors: Throttle::new(THROTTLE),
            too_big: false,
        }
    }
}

/// Counters of what the shell (not the engine) dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShellDrops {
    /// Packets from the TUN device we could not handle (offload headers we do not know).
    pub tun_read: u64,
    pub tun_write: u64,
    pub send: u64,
}

/// What the daemon was started with, beyond the configuration file.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `--name`.
    pub name: String,
    /// `--natural-title`: leave the process title alone.
    pub natural_title: bool,
}

pub struct Daemon {
    identity: Identity,
    config_path: PathBuf,
    config: Config,
    engine: Sites,
    /// Sites up, as the hook was told (`tuntap_up` with the first, `tuntap_down` after the
    /// last).
    sites_up: usize,
    control: ControlServer,
    title: Option<ProcTitle>,
    /// Index of the first link's poll slot.
    link_base: usize,
    started: Instant,
    last_reload: u64,
    tun: Tun,
    links: Vec<LinkIo>,
    poller: Poller,
    signals: Signals,
    /// Who runs hooks and opens sockets: this process, or the privileged parent.
    privileges: Privileges,
    /// Datagrams in and out: header room plus the largest packet.
    buf: Vec<u8>,
    /// Reads from a TUN device with offloads: header room plus a 64 KiB super-packet.
    big: Vec<u8>,
    /// Datagrams received by one `recvmmsg`.
    rx: Batch,
    /// Control datagrams and packets released by the reorder buffer.
    out: Vec<u8>,
    /// TCP segments on their way to the TUN device, joined (offloads only).
    gro: Coalescer,
    pub drops: ShellDrops,
    tun_errors: Throttle,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("tun", &self.tun.name()).finish_non_exhaustive()
    }
}

fn tun_kind(t: TunTap) -> TunKind {
    match t {
        TunTap::Tun => TunKind::Tun,
        TunTap::Tap => TunKind::Tap,
    }
}

fn hook_env(config: &Config) -> Vec<(String, String)> {
    let mut env = vec![("MTU".to_string(), config.mtu.to_string())];
    env.extend(config.hook_env.vars().iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

pub fn make_hooks(config: &Config, device: &str) -> Result<Hooks, StartError> {
    let script = config.status_command.as_ref().map(PathBuf::from);
    if let Some(s) = &script {
        process::check_hook_permissions(s, process::effective_uid())
            .map_err(|e| StartError(format!("statuscommand {}: {e}", s.display())))?;
    }
    let sites = config.sites.iter().map(|s| (s.name.clone(), s.hook_env.clone())).collect();
    Ok(Hooks::new(script, device, hook_env(config)).with_sites(sites))
}

/// The TUN device, with offloads when it is a TUN (not TAP), the configuration allows, and the
/// kernel has them.
fn open_tun(config: &Config) -> io::Result<Tun> {
    if config.tuntap == TunTap::Tun && config.tun_offload {
        match Tun::open_offload(&config.interface_name) {
            Ok(t) => return Ok(t),
            Err(e) => log_info!("{}: no TUN offloads ({e}); one packet per read", config.interface_name),
        }
    }
    Tun::open(&config.interface_name, tun_kind(config.tuntap))
}

/// Writes the packet at `buf[start..end]` to the TUN device, with the `virtio_net_hdr` it
/// needs when offloads are on (in the `VNET_HDR_LEN` bytes before `start`, which callers keep
/// free).
fn write_packet(tun: &Tun, buf: &mut [u8], start: usize, end: usize) -> io::Result<usize> {
    if tun.has_vnet_hdr() {
        VnetHdr::write_delivered(&mut buf[start - VNET_HDR_LEN..start]);
        tun.write(&buf[start - VNET_HDR_LEN..end])
    } else {
        tun.write(&buf[start..end])
    }
}

/// Hands the packet at `buf[start..end]` to the TUN device. With offloads, TCP segments are
/// held to be joined with the next ones of their flow ([`Coalescer`]) and written when the
/// flow breaks or the loop is about to wait ([`write_held`]).
fn deliver(tun: &Tun, gro: &mut Coalescer, buf: &mut [u8], start: usize, end: usize) -> io::Result<()> {
    if !tun.has_vnet_hdr() {
        return write_packet(tun, buf, start, end).map(drop);
    }
    if gro.push(&buf[start..end]) {
        return Ok(());
    }
    if gro.is_empty() {
        return write_packet(tun, buf, start, end).map(drop);
    }
    let held = write_held(tun, gro);
    if !gro.push(&buf[start..end]) {
        write_packet(tun, buf, start, end)?;
    }
    held
}

/// Writes what the coalescer holds, if anything.
fn write_held(tun: &Tun, gro: &mut Coalescer) -> io::Result<()> {
    match gro.take() {
        Some(packet) => tun.write(packet).map(drop),
        None => Ok(()),
    }
}

/// The receive batch: slots of one datagram each, or, when the links' sockets may join
/// datagrams (`UDP_GRO`, on with the TUN offloads), fewer slots of 64 KiB, each of which may
/// hold ~45 full-size datagrams. Few, because under load every page of them is touched: 4
/// slots are 256 KiB of the daemon's memory, 32 would be 2 MiB.
fn rx_batch(tun: &Tun, datagram: usize) -> Batch {
    if tun.has_vnet_hdr() {
        Batch::new(GRO_BATCH, GRO_SLOT_SIZE.max(datagram))
    } else {
        Batch::new(SYSCALL_BATCH, datagram)
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The control server of a configuration: its UNIX socket and HTTP listener, if any.
fn bind_control(config: &Config) -> Result<ControlServer, StartError> {
    let http = match &config.control_bind {
        Some(b) => {
            Some(net::resolve(&b.host, b.port, None).map_err(|e| start_error("control_bind_host", e))?)
        }
        None => None,
    };
    ControlServer::bind(config.control_unix_path.as_deref().map(Path::new), http)
        .map_err(|e| start_error("control socket", e))
}

fn seed() -> Result<[u8; 32], StartError> {
    let mut s = [0u8; 32];
    random::fill(&mut s).map_err(|e| start_error("cannot read random bytes", e))?;
    Ok(s)
}

impl Daemon {
    /// Everything up to the first poll: TUN device, sockets, engine, control socket.
    pub fn start(identity: Identity, config_path: PathBuf, config: Config) -> Result<Daemon, StartError> {
        let signals = Signals::new().map_err(|e| start_error("cannot set up signals", e))?;
        let mut control = bind_control(&config)?;
        let tun = open_tun(&config)
            .map_err(|e| start_error(&format!("cannot open TUN device {}", config.interface_name), e))?;
        tun.set_mtu(u32::from(config.mtu)).map_err(|e| start_error("cannot set the device MTU", e))?;
        tun.set_up(true).map_err(|e| start_error("cannot bring the device up", e))?;
        log_info!("{} {} up, mtu {}", config.tuntap.as_str(), tun.name(), config.mtu);
        let hooks = make_hooks(&config, tun.name())?;
        let now = super::now();
        let engine = Sites::new(config.engine_config(), config.layout(), seed()?, now)
            .map_err(|e| start_error("sites", e))?;
        let mut poller = Poller::with_capacity(3 + control.slots_needed() + config.links.len());
        poller.register(&signals, Interest::Read);
        poller.register(&tun, Interest::Read);
        poller.register(&signals, Interest::Read);
        poller.disable(SLOT_PARENT);
        control.register(&mut poller);
        let link_base = poller.len();
        let buf_len = DATA_OVERHEAD + config.engine_mtu() + 64;
        let gro = Coalescer::new(tun.has_udp_offload());
        let rx = rx_batch(&tun, buf_len.max(2048));
        let title = if identity.natural_title { None } else { ProcTitle::init().ok() };
        let big = if tun.has_vnet_hdr() { vec![0; DATA_OVERHEAD + 65_536] } else { Vec::new() };
        let mut d = Daemon {
            identity,
            config_path,
            engine,
            sites_up: 0,
            control,
            title,
            link_base,
            started: now,
            last_reload: unix_now(),
            tun,
            links: Vec::new(),
            poller,
            signals,
            privileges: Privileges::Own(hooks),
            buf: vec![0; buf_len.max(2048)],
            big,
            rx,
            out: vec![0; buf_len.max(MAX_CONTROL_LEN)],
            gro,
            drops: ShellDrops::default(),
            tun_errors: Throttle::new(THROTTLE),
            config,
        };
        let slot = d.buf.len();
        let links: Vec<LinkIo> = d.config.links.iter().map(|l| LinkIo::new(l, now, slot)).collect();
        d.install_links(now, links);
        d.update_title();
        Ok(d)
    }

    /// Takes `links` as the link table (index = engine link index), points the poll slots at
    /// their sockets, and opens the ones that have none yet.
    fn install_links(&mut self, now: Instant, links: Vec<LinkIo>) {
        self.links = links;
        let needed = self.link_base + self.links.len();
        while self.poller.len() < needed {
            self.poller.register(&self.signals, Interest::Read);
        }
        for slot in self.link_base..self.poller.len() {
            self.poller.disable(slot);
        }
        for i in 0..self.links.len() {
            match &self.links[i].socket {
                Some(socket) => self.poller.set_fd(self.link_base + i, socket),
                None => self.try_open_link(i, now),
            }
        }
    }

    fn try_open_link(&mut self, i: usize, now: Instant) {
        let result = self.privileges.open_link(&self.config, i);
        let io = &mut self.links[i];
        match result {
            Ok((mut socket, remote)) => {
                if let Err(e) = socket.set_buffer_sizes(SOCKET_BUFFER, SOCKET_BUFFER) {
                    log_warn!("link {}: cannot size socket buffers: {e}", io.name);
                }
                if self.tun.has_vnet_hdr() {
                    let (gso, gro) = socket.enable_offloads();
                    log_debug!("net", "link {}: UDP send offload {gso}, receive offload {gro}", io.name);
                }
                io.local = socket.local_addr().ok();
                let local = io.local.map(|a| a.to_string()).unwrap_or_default();
                match remote {
                    Some(r) => log_info!("link {}: {local} -> {r}", io.name),
                    None => log_info!("link {}: listening on {local}", io.name),
                }
                self.poller.set_fd(self.link_base + i, &socket);
                io.socket = Some(socket);
                io.retry_at = None;
                if let Some(r) = remote {
                    self.engine.set_remote(i, r);
                }
            }
            Err(e) => {
                if io.recv_errors.allow(now).is_some() {
                    log_error!("link {}: {e}; retrying every {} s", io.name, LINK_RETRY.as_millis() / 1000);
                }
                io.retry_at = Some(now + LINK_RETRY);
            }
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let retry = self.links.iter().filter_map(|l| l.retry_at).min();
        let hooks = match &self.privileges {
            Privileges::Own(h) => h.deadline(),
            Privileges::Parent(_) => None,
        };
        [self.engine.poll_timeout(), hooks, self.control.deadline(), retry].into_iter().flatten().min()
    }

    /// Answers control clients; the snapshot is taken only if one asked for a document.
    fn serve_control(&mut self, now: Instant) {
        let Daemon {
            identity, links, drops, started, last_reload, config, tun, engine, control, poller, ..
        } = self;
        // Everything below runs only when a client asked for a document.
        let mut snapshot = || {
            let local: Vec<_> = links.iter().map(|l| l.local).collect();
            let shell_drops =
                [("tun_read", drops.tun_read), ("tun_write", drops.tun_write), ("send", drops.send)];
            let shell = ShellInfo {
                name: &identity.name,
                version: env!("CARGO_PKG_VERSION"),
                pid: std::process::id(),
                now,
                unix_now: unix_now(),
                started: *started,
                last_reload: *last_reload,
                tuntap_type: config.tuntap.as_str(),
                tuntap_name: tun.name(),
                tuntap_mtu: (engine.tunnel_mtu() - (config.engine_mtu() - usize::from(config.mtu))) as u64,
                local: &local,
                shell_drops: &shell_drops,
            };
            control::snapshot(engine, &shell)
        };
        control.handle(poller, now, &mut snapshot);
    }

    /// `mlvpn: @up ~lossy-or-slow !down`, like MLVPN's, unless `--natural-title`; a server
    /// with sites: `mlvpn: 3/100 sites up`.
    fn update_title(&self) {
        let Some(title) = &self.title else { return };
        let mut t = format!("{}:", self.identity.name);
        if self.engine.is_many() {
            t.push_str(&format!(" {}/{} sites up", self.engine.up_count(), self.config.sites.len()));
            return title.set(&t);
        }
        let links = self.engine.first().map_or(&[][..], |e| e.links());
        for (io, l) in self.links.iter().zip(links) {
            let mark = match l.state {
                LinkState::Up => '@',
                LinkState::Lossy | LinkState::Slow => '~',
                LinkState::Down | LinkState::Authenticating => '!',
            };
            t.push(' ');
            t.push(mark);
            t.push_str(&io.name);
        }
        title.set(&t);
    }

    /// Runs until SIGTERM/SIGINT. Returns the exit status.
    pub fn run(&mut self) -> i32 {
        loop {
            let now = super::now();
            let timeout = self.next_wakeup().map(|t| std::time::Duration::from_micros((t - now).as_micros()));
            if let Err(e) = self.poller.wait(timeout) {
                log_error!("poll: {e}");
                return 1;
            }
            let now = super::now();
            if self.poller.readable(SLOT_SIGNALS) {
                loop {
                    match self.signals.read() {
                        Ok(Some(Signal::Terminate)) => return self.shutdown(),
                        Ok(Some(Signal::Reload)) => self.reload(now),
                        Ok(Some(Signal::Child)) => self.poll_hooks(now),
                        Ok(None) => break,
                        Err(e) => {
                            log_error!("reading signals: {e}");
                            break;
                        }
                    }
                }
            }
            for i in 0..self.links.len() {
                let slot = self.link_base + i;
                if self.poller.readable(slot) || self.poller.error(slot) {
                    self.read_link(i, now);
                }
            }
            if self.poller.readable(SLOT_TUN) {
                self.read_tun(now);
            }
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
            }
            self.poll_hooks(now);
            if self.poller.readable(SLOT_PARENT) {
                if let Err(e) = self.read_parent(now) {
                    log_error!("{e}");
                    return 1;
                }
            }
            for i in 0..self.links.len() {
                let io = &mut self.links[i];
                if io.failing_since.is_some_and(|t| now - t >= REBIND_AFTER) {
                    if io.recv_errors.allow(now).is_some() {
                        log_info!(
                            "link {}: its interface or address went away; opening its socket again",
                            io.name
                        );
                    }
                    io.socket = None;
                    io.local = None;
                    io.failing_since = None;
                    self.poller.disable(self.link_base + i);
                    self.try_open_link(i, now);
                } else if io.retry_at.is_some_and(|t| t <= now) {
                    self.try_open_link(i, now);
                }
            }
            self.flush(now);
            self.write_held(now);
            self.send_pending(now);
            self.serve_control(now);
        }
    }

    fn read_link(&mut self, i: usize, now: Instant) {
        let mut handled = 0;
        while handled < BATCH {
            let Some(socket) = &self.links[i].socket else { return };
            let n = match socket.recv_batch(&mut self.rx) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors surface here (port unreachable after a server restart...).
                    if let Some(held) = self.links[i].recv_errors.allow(now) {
                        log_debug!(
                            "net",
                            "link {}: receive: {e} ({held} more not shown)",
                            self.links[i].name
                        );
                    }
                    break;
                }
            };
            for k in 0..n {
                let Daemon { rx, engine, tun, gro, links, drops, .. } = self;
                let segment = rx.segment_size(k);
                let Some((slot, from)) = rx.get_mut(k) else { break };
                // One datagram, or several of `segment` bytes joined by the kernel (UDP_GRO).
                let size = segment.unwrap_or(slot.len()).max(1);
                for datagram in slot.chunks_mut(size) {
                    handled += 1;
                    match engine.handle_datagram(now, i, from, datagram) {
                        Received::Deliver(range) => {
                            if let Err(e) = deliver(tun, gro, datagram, range.start, range.end) {
                                drops.tun_write += 1;
                                if let Some(held) = self.tun_errors.allow(now) {
                                    log_warn!("{}: write: {e} ({held} more not shown)", tun.name());
                                }
                            }
                        }
                        Received::Reply(len) => send(&mut links[i], drops, now, &datagram[..len], from),
                        Received::Consumed | Received::Dropped(_) => {}
                    }
                }
                self.flush(now);
            }
            if n < self.rx.capacity() {
                break;
            }
        }
        self.write_held(now);
        self.send_pending(now);
    }

    /// Writes the TCP segments the coalescer joined so far.
    fn write_held(&mut self, now: Instant) {
        if let Err(e) = write_held(&self.tun, &mut self.gro) {
            self.tun_write_failed(now, e);
        }
    }

    /// Hands every link's waiting datagrams to the kernel, a batch per syscall.
    fn send_pending(&mut self, now: Instant) {
        for i in 0..self.links.len() {
            send_batch(&mut self.links[i], &mut self.drops, now);
            if std::mem::take(&mut self.links[i].too_big) {
                self.path_mtu_hint(now, None, i);
            }
        }
    }

    /// Tells the engine what this host believes link `i`'s path to `site` carries (its
    /// route's MTU): a size for path MTU discovery to check. `None`: to every site.
    fn path_mtu_hint(&mut self, now: Instant, site: Option<usize>, i: usize) {
        let sites = match site {
            Some(s) => s..s + 1,
            None => 0..self.config.sites.len().max(1),
        };
        for s in sites {
            let Some(peer) = self.engine.peer(s, i) else { continue };
            if let Ok(mtu) = crate::sys::udp::route_mtu(peer) {
                self.engine.handle_path_mtu_hint(now, s, i, mtu);
            }
        }
    }

    fn read_tun(&mut self, now: Instant) {
        if self.tun.has_vnet_hdr() {
            return self.read_tun_offload(now);
        }
        let max = self.config.engine_mtu();
        for _ in 0..BATCH {
            let n = match self.tun.read(&mut self.buf[DATA_OVERHEAD..DATA_OVERHEAD + max]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.tun_read_failed(now, e);
                    break;
                }
            };
            into_tunnel(&mut self.engine, &mut self.links, &mut self.drops, now, &mut self.buf, n);
        }
        self.flush(now);
        self.send_pending(now);
    }

    /// Reads with offloads: a TCP super-packet is cut into segments, each sent as a packet;
    /// anything else has its checksum completed and goes as it is (read straight into place).
    fn read_tun_offload(&mut self, now: Instant) {
        let at = DATA_OVERHEAD - VNET_HDR_LEN;
        let mut packets = 0;
        while packets < BATCH {
            let read = match self.tun.read(&mut self.big[at..]) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.tun_read_failed(now, e);
                    break;
                }
            };
            // A read too short for its header, or a header we cannot parse: a counted drop, and
            // a read all the same (work per wakeup stays bounded).
            let header = (read > VNET_HDR_LEN).then(|| VnetHdr::parse(&self.big[at..])).flatten();
            let Some(h) = header else {
                packets += 1;
                self.drops.tun_read += 1;
                continue;
            };
            let n = read - VNET_HDR_LEN;
            let packet = DATA_OVERHEAD..DATA_OVERHEAD + n;
            if !h.is_gso() {
                packets += 1;
                if offload::complete_checksum(&h, &mut self.big[packet]).is_err() {
                    self.drops.tun_read += 1;
                    continue;
                }
                into_tunnel(&mut self.engine, &mut self.links, &mut self.drops, now, &mut self.big, n);
                continue;
            }
            let Ok(mut cut) = Segmenter::new(&h, &self.big[packet]) else {
                self.drops.tun_read += 1;
                continue;
            };
            let max = self.config.engine_mtu();
            while let Some(seg) = cut.next(&mut self.buf[DATA_OVERHEAD..DATA_OVERHEAD + max]) {
                packets += 1;
                match seg {
                    Ok(len) => into_tunnel(
                        &mut self.engine,
                        &mut self.links,
                        &mut self.drops,
                        now,
                        &mut self.buf,
                        len,
                    ),
                    Err(_) => self.drops.tun_read += 1,
                }
            }
        }
        self.flush(now);
        self.send_pending(now);
    }

    fn tun_read_failed(&mut self, now: Instant, e: io::Error) {
        if let Some(held) = self.tun_errors.allow(now) {
            log_error!("{}: read: {e} ({held} more not shown)", self.tun.name());
        }
    }

    fn tun_write_failed(&mut self, now: Instant, e: io::Error) {
        self.drops.tun_write += 1;
        if let Some(held) = self.tun_errors.allow(now) {
            log_warn!("{}: write: {e} ({held} more not shown)", self.tun.name());
        }
    }

    /// Drains the engine: control datagrams out, released packets to the TUN, events to the
    /// log and the hooks.
    fn flush(&mut self, now: Instant) {
        while let Some(tx) = self.engine.poll_transmit(now, &mut self.out) {
            let data = &self.out[..tx.len];
            send(&mut self.links[tx.link], &mut self.drops, now, data, tx.dst);
        }
        while let Some(n) = self.engine.poll_deliver(now, &mut self.out[VNET_HDR_LEN..]) {
            if let Err(e) = deliver(&self.tun, &mut self.gro, &mut self.out, VNET_HDR_LEN, VNET_HDR_LEN + n) {
                self.tun_write_failed(now, e);
            }
        }
        while let Some((site, event)) = self.engine.poll_event() {
            self.on_event(now, site, event);
        }
    }

    /// A link's name for the log: `dsl`, or on a server with sites `paris/dsl`.
    fn link_name(&self, site: usize, i: usize) -> String {
        match self.site_name(site) {
            Some(s) => format!("{s}/{}", self.links[i].name),
            None => self.links[i].name.clone(),
        }
    }

    /// The site's name, on a server with sites.
    fn site_name(&self, site: usize) -> Option<String> {
        self.engine.is_many().then(|| self.engine.name(site).to_string())
    }

    fn on_event(&mut self, now: Instant, site: usize, event: Event) {
        match event {
            Event::Link { link, from, to, reason } => {
                let name = self.link_name(site, link);
                let Some(l) = self.engine.tunnel(site).and_then(|t| t.links().get(link)) else { return };
                match to {
                    LinkState::Up => {
                        let srtt = l.rtt.srtt().map_or(0, |d| d.as_millis());
                        log_info!("link {name}: up (rtt {srtt} ms)");
                    }
                    LinkState::Down => {
                        let why = match reason {
                            Some(DownReason::Timeout) => "nothing heard for the timeout",
                            Some(DownReason::Unanswered) => "data unanswered",
                            Some(DownReason::PeerDisconnected) => "peer disconnected",
                            Some(DownReason::PeerRestarted) => "peer restarted",
                            Some(DownReason::Closed) => "shutting down",
                            None => "down",
                        };
                        if from.is_connected() {
                            log_info!("link {name}: down ({why})");
                        } else {
                            log_debug!("protocol", "link {name}: {from:?} -> down ({why})");
                        }
                    }
                    LinkState::Lossy => {
                        log_warn!(
                            "link {name}: lossy ({}% loss): carries no data until it recovers",
                            l.loss_out().unwrap_or(0)
                        )
                    }
                    LinkState::Slow => log_warn!(
                        "link {name}: slow (rtt {} ms): carries no data until it recovers",
                        l.rtt.srtt().map_or(0, |d| d.as_millis())
                    ),
                    LinkState::Authenticating => log_debug!("protocol", "link {name}: handshake"),
                }
                let (link_name, site_name) = (self.links[link].name.clone(), self.site_name(site));
                match (from.is_connected(), to.is_connected()) {
                    (false, true) => {
                        self.path_mtu_hint(now, Some(site), link);
                        self.privileges.hook(now, HookEvent::RtunUp(link_name, site_name));
                    }
                    (true, false) => self.privileges.hook(now, HookEvent::RtunDown(link_name, site_name)),
                    _ => {}
                }
                self.update_title();
            }
            Event::TunnelUp => match self.site_name(site) {
                None => {
                    log_info!("tunnel up");
                    self.privileges.hook(now, HookEvent::TuntapUp);
                }
                Some(name) => {
                    log_info!("site {name}: up");
                    self.site_up(now, name);
                }
            },
            Event::TunnelDown => match self.site_name(site) {
                None => {
                    log_info!("tunnel down: no link left");
                    self.privileges.hook(now, HookEvent::TuntapDown);
                }
                Some(name) => {
                    log_info!("site {name}: down (no link left)");
                    self.site_down(now, name);
                }
            },
            Event::PeerRestarted => match self.site_name(site) {
                None => log_info!("the peer restarted"),
                Some(name) => log_info!("site {name}: its router restarted"),
            },
            Event::AuthenticationFailed { link, from } => {
                log_warn!(
                    "link {}: authentication failed from {from} (wrong password?)",
                    self.link_name(site, link)
                )
            }
            Event::HandshakeUnanswered { link } => log_warn!(
                "link {}: no answer to handshake (server down, unreachable, or another password)",
                self.link_name(site, link)
            ),
            Event::PeerMoved { link, to } => {
                log_info!("link {}: peer now at {to}", self.link_name(site, link))
            }
            // One line for every change (searching, done, black_hole, unusable: the last two
            // are worth a look; `mlvpn status` says more).
            Event::PathMtu { link, mtu, state } => {
                log_info!("link {}: path MTU {mtu} ({})", self.link_name(site, link), state.name())
            }
            Event::TunnelMtu { mtu } => {
                // The device's MTU is the engine's less the Ethernet header a TAP device adds.
                let device = mtu - (self.config.engine_mtu() - usize::from(self.config.mtu));
                let device = u16::try_from(device).unwrap_or(self.config.mtu);
                if let Err(e) = self.privileges.set_mtu(&self.tun, device) {
                    log_error!("{}: cannot set the MTU to {device}: {e}", self.tun.name());
                } else {
                    log_info!("{}: mtu {device}, for the smallest path", self.tun.name());
                }
            }
        }
    }

    /// A site's first link came up: the device's `tuntap_up` first if no site was up.
    fn site_up(&mut self, now: Instant, name: String) {
        if self.sites_up == 0 {
            self.privileges.hook(now, HookEvent::TuntapUp);
        }
        self.sites_up += 1;
        self.privileges.hook(now, HookEvent::SiteUp(name));
        self.update_title();
    }

    /// A site's last link went down (or the site was removed while up).
    fn site_down(&mut self, now: Instant, name: String) {
        self.privileges.hook(now, HookEvent::SiteDown(name));
        self.sites_up = self.sites_up.saturating_sub(1);
        if self.sites_up == 0 {
            self.privileges.hook(now, HookEvent::TuntapDown);
        }
        self.update_title();
    }

    /// SIGHUP: re-read the configuration and apply it without bouncing what did not change.
    ///
    /// A file with errors changes nothing (the running configuration stays, and the log says
    /// why). Links are matched by name: one whose addresses are unchanged keeps its socket and
    /// its session, so its traffic goes on untouched; one whose addresses changed gets a new
    /// socket but keeps its session (the peer follows the new address). New links start,
    /// removed ones say goodbye to the peer.
    fn reload(&mut self, now: Instant) {
        if matches!(self.privileges, Privileges::Parent(_)) {
            log_warn!("SIGHUP: send it to the privileged parent, which can read the configuration");
            return;
        }
        let new = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                log_error!("reload: keeping the running configuration, the new one has errors:\n{e}");
                return;
            }
        };
        self.apply_config(now, new);
    }

    /// The privileged parent sent something: a new configuration, checked, to apply.
    fn read_parent(&mut self, now: Instant) -> Result<(), String> {
        let Privileges::Parent(p) = &mut self.privileges else { return Ok(()) };
        p.read()?;
        if let Some(text) = p.new_config.take() {
            match config::parse(&self.config_path.display().to_string(), &text) {
                Ok(new) => self.apply_config(now, new),
                Err(e) => log_error!("reload: the configuration from the parent does not parse:\n{e}"),
            }
        }
        Ok(())
    }

    /// Runs the hooks' timers, when this process runs them.
    fn poll_hooks(&mut self, now: Instant) {
        if let Privileges::Own(h) = &mut self.privileges {
            h.poll(now);
        }
    }

    /// The TUN device's name.
    pub fn device(&self) -> &str {
        self.tun.name()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// In the privileged parent after the fork: close this process's copies of the device,
    /// the link sockets and the control listeners, which the child serves (a link socket held
    /// here would keep its port bound, and the child could never open it again).
    pub fn leave_to_child(self) {
        let Daemon { mut control, links, tun, .. } = self;
        control.disown_file();
        drop(control);
        drop(links);
        drop(tun);
    }

    /// From now on the privileged parent opens sockets and runs hooks.
    pub fn become_child(&mut self, privileges: Privileges) {
        self.privileges = privileges;
        self.control.disown_file();
        if let Some(channel) = self.privileges.channel() {
            self.poller.set_fd(SLOT_PARENT, channel);
        }
    }

    fn apply_config(&mut self, now: Instant, new: Config) {
        for w in &new.warnings {
            log_warn!("{w}");
        }
        if new.interface_name != self.config.interface_name || new.tuntap != self.config.tuntap {
            log_error!(
                "reload: interface_name and tuntap cannot change while running; restart mlvpn for that"
            );
            return;
        }
        if new.mode != self.config.mode {
            log_error!("reload: mode cannot change while running; restart mlvpn for that");
            return;
        }
        let hooks = match &self.privileges {
            Privileges::Own(_) => match make_hooks(&new, self.tun.name()) {
                Ok(h) => Some(h),
                Err(e) => {
                    log_error!("reload: keeping the running configuration: {e}");
                    return;
                }
            },
            Privileges::Parent(_) => None,
        };
        if new.control_unix_path != self.config.control_unix_path
            || new.control_bind != self.config.control_bind
        {
            log_warn!("reload: control socket settings change only when mlvpn restarts");
        }
        // Which links the hook was last told are up, by site: a removed link gets `rtun_down`
        // only if it has not had it already (when the peer removed it first, it went down then).
        let mut connected: Vec<(Option<String>, usize)> = Vec::new();
        for (s, (_, tunnel, _)) in self.engine.iter().enumerate() {
            let Some(t) = tunnel else { continue };
            for (i, l) in t.links().iter().enumerate() {
                if l.state.is_connected() {
                    connected.push((self.site_name(s), i));
                }
            }
        }
        let r = match self.engine.reconfigure(now, new.engine_config(), new.layout()) {
            Ok(r) => r,
            Err(e) => {
                log_error!("reload: keeping the running configuration: {e}");
                return;
            }
        };
        for (old, dst, datagram) in &r.goodbyes {
            send(&mut self.links[*old], &mut self.drops, now, datagram, *dst);
        }
        self.send_pending(now);
        let slot = (DATA_OVERHEAD + new.engine_mtu() + 64).max(2048);
        let mut old: Vec<Option<LinkIo>> = std::mem::take(&mut self.links).into_iter().map(Some).collect();
        let (mut kept, mut moved, mut added) = (0, 0, 0);
        let links: Vec<LinkIo> = new
            .links
            .iter()
            .zip(&r.continued_from)
            .map(|(l, from)| match from.and_then(|i| old[i].take()) {
                Some(io)
                    if io.config.bind_host == l.bind_host
                        && io.config.bind_port == l.bind_port
                        && io.config.remote_host == l.remote_host
                        && io.config.remote_port == l.remote_port =>
                {
                    kept += 1;
                    let tx = if io.tx.slot_size() == slot { io.tx } else { Batch::new(SYSCALL_BATCH, slot) };
                    LinkIo { config: l.clone(), tx, ..io }
                }
                Some(_) => {
                    moved += 1;
                    LinkIo::new(l, now, slot)
                }
                None => {
                    added += 1;
                    LinkIo::new(l, now, slot)
                }
            })
            .collect();
        let mut removed = 0;
        for io in old.iter().flatten() {
            removed += 1;
            log_info!("link {}: removed", io.name);
        }
        // `rtun_down` for each link that was up and is gone, by itself or with its site.
        for (site, i) in &connected {
            let site_gone = r.removed.iter().any(|s| Some(&s.name) == site.as_ref());
            if site_gone || old[*i].is_some() {
                let link = self.config.links[*i].name.clone();
                self.privileges.hook(now, HookEvent::RtunDown(link, site.clone()));
            }
        }
        for site in &r.removed {
            log_info!("site {}: removed", site.name);
            if site.was_up {
                self.site_down(now, site.name.clone());
            }
        }
        if new.mtu != self.config.mtu && matches!(self.privileges, Privileges::Own(_)) {
            // (The privileged parent sets it itself.)
            if let Err(e) = self.tun.set_mtu(u32::from(new.mtu)) {
                log_error!("reload: cannot set the MTU: {e}");
            }
        }
        if let (Some(h), Privileges::Own(own)) = (hooks, &mut self.privileges) {
            own.reconfigure(h);
        }
        self.config = new;
        let len = DATA_OVERHEAD + self.config.engine_mtu() + 64;
        self.buf.resize(len.max(2048), 0);
        self.out.resize(len.max(MAX_CONTROL_LEN), 0);
        let rx = rx_batch(&self.tun, slot);
        if self.rx.slot_size() != rx.slot_size() {
            self.rx = rx;
        }
        self.install_links(now, links);
        self.last_reload = unix_now();
        log_info!(
            "reloaded {}: {kept} links unchanged, {moved} with new addresses, {added} added, {removed} removed",
            self.config_path.display(),
        );
        self.flush(now);
        self.update_title();
    }

    /// SIGTERM: a disconnect on every link, the down hooks, and exit 0. The TUN device goes
    /// with the process.
    fn shutdown(&mut self) -> i32 {
        let now = super::now();
        log_info!("shutting down");
        self.engine.close(now);
        self.flush(now);
        self.send_pending(now);
        let until = now + SHUTDOWN_HOOK_WAIT;
        // (With a privileged parent, the parent runs the hooks and waits for them.)
        while let Privileges::Own(hooks) = &mut self.privileges {
            if hooks.idle() {
                break;
            }
            let now = super::now();
            if now >= until {
                log_warn!("shutting down without waiting longer for the hook");
                break;
            }
            let _ = self.poller.wait(Some(std::time::Duration::from_millis(20)));
            while let Ok(Some(_)) = self.signals.read() {}
            hooks.poll(now);
        }
        0
    }
}

/// Seals the packet at `buf[DATA_OVERHEAD..][..len]` and queues it on the link the engine picks
/// (or the engine keeps it for later: it comes out of `poll_transmit` in the next flush).
fn into_tunnel(
    engine: &mut Sites,
    links: &mut [LinkIo],
    drops: &mut ShellDrops,
    now: Instant,
    buf: &mut [u8],
    len: usize,
) {
    if let Ok(Some(tx)) = engine.handle_tun(now, buf, len) {
        send(&mut links[tx.link], drops, now, &buf[..tx.len], tx.dst);
    }
}

/// Queues one datagram on a link (sent with the link's next batch; a full batch goes first).
fn send(link: &mut LinkIo, drops: &mut ShellDrops, now: Instant, data: &[u8], to: SocketAddr) {
    if link.socket.is_none() || data.len() > link.tx.slot_size() {
        drops.send += 1;
        return;
    }
    if link.tx.push(data, to).is_err() {
        send_batch(link, drops, now);
        if link.tx.push(data, to).is_err() {
            drops.send += 1;
        }
    }
}

/// Sends a link's waiting datagrams; what the kernel refuses is counted, logged at most once
/// per period, and dropped (UDP: the protocol recovers).
fn send_batch(link: &mut LinkIo, drops: &mut ShellDrops, now: Instant) {
    let Some(socket) = &link.socket else {
        drops.send += link.tx.pending() as u64;
        link.tx.clear();
        return;
    };
    while link.tx.pending() > 0 {
        let pending = link.tx.pending();
        match socket.send_batch(&mut link.tx) {
            Ok(_) => link.failing_since = None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The socket buffer is full: the rest of this batch is lost, like a full queue.
                drops.send += link.tx.pending() as u64;
                break;
            }
            Err(e) => {
                // The refused datagram (or offloaded run of them) left the batch; the others
                // are tried again.
                drops.send += (pending - link.tx.pending()) as u64;
                // Errors that say the socket is tied to an interface or address that is gone.
                let stale = matches!(
                    e.raw_os_error(),
                    Some(
                        libc::ENODEV
                            | libc::ENETDOWN
                            | libc::EADDRNOTAVAIL
                            | libc::ENETUNREACH
                            | libc::EINVAL
                    )
                );
                if stale {
                    link.failing_since.get_or_insert(now);
                }
                if let Some(held) = link.send_errors.allow(now) {
                    log_warn!("link {}: send: {e} ({held} more not shown)", link.name);
                    // The route's MTU is asked (three syscalls) as often as the error is
                    // logged, not for every large send that fails until the size drops.
                    link.too_big |= e.raw_os_error() == Some(libc::EMSGSIZE);
                }
            }
        }
    }
    link.tx.clear();
}
