//! What the control socket reports: a plain snapshot that the daemon fills in when a client
//! asks, and its three renderings (JSON, Prometheus text, a table for people).
//!
//! The JSON keeps MLVPN's field names *and types* so existing consumers keep working:
//! `bindport`/`destport` are strings (`"any"`/`""` when unset) and `srtt`/`loss` are integers
//! (0 while unknown), as the original printed them. Our additions are typed properly, with
//! `null` for what is not known yet (`srtt_ms`, `rttvar`, `loss_out`, `loss_in`, `capacity`).

use super::decimal::Ratio;
use super::json::Writer as JsonWriter;
use super::prom::{Kind, Writer as PromWriter};
use crate::proto::pmtu::PmtuState;
use crate::proto::reorder::ReorderStats;
use crate::proto::tunnel::DropCounters;
use crate::proto::{Duration, LinkState};
use std::fmt::Write as _;

/// The whole daemon, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// `--name` (default "mlvpn").
    pub name: String,
    pub version: String,
    pub pid: u32,
    /// Unix time at which the snapshot was taken; ages in the table are counted from it.
    pub time: u64,
    pub uptime_secs: u64,
    /// Unix time of the last (re)load of the configuration.
    pub last_reload: u64,
    /// "tun" | "tap".
    pub tuntap_type: String,
    pub tuntap_name: String,
    /// The device's MTU now: the configured one, or less when a link's path carries less.
    pub tuntap_mtu: u64,
    /// "client" | "server".
    pub mode: String,
    /// Every link; a server with sites lists each connected site's links.
    pub links: Vec<LinkStatus>,
    /// A server's sites (empty for a client, and a server of one site).
    pub sites: Vec<SiteStatus>,
    /// Dropped packets by reason, with stable names (see [`drops_of`]).
    pub drops: Vec<(&'static str, u64)>,
    /// `None` when the reorder buffer is off.
    pub reorder: Option<ReorderStatus>,
    /// The packet pools allocated at start (those that are on), and how far each was used.
    pub pools: Vec<PoolStatus>,
    /// Handshake messages that did not authenticate or were not fresh, all links.
    pub handshake_failures: u64,
    /// The flow-fair send queue; `None` under round-robin, which has none.
    pub queue: Option<QueueStatus>,
    /// `None` only in an empty snapshot.
    pub duplication: Option<DuplicationStatus>,
}

/// One site of a server ([`crate::proto::sites`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteStatus {
    pub name: String,
    /// "up" (a link connected), "down" (connected before), "idle" (never connected since
    /// the start or its last reload's creation).
    pub status: &'static str,
    pub links_up: u64,
    /// Its addresses and routes, space-separated.
    pub prefixes: String,
}

/// The send queue ([`crate::proto::fq`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStatus {
    /// Flows with packets waiting now.
    pub flows: u64,
    pub packets: u64,
    /// The longest a packet sent from the queue waited, over the last second or two.
    pub sojourn: Duration,
    /// `codel_drops`, `overflow_drops`, `expired`, `new_flows`.
    pub counters: [(&'static str, u64); 4],
}

/// Real-time packets sent twice ([`crate::proto::duplicate`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DuplicationStatus {
    /// "auto" | "off" | "all".
    pub mode: &'static str,
    /// `packets`, `bytes`, `over_budget`, `one_link`.
    pub counters: [(&'static str, u64); 4],
}

/// What a link's path carries ([`crate::proto::pmtu`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathMtuStatus {
    /// The path MTU in use (IP packet bytes); 0 while the link is down.
    pub mtu: u64,
    /// "searching" | "done" | "black_hole" | "unusable"; "" while the link is down.
    pub state: &'static str,
    pub probes_sent: u64,
    pub probes_lost: u64,
    /// Times the path stopped carrying the size in use.
    pub black_holes: u64,
}

/// One link ("tunnel" in MLVPN's words).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkStatus {
    pub name: String,
    /// Its site, on a server with sites; else empty.
    pub site: String,
    /// Empty: any address.
    pub bindaddr: String,
    /// 0: any port.
    pub bindport: u16,
    /// Empty: not known (a server before the client's first packet).
    pub destaddr: String,
    /// 0: not known.
    pub destport: u16,
    /// MLVPN's: "disconnected" | "waiting peer" | "connected" | "lossy link" | "slow link".
    pub status: &'static str,
    /// Ours: "down" | "authenticating" | "up" | "lossy" | "slow".
    pub state: &'static str,
    pub sent_packets: u64,
    pub recv_packets: u64,
    pub sent_bytes: u64,
    pub recv_bytes: u64,
    /// Configured `bandwidth_upload`, bytes/s, 0 if none.
    pub bandwidth: u64,
    /// Estimated capacity, bytes/s, when known.
    pub capacity: Option<u64>,
    pub srtt: Option<Duration>,
    pub rttvar: Option<Duration>,
    /// Percent lost on the way out (measured by the peer) and in.
    pub loss_out: Option<u8>,
    pub loss_in: Option<u8>,
    /// Fraction of the data packets sent that went on this link, 0..1.
    pub share: Ratio,
    pub disconnects: u64,
    pub handshakes: u64,
    pub handshake_failures: u64,
    /// Second copies of real-time packets sent on this link.
    pub duplicates_sent: u64,
    /// Data packets that arrived here after another copy was delivered.
    pub duplicates_dropped: u64,
    pub path_mtu: PathMtuStatus,
    /// Unix time of the last packet received, 0 = never.
    pub last_packet: u64,
    /// Seconds without an answer before the link is down.
    pub timeout: u64,
}

