//! The netns lab with its links going through `linkemu` (`tests/linkemu`): one-way delay,
//! jitter, loss, a rate limit with a bounded queue, outages and run-time changes — what the
//! kernel here cannot do (no netem). Built on [`crate::lab::Lab`] and the emulator's
//! `harness.rs`, changing neither.
//!
//! Expects its includer to have `json`, `lab` and `traffic` modules at the crate root, as
//! `traffic.rs` does:
//!
//! ```ignore
//! #[path = "../netns/json.rs"]
//! mod json;
//! #[path = "../netns/lab.rs"]
//! mod lab;
//! #[path = "../netns/traffic.rs"]
//! mod traffic;
//! #[path = "../netns/emulated.rs"]
//! mod emulated;
//! ```
//!
//! ## Layout
//!
//! ```text
//!  mlvpn-<id>-c (client)          mlvpn-<id>-e (linkemu)                 mlvpn-<id>-s (server)
//!  mlvpn0 10.42.0.2/30                                                   mlvpn0 10.42.0.1/30
//!  c-link0 10.77.0.1/30 ==veth== e-c0 ─[up pipe]─> e-s0 ==veth== s-link0 10.77.0.2/30 (:5080)
//!                                     <─[down pipe]─
//!  c-link1 10.77.1.1/30 ==veth== e-c1 ...          e-s1 ==veth== s-link1 10.77.1.2/30 (:5081)
//! ```
//!
//! Names, addresses, ports, configs and daemons are the plain lab's: the lab is created with no
//! links, then each link is spliced through the emulator's namespace
//! (`linkemu::splice_link`) and appended to [`Lab::links`], so everything in `lab.rs` (configs,
//! daemons, status, blackholes, teardown) works unchanged. The emulator's namespace is named
//! like the lab's own (`mlvpn-<pid>-<n>-e`), so a SIGKILLed run's is removed by the next run
//! with the others.
//!
//! Each link's emulator settings are given in the emulator's command language (`delay 5ms
//! rate 40mbit`, see `tests/linkemu/README.md`) and apply to both directions unless they say
//! `up` (client → server) or `down`. Rates count whole Ethernet frames.
//!
//! Also here: [`Pinger`] (a series of ICMP echoes with kernel receive timestamps, to measure
//! the RTT through the tunnel while a transfer runs), and [`run_flow`] (one iperf3 flow with
//! a concurrent ping, the server TUN's delivery rate every 0.1 s, `mlvpn status` snapshots,
//! emulator counters, timed emulator commands and timed processes beside the flow), shared by
//! `tests/bench/unequal.rs`, `tests/netns_unequal.rs` and the calls' test and bench.
#![allow(dead_code)]

#[path = "../linkemu/harness.rs"]
pub mod linkemu;

use crate::json::Json;
use crate::lab::{self, CpuPressure, Lab, Link, LinkSpec, Proc, Side};
use crate::traffic::{self, IperfRun};
use std::fmt::Write as _;
use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// mlvpn's per-packet overhead over IPv4: 33 bytes (header, tag, sequence) + 8 UDP + 20 IP.
pub const MLVPN_OVERHEAD_V4: u32 = 61;
/// The Ethernet header, which the emulator's rates count (as `tbf` does).
pub const ETHERNET_HEADER: u32 = 14;
/// IPv4 (20) + TCP (20) + the timestamp option (12) in every data segment.
pub const TCP_IP_HEADERS: u32 = 52;

/// The share of a link's rate that one TCP flow in the tunnel can get as goodput, with tunnel
/// MTU `mtu`: a full segment carries `mtu - 52` bytes of payload in a frame of
/// `mtu + 61 + 14` bytes on the link (1348 / 1475 = 0.9139 at the lab's 1400).
pub fn goodput_ratio(mtu: u32) -> f64 {
    f64::from(mtu - TCP_IP_HEADERS) / f64::from(mtu + MLVPN_OVERHEAD_V4 + ETHERNET_HEADER)
}

