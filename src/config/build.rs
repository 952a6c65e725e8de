//! From tokenized sections to a validated [`Config`]: which keys exist where, their types,
//! their defaults, and the rules that tie them together.
//!
//! Order of work: sort the sections into `[general]`, links and ignored `[filters*]`; read
//! `[general]` first (a link's rules depend on the mode); read each link; then the rules
//! across links. Every error is recorded and reading goes on, so one run reports them all.

use super::error::{ConfigError, ConfigErrors, ErrorKind};
use super::ini::{Entry, Section};
use super::model::{
    Config, ControlBind, DEFAULT_INTERFACE_NAME, DEFAULT_LATENCY_TOLERANCE, DEFAULT_LOSS_TOLERANCE,
    DEFAULT_MAX_SITES, DEFAULT_REORDER_BUFFER_SIZE, DEFAULT_RETRANSMIT_BUFFER_SIZE, DEFAULT_TIMEOUT, HookEnv,
    IPV6_MIN_MTU, Link, MAX_SITES_LIMIT, MTU_MAX, MTU_MIN, Password, Site, TunTap,
};
use super::value;
use crate::proto::duplicate::{BudgetLimit, DEFAULT_BUDGET};
use crate::proto::flow::{Duplicate, PortList};
use crate::proto::tunnel::SchedulerKind;
use crate::proto::{Duration, Mode};

/// `timeout`: the original's minimum of 2 s (keepalives go every second); at most a day.
const TIMEOUT_MIN: u64 = 2;
const TIMEOUT_MAX: u64 = 86_400;
/// `latency_tolerance`, in ms: a minute is already far beyond any usable link.
const LATENCY_MAX: u64 = 60_000;
/// `bandwidth_*`, in bytes per second: a terabyte per second is a typo, not a link.
const BANDWIDTH_MAX: u64 = 1_000_000_000_000;

/// Keys of `[general]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum G {
    Mode,
    Password,
    StatusCommand,
    InterfaceName,
    TunTap,
    Mtu,
    Timeout,
    ReorderBufferSize,
    LossTolerance,
    LatencyTolerance,
    CleartextData,
    Ip4,
    Ip6,
    Ip4Gateway,
    Ip6Gateway,
    Ip4Routes,
    Ip6Routes,
    ControlUnixPath,
    ControlBindHost,
    ControlBindPort,
    Scheduler,
    RetransmitBufferSize,
    TunOffload,
    Duplicate,
    DuplicatePorts,
    DuplicateBudget,
    MaxSites,
}

/// Keys of `[general]` as spelled in the file. The original spells the tolerances
/// `*_tolerence`; we accept that and the dictionary spelling, as two names of one key.
const GENERAL_KEYS: &[(&str, G)] = &[
    ("mode", G::Mode),
    ("password", G::Password),
    ("statuscommand", G::StatusCommand),
    ("interface_name", G::InterfaceName),
    ("tuntap", G::TunTap),
    ("mtu", G::Mtu),
    ("timeout", G::Timeout),
    ("reorder_buffer_size", G::ReorderBufferSize),
    ("loss_tolerence", G::LossTolerance),
    ("loss_tolerance", G::LossTolerance),
    ("latency_tolerence", G::LatencyTolerance),
    ("latency_tolerance", G::LatencyTolerance),
    ("cleartext_data", G::CleartextData),
    ("ip4", G::Ip4),
    ("ip6", G::Ip6),
    ("ip4_gateway", G::Ip4Gateway),
    ("ip6_gateway", G::Ip6Gateway),
    ("ip4_routes", G::Ip4Routes),
    ("ip6_routes", G::Ip6Routes),
    ("control_unix_path", G::ControlUnixPath),
    ("control_bind_host", G::ControlBindHost),
    ("control_bind_port", G::ControlBindPort),
    ("scheduler", G::Scheduler),
    ("retransmit_buffer_size", G::RetransmitBufferSize),
    ("tun_offload", G::TunOffload),
    ("duplicate", G::Duplicate),
    ("duplicate_ports", G::DuplicatePorts),
    ("duplicate_budget", G::DuplicateBudget),
    ("max_sites", G::MaxSites),
];

/// Keys of a `[site:NAME]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S {
    Password,
    Ip4,
    Ip6,
    Ip4Routes,
    Ip6Routes,
}

const SITE_KEYS: &[(&str, S)] = &[
    ("password", S::Password),
    ("ip4", S::Ip4),
    ("ip6", S::Ip6),
    ("ip4_routes", S::Ip4Routes),
    ("ip6_routes", S::Ip6Routes),
];

/// Sections named `site:NAME` are a server's sites.
const SITE_PREFIX: &str = "site:";

/// Keys of a link section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L {
    BindHost,
    BindInterface,
    BindPort,
    RemoteHost,
    RemotePort,
    BandwidthUpload,
    BandwidthDownload,
    Timeout,
    LossTolerance,
    LatencyTolerance,
    FallbackOnly,
}

const LINK_KEYS: &[(&str, L)] = &[
    ("bindhost", L::BindHost),
    ("bindinterface", L::BindInterface),
    ("bindport", L::BindPort),
    ("remotehost", L::RemoteHost),
    ("remoteport", L::RemotePort),
    ("bandwidth_upload", L::BandwidthUpload),
    ("bandwidth_download", L::BandwidthDownload),
    ("timeout", L::Timeout),
    ("loss_tolerence", L::LossTolerance),
    ("loss_tolerance", L::LossTolerance),
    ("latency_tolerence", L::LatencyTolerance),
    ("latency_tolerance", L::LatencyTolerance),
    ("fallback_only", L::FallbackOnly),
];

