//! The validated configuration: what the daemon runs from, and how it becomes the engine's
//! [`proto::Config`].

use crate::proto::duplicate::BudgetLimit;
use crate::proto::flow::{Duplicate, PortList};
use crate::proto::{self, Duration, LinkConfig, Mode};
use std::fmt::{self, Write as _};

/// Path MTU we plan for: Ethernet, and what nearly every DSL, fibre or 4G uplink carries
/// (PPPoE's 1492 aside, which PMTU discovery handles).
pub const PATH_MTU: u16 = 1500;
/// Bytes our protocol adds to each packet: 13 header + 16 tag + 4 tunnel sequence
/// ([`proto::wire::DATA_OVERHEAD`]).
pub const WIRE_OVERHEAD: u16 = proto::wire::DATA_OVERHEAD as u16;
pub const UDP_HEADER: u16 = 8;
/// IPv6's header; IPv4's is 20, so a size that fits over IPv6 fits over both.
pub const IPV6_HEADER: u16 = 40;
/// What a TAP frame carries in front of the IP packet.
pub const ETHERNET_HEADER: u16 = 14;

/// Default MTU of a TUN device: the largest packet that, once wrapped, still fits a 1500-byte
/// path over IPv6 without fragmenting:
///
/// ```text
/// 1500 path − 40 IPv6 − 8 UDP − 33 mlvpn (13 header + 16 tag + 4 sequence) = 1419
/// ```
///
/// Over IPv4 (20-byte header) this leaves 20 bytes spare; we take the smaller figure so one
/// default is right whichever family the links use. The C original's default of 1432 (and the
/// OpenWrt package's 1452) fragments every full-size packet on a 1500 path.
pub const DEFAULT_TUN_MTU: u16 = PATH_MTU - IPV6_HEADER - UDP_HEADER - WIRE_OVERHEAD;
/// Default MTU of a TAP device: as [`DEFAULT_TUN_MTU`], less the 14-byte Ethernet header each
/// frame carries through the tunnel: 1419 − 14 = 1405.
pub const DEFAULT_TAP_MTU: u16 = DEFAULT_TUN_MTU - ETHERNET_HEADER;
/// Accepted `mtu`: from IPv4's minimum datagram (576) to the usual jumbo-frame size.
pub const MTU_MIN: u16 = 576;
pub const MTU_MAX: u16 = 9000;
/// IPv6 refuses links with a smaller MTU.
pub const IPV6_MIN_MTU: u16 = 1280;

/// Our default reorder buffer: the original defaulted to 0 (off), which delivers out of order
/// whenever links differ in latency, and TCP reads that as loss. The buffer holds what the fast
/// links deliver while a packet sent earlier on the slowest link is still on its way: 1024
/// slots cover a 115 ms spread at 100 Mbit/s of full-size packets (256 overflowed at 50 Mbit/s
/// with 55 ms between the links, and each packet pushed out unwaited is a loss to TCP). The
/// pool is allocated once, ~1.4 MiB at the default MTU, and its free list is LIFO, so only the
/// slots ever used at once are resident.
///
/// It is also the **floor** of `reorder_buffer_size`: a smaller value (MLVPN's example config
/// says 64) is raised to it with a warning. 64 slots are 7 ms of a 100 Mbit/s tunnel: a link
/// 10 ms slower than another overflows them, each packet pushed out is given up on, and TCP
/// took a third less through 3 × 40 Mbit/s for it. Since slots take memory only as far as they
/// are used, a larger floor costs nothing when fewer suffice. Larger values are kept; 0 still
/// turns reordering off.
pub const DEFAULT_REORDER_BUFFER_SIZE: u16 = 1024;