/// The share of the TUN device's byte count that is TCP payload (full segments): 1348 / 1400.
pub fn tun_payload_ratio(mtu: u32) -> f64 {
    f64::from(mtu - TCP_IP_HEADERS) / f64::from(mtu)
}

/// One emulated link.
#[derive(Debug, Clone, PartialEq)]
pub struct EmuLink {
    /// Emulator settings (its command language, after `link <i>`), e.g. `delay 5ms rate 40mbit`.
    pub settings: String,
    /// The rate both ways, Mbit/s (for the physical limit); `None` when unlimited.
    pub rate_mbit: Option<f64>,
    /// The one-way delay both ways, ms (for the idle RTT).
    pub delay_ms: f64,
    /// `bandwidth_upload` in both configs (bytes/s); `None` leaves the key out.
    pub bandwidth_upload: Option<u64>,
}

impl EmuLink {
    /// `rate_mbit` and `delay_ms` each way, `bandwidth_upload` set to the rate (rate / 8, what
    /// an operator would type for that link).
    pub fn new(rate_mbit: f64, delay_ms: f64) -> EmuLink {
        EmuLink {
            settings: format!("delay {} rate {}", duration(delay_ms), rate(rate_mbit)),
            rate_mbit: Some(rate_mbit),
            delay_ms,
            bandwidth_upload: Some((rate_mbit * 1e6 / 8.0) as u64),
        }
    }

    /// Without `bandwidth_upload` in the configs.
    pub fn no_bandwidth(mut self) -> EmuLink {
        self.bandwidth_upload = None;
        self
    }

    /// More emulator settings, e.g. `loss 1%` or `up jitter 2ms`.
    pub fn with(mut self, more: &str) -> EmuLink {
        self.settings = format!("{} {more}", self.settings);
        self
    }

    /// The setup command for link `i`.
    pub fn command(&self, i: usize) -> String {
        format!("link {i} {}", self.settings)
    }
}

/// `5` → `5ms`, `0.5` → `500us`.
pub fn duration(ms: f64) -> String {
    if ms.fract() == 0.0 { format!("{ms:.0}ms") } else { format!("{:.0}us", ms * 1000.0) }
}

/// `40` → `40mbit`, `0.5` → `500kbit`.
pub fn rate(mbit: f64) -> String {
    if mbit.fract() == 0.0 { format!("{mbit:.0}mbit") } else { format!("{:.0}kbit", mbit * 1000.0) }
}

/// A [`Lab`] whose links go through `linkemu` (see the module doc). Derefs to the lab.
#[derive(Debug)]
pub struct EmuLab {
    /// `Some` until dropped (the lab goes before the emulator's namespace).
    lab: Option<Lab>,
    pub emu_ns: String,
    emu: Option<linkemu::Emulator>,
    pub specs: Vec<EmuLink>,
    /// The emulator's interface pairs, link by link.
    pub pairs: Vec<(String, String)>,
    /// The setup commands the emulator was started with.
    pub setup: Vec<String>,
    ns_created: bool,
}

impl Deref for EmuLab {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        self.lab.as_ref().expect("lab present until drop")
    }
}

impl DerefMut for EmuLab {
    fn deref_mut(&mut self) -> &mut Lab {
        self.lab.as_mut().expect("lab present until drop")
    }
}