/// The known spelling of `key`, and what it means.
fn lookup<K: Copy>(table: &[(&'static str, K)], key: &str) -> Option<(&'static str, K)> {
    table.iter().find(|(name, _)| *name == key).copied()
}

/// Sections whose name starts with this hold MLVPN's traffic filters, which we do not have.
const FILTERS_PREFIX: &str = "filters";

/// Errors and warnings of one file, and its name for both.
struct Report<'f> {
    file: &'f str,
    errors: ConfigErrors,
    warnings: Vec<String>,
}

impl Report<'_> {
    fn error(&mut self, line: usize, key: Option<&str>, kind: ErrorKind) {
        self.errors.push(ConfigError { file: self.file.to_string(), line, key: key.map(String::from), kind });
    }

    fn warn(&mut self, line: usize, message: impl std::fmt::Display) {
        self.warnings.push(format!("{}:{line}: {message}", self.file));
    }

    /// Records `r`'s error against entry `e`, turning it into an `Option`.
    fn check<T>(&mut self, e: &Entry<'_>, r: Result<T, ErrorKind>) -> Option<T> {
        r.map_err(|kind| self.error(e.line, Some(e.key), kind)).ok()
    }
}

/// Keys already set in one section, to refuse a second setting: a repeated key is a mistake
/// (which one wins is a guess), and so is setting one key under both its spellings.
struct Seen<K> {
    keys: Vec<(K, &'static str, usize)>,
}

impl<K: Copy + PartialEq> Seen<K> {
    fn new() -> Self {
        Seen { keys: Vec::new() }
    }

    /// True the first time `k` is set; otherwise records why not and returns false.
    fn first(&mut self, report: &mut Report<'_>, e: &Entry<'_>, k: K, spelling: &'static str) -> bool {
        match self.keys.iter().find(|(seen, _, _)| *seen == k) {
            None => {
                self.keys.push((k, spelling, e.line));
                true
            }
            Some(&(_, other, first_line)) => {
                let kind = if other == spelling {
                    ErrorKind::DuplicateKey { first_line }
                } else {
                    ErrorKind::BothSpellings { other, other_line: first_line }
                };
                report.error(e.line, Some(e.key), kind);
                false
            }
        }
    }

    fn line_of(&self, k: K) -> Option<usize> {
        self.keys.iter().find(|(seen, _, _)| *seen == k).map(|&(_, _, line)| line)
    }
}

/// What an unknown key probably meant: a key of the other kind of section, or the nearest key
/// of this one when it is a typo away (capitals, a dash, a letter or two: `Timeout`,
/// `bind-port`, `bandwith_upload`).
fn unknown_key_hint(key: &str, in_general: bool) -> Option<String> {
    let (here, there) = if in_general {
        (names(GENERAL_KEYS), names(LINK_KEYS))
    } else {
        (names(LINK_KEYS), names(GENERAL_KEYS))
    };
    if there.contains(&key) {
        return Some(
            if in_general { "it belongs in a link section" } else { "it belongs in [general]" }.into(),
        );
    }
    let key = key.to_ascii_lowercase().replace('-', "_");
    // Ties go to the alphabetically first name, so the hint is stable.
    here.into_iter()
        .map(|name| (edit_distance(&key, name), name))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, name)| format!("did you mean {name}?"))
}