/// The receive reorder buffer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReorderStatus {
    /// Slots.
    pub size: usize,
    pub in_order: u64,
    pub reordered: u64,
    pub late: u64,
    pub duplicate: u64,
    /// Sequence numbers given up on.
    pub skipped: u64,
    pub full: u64,
    /// Sparse packets delivered without waiting.
    pub passed: u64,
    /// Bulk packets held to the slowest link's latency.
    pub equalized: u64,
    pub wait_max: Duration,
    /// Rounded to the microsecond.
    pub wait_mean: Duration,
    /// The current hole timeout.
    pub timeout: Duration,
    /// The longest hold of a bulk packet now: how much later than their own link's delay
    /// bulk packets are delivered, to match the slowest link's.
    pub hold: Duration,
}

/// A pool of packet buffers: its memory is touched only as far as it was used, so `peak_bytes`
/// is what it costs in RAM; `slots` times the buffer size is what it may cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolStatus {
    /// "reorder" | "send_queue" | "resend".
    pub name: &'static str,
    pub slots: usize,
    /// The most slots in use at once so far.
    pub peak: usize,
    pub peak_bytes: u64,
}

/// `(status, state)`: MLVPN's status string and ours, for a link state.
pub fn link_state_names(s: LinkState) -> (&'static str, &'static str) {
    let ours = match s {
        LinkState::Down => "down",
        LinkState::Authenticating => "authenticating",
        LinkState::Up => "up",
        LinkState::Lossy => "lossy",
        LinkState::Slow => "slow",
    };
    (s.mlvpn_name(), ours)
}

/// The engine's drop counters under their stable names (label values in the metrics, keys in
/// the JSON). The shell appends its own (`tun_write`, `send`).
pub fn drops_of(d: &DropCounters) -> Vec<(&'static str, u64)> {
    d.named().to_vec()
}

impl ReorderStatus {
    /// From the engine's counters, the buffer's size in slots, its current timeout and hold.
    pub fn from_stats(size: usize, s: &ReorderStats, timeout: Duration, hold: Duration) -> Self {
        let held = s.reordered.max(1);
        let mean = s.wait_total_us / held + u64::from(s.wait_total_us % held >= held.div_ceil(2));
        ReorderStatus {
            size,
            in_order: s.in_order,
            reordered: s.reordered,
            late: s.late,
            duplicate: s.duplicate,
            skipped: s.skipped,
            full: s.full,
            passed: s.passed,
            equalized: s.equalized,
            wait_max: Duration::from_micros(s.wait_max_us),
            wait_mean: Duration::from_micros(if s.reordered == 0 { 0 } else { mean }),
            timeout,
            hold,
        }
    }
}

fn port_or(p: u16, unset: &str) -> String {
    if p == 0 { unset.to_string() } else { p.to_string() }
}