impl EmuLab {
    /// Creates the namespaces, splices every link through the emulator's namespace and starts
    /// the emulator with each link's settings. Panics (after cleaning up) on failure.
    pub fn new(links: &[EmuLink]) -> EmuLab {
        let lab = Lab::new(&[]);
        let emu_ns = format!("mlvpn-{}-e", lab.id);
        let mut me = EmuLab {
            lab: Some(lab),
            emu_ns: emu_ns.clone(),
            emu: None,
            specs: links.to_vec(),
            pairs: Vec::new(),
            setup: Vec::new(),
            ns_created: false,
        };
        lab::host(&["ip", "netns", "add", &emu_ns]);
        me.ns_created = true;
        linkemu::prepare_namespace(&emu_ns).unwrap_or_else(|e| panic!("emulator namespace: {e}"));
        let (c, s) = (me.ns(Side::Client), me.ns(Side::Server));
        for (i, spec) in links.iter().enumerate() {
            let link = Link::numbered(i, LinkSpec { shape: None, bandwidth_upload: spec.bandwidth_upload });
            let pair = linkemu::splice_link(&emu_ns, i, &c, &link.client_if, &s, &link.server_if)
                .unwrap_or_else(|e| panic!("splicing link {i}: {e}"));
            me.pairs.push(pair);
            for (ns, ifname, ip) in
                [(&c, &link.client_if, &link.client_ip), (&s, &link.server_if, &link.server_ip)]
            {
                lab::host(&["ip", "-n", ns, "addr", "add", &format!("{ip}/30"), "dev", ifname]);
            }
            me.links.push(link);
        }
        me.setup = links.iter().enumerate().map(|(i, l)| l.command(i)).collect();
        let setup: Vec<&str> = me.setup.iter().map(String::as_str).collect();
        let (sock, log) = (me.dir.join("emu.sock"), me.dir.join("emu.log"));
        let emu = linkemu::Emulator::start(&emu_ns, &me.pairs, &setup, &sock, &log)
            .unwrap_or_else(|e| panic!("starting linkemu: {e}"));
        me.emu = Some(emu);
        me
    }

    pub fn emu(&self) -> &linkemu::Emulator {
        self.emu.as_ref().expect("emulator running")
    }

    /// Runs an emulator command (`link 0 rate 10mbit`); panics on an error.
    pub fn emu_cmd(&self, command: &str) -> String {
        self.emu().cmd(command).unwrap_or_else(|e| panic!("linkemu {command}: {e}"))
    }

    /// The emulator's counters, per link and direction (`stats[2 * link]` is `up`).
    pub fn emu_show(&self) -> Vec<linkemu::PipeStats> {
        self.emu().show().unwrap_or_else(|e| panic!("linkemu show: {e}"))
    }

    /// Shapes link `i` with the kernel's `tbf` on the egress of both its ends (the client's and
    /// the server's veth), as a user shapes a WAN: `tc qdisc add dev DEV root tbf rate RATE
    /// burst BURST latency LATENCY` (e.g. `40mbit`, `64kb`, `50ms`). The emulator then adds
    /// only what it is told (a delay); the bottleneck and its queue are the kernel's.
    pub fn shape_tbf(&self, i: usize, rate: &str, burst: &str, latency: &str) {
        let link = &self.links[i];
        for (side, dev) in [(Side::Client, &link.client_if), (Side::Server, &link.server_if)] {
            lab::host(&[
                "tc",
                "-n",
                &self.ns(side),
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                burst,
                "latency",
                latency,
            ]);
        }
    }

    /// The emulator's command line, as it could be typed (in its namespace, as root).
    pub fn emu_command_line(&self) -> String {
        let mut s = String::from("linkemu run");
        for (c, e) in &self.pairs {
            let _ = write!(s, " --link {c}:{e}");
        }
        if std::env::var_os("LINKEMU_REALTIME").is_none_or(|v| v != "0") {
            let _ = write!(s, " --realtime {}", linkemu::REALTIME_PRIORITY);
        }
        for c in &self.setup {
            let _ = write!(s, " --set '{c}'");
        }
        s
    }

    /// The physical limit for one TCP flow in the tunnel (Mbit/s of goodput): the links' rates
    /// times [`goodput_ratio`]. `None` if a link is unlimited.
    pub fn goodput_limit_mbit(&self, mtu: u32) -> Option<f64> {
        let sum: Option<f64> = self.specs.iter().map(|l| l.rate_mbit).sum();
        sum.map(|s| s * goodput_ratio(mtu))
    }

