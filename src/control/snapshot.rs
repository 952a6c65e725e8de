//! A [`Status`] from the engine and what the shell knows: the one place that maps engine
//! figures to the control socket's units (unix times, percents, shares).

use super::decimal::Ratio;
use super::status::SiteStatus;
use super::status::{
    DuplicationStatus, LinkStatus, PathMtuStatus, PoolStatus, QueueStatus, ReorderStatus, Status, drops_of,
    link_state_names,
};
use crate::proto::sites::Sites;
use crate::proto::{Instant, Mode, Tunnel};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// What the engine does not know.
#[derive(Debug, Clone, Copy)]
pub struct ShellInfo<'a> {
    /// `--name`.
    pub name: &'a str,
    pub version: &'a str,
    pub pid: u32,
    /// Monotonic time now (the engine's clock) and unix time now, to convert between them.
    pub now: Instant,
    pub unix_now: u64,
    /// Monotonic time the daemon started.
    pub started: Instant,
    /// Unix time of the last (re)load.
    pub last_reload: u64,
    /// "tun" | "tap", and the device's name.
    pub tuntap_type: &'a str,
    pub tuntap_name: &'a str,
    pub tuntap_mtu: u64,
    /// Per link, in the engine's order: the address its socket is bound to (`None` while it
    /// is not bound). Shorter than the engine's links: the rest count as unbound.
    pub local: &'a [Option<SocketAddr>],
    /// The shell's own drop counters (TUN write failures, failed sends), after the engine's.
    pub shell_drops: &'a [(&'static str, u64)],
}

/// The snapshot the control server hands out. A server with sites: every site's links,
/// labelled, the drops of all, and a line per site (reorder, queue and pool figures are per
/// site and not reported yet).
pub fn snapshot(sites: &Sites, shell: &ShellInfo<'_>) -> Status {
    let many = sites.is_many();
    let mut status = Status { drops: drops_of(sites.drops()), ..shell_part(sites.mode(), shell) };
    status.drops.extend_from_slice(shell.shell_drops);
    for (i, (name, tunnel, up)) in sites.iter().enumerate() {
        // One call for one site or many: the router binary keeps one copy of it.
        let drops = if many { &[][..] } else { shell.shell_drops };
        let one = tunnel.map(|t| tunnel_snapshot(t, &ShellInfo { shell_drops: drops, ..*shell }));
        if !many {
            return one.unwrap_or(status);
        }
        let mut site = SiteStatus {
            name: name.to_string(),
            status: match (up, tunnel.is_some()) {
                (true, _) => "up",
                (false, true) => "down",
                (false, false) => "idle",
            },
            ..SiteStatus::default()
        };
        for p in sites.prefixes(i) {
            let sep = if site.prefixes.is_empty() { "" } else { " " };
            let _ = write!(site.prefixes, "{sep}{p}");
        }
        if let Some(mut one) = one {
            // The same reasons in the same order, the shell's last: summed by position.
            for (sum, (_, n)) in status.drops.iter_mut().zip(&one.drops) {
                sum.1 += n;
            }
            for l in &mut one.links {
                l.site = site.name.clone();
                site.links_up += u64::from(l.state == "up");
            }
            status.handshake_failures += one.handshake_failures;
            status.links.append(&mut one.links);
        }
        status.sites.push(site);
    }
    status
}

/// What the shell alone knows.
fn shell_part(mode: Mode, shell: &ShellInfo<'_>) -> Status {
    let mode = match mode {
        Mode::Client => "client",
        Mode::Server => "server",
    };
    Status {
        name: shell.name.to_string(),
        version: shell.version.to_string(),
        pid: shell.pid,
        time: shell.unix_now,
        uptime_secs: shell.now.saturating_since(shell.started).as_micros() / 1_000_000,
        last_reload: shell.last_reload,
        tuntap_type: shell.tuntap_type.to_string(),
        tuntap_name: shell.tuntap_name.to_string(),
        tuntap_mtu: shell.tuntap_mtu,
        mode: mode.to_string(),
        ..Status::default()
    }
}