fn names<K>(table: &[(&'static str, K)]) -> Vec<&'static str> {
    table.iter().map(|(name, _)| *name).collect()
}

/// Levenshtein distance: insertions, deletions and substitutions, by bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // One row of the classic table, reused.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// `[general]` as read so far; `None` = not set.
#[derive(Default)]
struct General {
    mode: Option<Mode>,
    password: Option<Password>,
    status_command: Option<String>,
    interface_name: Option<String>,
    tuntap: Option<TunTap>,
    mtu: Option<u16>,
    timeout: Option<Duration>,
    reorder_buffer_size: Option<u16>,
    loss_tolerance: Option<u8>,
    latency_tolerance: Option<Duration>,
    cleartext_data: bool,
    hook_env: HookEnv,
    control_unix_path: Option<String>,
    control_bind_host: Option<String>,
    control_bind_port: Option<u16>,
    scheduler: Option<SchedulerKind>,
    retransmit_buffer_size: Option<u16>,
    tun_offload: Option<bool>,
    duplicate: Option<Duplicate>,
    duplicate_ports: PortList,
    duplicate_budget: Option<BudgetLimit>,
    max_sites: Option<u16>,
}

/// Turns sections into a [`Config`], or every error found.
pub(crate) fn build(file: &str, sections: &[Section<'_>]) -> Result<Config, ConfigErrors> {
    let mut report = Report { file, errors: ConfigErrors::new(), warnings: Vec::new() };

    // Sort sections, refusing repeats (the second is skipped: merging would be a guess).
    let mut general: Option<&Section<'_>> = None;
    let mut links: Vec<&Section<'_>> = Vec::new();
    let mut sites: Vec<&Section<'_>> = Vec::new();
    for s in sections {
        if s.name.starts_with(FILTERS_PREFIX) {
            report.warn(
                s.line,
                format_args!("[{}]: traffic filters are not implemented; this section is ignored", s.name),
            );
            continue;
        }
        let first = if s.name == "general" {
            general
        } else {
            links.iter().chain(&sites).find(|l| l.name == s.name).copied()
        };
        match first {
            Some(f) => report.error(
                s.line,
                None,
                ErrorKind::DuplicateSection { name: s.name.into(), first_line: f.line },
            ),
            None if s.name == "general" => general = Some(s),
            None if s.name.starts_with(SITE_PREFIX) => sites.push(s),
            None => links.push(s),
        }
    }

    let g = match general {
        Some(s) => read_general(&mut report, s, !sites.is_empty()),
        None => {
            report.error(0, None, ErrorKind::MissingGeneral);
            General::default()
        }
    };
    if links.is_empty() {
        report.error(0, None, ErrorKind::NoLinks);
    }
    let links: Vec<(Link, Seen<L>)> = links.iter().map(|s| read_link(&mut report, s, g.mode)).collect();
    check_binds(&mut report, &links);
    let max_sites = g.max_sites.unwrap_or(DEFAULT_MAX_SITES);
    let sites: Vec<Site> = sites.iter().filter_map(|s| read_site(&mut report, s)).collect();
    check_sites(&mut report, &sites, &g, max_sites);

    let Report { mut errors, warnings, .. } = report;
    if !errors.is_empty() {
        errors.sort();
        return Err(errors);
    }
    let Some(mode) = g.mode else {
        unreachable!("a missing mode is reported as an error");
    };
    let password = g.password;
    let tuntap = g.tuntap.unwrap_or(TunTap::Tun);
    Ok(Config {
        mode,
        password,
        status_command: g.status_command,
        interface_name: g.interface_name.unwrap_or_else(|| DEFAULT_INTERFACE_NAME.into()),
        tuntap,
        mtu: g.mtu.unwrap_or(tuntap.default_mtu()),
        timeout: g.timeout.unwrap_or(DEFAULT_TIMEOUT),
        reorder_buffer_size: g.reorder_buffer_size.unwrap_or(DEFAULT_REORDER_BUFFER_SIZE),
        loss_tolerance: g.loss_tolerance.unwrap_or(DEFAULT_LOSS_TOLERANCE),
        latency_tolerance: g.latency_tolerance.unwrap_or(DEFAULT_LATENCY_TOLERANCE),
        cleartext_data: g.cleartext_data,
        scheduler: g.scheduler.unwrap_or_default(),
        retransmit_buffer_size: g.retransmit_buffer_size.unwrap_or(DEFAULT_RETRANSMIT_BUFFER_SIZE),
        tun_offload: g.tun_offload.unwrap_or(true),
        duplicate: g.duplicate.unwrap_or_default(),
        duplicate_ports: g.duplicate_ports,
        duplicate_budget: g.duplicate_budget.unwrap_or(DEFAULT_BUDGET),
        hook_env: g.hook_env,
        control_unix_path: g.control_unix_path,
        control_bind: g
            .control_bind_host
            .zip(g.control_bind_port)
            .map(|(host, port)| ControlBind { host, port }),
        links: links.into_iter().map(|(l, _)| l).collect(),
        sites,
        max_sites,
        warnings,
    })
}

/// An optional string: empty means "not set", as leaving the key out.
fn optional(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

fn percent(value: &str) -> Result<u8, ErrorKind> {
    value::number(value, "percent", 0, 100).map(|n| u8::try_from(n).expect("at most 100"))
}

fn timeout(value: &str) -> Result<Duration, ErrorKind> {
    value::number(value, "seconds", TIMEOUT_MIN, TIMEOUT_MAX).map(Duration::from_secs)
}

fn latency(value: &str) -> Result<Duration, ErrorKind> {
    value::number(value, "milliseconds", 1, LATENCY_MAX).map(Duration::from_millis)
}

/// Bytes per second; 0 means unknown, as in the original, same as leaving it out.
fn bandwidth(value: &str) -> Result<Option<u64>, ErrorKind> {
    value::number(value, "bytes per second", 0, BANDWIDTH_MAX).map(|n| (n > 0).then_some(n))
}

/// `duplicate_ports`: ports and ranges, comma-separated (`5060, 16384-32767`).
fn port_list(value: &str) -> Result<PortList, ErrorKind> {
    ports_and_ranges(value).ok_or_else(|| ErrorKind::BadValue {
        expected: "up to 8 ports or ranges, comma-separated (5060, 16384-32767)",
        got: value.to_string(),
    })
}

fn ports_and_ranges(value: &str) -> Option<PortList> {
    let mut list = PortList::new();
    // ASCII blanks only: `str::trim` brings Unicode's whitespace table into the routers' binary.
    for item in value.split(',').map(str::trim_ascii).filter(|i| !i.is_empty()) {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let port = |p: &str| value::port(p.trim_ascii(), 1).ok();
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo > hi {
            return None;
        }
        list.push((lo, hi)).ok()?;
    }
    Some(list)
}

/// `duplicate_budget`: a percentage of the bond's capacity (`5%`) or bytes per second.
fn duplicate_budget(value: &str) -> Result<BudgetLimit, ErrorKind> {
    match value.strip_suffix('%') {
        Some(p) => percent(p).map(BudgetLimit::Percent),
        None => value::number(value, "bytes per second (or a percentage: 5%)", 0, BANDWIDTH_MAX)
            .map(BudgetLimit::Rate),
    }
}

fn read_general(report: &mut Report<'_>, s: &Section<'_>, has_sites: bool) -> General {
    let mut g = General::default();
    let mut seen = Seen::new();
    for e in &s.entries {
        let Some((spelling, k)) = lookup(GENERAL_KEYS, e.key) else {
            report.error(e.line, Some(e.key), ErrorKind::UnknownKey { hint: unknown_key_hint(e.key, true) });
            continue;
        };
        if !seen.first(report, e, k, spelling) {
            continue;
        }
        let v = e.value;
        match k {
            G::Mode => {
                let modes = [("client", Mode::Client), ("server", Mode::Server)];
                g.mode = report.check(e, value::choice(v, &modes, "client or server"));
            }
            G::Password => {
                if v.is_empty() {
                    // The one value never echoed; here it is empty anyway.
                    let kind = ErrorKind::BadValue {
                        expected: "a password (make one with mlvpn genkey)",
                        got: "".into(),
                    };
                    report.error(e.line, Some(e.key), kind);
                } else {
                    g.password = Some(Password::new(v));
                }
            }
            G::StatusCommand => g.status_command = optional(v),
            G::InterfaceName => g.interface_name = report.check(e, value::interface_name(v)),
            G::TunTap => {
                let kinds = [("tun", TunTap::Tun), ("tap", TunTap::Tap)];
                g.tuntap = report.check(e, value::choice(v, &kinds, "tun or tap"));
            }
            G::TunOffload => g.tun_offload = report.check(e, value::flag(v)),
            G::RetransmitBufferSize => {
                let r = value::number(v, "packets", 0, 4096);
                g.retransmit_buffer_size = report.check(e, r).map(|n| n as u16);
            }
            G::Duplicate => {
                let kinds = [("auto", Duplicate::Auto), ("off", Duplicate::Off), ("all", Duplicate::All)];
                g.duplicate = report.check(e, value::choice(v, &kinds, "auto, off or all"));
            }
            G::DuplicatePorts => g.duplicate_ports = report.check(e, port_list(v)).unwrap_or_default(),
            G::DuplicateBudget => g.duplicate_budget = report.check(e, duplicate_budget(v)),
            G::Scheduler => {
                let kinds = [("arrival", SchedulerKind::Arrival), ("wrr", SchedulerKind::Wrr)];
                g.scheduler = report.check(e, value::choice(v, &kinds, "arrival or wrr"));
            }
            G::Mtu => {
                let r = value::number(v, "bytes", MTU_MIN.into(), MTU_MAX.into());
                g.mtu = report.check(e, r).map(|n| u16::try_from(n).expect("at most 9000"));
            }
            G::Timeout => g.timeout = report.check(e, timeout(v)),
            G::ReorderBufferSize => {
                let r = value::number(v, "slots", 0, u16::MAX.into());
                let n = report.check(e, r).map(|n| u16::try_from(n).expect("at most 65535"));
                // A floor, not a cap (model.rs): MLVPN's configs carry small values.
                g.reorder_buffer_size = match n {
                    Some(n @ 1..DEFAULT_REORDER_BUFFER_SIZE) => {
                        report.warn(
                            e.line,
                            format_args!(
                                "reorder_buffer_size: {n} is too few, using {DEFAULT_REORDER_BUFFER_SIZE}"
                            ),
                        );
                        Some(DEFAULT_REORDER_BUFFER_SIZE)
                    }
                    n => n,
                };
            }
            G::LossTolerance => g.loss_tolerance = report.check(e, percent(v)),
            G::LatencyTolerance => g.latency_tolerance = report.check(e, latency(v)),
            G::CleartextData => {
                g.cleartext_data = report.check(e, value::flag(v)).unwrap_or(false);
                if g.cleartext_data {
                    report.warn(
                        e.line,
                        "cleartext_data: not supported; data packets are encrypted and authenticated anyway",
                    );
                }
            }
            G::Ip4 => g.hook_env.ip4 = v.into(),
            G::Ip6 => g.hook_env.ip6 = v.into(),
            G::Ip4Gateway => g.hook_env.ip4_gateway = v.into(),
            G::Ip6Gateway => g.hook_env.ip6_gateway = v.into(),
            G::Ip4Routes => g.hook_env.ip4_routes = v.into(),
            G::Ip6Routes => g.hook_env.ip6_routes = v.into(),
            G::ControlUnixPath => {
                g.control_unix_path = report.check(e, value::unix_path(v)).and_then(|p| optional(&p));
            }
            G::ControlBindHost => {
                g.control_bind_host = if v.is_empty() { None } else { report.check(e, value::host(v)) };
            }
            G::ControlBindPort => g.control_bind_port = report.check(e, value::port(v, 1)),
            G::MaxSites => {
                let r = value::number(v, "sites", 1, MAX_SITES_LIMIT.into());
                g.max_sites = report.check(e, r).map(|n| n as u16);
            }
        }
    }

    // Required keys: reported on the header line, where they should be added.
    if seen.line_of(G::Mode).is_none() {
        let why = "set it to client or server";
        report.error(s.line, Some("mode"), ErrorKind::MissingKey { section: s.name.into(), why });
    }
    match seen.line_of(G::Password) {
        None if !has_sites => {
            let why = "both ends need the same one (make one with mlvpn genkey)";
            report.error(s.line, Some("password"), ErrorKind::MissingKey { section: s.name.into(), why });
        }
        Some(line) if has_sites => report.error(
            line,
            Some("password"),
            ErrorKind::Sites("a server with [site:NAME] sections has a password per site, none for all"),
        ),
        _ => {}
    }
    // The HTTP listener needs both halves. Only reported when the half present is valid, so a
    // bad value gives one error, not two.
    match (seen.line_of(G::ControlBindHost), seen.line_of(G::ControlBindPort)) {
        (Some(line), None) if g.control_bind_host.is_some() => {
            report.error(line, Some("control_bind_host"), ErrorKind::Needs { other: "control_bind_port" });
        }
        (None, Some(line)) if g.control_bind_port.is_some() => {
            report.error(line, Some("control_bind_port"), ErrorKind::Needs { other: "control_bind_host" });
        }
        _ => {}
    }
    if let (Some(mtu), Some(line)) = (g.mtu, seen.line_of(G::Mtu))
        && mtu < IPV6_MIN_MTU
        && !g.hook_env.ip6.is_empty()
    {
        report.warn(
            line,
            format_args!("mtu: {mtu} is below IPv6's minimum of {IPV6_MIN_MTU}; ip6 will not work"),
        );
    }
    g
}

/// Reads one link. `mode` is `None` when `[general]` did not give a valid one; the rules that
/// depend on it are then skipped (the missing mode is already an error).
fn read_link(report: &mut Report<'_>, s: &Section<'_>, mode: Option<Mode>) -> (Link, Seen<L>) {
    let mut link = Link::new(s.name, s.line);
    let mut seen = Seen::new();
    // Clients may leave the local port to the system; a server must know where to listen.
    let bindport_min = if mode == Some(Mode::Server) { 1 } else { 0 };
    for e in &s.entries {
        let Some((spelling, k)) = lookup(LINK_KEYS, e.key) else {
            report.error(e.line, Some(e.key), ErrorKind::UnknownKey { hint: unknown_key_hint(e.key, false) });
            continue;
        };
        if !seen.first(report, e, k, spelling) {
            continue;
        }
        let v = e.value;
        match k {
            L::BindHost => link.bind_host = if v.is_empty() { None } else { report.check(e, value::host(v)) },
            L::BindInterface => {
                link.bind_interface =
                    if v.is_empty() { None } else { report.check(e, value::bind_interface(v)) }
            }
            L::BindPort => link.bind_port = report.check(e, value::port(v, bindport_min)).unwrap_or(0),
            L::RemoteHost => link.remote_host = report.check(e, value::host(v)),
            L::RemotePort => link.remote_port = report.check(e, value::port(v, 1)),
            L::BandwidthUpload => link.bandwidth_upload = report.check(e, bandwidth(v)).flatten(),
            L::BandwidthDownload => link.bandwidth_download = report.check(e, bandwidth(v)).flatten(),
            L::Timeout => link.timeout = report.check(e, timeout(v)),
            L::LossTolerance => link.loss_tolerance = report.check(e, percent(v)),
            L::LatencyTolerance => link.latency_tolerance = report.check(e, latency(v)),
            L::FallbackOnly => link.fallback_only = report.check(e, value::flag(v)).unwrap_or(false),
        }
    }

    // Required keys, on the header line, unless the key is there with a bad value.
    let require = |k: L, key: &'static str, why: &'static str, report: &mut Report<'_>| {
        if seen.line_of(k).is_none() {
            report.error(s.line, Some(key), ErrorKind::MissingKey { section: s.name.into(), why });
        }
    };
    match mode {
        Some(Mode::Server) => {
            require(L::BindPort, "bindport", "a server link needs the port it listens on", report)
        }
        Some(Mode::Client) => {
            require(L::RemoteHost, "remotehost", "a client link needs the server's address", report);
            require(
                L::RemotePort,
                "remoteport",
                "a client link needs the server's port for this link",
                report,
            );
        }
        None => {}
    }
    (link, seen)
}

/// Reads one `[site:NAME]` section; `None` if it is unusable (its errors are reported).
fn read_site(report: &mut Report<'_>, s: &Section<'_>) -> Option<Site> {
    let name = &s.name[SITE_PREFIX.len()..];
    if name.is_empty() || name.contains(':') {
        report.error(s.line, None, ErrorKind::Sites("a site section is [site:NAME], NAME without `:`"));
        return None;
    }
    let mut site = Site {
        name: name.into(),
        line: s.line,
        password: Password::new(""),
        hook_env: HookEnv::default(),
        prefixes: Vec::new(),
    };
    let mut seen = Seen::new();
    for e in &s.entries {
        let Some((spelling, k)) = lookup(SITE_KEYS, e.key) else {
            let hint = Some("a site takes password, ip4, ip6, ip4_routes, ip6_routes".into());
            report.error(e.line, Some(e.key), ErrorKind::UnknownKey { hint });
            continue;
        };
        if !seen.first(report, e, k, spelling) {
            continue;
        }
        let v = e.value;
        let (ipv6, hosts) = match k {
            S::Password => {
                if v.is_empty() {
                    let kind = ErrorKind::BadValue {
                        expected: "a password (make one with mlvpn genkey)",
                        got: "".into(),
                    };
                    report.error(e.line, Some(e.key), kind);
                }
                site.password = Password::new(v);
                continue;
            }
            S::Ip4 => (false, true),
            S::Ip6 => (true, true),
            S::Ip4Routes => (false, false),
            S::Ip6Routes => (true, false),
        };
        let field = match k {
            S::Ip4 => &mut site.hook_env.ip4,
            S::Ip6 => &mut site.hook_env.ip6,
            S::Ip4Routes => &mut site.hook_env.ip4_routes,
            _ => &mut site.hook_env.ip6_routes,
        };
        *field = v.into();
        if let Some(prefixes) = report.check(e, value::prefixes(v, ipv6, hosts)) {
            site.prefixes.extend(prefixes);
        }
    }
    if seen.line_of(S::Password).is_none() {
        let why = "the site's client connects with it (make one with mlvpn genkey)";
        report.error(s.line, Some("password"), ErrorKind::MissingKey { section: s.name.into(), why });
    }
    if site.prefixes.is_empty() && seen.line_of(S::Ip4).is_none() && seen.line_of(S::Ip6).is_none() {
        let why = "the site's tunnel address: ip4, ip6 or both (it may send from nothing else)";
        report.error(s.line, Some("ip4"), ErrorKind::MissingKey { section: s.name.into(), why });
    }
    Some(site)
}

/// The rules of a server with sites: a server, a TUN device, at most `max_sites`, and
/// nothing two sites share (a password, a prefix).
fn check_sites(report: &mut Report<'_>, sites: &[Site], g: &General, max_sites: u16) {
    let Some(first) = sites.first() else { return };
    if g.mode == Some(Mode::Client) {
        report.error(
            first.line,
            None,
            ErrorKind::Sites("[site:NAME] sections are for a server (mode = server)"),
        );
    }
    if g.tuntap == Some(TunTap::Tap) {
        report.error(
            first.line,
            None,
            ErrorKind::Sites("a server with sites routes IP packets: tuntap = tun (the default)"),
        );
    }
    if let Some(site) = sites.get(usize::from(max_sites)) {
        report.error(site.line, None, ErrorKind::TooManySites { max: max_sites });
    }
    for (i, site) in sites.iter().enumerate() {
        let earlier = &sites[..i];
        if let Some(o) =
            earlier.iter().find(|o| o.password == site.password && !site.password.expose().is_empty())
        {
            let what = "this password".to_string();
            report.error(
                site.line,
                Some("password"),
                ErrorKind::SiteClash { what, other_site: o.name.clone(), other_line: o.line },
            );
        }
        for p in &site.prefixes {
            if let Some(o) = earlier.iter().find(|o| o.prefixes.contains(p)) {
                let what = p.to_string();
                report.error(
                    site.line,
                    None,
                    ErrorKind::SiteClash { what, other_site: o.name.clone(), other_line: o.line },
                );
            }
        }
    }
}

/// Two links may not bind the same local address and port: the second `bind(2)` would fail
/// at start with a less helpful message. No `bindhost` means every address, which clashes
/// with any host on the same port. Port 0 (a client's "any port") never clashes.
fn check_binds(report: &mut Report<'_>, links: &[(Link, Seen<L>)]) {
    for (i, (link, seen)) in links.iter().enumerate() {
        if link.bind_port == 0 {
            continue;
        }
        let host = link.bind_host.as_deref().map(str::to_ascii_lowercase);
        let clash = links[..i].iter().map(|(l, _)| l).find(|other| {
            let other_host = other.bind_host.as_deref().map(str::to_ascii_lowercase);
            other.bind_port == link.bind_port
                && (host.is_none() || other_host.is_none() || host == other_host)
        });
        if let Some(other) = clash {
            let line = seen.line_of(L::BindPort).unwrap_or(link.line);
            let kind = ErrorKind::SameBind { other_link: other.name.clone(), other_line: other.line };
            report.error(line, Some("bindport"), kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ErrorKind, parse};
    use super::*;

    const GENERAL: &str = "[general]\nmode = client\npassword = p\n";
    const LINK: &str = "[dsl]\nremotehost = vpn.example.net\nremoteport = 5080\n";

    fn ok(text: &str) -> Config {
        parse("m.conf", text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error kinds, with lines and keys, of a file that must not parse.
    fn errs(text: &str) -> Vec<(usize, Option<String>, ErrorKind)> {
        parse("m.conf", text).unwrap_err().iter().map(|e| (e.line, e.key.clone(), e.kind.clone())).collect()
    }

    fn key(k: &str) -> Option<String> {
        Some(k.into())
    }

    #[test]
    fn defaults() {
        let c = ok(&format!("{GENERAL}{LINK}"));
        assert_eq!(c.mode, Mode::Client);
        assert_eq!(c.password.as_ref().unwrap().expose(), "p");
        assert_eq!(c.interface_name, "mlvpn0");
        assert_eq!(c.tuntap, TunTap::Tun);
        assert_eq!(c.mtu, 1419);
        assert_eq!(c.timeout, Duration::from_secs(60));
        assert_eq!(c.reorder_buffer_size, 1024);
        assert_eq!(c.loss_tolerance, 100);
        assert_eq!(c.latency_tolerance, Duration::from_millis(1000));
        assert!(!c.cleartext_data && c.status_command.is_none() && c.control_bind.is_none());
        assert_eq!(c.hook_env, HookEnv::default());
        let l = &c.links[0];
        assert_eq!(
            (l.remote_host.as_deref(), l.remote_port, l.bind_port),
            (Some("vpn.example.net"), Some(5080), 0)
        );
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn tap_default_mtu_leaves_room_for_ethernet() {
        let c = ok(&format!("{GENERAL}tuntap = tap\n{LINK}"));
        assert_eq!(c.mtu, 1405);
        assert_eq!(c.engine_config().mtu, 1419);
    }

    #[test]
    fn mtu_range() {
        assert_eq!(ok(&format!("{GENERAL}mtu = 576\n{LINK}")).mtu, 576);
        assert_eq!(ok(&format!("{GENERAL}mtu = 9000\n{LINK}")).mtu, 9000);
        let e = errs(&format!("{GENERAL}mtu = 575\n{LINK}"));
        assert_eq!(
            e,
            vec![(
                4,
                key("mtu"),
                ErrorKind::BadNumber { what: "bytes", min: 576, max: 9000, got: "575".into() }
            )]
        );
    }

    #[test]
    fn small_mtu_with_ip6_warns() {
        let c = ok(&format!("{GENERAL}mtu = 1200\nip6 = fd00::2/64\n{LINK}"));
        assert_eq!(
            c.warnings,
            vec!["m.conf:4: mtu: 1200 is below IPv6's minimum of 1280; ip6 will not work"]
        );
        assert!(ok(&format!("{GENERAL}mtu = 1200\n{LINK}")).warnings.is_empty());
    }

    #[test]
    fn mode_and_password_are_required() {
        let e = errs(&format!("[general]\n{LINK}"));
        assert_eq!(e.len(), 2);
        assert!(matches!(&e[0], (1, k, ErrorKind::MissingKey { .. }) if *k == key("mode")));
        assert!(matches!(&e[1], (1, k, ErrorKind::MissingKey { .. }) if *k == key("password")));
    }

    #[test]
    fn mode_values() {
        let e = errs(&format!("[general]\nmode = Client\npassword = p\n{LINK}"));
        assert_eq!(
            e,
            vec![(
                2,
                key("mode"),
                ErrorKind::BadValue { expected: "client or server", got: "Client".into() }
            )]
        );
    }

    #[test]
    fn empty_password_is_refused() {
        let e = errs(&format!("[general]\nmode = client\npassword = \"\"\n{LINK}"));
        assert!(matches!(&e[..], [(3, k, ErrorKind::BadValue { .. })] if *k == key("password")));
    }

    #[test]
    fn no_general_no_links() {
        assert_eq!(errs(LINK), vec![(0, None, ErrorKind::MissingGeneral)]);
        assert_eq!(errs(GENERAL), vec![(0, None, ErrorKind::NoLinks)]);
    }

    #[test]
    fn duplicate_key_and_section() {
        let e = errs(&format!("{GENERAL}mtu = 1400\nmtu = 1400\n{LINK}[dsl]\n"));
        assert_eq!(e[0], (5, key("mtu"), ErrorKind::DuplicateKey { first_line: 4 }));
        assert_eq!(e[1], (9, None, ErrorKind::DuplicateSection { name: "dsl".into(), first_line: 6 }));
        let e = errs(&format!("{GENERAL}{LINK}[general]\n"));
        assert_eq!(e, vec![(7, None, ErrorKind::DuplicateSection { name: "general".into(), first_line: 1 })]);
    }

    #[test]
    fn both_spellings_accepted_but_not_together() {
        let c = ok(&format!(
            "{GENERAL}loss_tolerence = 20\nlatency_tolerance = 300\n{LINK}latency_tolerence = 400\n"
        ));
        assert_eq!((c.loss_tolerance, c.latency_tolerance), (20, Duration::from_millis(300)));
        assert_eq!(c.links[0].latency_tolerance, Some(Duration::from_millis(400)));
        let e = errs(&format!("{GENERAL}loss_tolerence = 20\nloss_tolerance = 20\n{LINK}"));
        assert_eq!(
            e,
            vec![(
                5,
                key("loss_tolerance"),
                ErrorKind::BothSpellings { other: "loss_tolerence", other_line: 4 }
            )]
        );
    }

    #[test]
    fn unknown_keys_get_hints() {
        let e = errs(&format!("{GENERAL}bindport = 1\nMTU = 1400\nfoo = 1\n{LINK}mode = client\n"));
        let hints: Vec<_> = e
            .iter()
            .map(|(_, _, k)| match k {
                ErrorKind::UnknownKey { hint } => hint.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            hints,
            vec![
                Some("it belongs in a link section".into()),
                Some("did you mean mtu?".into()),
                None,
                Some("it belongs in [general]".into())
            ]
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("mtu", "mtu"), 0);
        assert_eq!(edit_distance("bind_port", "bindport"), 1);
        assert_eq!(edit_distance("bandwith_upload", "bandwidth_upload"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn typos_get_the_nearest_key() {
        assert_eq!(
            unknown_key_hint("bandwith_download", false),
            Some("did you mean bandwidth_download?".into())
        );
        assert_eq!(unknown_key_hint("bind-port", false), Some("did you mean bindport?".into()));
        assert_eq!(unknown_key_hint("reorder_buffer", true), None);
        assert_eq!(unknown_key_hint("bandwidth", false), None);
    }

    #[test]
    fn numbers_name_key_and_range() {
        let e = errs(&format!(
            "{GENERAL}timeout = 60s\nreorder_buffer_size = 65536\n{LINK}loss_tolerance = -1\n"
        ));
        assert_eq!(
            e,
            vec![
                (
                    4,
                    key("timeout"),
                    ErrorKind::BadNumber { what: "seconds", min: 2, max: 86400, got: "60s".into() }
                ),
                (
                    5,
                    key("reorder_buffer_size"),
                    ErrorKind::BadNumber { what: "slots", min: 0, max: 65535, got: "65536".into() }
                ),
                (
                    9,
                    key("loss_tolerance"),
                    ErrorKind::BadNumber { what: "percent", min: 0, max: 100, got: "-1".into() }
                ),
            ]
        );
    }

    #[test]
    fn interface_name_fits_ifnamsiz() {
        assert_eq!(
            ok(&format!("{GENERAL}interface_name = abcdefghijklmno\n{LINK}")).interface_name,
            "abcdefghijklmno"
        );
        let e = errs(&format!("{GENERAL}interface_name = abcdefghijklmnop\n{LINK}"));
        assert!(matches!(&e[..], [(4, k, ErrorKind::BadValue { .. })] if *k == key("interface_name")));
    }

    #[test]
    fn client_links_need_the_server() {
        let e = errs(&format!("{GENERAL}[dsl]\nbindport = 0\n"));
        let keys: Vec<_> = e.iter().map(|(line, k, _)| (*line, k.clone())).collect();
        assert_eq!(keys, vec![(4, key("remotehost")), (4, key("remoteport"))]);
    }

    #[test]
    fn server_links_need_a_port() {
        let e = errs("[general]\nmode = server\npassword = p\n[dsl]\nbindhost = 0.0.0.0\n");
        assert!(matches!(&e[..], [(4, k, ErrorKind::MissingKey { .. })] if *k == key("bindport")));
        let e = errs("[general]\nmode = server\npassword = p\n[dsl]\nbindport = 0\n");
        assert!(matches!(&e[..], [(5, k, ErrorKind::BadNumber { min: 1, .. })] if *k == key("bindport")));
    }

    #[test]
    fn remote_port_range() {
        let e = errs(&format!("{GENERAL}[dsl]\nremotehost = h\nremoteport = 0\n"));
        assert!(
            matches!(&e[..], [(6, k, ErrorKind::BadNumber { min: 1, max: 65535, .. })] if *k == key("remoteport"))
        );
    }

    #[test]
    fn shared_binds_are_refused() {
        let server = "[general]\nmode = server\npassword = p\n";
        let e = errs(&format!("{server}[a]\nbindport = 5080\n[b]\nbindhost = 10.0.0.1\nbindport = 5080\n"));
        assert_eq!(
            e,
            vec![(8, key("bindport"), ErrorKind::SameBind { other_link: "a".into(), other_line: 4 })]
        );
        // Different hosts on one port are fine, and so is one host on different ports.
        ok(&format!(
            "{server}[a]\nbindhost = 10.0.0.1\nbindport = 5080\n[b]\nbindhost = 10.0.0.2\nbindport = 5080\n"
        ));
        ok(&format!("{server}[a]\nbindport = 5080\n[b]\nbindport = 5081\n"));
        // Clients: any port (0) never clashes.
        ok(&format!("{GENERAL}{LINK}bindport = 0\n[b]\nremotehost = h\nremoteport = 5081\nbindport = 0\n"));
    }

    #[test]
    fn control_bind_needs_host_and_port() {
        let c = ok(&format!("{GENERAL}control_bind_host = 127.0.0.1\ncontrol_bind_port = 8080\n{LINK}"));
        assert_eq!(c.control_bind, Some(ControlBind { host: "127.0.0.1".into(), port: 8080 }));
        let e = errs(&format!("{GENERAL}control_bind_port = 8080\n{LINK}"));
        assert_eq!(e, vec![(4, key("control_bind_port"), ErrorKind::Needs { other: "control_bind_host" })]);
        let e = errs(&format!("{GENERAL}control_bind_host = 127.0.0.1\n{LINK}"));
        assert_eq!(e, vec![(4, key("control_bind_host"), ErrorKind::Needs { other: "control_bind_port" })]);
    }

    #[test]
    fn flags_are_zero_or_one() {
        let c = ok(&format!("{GENERAL}{LINK}fallback_only = 1\n"));
        assert!(c.links[0].fallback_only);
        let e = errs(&format!("{GENERAL}{LINK}fallback_only = yes\n"));
        assert!(
            matches!(&e[..], [(7, k, ErrorKind::BadValue { expected: "0 or 1", .. })] if *k == key("fallback_only"))
        );
    }

    #[test]
    fn cleartext_data_warns_that_it_does_nothing() {
        let c = ok(&format!("{GENERAL}cleartext_data = 1\n{LINK}"));
        assert!(c.cleartext_data);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].starts_with("m.conf:4: cleartext_data"));
    }

    #[test]
    fn filters_sections_are_ignored_with_a_warning() {
        let c = ok(&format!("{GENERAL}{LINK}[filters]\ndsl = tcp port 22\n[filters-x]\nanything = goes\n"));
        assert_eq!(c.links.len(), 1);
        assert_eq!(
            c.warnings,
            vec![
                "m.conf:7: [filters]: traffic filters are not implemented; this section is ignored",
                "m.conf:9: [filters-x]: traffic filters are not implemented; this section is ignored",
            ]
        );
    }

    #[test]
    fn bandwidth_zero_means_unknown() {
        let c = ok(&format!("{GENERAL}{LINK}bandwidth_upload = 0\nbandwidth_download = 1250000\n"));
        assert_eq!((c.links[0].bandwidth_upload, c.links[0].bandwidth_download), (None, Some(1_250_000)));
    }

    #[test]
    fn empty_optional_strings_are_unset() {
        let c = ok(&format!("{GENERAL}statuscommand =\ncontrol_unix_path = ''\n{LINK}"));
        assert_eq!((c.status_command, c.control_unix_path), (None, None));
    }

    #[test]
    fn engine_config_applies_overrides_in_file_order() {
        let c = ok(&format!(
            "{GENERAL}timeout = 30\nloss_tolerance = 50\nlatency_tolerance = 800\nreorder_buffer_size = 0\n\
             [b]\nremotehost = h\nremoteport = 2\ntimeout = 10\nbandwidth_upload = 1000\n\
             [a]\nremotehost = h\nremoteport = 1\nloss_tolerence = 5\nlatency_tolerance = 200\nfallback_only = 1\n"
        ));
        let e = c.engine_config();
        assert_eq!((e.mode, e.reorder_buffer_size, e.mtu), (Mode::Client, 0, 1419));
        let names: Vec<_> = e.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let (b, a) = (&e.links[0], &e.links[1]);
        assert_eq!(
            (b.timeout, b.loss_tolerance, b.latency_tolerance),
            (Duration::from_secs(10), 50, Duration::from_millis(800))
        );
        assert_eq!((b.fallback_only, b.bandwidth_upload), (false, Some(1000)));
        assert_eq!(
            (a.timeout, a.loss_tolerance, a.latency_tolerance),
            (Duration::from_secs(30), 5, Duration::from_millis(200))
        );
        assert_eq!((a.fallback_only, a.bandwidth_upload), (true, None));
    }

    #[test]
    fn debug_does_not_show_the_password() {
        let c = ok(&format!("[general]\nmode = client\npassword = s3cr3t-Pa55\n{LINK}"));
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t-Pa55") && d.contains("<redacted>"), "{d}");
        assert!(!c.dump().contains("s3cr3t-Pa55"));
    }

    #[test]
    fn errors_are_sorted_by_line_and_all_reported() {
        let e = errs("[general]\nmode = x\nmtu = y\n[dsl]\nremoteport = z\nfoo = 1\n");
        let lines: Vec<_> = e.iter().map(|(line, _, _)| *line).collect();
        assert_eq!(lines, [1, 2, 3, 5, 6]);
    }

    #[test]
    fn duplication_keys_read_modes_port_ranges_and_budgets() {
        let c = ok(&format!(
            "{GENERAL}duplicate = all\nduplicate_ports = 5060, 16384-32767\nduplicate_budget = 2%\n{LINK}"
        ));
        assert_eq!(c.duplicate, Duplicate::All);
        assert_eq!(&c.duplicate_ports[..], &[(5060, 5060), (16384, 32767)]);
        assert_eq!(c.duplicate_budget, BudgetLimit::Percent(2));
        let d = ok(&format!("{GENERAL}duplicate_budget = 125000\n{LINK}"));
        assert_eq!((d.duplicate, d.duplicate_budget), (Duplicate::Auto, BudgetLimit::Rate(125_000)));
        assert!(d.duplicate_ports.is_empty());
        let bad = errs(&format!(
            "{GENERAL}duplicate = yes\nduplicate_ports = 80-20\nduplicate_budget = 150%\n{LINK}"
        ));
        let keys: Vec<_> =
            bad.iter().map(|(line, key, _)| (*line, key.clone().unwrap_or_default())).collect();
        assert_eq!(
            keys,
            [(4, "duplicate".into()), (5, "duplicate_ports".into()), (6, "duplicate_budget".into())]
        );
        let nine = (1..=9).map(|p| p.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(errs(&format!("{GENERAL}duplicate_ports = {nine}\n{LINK}")).len(), 1, "at most 8");
    }
}