impl LinkStatus {
    /// The link's metric labels (`tunnel`, and `site` on a server with sites), then `extra`.
    fn labels<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![("tunnel", self.name.as_str())];
        if !self.site.is_empty() {
            v.push(("site", &self.site));
        }
        v.extend_from_slice(extra);
        v
    }
}

impl Status {
    /// Appends the status document (MLVPN's `status` command).
    pub fn write_json(&self, out: &mut String) {
        let mut w = JsonWriter::new(out);
        w.open_object(None);
        w.string("name", &self.name);
        w.string("version", &self.version);
        w.u64("uptime", self.uptime_secs);
        w.u64("last_reload", self.last_reload);
        w.u64("pid", u64::from(self.pid));
        w.u64("time", self.time);
        w.string("mode", &self.mode);
        w.open_object(Some("tuntap"));
        w.string("type", &self.tuntap_type);
        w.string("name", &self.tuntap_name);
        w.u64("mtu", self.tuntap_mtu);
        w.close_object();
        w.open_array(Some("tunnels"));
        for l in &self.links {
            w.open_object(None);
            // MLVPN's fields, with its types.
            w.string("name", &l.name);
            if !l.site.is_empty() {
                w.string("site", &l.site);
            }
            w.string("mode", &self.mode);
            w.string("bindaddr", if l.bindaddr.is_empty() { "any" } else { &l.bindaddr });
            w.string("bindport", &port_or(l.bindport, "any"));
            w.string("destaddr", &l.destaddr);
            w.string("destport", &port_or(l.destport, ""));
            w.string("status", l.status);
            w.u64("sentpackets", l.sent_packets);
            w.u64("recvpackets", l.recv_packets);
            w.u64("sentbytes", l.sent_bytes);
            w.u64("recvbytes", l.recv_bytes);
            w.u64("bandwidth", l.bandwidth);
            w.u64("srtt", l.srtt.map_or(0, |d| d.as_micros().saturating_add(500) / 1_000));
            w.u64("loss", l.loss_out.map_or(0, u64::from));
            w.u64("disconnects", l.disconnects);
            w.u64("last_packet", l.last_packet);
            w.u64("timeout", l.timeout);
            // Ours.
            w.string("state", l.state);
            w.opt_ratio("srtt_ms", l.srtt.map(millis), 3);
            w.opt_ratio("rttvar", l.rttvar.map(millis), 3);
            w.opt_u64("loss_out", l.loss_out.map(u64::from));
            w.opt_u64("loss_in", l.loss_in.map(u64::from));
            w.opt_u64("capacity", l.capacity);
            w.ratio("share", l.share, 4);
            w.u64("handshakes", l.handshakes);
            w.u64("handshake_failures", l.handshake_failures);
            w.u64("duplicates_sent", l.duplicates_sent);
            w.u64("duplicates_dropped", l.duplicates_dropped);
            w.open_object(Some("path_mtu"));
            w.u64("mtu", l.path_mtu.mtu);
            w.string("state", l.path_mtu.state);
            w.u64("probes_sent", l.path_mtu.probes_sent);
            w.u64("probes_lost", l.path_mtu.probes_lost);
            w.u64("black_holes", l.path_mtu.black_holes);
            w.close_object();
            w.close_object();
        }
        w.close_array();
        if !self.sites.is_empty() {
            w.open_array(Some("sites"));
            for site in &self.sites {
                w.open_object(None);
                w.string("name", &site.name);
                w.string("status", site.status);
                w.u64("links_up", site.links_up);
                w.string("prefixes", &site.prefixes);
                w.close_object();
            }
            w.close_array();
        }
        w.open_object(Some("drops"));
        for (reason, n) in &self.drops {
            w.u64(reason, *n);
        }
        w.close_object();
        match &self.reorder {
            None => w.null("reorder"),
            Some(r) => {
                w.open_object(Some("reorder"));
                w.u64("size", r.size as u64);
                w.u64("in_order", r.in_order);
                w.u64("reordered", r.reordered);
                w.u64("late", r.late);
                w.u64("duplicate", r.duplicate);
                w.u64("skipped", r.skipped);
                w.u64("full", r.full);
                w.u64("passed", r.passed);
                w.u64("equalized", r.equalized);
                w.ratio("wait_max_ms", millis(r.wait_max), 3);
                w.ratio("wait_mean_ms", millis(r.wait_mean), 3);
                w.ratio("timeout_ms", millis(r.timeout), 3);
                w.ratio("hold_ms", millis(r.hold), 3);
                w.close_object();
            }
        }
        w.open_object(Some("pools"));
        for p in &self.pools {
            w.open_object(Some(p.name));
            w.u64("slots", p.slots as u64);
            w.u64("peak", p.peak as u64);
            w.u64("peak_bytes", p.peak_bytes);
            w.close_object();
        }
        w.close_object();
        w.u64("handshake_failures", self.handshake_failures);
        match &self.queue {
            None => w.null("send_queue"),
            Some(q) => {
                w.open_object(Some("send_queue"));
                w.u64("flows", q.flows);
                w.u64("packets", q.packets);
                w.ratio("sojourn_max_ms", millis(q.sojourn), 3);
                for (name, n) in q.counters {
                    w.u64(name, n);
                }
                w.close_object();
            }
        }
        if let Some(d) = &self.duplication {
            w.open_object(Some("duplication"));
            w.string("mode", d.mode);
            for (name, n) in d.counters {
                w.u64(name, n);
            }
            w.close_object();
        }
        w.close_object();
        w.finish();
    }