    /// Pings every link's far end directly (not through the tunnel) and the tunnel's far end,
    /// all at once, `count` times at `interval`: the idle RTTs, in that order (links, tunnel).
    pub fn idle_rtts(&self, count: u32, interval: f64) -> Vec<PingSeries> {
        let secs = f64::from(count) * interval;
        let mut pingers: Vec<Pinger> = self
            .links
            .iter()
            .map(|l| {
                Pinger::start(self, Side::Client, &l.server_ip, interval, secs, &format!("idle-{}", l.name))
            })
            .collect();
        pingers.push(Pinger::start(self, Side::Client, Side::Server.tun_ip(), interval, secs, "idle-tunnel"));
        pingers.into_iter().map(Pinger::finish).collect()
    }
}

impl Drop for EmuLab {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(emu) = &self.emu
        {
            match emu.show() {
                Ok(stats) => {
                    eprintln!("---- linkemu show ----");
                    for s in stats {
                        eprintln!("link {} {} {:?}", s.link, s.dir, s.fields);
                    }
                }
                Err(e) => eprintln!("---- linkemu show failed: {e}"),
            }
        }
        // The emulator first, so its final counters land in its log (kept with
        // MLVPN_NETNS_KEEP); then the lab (daemons, client and server namespaces, directory).
        if let Some(emu) = self.emu.take() {
            let log = emu.stop();
            if std::thread::panicking() {
                eprintln!("---- linkemu log (last 20 lines) ----\n{}", lab::tail(&log, 20));
            }
        }
        drop(self.lab.take());
        if self.ns_created {
            let _ = Command::new(lab::tool("ip"))
                .args(["netns", "del", &self.emu_ns])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ping series
// ---------------------------------------------------------------------------------------------

/// A series of ICMP echoes (raw socket) from Python, so the lab needs no iputils-ping. The
/// reply is timed by the kernel's receive timestamp (`SO_TIMESTAMPNS`), so a pinger waiting for
/// a CPU on a busy machine does not inflate the RTT; the send time is read just before
/// `sendto`.
pub const PINGER_PY: &str = r#"#!/usr/bin/env python3
"""ICMP echo series for the mlvpn netns lab (root: raw socket).

    pinger.py DEST_IP INTERVAL_SECONDS DURATION_SECONDS

Sends an echo every INTERVAL for DURATION, waits 1 s more for late replies, and prints
`rtt SEQ MILLISECONDS` per reply (receive time from the kernel, SO_TIMESTAMPNS), then
`sent N received M`.
"""

import os
import select
import socket
import struct
import sys
import time

from ping import checksum  # the lab's ping.py, beside this script

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    dest, interval, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    ident = os.getpid() & 0xFFFF
    payload = b"mlvpn-netns-pinger.."
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sent_at = {}
    seq = 0
    received = 0
    out = []
    start = time.monotonic()
    end = start + duration
    next_send = start
    while True:
        now = time.monotonic()
        if now >= end and (not sent_at or now >= end + 1.0):
            break
        if now < end and now >= next_send:
            seq = (seq + 1) & 0xFFFF
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
            sent_at[seq] = time.time()
            s.sendto(packet, (dest, 0))
            next_send += interval
            if next_send < now:
                next_send = now + interval
            continue
        wake = next_send if now < end else end + 1.0
        if not select.select([s], [], [], max(0.0, wake - now))[0]:
            continue
        data, ancillary, _, addr = s.recvmsg(2048, socket.CMSG_SPACE(16))
        t = None
        for level, kind, cdata in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= 16:
                sec, nsec = struct.unpack("qq", cdata[:16])
                t = sec + nsec * 1e-9
        if t is None:
            t = time.time()
        icmp = data[(data[0] & 0x0F) * 4 :]
        if addr[0] != dest or len(icmp) < 8:
            continue
        kind, _, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
        if kind == 0 and rid == ident and rseq in sent_at:
            out.append(f"rtt {rseq} {(t - sent_at.pop(rseq)) * 1000.0:.3f}")
            received += 1
    out.append(f"sent {seq} received {received}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
"#;

/// What a [`Pinger`] measured.
#[derive(Debug, Clone, Default)]
pub struct PingSeries {
    /// RTTs of the replies, ms, in the order they came.
    pub rtts_ms: Vec<f64>,
    pub sent: u32,
}

impl PingSeries {
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.rtts_ms.len() as u32)
    }

    /// The `p`-th percentile (0..=100) of the RTTs, ms; NaN without replies.
    pub fn percentile(&self, p: f64) -> f64 {
        percentile(&self.rtts_ms, p)
    }

    pub fn max(&self) -> f64 {
        self.rtts_ms.iter().copied().fold(f64::NAN, f64::max)
    }

    pub fn min(&self) -> f64 {
        self.rtts_ms.iter().copied().fold(f64::NAN, f64::min)
    }

    /// `p50/p99/max ms (lost/sent)`.
    pub fn summary(&self) -> String {
        format!(
            "{:.1}/{:.1}/{:.1} ms ({} of {} lost)",
            self.percentile(50.0),
            self.percentile(99.0),
            self.max(),
            self.lost(),
            self.sent
        )
    }
}

/// The `p`-th percentile (0..=100) of `v` (nearest rank); NaN when empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// A running series of pings (see [`PINGER_PY`]).
#[derive(Debug)]
pub struct Pinger {
    proc: Proc,
    secs: f64,
}

impl Pinger {
    /// Pings `dst` from `side` every `interval` seconds for `secs` seconds.
    pub fn start(lab: &Lab, side: Side, dst: &str, interval: f64, secs: f64, name: &str) -> Pinger {
        let script = lab.dir.join("pinger.py");
        if !script.exists() {
            lab.write_file("pinger.py", PINGER_PY, 0o700);
        }
        let (i, d) = (format!("{interval}"), format!("{secs}"));
        let proc =
            lab.spawn(side, &format!("pinger-{name}"), &["python3", script.to_str().unwrap(), dst, &i, &d]);
        Pinger { proc, secs }
    }