/// Data packets kept for loss recovery unless `retransmit_buffer_size` says otherwise. A packet
/// lost on the slowest link is asked for once the next one on that link arrives, so it must
/// still be here after that link's one-way delay and queue plus the NACK's way back: 1024
/// packets are 115 ms at 100 Mbit/s (512 were 57 ms, less than the 60 + 20 + 5 ms of a 60 ms
/// link, and a packet no longer here is a hole the reorder buffer gives up on: a loss to TCP).
/// ~1.4 MiB at the default MTU, allocated once.
pub const DEFAULT_RETRANSMIT_BUFFER_SIZE: u16 = 1024;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// 100 % turns loss detection off.
pub const DEFAULT_LOSS_TOLERANCE: u8 = 100;
pub const DEFAULT_LATENCY_TOLERANCE: Duration = Duration::from_millis(1000);
pub const DEFAULT_INTERFACE_NAME: &str = "mlvpn0";

/// The shared secret. Its `Debug` prints `<redacted>`, so a logged `Config` never leaks it;
/// [`Password::expose`] is the one way to read it, easy to grep for.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }

    /// The password itself, for key derivation only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `tuntap`: which kind of virtual device carries the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunTap {
    /// Layer 3: IP packets.
    Tun,
    /// Layer 2: Ethernet frames.
    Tap,
}

impl TunTap {
    pub fn as_str(self) -> &'static str {
        match self {
            TunTap::Tun => "tun",
            TunTap::Tap => "tap",
        }
    }

    /// Default device MTU for this kind: see [`DEFAULT_TUN_MTU`].
    pub fn default_mtu(self) -> u16 {
        match self {
            TunTap::Tun => DEFAULT_TUN_MTU,
            TunTap::Tap => DEFAULT_TAP_MTU,
        }
    }
}

/// Strings handed, verbatim, to the hook script's environment. Empty when not set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookEnv {
    pub ip4: String,
    pub ip6: String,
    pub ip4_gateway: String,
    pub ip6_gateway: String,
    pub ip4_routes: String,
    pub ip6_routes: String,
}

impl HookEnv {
    /// `(VARIABLE, value)` pairs as the original's hook receives them (it also sets `DEVICE`
    /// and `MTU`, which the daemon knows).
    pub fn vars(&self) -> [(&'static str, &str); 6] {
        [
            ("IP4", &self.ip4),
            ("IP6", &self.ip6),
            ("IP4_GATEWAY", &self.ip4_gateway),
            ("IP6_GATEWAY", &self.ip6_gateway),
            ("IP4_ROUTES", &self.ip4_routes),
            ("IP6_ROUTES", &self.ip6_routes),
        ]
    }
}

/// `control_bind_host` and `control_bind_port`: the HTTP control listener. Only ever both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlBind {
    pub host: String,
    pub port: u16,
}

/// One link: a section other than `[general]` and `[filters*]`.
///
/// The per-link tolerances are kept as written (`None` = not overridden) so a dump shows what
/// the operator set; [`Config::engine_config`] resolves them against `[general]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The section name: shown in logs and status, passed to the hook.
    pub name: String,
    /// Line of the section header, for messages about this link after loading (bind fails...).
    pub line: usize,
    pub bind_host: Option<String>,
    /// `bindinterface`: send and receive only through this network device (`SO_BINDTODEVICE`),
    /// so that each link leaves by its own WAN whatever the routing table says.
    pub bind_interface: Option<String>,
    /// 0 = any port (clients only; a server link always has one).
    pub bind_port: u16,
    /// The server's address and port. Always set on a client; a server accepts them and
    /// does not use them.
    pub remote_host: Option<String>,
    pub remote_port: Option<u16>,
    /// Upload capacity in bytes per second, the scheduler's weight. `None` when unset or 0.
    pub bandwidth_upload: Option<u64>,
    /// Download capacity in bytes per second. Accepted for compatibility; nothing uses it yet.
    pub bandwidth_download: Option<u64>,
    pub timeout: Option<Duration>,
    pub loss_tolerance: Option<u8>,
    pub latency_tolerance: Option<Duration>,
    pub fallback_only: bool,
}