/// One tunnel's links.
fn links_of(engine: &Tunnel, shell: &ShellInfo<'_>) -> Vec<LinkStatus> {
    let data_sent: u64 = engine.links().iter().map(|l| l.stats.tx_data_packets).sum();
    engine
        .links()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (status, state) = link_state_names(l.state);
            let local = shell.local.get(i).copied().flatten();
            LinkStatus {
                name: l.config.name.clone(),
                site: String::new(),
                bindaddr: local
                    .filter(|a| !a.ip().is_unspecified())
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default(),
                bindport: local.map_or(0, |a| a.port()),
                destaddr: l.peer.map(|a| a.ip().to_string()).unwrap_or_default(),
                destport: l.peer.map_or(0, |a| a.port()),
                status,
                state,
                sent_packets: l.stats.tx_packets,
                recv_packets: l.stats.rx_packets,
                sent_bytes: l.stats.tx_bytes,
                recv_bytes: l.stats.rx_bytes,
                bandwidth: l.config.bandwidth_upload.unwrap_or(0),
                capacity: l.capacity.measured().then(|| l.capacity.estimate()),
                srtt: l.rtt.srtt(),
                rttvar: l.rtt.has_samples().then(|| l.rtt.rttvar()),
                loss_out: l.loss_out(),
                loss_in: l.loss_in(),
                share: Ratio::new(l.stats.tx_data_packets, data_sent),
                disconnects: l.stats.disconnects,
                handshakes: l.stats.handshakes,
                handshake_failures: l.stats.handshake_failures,
                duplicates_sent: l.stats.duplicates_sent,
                duplicates_dropped: l.stats.duplicates_dropped,
                path_mtu: PathMtuStatus {
                    mtu: if l.state.is_connected() { l.pmtu.path_mtu() as u64 } else { 0 },
                    state: if l.state.is_connected() { l.pmtu.state().name() } else { "" },
                    probes_sent: l.pmtu.stats.probes_sent,
                    probes_lost: l.pmtu.stats.probes_lost,
                    black_holes: l.pmtu.stats.black_holes,
                },
                last_packet: if l.stats.rx_packets == 0 {
                    0
                } else {
                    shell
                        .unix_now
                        .saturating_sub(shell.now.saturating_since(l.last_rx()).as_micros() / 1_000_000)
                },
                timeout: l.config.timeout.as_millis() / 1000,
            }
        })
        .collect()
}

/// A client, or a server of one site: one tunnel's whole status.
pub fn tunnel_snapshot(engine: &Tunnel, shell: &ShellInfo<'_>) -> Status {
    let links = links_of(engine, shell);
    let mut drops = drops_of(engine.drops());
    drops.extend_from_slice(shell.shell_drops);
    let pools: Vec<PoolStatus> = engine
        .pools()
        .into_iter()
        .filter_map(|(name, pool)| {
            pool.map(|p| PoolStatus {
                name,
                slots: p.slots,
                peak: p.peak,
                peak_bytes: (p.peak * p.slot_len) as u64,
            })
        })
        .collect();
    let reorder_size = pools.iter().find(|p| p.name == "reorder").map_or(0, |p| p.slots);
    let reorder = engine
        .reorder_stats()
        .zip(engine.reorder_wait())
        .map(|(s, wait)| ReorderStatus::from_stats(reorder_size, s, wait, engine.reorder_hold()));
    let queue = engine.send_queue(shell.now).map(|(flows, sojourn, s)| QueueStatus {
        flows: flows as u64,
        packets: engine.send_queue_len() as u64,
        sojourn,
        counters: [
            ("codel_drops", s.codel_drops),
            ("overflow_drops", s.overflow_drops),
            ("expired", s.expired),
            ("new_flows", s.new_flows),
        ],
    });
    let (duplicate, d) = engine.duplication();
    let duplication = Some(DuplicationStatus {
        mode: duplicate.name(),
        counters: [
            ("packets", d.packets),
            ("bytes", d.bytes),
            ("over_budget", d.over_budget),
            ("one_link", d.one_link),
        ],
    });
    Status {
        handshake_failures: links.iter().map(|l| l.handshake_failures).sum(),
        links,
        drops,
        reorder,
        pools,
        queue,
        duplication,
        ..shell_part(engine.mode(), shell)
    }
}