    /// Waits for the series to end; panics if the pinger failed.
    pub fn finish(mut self) -> PingSeries {
        let limit = Duration::from_secs_f64(self.secs + 10.0);
        match self.proc.wait_timeout(limit) {
            Some(s) if s.success() => {}
            Some(s) => panic!("pinger failed ({s}): {}", self.proc.stderr()),
            None => panic!("pinger did not finish within {limit:?}"),
        }
        let mut series = PingSeries::default();
        for line in self.proc.stdout().lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["rtt", _, ms] => series.rtts_ms.push(ms.parse().unwrap_or(f64::NAN)),
                ["sent", n, "received", _] => series.sent = n.parse().unwrap_or(0),
                _ => {}
            }
        }
        series
    }
}

// ---------------------------------------------------------------------------------------------
// One measured flow
// ---------------------------------------------------------------------------------------------

/// What [`run_flow`] does.
#[derive(Debug, Clone)]
pub struct FlowPlan {
    /// iperf3 flow length, seconds.
    pub secs: f64,
    /// The sending side (the flow goes through the tunnel to the other side's tunnel address).
    pub from: Side,
    /// The sender's TCP congestion control; `None`: the lab's ([`lab::tcp_congestion_control`]).
    pub cc: Option<String>,
    pub port: u16,
    /// The concurrent ping through the tunnel runs from this many seconds into the flow until
    /// half a second before its end, every `ping_interval` seconds (`f64::INFINITY`: no ping).
    pub ping_from: f64,
    pub ping_interval: f64,
    /// Emulator commands to run this many seconds after the flow started.
    pub events: Vec<(f64, String)>,
    /// Processes to start this many seconds after the flow started, on the flow's clock (so
    /// that they keep their timing against `events`); returned in [`FlowResult::spawned`].
    pub spawns: Vec<TimedSpawn>,
    /// `mlvpn status --json` of both daemons and the emulator's counters every this many
    /// seconds (`None`: only before and after).
    pub status_every: Option<f64>,
}

impl FlowPlan {
    pub fn new(secs: f64) -> FlowPlan {
        FlowPlan {
            secs,
            from: Side::Client,
            cc: None,
            port: 5201,
            ping_from: 2.0,
            ping_interval: 0.05,
            events: Vec::new(),
            spawns: Vec::new(),
            status_every: None,
        }
    }
}