impl Link {
    /// A link with nothing set.
    pub(crate) fn new(name: &str, line: usize) -> Self {
        Link {
            name: name.to_string(),
            line,
            bind_host: None,
            bind_interface: None,
            bind_port: 0,
            remote_host: None,
            remote_port: None,
            bandwidth_upload: None,
            bandwidth_download: None,
            timeout: None,
            loss_tolerance: None,
            latency_tolerance: None,
            fallback_only: false,
        }
    }
}

/// `max_sites` unless set: room for a large fleet, and a bound on what a server commits to.
pub const DEFAULT_MAX_SITES: u16 = 256;
/// Largest `max_sites`.
pub const MAX_SITES_LIMIT: u16 = 4096;

/// One site of a server: a `[site:NAME]` section. Its client connects with `password` and
/// may use `ip4`, `ip6` and the networks of `ip4_routes` and `ip6_routes`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// NAME, without `site:`.
    pub name: String,
    pub line: usize,
    pub password: Password,
    /// The four values as written (`ip4_gateway` and `ip6_gateway` stay empty), for the hook.
    pub hook_env: HookEnv,
    /// The site's tunnel addresses (hosts) and its routes, parsed: what routes to it, and
    /// the only sources it may send from.
    pub prefixes: Vec<proto::route::Prefix>,
}

/// A whole, valid `mlvpn.conf`. Build it with [`super::parse`] or [`super::load`].
///
/// `Debug` is safe to log: the password prints as `<redacted>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// `None` only on a server with sites, each of which has its own.
    pub password: Option<Password>,
    /// `statuscommand`: the hook script.
    pub status_command: Option<String>,
    pub interface_name: String,
    pub tuntap: TunTap,
    /// MTU of the TUN/TAP device: the largest IP packet (TUN) or Ethernet payload (TAP).
    pub mtu: u16,
    pub timeout: Duration,
    /// Slots of the receive reorder buffer; 0 = deliver in arrival order.
    pub reorder_buffer_size: u16,
    pub loss_tolerance: u8,
    pub latency_tolerance: Duration,
    /// `cleartext_data = 1`. Stored but not acted on: the engine always encrypts (see the
    /// warning the builder adds).
    pub cleartext_data: bool,
    /// `scheduler`: `arrival` (default) or `wrr`.
    pub scheduler: proto::tunnel::SchedulerKind,
    /// `retransmit_buffer_size`: data packets kept to resend what a link loses; 0 = off.
    pub retransmit_buffer_size: u16,
    /// `tun_offload`: TCP (and UDP) super-packets between the TUN device and us, both ways,
    /// and segmentation offload on the links' sockets (default 1; 0 for one packet per
    /// system call, as the original did).
    pub tun_offload: bool,
    /// `duplicate`: which packets go on two links at once — `auto` (real-time ones, the
    /// default), `off`, or `all`.
    pub duplicate: Duplicate,
    /// `duplicate_ports`: ports whose packets are real-time whatever their size.
    pub duplicate_ports: PortList,
    /// `duplicate_budget`: what duplication may cost (default 5% of the bond).
    pub duplicate_budget: BudgetLimit,
    pub hook_env: HookEnv,
    pub control_unix_path: Option<String>,
    pub control_bind: Option<ControlBind>,
    /// In file order, which is the engine's link numbering.
    pub links: Vec<Link>,
    /// A server's `[site:NAME]` sections, in file order; empty for a client, and for a server
    /// of one site (its password in `[general]`).
    pub sites: Vec<Site>,
    pub max_sites: u16,
    /// Things accepted but worth logging (ignored sections, settings with no effect), each
    /// starting with `FILE:LINE:`.
    pub warnings: Vec<String>,
}

impl Config {
    /// The engine's settings: one [`LinkConfig`] per link, in file order, with `[general]`'s
    /// `timeout` and tolerances filling in whatever a link does not override.
    pub fn engine_config(&self) -> proto::Config {
        proto::Config {
            mode: self.mode,
            scheduler: self.scheduler,
            retransmit_buffer_size: usize::from(self.retransmit_buffer_size),
            ethernet: self.tuntap == TunTap::Tap,
            links: self.links.iter().map(|l| self.link_config(l)).collect(),
            reorder_buffer_size: usize::from(self.reorder_buffer_size),
            mtu: self.engine_mtu(),
            duplicate: self.duplicate,
            duplicate_ports: self.duplicate_ports.clone(),
            duplicate_budget: self.duplicate_budget,
        }
    }