    /// Appends the metrics (Prometheus text format 0.0.4), every name prefixed `mlvpn_`.
    pub fn write_prometheus(&self, out: &mut String) {
        use Kind::{Counter, Gauge};
        let mut w = PromWriter::new(out);
        w.family(
            "mlvpn_info",
            Gauge,
            "Constant 1, labelled with the daemon's name, version, mode and device.",
        );
        w.int(
            &[
                ("name", &self.name),
                ("version", &self.version),
                ("mode", &self.mode),
                ("tuntap_type", &self.tuntap_type),
                ("tuntap_name", &self.tuntap_name),
            ],
            1,
        );
        w.family("mlvpn_uptime_seconds", Gauge, "Seconds since the daemon started.");
        w.int(&[], self.uptime_secs);
        w.family(
            "mlvpn_last_reload_timestamp_seconds",
            Gauge,
            "Unix time of the last configuration (re)load.",
        );
        w.int(&[], self.last_reload);
        w.family("mlvpn_links", Gauge, "Configured links.");
        w.int(&[], self.links.len() as u64);

        type Int = fn(&LinkStatus) -> u64;
        type Value = fn(&LinkStatus) -> Option<Ratio>;
        w.family("mlvpn_link_up", Gauge, "1 if the link carries data, else 0.");
        self.per_link(&mut w, |l| Some(Ratio::int(u64::from(l.state == "up"))));
        type State = fn(&LinkStatus) -> &str;
        let pmtu_states = PmtuState::ALL.map(PmtuState::name);
        let states: [(&'static str, &str, &[&str], State); 2] = [
            (
                "mlvpn_link_state",
                "1 for the link's current state, 0 for the others.",
                &["down", "authenticating", "up", "lossy", "slow"],
                |l| l.state,
            ),
            (
                "mlvpn_link_path_mtu_state",
                "1 for where the link's path MTU discovery stands, 0 for the others.",
                &pmtu_states,
                |l| l.path_mtu.state,
            ),
        ];
        for (name, help, all, state) in states {
            w.family(name, Gauge, help);
            for l in &self.links {
                for s in all {
                    w.int(&l.labels(&[("state", s)]), u64::from(state(l) == *s));
                }
            }
        }
        let counters: [(&'static str, &str, Int); 12] = [
            ("mlvpn_link_sent_packets", "Packets sent on the link.", |l| l.sent_packets),
            ("mlvpn_link_recv_packets", "Packets received on the link.", |l| l.recv_packets),
            ("mlvpn_link_sent_bytes", "Bytes sent on the link.", |l| l.sent_bytes),
            ("mlvpn_link_recv_bytes", "Bytes received on the link.", |l| l.recv_bytes),
            ("mlvpn_link_disconnects", "Times the link went down.", |l| l.disconnects),
            ("mlvpn_link_handshakes", "Handshakes completed on the link.", |l| l.handshakes),
            ("mlvpn_link_handshake_failures", "Handshake messages that failed on the link.", |l| {
                l.handshake_failures
            }),
            ("mlvpn_link_duplicates_sent", "Second copies of real-time packets sent on the link.", |l| {
                l.duplicates_sent
            }),
            ("mlvpn_link_duplicates_dropped", "Data packets received after another copy.", |l| {
                l.duplicates_dropped
            }),
            ("mlvpn_link_path_mtu_probes_sent", "Path MTU probes sent on the link.", |l| {
                l.path_mtu.probes_sent
            }),
            ("mlvpn_link_path_mtu_probes_lost", "Path MTU probes not acknowledged in time.", |l| {
                l.path_mtu.probes_lost
            }),
            (
                "mlvpn_link_path_mtu_black_holes",
                "Times the link's path stopped carrying the size in use.",
                |l| l.path_mtu.black_holes,
            ),
        ];
        for (name, help, f) in counters {
            w.family(name, Counter, help);
            for l in &self.links {
                w.int(&l.labels(&[]), f(l));
            }
        }
        let gauges: [(&'static str, &str, Value); 8] = [
            ("mlvpn_link_bandwidth_bytes_per_second", "Configured upload bandwidth (0: none).", |l| {
                Some(Ratio::int(l.bandwidth))
            }),
            ("mlvpn_link_capacity_bytes_per_second", "Estimated capacity, when known.", |l| {
                l.capacity.map(Ratio::int)
            }),
            ("mlvpn_link_srtt_seconds", "Smoothed round-trip time, when known.", |l| l.srtt.map(seconds)),
            ("mlvpn_link_rttvar_seconds", "Round-trip time variation, when known.", |l| {
                l.rttvar.map(seconds)
            }),
            ("mlvpn_link_share_ratio", "Fraction of the data packets sent on this link.", |l| Some(l.share)),
            (
                "mlvpn_link_last_packet_timestamp_seconds",
                "Unix time of the last packet received (0: never).",
                |l| Some(Ratio::int(l.last_packet)),
            ),
            ("mlvpn_link_timeout_seconds", "Seconds without an answer before the link is down.", |l| {
                Some(Ratio::int(l.timeout))
            }),
            ("mlvpn_link_path_mtu_bytes", "The largest IP packet the link's path carries, while up.", |l| {
                (l.path_mtu.mtu > 0).then(|| Ratio::int(l.path_mtu.mtu))
            }),
        ];
        for (name, help, f) in gauges {
            w.family(name, Gauge, help);
            self.per_link(&mut w, f);
        }
        w.family("mlvpn_link_loss_ratio", Gauge, "Fraction of packets lost, each way, when known.");
        for l in &self.links {
            for (dir, v) in [("out", l.loss_out), ("in", l.loss_in)] {
                if let Some(v) = v {
                    w.ratio(&l.labels(&[("direction", dir)]), Ratio::new(u64::from(v), 100));
                }
            }
        }
        if !self.sites.is_empty() {
            w.family("mlvpn_site_up", Gauge, "1 if the site has a connected link, else 0.");
            for site in &self.sites {
                w.int(&[("site", &site.name)], u64::from(site.status == "up"));
            }
            w.family("mlvpn_site_links_up", Gauge, "The site's connected links.");
            for site in &self.sites {
                w.int(&[("site", &site.name)], site.links_up);
            }
        }
        w.family("mlvpn_drops", Counter, "Packets dropped, by reason.");
        for (reason, n) in &self.drops {
            w.int(&[("reason", reason)], *n);
        }
        w.family("mlvpn_handshake_failures", Counter, "Handshake messages that failed, all links.");
        w.int(&[], self.handshake_failures);
        type Field = fn(&PoolStatus) -> u64;
        let pools: [(&'static str, &str, Field); 3] = [
            ("mlvpn_pool_slots", "Packet buffers of each pool.", |p| p.slots as u64),
            ("mlvpn_pool_peak_slots", "Most buffers of each pool in use at once.", |p| p.peak as u64),
            ("mlvpn_pool_peak_bytes", "Memory each pool has touched (its peak).", |p| p.peak_bytes),
        ];
        for (name, help, field) in pools {
            w.family(name, Gauge, help);
            for p in &self.pools {
                w.int(&[("pool", p.name)], field(p));
            }
        }
        if let Some(q) = &self.queue {
            w.family("mlvpn_send_queue_flows", Gauge, "Flows with packets waiting in the send queue.");
            w.int(&[], q.flows);
            w.family("mlvpn_send_queue_packets", Gauge, "Packets waiting in the send queue.");
            w.int(&[], q.packets);
            w.family("mlvpn_send_queue_sojourn_max_seconds", Gauge, "Longest recent wait in the send queue.");
            w.ratio(&[], seconds(q.sojourn));
            w.family("mlvpn_send_queue_events", Counter, "Send queue drops by cause, and new flows served.");
            for (name, n) in q.counters {
                w.int(&[("event", name)], n);
            }
        }
        if let Some(d) = &self.duplication {
            w.family(
                "mlvpn_duplication",
                Counter,
                "Real-time packets sent twice, their bytes, and those sent once.",
            );
            for (name, n) in d.counters {
                w.int(&[("counter", name)], n);
            }
        }
        if let Some(r) = &self.reorder {
            w.family("mlvpn_reorder_size", Gauge, "Slots of the reorder buffer.");
            w.int(&[], r.size as u64);
            let counters: [(&'static str, &str, u64); 8] = [
                ("mlvpn_reorder_in_order", "Packets delivered without waiting.", r.in_order),
                ("mlvpn_reorder_reordered", "Packets held, then delivered in order.", r.reordered),
                ("mlvpn_reorder_late", "Packets that arrived after their place was given up.", r.late),
                ("mlvpn_reorder_duplicate", "Packets that arrived twice.", r.duplicate),
                ("mlvpn_reorder_skipped", "Sequence numbers given up on.", r.skipped),
                ("mlvpn_reorder_full", "Packets dropped because the buffer was full.", r.full),
                ("mlvpn_reorder_passed", "Sparse packets delivered without waiting.", r.passed),
                ("mlvpn_reorder_equalized", "Bulk packets held to the slowest link's latency.", r.equalized),
            ];
            for (name, help, v) in counters {
                w.family(name, Counter, help);
                w.int(&[], v);
            }
            let gauges: [(&'static str, &str, Duration); 4] = [
                ("mlvpn_reorder_wait_max_seconds", "Longest time a packet was held.", r.wait_max),
                ("mlvpn_reorder_wait_mean_seconds", "Mean time a held packet waited.", r.wait_mean),
                ("mlvpn_reorder_timeout_seconds", "Current hole timeout.", r.timeout),
                ("mlvpn_reorder_hold_seconds", "Longest hold of a bulk packet now.", r.hold),
            ];
            for (name, help, v) in gauges {
                w.family(name, Gauge, help);
                w.ratio(&[], seconds(v));
            }
        }
    }

    fn per_link(&self, w: &mut PromWriter<'_>, f: impl Fn(&LinkStatus) -> Option<Ratio>) {
        for l in &self.links {
            if let Some(v) = f(l) {
                w.ratio(&l.labels(&[]), v);
            }
        }
    }

    /// Appends a table for people (`mlvpn status`).
    pub fn write_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{} {}: {}, {} {} (mtu {}), pid {}, up {}",
            printable(&self.name),
            printable(&self.version),
            printable(&self.mode),
            printable(&self.tuntap_type),
            printable(&self.tuntap_name),
            self.tuntap_mtu,
            self.pid,
            age(self.uptime_secs),
        );
        let sites = !self.sites.is_empty();
        if sites {
            let up = self.sites.iter().filter(|s| s.status == "up").count();
            let _ = writeln!(out, "sites: {up} up of {}", self.sites.len());
        }
        let mut rows: Vec<[String; 10]> = vec![
            [
                "SITE",
                "LINK",
                "STATE",
                "RTT",
                "LOSS OUT/IN",
                "BANDWIDTH",
                "PATH MTU",
                "SHARE",
                "SENT / RECV",
                "LAST RX",
            ]
            .map(String::from),
        ];
        for l in &self.links {
            let loss = |v: Option<u8>| v.map_or("-".to_string(), |v| format!("{v}%"));
            let rate = match (l.capacity, l.bandwidth) {
                (Some(c), _) => format!("~{}", rate(c)),
                (None, 0) => "-".to_string(),
                (None, b) => rate(b),
            };
            let last = if l.last_packet == 0 {
                "never".to_string()
            } else {
                format!("{} ago", age(self.time.saturating_sub(l.last_packet)))
            };
            rows.push([
                printable(&l.site),
                printable(&l.name),
                l.state.to_string(),
                l.srtt.map_or("-".to_string(), |d| format!("{} ms", millis(d).fixed(1))),
                format!("{}/{}", loss(l.loss_out), loss(l.loss_in)),
                rate,
                path_mtu_cell(&l.path_mtu),
                percent(l.share),
                format!("{} / {}", bytes(l.sent_bytes), bytes(l.recv_bytes)),
                last,
            ]);
        }
        let mut widths = [0usize; 10];
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        // The site column only on a server with sites.
        let first = usize::from(!sites);
        for r in &rows {
            let start = out.len();
            for (i, cell) in r.iter().enumerate().skip(first) {
                out.push_str(cell);
                if i + 1 < r.len() {
                    let pad = widths[i] - cell.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            let end = out.trim_end().len().max(start);
            out.truncate(end);
            out.push('\n');
        }
        if self.drops.iter().any(|(_, n)| *n > 0) {
            out.push_str("drops");
            write_counters(out, &self.drops);
        }
        if self.handshake_failures > 0 {
            let _ = writeln!(out, "handshake failures: {}", self.handshake_failures);
        }
        if let Some(r) = &self.reorder {
            let _ = writeln!(
                out,
                "reorder ({} slots): {} in order, {} reordered, {} late, {} duplicate, {} skipped, {} full, \
                 {} passed, {} equalized; wait max {} ms, mean {} ms, timeout {} ms, hold {} ms",
                r.size,
                r.in_order,
                r.reordered,
                r.late,
                r.duplicate,
                r.skipped,
                r.full,
                r.passed,
                r.equalized,
                millis(r.wait_max).fixed(1),
                millis(r.wait_mean).fixed(1),
                millis(r.timeout).fixed(1),
                millis(r.hold).fixed(1),
            );
        }
        if let Some(q) = &self.queue {
            let _ = write!(
                out,
                "send queue: {} flows, {} packets, longest wait {} ms",
                q.flows,
                q.packets,
                millis(q.sojourn).fixed(1)
            );
            write_counters(out, &q.counters);
        }
        if let Some(d) = &self.duplication {
            let _ = write!(out, "duplication ({})", d.mode);
            write_counters(out, &d.counters);
        }
        if !self.pools.is_empty() {
            out.push_str("pools (peak/slots):");
            for (i, p) in self.pools.iter().enumerate() {
                let name = if p.name == "send_queue" { "send queue" } else { p.name };
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(out, "{sep} {name} {}/{} ({})", p.peak, p.slots, bytes(p.peak_bytes));
            }
            out.push('\n');
        }
    }
}

/// `; name n, name n` for the counters that are not zero, then the end of the line.
fn write_counters(out: &mut String, counters: &[(&'static str, u64)]) {
    let mut sep = ": ";
    for (name, n) in counters.iter().filter(|(_, n)| *n > 0) {
        let _ = write!(out, "{sep}{name} {n}");
        sep = ", ";
    }
    out.push('\n');
}

/// `s` with control characters (terminal escapes) shown as `?`.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// A duration in milliseconds.
fn millis(d: Duration) -> Ratio {
    Ratio::new(d.as_micros(), 1_000)
}

/// A duration in seconds.
fn seconds(d: Duration) -> Ratio {
    Ratio::new(d.as_micros(), 1_000_000)
}

/// A fraction as a percentage with one decimal: `62.5%`.
/// `1400`, `1400?` while the first search runs, `1400!` after a black hole until the search
/// ends, `none` for a path that is unusable, `-` for a link that is down.
fn path_mtu_cell(p: &PathMtuStatus) -> String {
    match p.state {
        "" => "-".to_string(),
        "unusable" => "none".to_string(),
        "searching" => format!("{}?", p.mtu),
        "black_hole" => format!("{}!", p.mtu),
        _ => p.mtu.to_string(),
    }
}

fn percent(r: Ratio) -> String {
    let (int, thousandths) = r.round(3);
    format!("{}.{}%", int.saturating_mul(100).saturating_add(thousandths / 10), thousandths % 10)
}

/// Bytes in SI units: `512 B`, `1.2 kB`, `3.4 MB`.
fn bytes(n: u64) -> String {
    if n < 1000 {
        return format!("{n} B");
    }
    with_unit(n, 1000, &["kB", "MB", "GB", "TB", "PB", "EB"])
}

/// A rate given in bytes/s, in bits: `800 bit/s`, `64.0 kbit/s`, `8.0 Mbit/s`.
fn rate(bytes_per_sec: u64) -> String {
    if bytes_per_sec < 125 {
        return format!("{} bit/s", bytes_per_sec * 8);
    }
    // A kbit is 125 bytes.
    with_unit(bytes_per_sec, 125, &["kbit/s", "Mbit/s", "Gbit/s"])
}

/// `n / first_unit` with one decimal, in the first of `units` (each 1000 times the one before)
/// where it stays below 1000.0, else in the last.
fn with_unit(n: u64, first_unit: u64, units: &[&str]) -> String {
    let mut unit = first_unit;
    for (i, name) in units.iter().enumerate() {
        let v = Ratio::new(n, unit);
        if v.round(1).0 < 1000 || i + 1 == units.len() {
            return format!("{} {name}", v.fixed(1));
        }
        unit = unit.saturating_mul(1000);
    }
    String::new()
}

/// Seconds as `42s`, `5m07s`, `2h03m`, `3d04h`.
fn age(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_for_people() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(bytes(999_999), "1.0 MB");
        assert_eq!(bytes(u64::MAX), "18.4 EB");
        assert_eq!(rate(100), "800 bit/s");
        assert_eq!(rate(8_000), "64.0 kbit/s");
        assert_eq!(rate(1_000_000), "8.0 Mbit/s");
        assert_eq!(rate(125_000_000), "1.0 Gbit/s");
        assert_eq!(rate(124_993_750), "1.0 Gbit/s");
        assert_eq!(rate(u64::MAX), "147573952589.7 Gbit/s");
        assert_eq!(percent(Ratio::new(5, 8)), "62.5%");
        assert_eq!(percent(Ratio::new(1, 16)), "6.2%");
        assert_eq!(percent(Ratio::new(2, 3)), "66.7%");
        assert_eq!(percent(Ratio::new(1, 1)), "100.0%");
        assert_eq!(percent(Ratio::default()), "0.0%");
        assert_eq!(age(0), "0s");
        assert_eq!(age(307), "5m07s");
        assert_eq!(age(7380), "2h03m");
        assert_eq!(age(273_600), "3d04h");
        assert_eq!(printable("a\u{1b}[31mb\n"), "a?[31mb?");
    }

    #[test]
    fn state_names_for_each_state() {
        assert_eq!(link_state_names(LinkState::Authenticating), ("waiting peer", "authenticating"));
        assert_eq!(link_state_names(LinkState::Lossy), ("lossy link", "lossy"));
        assert_eq!(link_state_names(LinkState::Up), ("connected", "up"));
    }

    #[test]
    fn reorder_mean_wait_without_samples_is_zero() {
        let r = ReorderStatus::from_stats(
            64,
            &ReorderStats::default(),
            Duration::from_millis(40),
            Duration::ZERO,
        );
        assert_eq!((r.wait_mean, r.timeout, r.size), (Duration::ZERO, Duration::from_millis(40), 64));
        let s =
            ReorderStats { reordered: 4, wait_total_us: 10_000, wait_max_us: 5_000, ..Default::default() };
        let r = ReorderStatus::from_stats(8, &s, Duration::from_millis(40), Duration::ZERO);
        assert_eq!((r.wait_mean, r.wait_max), (Duration::from_micros(2_500), Duration::from_millis(5)));
        let s = ReorderStats { reordered: 4, wait_total_us: 10, ..Default::default() };
        let r = ReorderStatus::from_stats(8, &s, Duration::from_millis(40), Duration::ZERO);
        assert_eq!(r.wait_mean, Duration::from_micros(3), "2.5 rounds up");
    }
}