/// A process [`run_flow`] starts during the flow (with [`Lab::spawn`]), e.g. a paced UDP stream
/// beside the bulk transfer.
#[derive(Debug, Clone)]
pub struct TimedSpawn {
    /// Seconds after the flow started.
    pub at: f64,
    pub side: Side,
    /// Its name in the lab's directory (`<name>.out`, `<name>.err`).
    pub name: String,
    pub argv: Vec<String>,
}

/// Runs `attempt` (1, 2, ... `n`) until one meets its floors: each returns whether it did and
/// a line of what it measured, printed as it goes. Panics with every line if none did: figures
/// that depend on how busy the machine's two cores are get `n` chances, a regression fails all.
pub fn best_of(n: u32, mut attempt: impl FnMut(u32) -> (bool, String)) {
    let mut report = Vec::new();
    for k in 1..=n {
        let (ok, line) = attempt(k);
        let line = format!("attempt {k}: {line}");
        println!("{line}");
        if ok {
            return;
        }
        report.push(line);
    }
    panic!("outside the floors in all {n} attempts:\n{}", report.join("\n"));
}

/// A `mlvpn status --json` of a daemon, taken `t` seconds into the flow.
#[derive(Debug, Clone)]
pub struct StatusSnapshot {
    pub t: f64,
    pub side: Side,
    pub json: Option<Json>,
    pub text: String,
}

/// What [`run_flow`] measured.
#[derive(Debug)]
pub struct FlowResult {
    pub iperf: IperfRun,
    /// The ping through the tunnel during the flow.
    pub ping: PingSeries,
    /// (seconds since the flow started, bytes the receiving side's TUN device received from
    /// mlvpn), about every 0.1 s.
    pub tun_rx: Vec<(f64, u64)>,
    /// When each event ran, seconds since the flow started, and the command.
    pub events: Vec<(f64, String)>,
    /// The plan's processes that were due before the flow ended, in the plan's order, each with
    /// when it was started (seconds since the flow started); they may still be running (the
    /// caller waits for them).
    pub spawned: Vec<(f64, Proc)>,
    /// CPU pressure during the flow (percent of time some task waited for a CPU).
    pub pressure: Option<f64>,
    /// Emulator counters before and after the flow.
    pub emu_before: Vec<linkemu::PipeStats>,
    pub emu_after: Vec<linkemu::PipeStats>,
    /// Status of both daemons: before the flow, during it (if asked), after it.
    pub status: Vec<StatusSnapshot>,
    /// The emulator's counters during the flow (if asked), seconds since the flow started.
    pub emu_series: Vec<(f64, Vec<linkemu::PipeStats>)>,
    /// Wall-clock length of the flow as we saw it (start of iperf3 to its exit).
    pub wall_secs: f64,
}