    /// How the engine serves this file: one tunnel, or one per `[site:NAME]`.
    pub fn layout(&self) -> proto::sites::Layout {
        use proto::sites::{Layout, Secret, SiteConfig};
        let secret = |p: &Password| Secret::Password(p.expose().as_bytes().to_vec());
        match &self.password {
            Some(p) if self.sites.is_empty() => Layout::One(secret(p)),
            _ => Layout::Many(
                self.sites
                    .iter()
                    .map(|s| SiteConfig {
                        name: s.name.clone(),
                        secret: secret(&s.password),
                        prefixes: s.prefixes.clone(),
                    })
                    .collect(),
            ),
        }
    }

    /// The largest payload the engine carries: the device MTU, plus for TAP the Ethernet
    /// header that rides along with each frame.
    pub fn engine_mtu(&self) -> usize {
        let mtu = usize::from(self.mtu);
        match self.tuntap {
            TunTap::Tun => mtu,
            TunTap::Tap => mtu + usize::from(ETHERNET_HEADER),
        }
    }

    fn link_config(&self, l: &Link) -> LinkConfig {
        LinkConfig {
            name: l.name.clone(),
            timeout: l.timeout.unwrap_or(self.timeout),
            loss_tolerance: l.loss_tolerance.unwrap_or(self.loss_tolerance),
            latency_tolerance: l.latency_tolerance.unwrap_or(self.latency_tolerance),
            fallback_only: l.fallback_only,
            bandwidth_upload: l.bandwidth_upload,
        }
    }