impl FlowResult {
    /// The TUN delivery rate averaged over `window` seconds, ending at each sample: (t, bit/s of
    /// IP packets).
    pub fn tun_rate(&self, window: f64) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut j = 0;
        for i in 0..self.tun_rx.len() {
            let (t, b) = self.tun_rx[i];
            while j < i && self.tun_rx[j + 1].0 <= t - window + 1e-6 {
                j += 1;
            }
            let (t0, b0) = self.tun_rx[j];
            if t - t0 >= window * 0.8 {
                out.push((t, (b - b0) as f64 * 8.0 / (t - t0)));
            }
        }
        out
    }

    /// The first and last status snapshot of a side.
    pub fn status_ends(&self, side: Side) -> Option<(&Json, &Json)> {
        let mut it = self.status.iter().filter(|s| s.side == side).filter_map(|s| s.json.as_ref());
        let first = it.next()?;
        Some((first, it.next_back().unwrap_or(first)))
    }

    /// Per status interval (`FlowPlan::status_every`): the sending daemon's capacity estimates
    /// and congested refusals, and the frames the emulator tail-dropped per link (links with any).
    pub fn series(&self, sender: Side, links: usize) -> String {
        let snaps: Vec<&StatusSnapshot> =
            self.status.iter().filter(|s| s.side == sender && s.json.is_some()).collect();
        let Some(every) = snaps.get(1).map(|s| s.t) else { return String::new() };
        let json = |s: &StatusSnapshot| s.json.clone().unwrap_or(Json::Null);
        let mut out = format!("every {every:.1} s from the start: capacity estimates (Mbit/s)");
        for i in 0..links {
            let v: Vec<String> = snaps
                .iter()
                .skip(1)
                .map(|s| {
                    let c = per_link(&json(s), "capacity").get(i).copied().unwrap_or(f64::NAN);
                    if c.is_finite() { format!("{:.0}", c * 8.0 / 1e6) } else { "-".into() }
                })
                .collect();
            let _ = write!(out, " link{i} [{}]", v.join(" "));
        }
        let congested: Vec<String> = snaps
            .windows(2)
            .map(|w| {
                let c = |s: &StatusSnapshot| num(&json(s), &["drops", "congested"]);
                format!("{:.0}", c(w[1]) - c(w[0]))
            })
            .collect();
        let _ = write!(out, "; congested [{}]", congested.join(" "));
        let holds: Vec<String> = self
            .status
            .iter()
            .filter(|s| s.side == sender.other())
            .filter_map(|s| s.json.as_ref())
            .map(|j| format!("{:.1}", num(j, &["reorder", "hold_ms"])))
            .collect();
        let _ = write!(out, "; receiver's hold (ms) [{}]", holds.join(" "));
        let dir = if sender == Side::Client { "up" } else { "down" };
        let mut emu: Vec<&Vec<linkemu::PipeStats>> = vec![&self.emu_before];
        emu.extend(self.emu_series.iter().map(|(_, v)| v));
        emu.push(&self.emu_after);
        for i in 0..links {
            let get = |v: &[linkemu::PipeStats]| {
                v.iter().find(|p| p.link == i && p.dir == dir).map_or(0, |p| p.get("tail_drop"))
            };
            let d: Vec<u64> = emu.windows(2).map(|w| get(w[1]).saturating_sub(get(w[0]))).collect();
            if d.iter().any(|&x| x > 0) {
                let d: Vec<String> = d.iter().map(u64::to_string).collect();
                let _ = write!(out, "; tail drops link{i} [{}]", d.join(" "));
            }
        }
        out
    }

    /// The difference of an emulator counter over the flow, for link `link`, direction `dir`.
    pub fn emu_delta(&self, link: usize, dir: &str, key: &str) -> u64 {
        let find = |v: &[linkemu::PipeStats]| {
            v.iter().find(|s| s.link == link && s.dir == dir).map_or(0, |s| s.get(key))
        };
        find(&self.emu_after).saturating_sub(find(&self.emu_before))
    }
}

/// A number in a JSON document (`NaN` when absent).
pub fn num(j: &Json, path: &[&str]) -> f64 {
    j.at(path).and_then(Json::as_f64).unwrap_or(f64::NAN)
}

/// Per link of a status document: `key` of each element of `tunnels`.
pub fn per_link(j: &Json, key: &str) -> Vec<f64> {
    j.get("tunnels").and_then(Json::as_array).unwrap_or(&[]).iter().map(|t| num(t, &[key])).collect()
}

/// Reads a daemon's `mlvpn status --json`.
pub fn status_snapshot(lab: &Lab, side: Side, t: f64) -> StatusSnapshot {
    let text = lab.status(side, true);
    StatusSnapshot { t, side, json: Json::parse(text.trim()).ok(), text }
}

/// The bytes a side's TUN device has received (from mlvpn).
fn tun_rx_bytes(lab: &Lab, side: Side) -> u64 {
    lab.net_dev(side).get(lab::TUN_DEVICE).map_or(0, |c| c.0)
}

/// Runs one iperf3 flow through the tunnel as `plan` says, with a concurrent ping the same
/// way, the receiving TUN's delivery every 0.1 s, status snapshots, emulator counters and timed
/// emulator commands. The tunnel must be up.
pub fn run_flow(lab: &EmuLab, plan: &FlowPlan) -> FlowResult {
    let mut status = vec![status_snapshot(lab, Side::Client, 0.0), status_snapshot(lab, Side::Server, 0.0)];
    let emu_before = lab.emu_show();
    let pressure = CpuPressure::start();
    let (from, to) = (plan.from, plan.from.other());
    let cc = plan.cc.clone().or_else(lab::tcp_congestion_control);
    let flow = traffic::iperf_start_cc(lab, from, to.tun_ip(), plan.port, plan.secs, cc.as_deref());
    let t0 = flow.started;
    let since = |t: Instant| t.duration_since(t0).as_secs_f64();
    let mut events: Vec<(f64, String)> = plan.events.clone();
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut events = events.into_iter().peekable();
    let mut ran = Vec::new();
    let mut spawned: Vec<Option<(f64, Proc)>> = plan.spawns.iter().map(|_| None).collect();
    let mut pinger = None;
    let mut tun_rx = Vec::new();
    let mut emu_series = Vec::new();
    let mut next_sample = 0.0;
    let mut next_status = plan.status_every.unwrap_or(f64::INFINITY);
    let ping_secs = (plan.secs - plan.ping_from - 0.5).max(0.0);
    let end = plan.secs + 0.3;
    loop {
        let now = since(Instant::now());
        if now >= end {
            break;
        }
        if pinger.is_none() && now >= plan.ping_from && ping_secs > 0.0 {
            pinger = Some(Pinger::start(lab, from, to.tun_ip(), plan.ping_interval, ping_secs, "load"));
        }
        if let Some((at, _)) = events.peek()
            && now >= *at
        {
            let (_, cmd) = events.next().expect("peeked");
            let t = since(Instant::now());
            lab.emu_cmd(&cmd);
            ran.push((t, cmd));
            continue;
        }
        if let Some(i) = (0..spawned.len()).find(|&i| spawned[i].is_none() && now >= plan.spawns[i].at) {
            let s = &plan.spawns[i];
            let argv: Vec<&str> = s.argv.iter().map(String::as_str).collect();
            spawned[i] = Some((since(Instant::now()), lab.spawn(s.side, &s.name, &argv)));
            continue;
        }
        if now >= next_sample {
            tun_rx.push((since(Instant::now()), tun_rx_bytes(lab, to)));
            next_sample += 0.1;
            if next_sample < now {
                next_sample = now + 0.1;
            }
        }
        if now >= next_status {
            status.push(status_snapshot(lab, Side::Client, now));
            status.push(status_snapshot(lab, Side::Server, now));
            emu_series.push((since(Instant::now()), lab.emu_show()));
            next_status += plan.status_every.unwrap_or(f64::INFINITY);
        }
        let now = since(Instant::now());
        let mut wake = next_sample.min(end);
        if let Some((at, _)) = events.peek() {
            wake = wake.min(*at);
        }
        if pinger.is_none() {
            wake = wake.min(plan.ping_from);
        }
        for (s, done) in plan.spawns.iter().zip(&spawned) {
            if done.is_none() {
                wake = wake.min(s.at);
            }
        }
        if wake > now {
            sleep(Duration::from_secs_f64(wake - now));
        }
    }
    let iperf = flow.finish();
    let wall_secs = since(Instant::now());
    let pressure = pressure.percent();
    let ping = pinger.map(Pinger::finish).unwrap_or_default();
    let emu_after = lab.emu_show();
    let t = since(Instant::now());
    status.push(status_snapshot(lab, Side::Client, t));
    status.push(status_snapshot(lab, Side::Server, t));
    FlowResult {
        iperf,
        ping,
        tun_rx,
        events: ran,
        spawned: spawned.into_iter().flatten().collect(),
        pressure,
        emu_before,
        emu_after,
        status,
        emu_series,
        wall_secs,
    }
}