    /// Every setting, defaults included, one `key = value` per line in a fixed order, the
    /// password as `<redacted>`: for `mlvpn check-config` and the golden tests. Strings are
    /// quoted (Rust escapes) so blanks are visible; unset values read `-`; a link's tolerances
    /// read `-` when they follow `[general]`. Link headers note their line; warnings come last,
    /// as `# warning:` lines.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let o = &mut out;
        let mode = match self.mode {
            Mode::Client => "client",
            Mode::Server => "server",
        };
        line(o, "[general]", "");
        line(o, "mode", mode);
        line(o, "password", if self.password.is_some() { "<redacted>" } else { "-" });
        line(o, "statuscommand", opt_str(&self.status_command));
        line(o, "interface_name", format!("{:?}", self.interface_name));
        line(o, "tuntap", self.tuntap.as_str());
        line(o, "mtu", self.mtu);
        line(o, "timeout", secs(self.timeout));
        line(o, "reorder_buffer_size", self.reorder_buffer_size);
        line(o, "loss_tolerance", self.loss_tolerance);
        line(o, "latency_tolerance", self.latency_tolerance.as_millis());
        line(o, "cleartext_data", u8::from(self.cleartext_data));
        let scheduler = match self.scheduler {
            proto::tunnel::SchedulerKind::Arrival => "arrival",
            proto::tunnel::SchedulerKind::Wrr => "wrr",
        };
        line(o, "scheduler", scheduler);
        line(o, "retransmit_buffer_size", self.retransmit_buffer_size);
        line(o, "tun_offload", u8::from(self.tun_offload));
        line(o, "duplicate", self.duplicate.name());
        let mut ports = String::new();
        for &(lo, hi) in &self.duplicate_ports {
            let sep = if ports.is_empty() { "" } else { ", " };
            let _ = if lo == hi { write!(ports, "{sep}{lo}") } else { write!(ports, "{sep}{lo}-{hi}") };
        }
        line(o, "duplicate_ports", if ports.is_empty() { "-" } else { &ports });
        match self.duplicate_budget {
            BudgetLimit::Percent(p) => line(o, "duplicate_budget", format!("{p}%")),
            BudgetLimit::Rate(r) => line(o, "duplicate_budget", r),
        }
        let h = &self.hook_env;
        for (key, value) in [
            ("ip4", &h.ip4),
            ("ip6", &h.ip6),
            ("ip4_gateway", &h.ip4_gateway),
            ("ip6_gateway", &h.ip6_gateway),
            ("ip4_routes", &h.ip4_routes),
            ("ip6_routes", &h.ip6_routes),
        ] {
            line(o, key, format!("{value:?}"));
        }
        line(o, "control_unix_path", opt_str(&self.control_unix_path));
        match &self.control_bind {
            Some(c) => {
                line(o, "control_bind_host", format!("{:?}", c.host));
                line(o, "control_bind_port", c.port);
            }
            None => {
                line(o, "control_bind_host", "-");
                line(o, "control_bind_port", "-");
            }
        }
        for l in &self.links {
            line(o, &format!("[{}]  # line {}", l.name, l.line), "");
            line(o, "bindhost", opt_str(&l.bind_host));
            line(o, "bindinterface", opt_str(&l.bind_interface));
            line(o, "bindport", l.bind_port);
            line(o, "remotehost", opt_str(&l.remote_host));
            line(o, "remoteport", opt(l.remote_port));
            line(o, "bandwidth_upload", opt(l.bandwidth_upload));
            line(o, "bandwidth_download", opt(l.bandwidth_download));
            line(o, "timeout", opt(l.timeout.map(secs)));
            line(o, "loss_tolerance", opt(l.loss_tolerance));
            line(o, "latency_tolerance", opt(l.latency_tolerance.map(|d| d.as_millis())));
            line(o, "fallback_only", u8::from(l.fallback_only));
        }
        if !self.sites.is_empty() {
            line(o, "max_sites", self.max_sites);
        }
        for site in &self.sites {
            line(o, &format!("[site:{}]  # line {}", site.name, site.line), "");
            line(o, "password", "<redacted>");
            let h = &site.hook_env;
            for (key, value) in [
                ("ip4", &h.ip4),
                ("ip6", &h.ip6),
                ("ip4_routes", &h.ip4_routes),
                ("ip6_routes", &h.ip6_routes),
            ] {
                line(o, key, format!("{value:?}"));
            }
            let mut prefixes = String::new();
            for p in &site.prefixes {
                let _ = write!(prefixes, " {p}");
            }
            line(o, "# routes to it", &prefixes[1.min(prefixes.len())..]);
        }
        for w in &self.warnings {
            line(o, &format!("# warning: {w}"), "");
        }
        out
    }
}

/// One dump line: `key = value`, or a bare header when `value` is empty.
fn line(out: &mut String, key: &str, value: impl fmt::Display) {
    let value = value.to_string();
    if value.is_empty() {
        let _ = writeln!(out, "{key}");
    } else {
        let _ = writeln!(out, "{key} = {value}");
    }
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn opt_str(v: &Option<String>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), |v| format!("{v:?}"))
}

/// Durations read from the file are whole seconds, so this is exact.
fn secs(d: Duration) -> u64 {
    d.as_millis() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mtus_do_not_fragment_a_1500_path_over_ipv6() {
        assert_eq!(WIRE_OVERHEAD, 33);
        assert_eq!(DEFAULT_TUN_MTU, 1419);
        assert_eq!(DEFAULT_TAP_MTU, 1405);
        assert_eq!(DEFAULT_TUN_MTU + WIRE_OVERHEAD + UDP_HEADER + IPV6_HEADER, PATH_MTU);
        assert_eq!(DEFAULT_TAP_MTU + ETHERNET_HEADER, DEFAULT_TUN_MTU);
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "<redacted>");
        assert_eq!(p.expose(), "hunter2");
    }

    #[test]
    fn hook_env_names() {
        let h = HookEnv { ip4: "10.0.0.1/30".into(), ..HookEnv::default() };
        assert_eq!(h.vars()[0], ("IP4", "10.0.0.1/30"));
        assert_eq!(h.vars()[5].0, "IP6_ROUTES");
    }
}
