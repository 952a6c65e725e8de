//! Issue 11's condition matrix: one TCP flow through the tunnel under the conditions users
//! bring, every combination, each cell's goodput as a share of what the links can carry, and
//! the worst cell as the headline.
//!
//! `cargo bench --bench matrix` (as root; the whole matrix, 240 cells of ~17 s: ~70 min).
//!
//! Dimensions (each can be narrowed with an environment variable, comma-separated values):
//!
//! | dimension | values | variable |
//! |---|---|---|
//! | sender's congestion control | `cubic`, `bbr`, `reno` | `MLVPN_MATRIX_CC` |
//! | bottleneck | `emu`: the link emulator's rate and byte queue (50 ms); `tbf`: the kernel's `tbf` on both veth ends of each link (`burst 64kb latency 50ms`), the emulator adding only the delay | `MLVPN_MATRIX_BOTTLENECK` |
//! | configuration | `none`: no tuning keys; `mlvpn`: MLVPN's example (`reorder_buffer_size = 64`, `bandwidth_upload` = each link's true rate); `mlvpn-high`: the same with `bandwidth_upload` 30% too high; `rbs0`: `reorder_buffer_size = 0` | `MLVPN_MATRIX_CONFIG` |
//! | links | `3x40`: 3 × 40 Mbit/s, 10 ms one way each; `50/30/20`: 10 ms each; `40/25/15`: one-way 5/20/40 ms; `failover`: `3x40` with link 1 blackholed (by the emulator, both ways) from 5 to 10 s of a 15 s flow; `flood`: `3x40` while random datagrams hit every server port as fast as one core sends them | `MLVPN_MATRIX_LINKS` |
//! | direction | `up` (client → server), `down` | `MLVPN_MATRIX_DIR` |
//!
//! Also: `MLVPN_BENCH_RUNS` (runs per cell, default 1; the table shows the worst),
//! `MLVPN_BENCH_SECS` (flow length, default 12; `failover` is 15), `MLVPN_BIN`,
//! `MLVPN_NETNS_KEEP=1`.
//!
//! Figures:
//! * goodput: the iperf3 receiver's mean from 2 s on, as a share of the **limit**: the sum of
//!   the link rates × the goodput of a full TCP segment in a tunnel frame (1348 payload bytes
//!   per 1475-byte frame at the lab's MTU 1400: [`emulated::goodput_ratio`]);
//! * `failover`: seconds of 0.1 s intervals, from the blackhole on, below half the healthy rate
//!   (the mean over 2–5 s); target ≤ 1 s;
//! * `flood`: goodput as a share of the same cell's `3x40` (the clean rate); target ≥ 80%;
//!   and the memory the server's daemon grew beyond its packet pools' peaks;
//!
//! Targets (issue 11): every `3x40`, `50/30/20`, `40/25/15` cell ≥ 90% of the limit; `mlvpn`
//! never more than 5% below `none` in the same column.

#[path = "../netns/attack.rs"]
mod attack;
#[path = "../netns/emulated.rs"]
mod emulated;
#[path = "../netns/json.rs"]
mod json;
#[path = "../netns/lab.rs"]
mod lab;
#[path = "../netns/ops.rs"]
mod ops;
#[path = "../netns/traffic.rs"]
mod traffic;

use emulated::{EmuLab, EmuLink, FlowPlan, goodput_ratio, num, per_link};
use json::Json;
use lab::{Side, TunnelOpts};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

const MTU: u32 = lab::DEFAULT_MTU;
const STEADY_FROM: f64 = 2.0;
/// `failover`: the blackhole on link 1, seconds into the flow.
const BLACKHOLE: (f64, f64) = (5.0, 10.0);
const FAILOVER_LINK: usize = 1;
/// `flood`: datagrams per second asked of the flood thread: more than one core can send.
const FLOOD_PPS: u64 = 10_000_000;

const CCS: [&str; 3] = ["cubic", "bbr", "reno"];
const BOTTLENECKS: [&str; 2] = ["emu", "tbf"];
const CONFIGS: [&str; 4] = ["none", "mlvpn", "mlvpn-high", "rbs0"];
/// Diagnostic configurations, run only when named in `MLVPN_MATRIX_CONFIG`: `wrr` is MLVPN's
/// scheduler with `bandwidth_upload` set to the true rates.
const EXTRA_CONFIGS: [&str; 1] = ["wrr"];
const LINKS: [&str; 5] = ["3x40", "50/30/20", "40/25/15", "failover", "flood"];
const DIRS: [&str; 2] = ["up", "down"];

/// (rate Mbit/s, one-way delay ms) of each link of a link set.
fn link_set(name: &str) -> Vec<(f64, f64)> {
    match name {
        "50/30/20" => vec![(50.0, 10.0), (30.0, 10.0), (20.0, 10.0)],
        "40/25/15" => vec![(40.0, 5.0), (25.0, 20.0), (15.0, 40.0)],
        _ => vec![(40.0, 10.0); 3],
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Cell {
    links: &'static str,
    config: &'static str,
    dir: &'static str,
    bottleneck: &'static str,
    cc: &'static str,
}

impl Cell {
    fn label(&self) -> String {
        format!("{} {} {} {} {}", self.links, self.config, self.dir, self.bottleneck, self.cc)
    }

    fn limit_mbit(&self) -> f64 {
        link_set(self.links).iter().map(|l| l.0).sum::<f64>() * goodput_ratio(MTU)
    }

    /// The same cell without the flood.
    fn clean(&self) -> Cell {
        Cell { links: "3x40", ..self.clone() }
    }

    fn secs(&self, secs: f64) -> f64 {
        if self.links == "failover" { 15.0 } else { secs }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
struct Run {
    mbit: f64,
    /// `failover`: the healthy rate and the seconds below half of it from the blackhole on.
    healthy_mbit: f64,
    below_half_secs: f64,
    retransmits: f64,
    ping_p99: f64,
    /// The sending daemon: capacity estimates (Mbit/s) at the end, congested drops.
    capacity: Vec<f64>,
    /// Mbit/s each link carried from the sender over the flow.
    carried: Vec<f64>,
    congested: f64,
    /// The receiving daemon's reorder buffer over the flow.
    late: f64,
    skipped: f64,
    full: f64,
    duplicate: f64,
    /// The receiver's hold of bulk packets at the end (ms), and how many it held so.
    hold_ms: f64,
    equalized: f64,
    /// `flood`: datagrams sent per second, what the server refused, and its memory growth
    /// beyond its pools' (KiB).
    flood_pps: f64,
    refused: f64,
    rss_growth_kib: f64,
    pools_growth_kib: f64,
    pressure: f64,
    sparkline: String,
}

fn pools_bytes(j: &Json) -> f64 {
    ["reorder", "send_queue", "resend"]
        .iter()
        .map(|p| num(j, &["pools", p, "peak_bytes"]))
        .filter(|x| x.is_finite())
        .sum()
}

fn vm_rss_kib(pid: u32) -> f64 {
    ops::proc_status(pid)
        .get("VmRSS")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn configure(cell: &Cell) -> (Vec<EmuLink>, TunnelOpts) {
    let mut opts = TunnelOpts::default();
    let bandwidth = |mbit: f64| match cell.config {
        "mlvpn" | "wrr" => Some((mbit * 1e6 / 8.0) as u64),
        "mlvpn-high" => Some((mbit * 1.3 * 1e6 / 8.0) as u64),
        _ => None,
    };
    if cell.config == "wrr" {
        opts.extra_general.push(("scheduler".into(), "wrr".into()));
    }
    opts.reorder_buffer_size = match cell.config {
        "mlvpn" | "mlvpn-high" => Some(64),
        "rbs0" => Some(0),
        _ => None,
    };
    let links = link_set(cell.links)
        .into_iter()
        .map(|(rate, delay)| {
            let settings = if cell.bottleneck == "emu" {
                format!("delay {} rate {}", emulated::duration(delay), emulated::rate(rate))
            } else {
                format!("delay {}", emulated::duration(delay))
            };
            EmuLink { settings, rate_mbit: Some(rate), delay_ms: delay, bandwidth_upload: bandwidth(rate) }
        })
        .collect();
    (links, opts)
}

fn run_once(bin: &std::path::Path, cell: &Cell, secs: f64, show: bool) -> Run {
    let (links, opts) = configure(cell);
    let mut lab = EmuLab::new(&links);
    lab.bin = Some(bin.to_path_buf());
    if cell.bottleneck == "tbf" {
        for (i, (rate, _)) in link_set(cell.links).iter().enumerate() {
            lab.shape_tbf(i, &emulated::rate(*rate), "64kb", "50ms");
        }
    }
    if show {
        println!("    emulator: {}", lab.emu_command_line());
        if cell.bottleneck == "tbf" {
            println!(
                "    tbf on both ends of each link: tc qdisc add dev DEV root tbf rate R burst 64kb latency 50ms"
            );
        }
        let conf = lab.client_config(&opts);
        let keys: Vec<&str> = conf
            .lines()
            .filter(|l| ["bandwidth_upload", "reorder_buffer_size"].iter().any(|k| l.starts_with(k)))
            .collect();
        println!(
            "    tuning keys in both configs: {}",
            if keys.is_empty() { "none".into() } else { keys.join(", ") }
        );
    }
    lab.start_both(&opts);
    lab.wait_tunnel(Duration::from_secs(20));
    let from = if cell.dir == "up" { Side::Client } else { Side::Server };
    let (sender, receiver) = (from, from.other());
    let mut plan = FlowPlan::new(cell.secs(secs));
    plan.from = from;
    plan.cc = Some(cell.cc.to_string());
    plan.ping_interval = 0.1;
    // MLVPN_MATRIX_SERIES=1: the sender's capacity estimates and congested drops every 0.5 s.
    let series = std::env::var_os("MLVPN_MATRIX_SERIES").is_some();
    if series {
        plan.status_every = Some(0.5);
    }

    let flood = (cell.links == "flood").then(|| {
        let attacker = attack::Attacker::new(&lab);
        let targets: Vec<SocketAddr> =
            lab.links.iter().map(|l| format!("{}:{}", l.server_ip, l.port).parse().unwrap()).collect();
        (attacker, targets)
    });
    let server_pid = lab.daemon_pid(Side::Server);
    let rss0 = vm_rss_kib(server_pid);
    let running_flood = flood.as_ref().map(|(a, t)| attack::Flood::start(&a.ns, t.clone(), FLOOD_PPS, 11));
    if cell.links == "failover" {
        // The emulator drops everything on the link both ways, as a WAN that died upstream.
        plan.events = vec![
            (BLACKHOLE.0, format!("link {FAILOVER_LINK} blackhole on")),
            (BLACKHOLE.1, format!("link {FAILOVER_LINK} blackhole off")),
        ];
    }
    // MLVPN_MATRIX_SS=1: the sender's TCP state (`ss -tin`: BBR's bw, min RTT, gains) every
    // 0.25 s into `<lab dir>/ss.txt` (with MLVPN_NETNS_KEEP=1 to read it).
    let ss_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ss = std::env::var_os("MLVPN_MATRIX_SS").map(|_| {
        let (ns, path, stop) = (lab.ns(sender), lab.dir.join("ss.txt"), ss_stop.clone());
        let dst = receiver.tun_ip().to_string();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut out = String::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = std::process::Command::new(lab::tool("ip"))
                    .args(["netns", "exec", &ns, "ss", "-tin", "dst", &dst])
                    .output();
                if let Ok(o) = o {
                    out += &format!(
                        "t={:.2}\n{}",
                        t0.elapsed().as_secs_f64(),
                        String::from_utf8_lossy(&o.stdout)
                    );
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            let _ = std::fs::write(path, out);
        })
    });
    let r = emulated::run_flow(&lab, &plan);
    ss_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(h) = ss {
        let _ = h.join();
    }
    let flood_report = running_flood.map(attack::Flood::stop);
    lab.assert_running(Side::Client);
    lab.assert_running(Side::Server);
    let rss1 = vm_rss_kib(server_pid);

    if series {
        println!("      {}", r.series(sender, lab.links.len()));
    }
    let mut run = Run {
        mbit: r.iperf.mean_bps_from(STEADY_FROM) / 1e6,
        retransmits: r.iperf.retransmits.unwrap_or(f64::NAN),
        ping_p99: r.ping.percentile(99.0),
        pressure: r.pressure.unwrap_or(f64::NAN),
        sparkline: r.iperf.sparkline_per(5),
        ..Run::default()
    };
    if cell.links == "failover" {
        run.healthy_mbit = r.iperf.mean_bps_between(STEADY_FROM, BLACKHOLE.0) / 1e6;
        run.below_half_secs = r.iperf.secs_below(run.healthy_mbit * 1e6 / 2.0, BLACKHOLE.0);
    }
    if let Some((a, b)) = r.status_ends(sender) {
        run.capacity = per_link(b, "capacity").iter().map(|c| c * 8.0 / 1e6).collect();
        let (sa, sb) = (per_link(a, "sentbytes"), per_link(b, "sentbytes"));
        run.carried = sa.iter().zip(&sb).map(|(x, y)| (y - x) * 8.0 / 1e6 / r.wall_secs).collect();
        run.congested = num(b, &["drops", "congested"]) - num(a, &["drops", "congested"]);
    }
    if let Some((a, b)) = r.status_ends(receiver) {
        let d = |k: &str| num(b, &["reorder", k]) - num(a, &["reorder", k]);
        run.late = d("late");
        run.skipped = d("skipped");
        run.full = d("full");
        run.duplicate = num(b, &["drops", "duplicate"]) - num(a, &["drops", "duplicate"]);
        run.hold_ms = num(b, &["reorder", "hold_ms"]);
        run.equalized = d("equalized");
    }
    if let Some(f) = flood_report {
        run.flood_pps = f.pps();
        if let Some((a, b)) = r.status_ends(Side::Server) {
            let refused = |j: &Json| {
                [
                    "malformed",
                    "unauthenticated",
                    "unknown_session",
                    "replayed",
                    "unexpected",
                    "stale_handshake",
                ]
                .iter()
                .map(|k| num(j, &["drops", k]))
                .filter(|x| x.is_finite())
                .sum::<f64>()
            };
            run.refused = refused(b) - refused(a);
            run.pools_growth_kib = (pools_bytes(b) - pools_bytes(a)) / 1024.0;
        }
        run.rss_growth_kib = rss1 - rss0;
    }
    drop(flood);
    run
}

fn fmt_list(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join("/")
}

fn run_line(cell: &Cell, r: &Run) -> String {
    let mut s = format!(
        "{:.1} Mbit/s = {:.1}% of {:.1}; retr {:.0}, ping p99 {:.0} ms; sender: capacity {} Mbit/s, carried {}, congested {:.0}; \
         receiver reorder: {:.0} skipped, {:.0} late, {:.0} full, {:.0} duplicate, {:.0} equalized, hold {:.1} ms; CPU pressure {:.0}%; per 0.5 s: {}",
        r.mbit,
        r.mbit / cell.limit_mbit() * 100.0,
        cell.limit_mbit(),
        r.retransmits,
        r.ping_p99,
        fmt_list(&r.capacity),
        fmt_list(&r.carried),
        r.congested,
        r.skipped,
        r.late,
        r.full,
        r.duplicate,
        r.equalized,
        r.hold_ms,
        r.pressure,
        r.sparkline
    );
    if cell.links == "failover" {
        s += &format!("; healthy {:.1} Mbit/s, {:.1} s below half of it", r.healthy_mbit, r.below_half_secs);
    }
    if cell.links == "flood" {
        s += &format!(
            "; flood {:.0} datagrams/s sent, {:.0} refused by the server; server RSS {:+.0} KiB, pools {:+.0} KiB",
            r.flood_pps, r.refused, r.rss_growth_kib, r.pools_growth_kib
        );
    }
    s
}

fn pick(var: &str, all: &[&'static str]) -> Vec<&'static str> {
    match std::env::var(var) {
        Ok(v) => all.iter().copied().filter(|a| v.split(',').any(|x| x.trim() == *a)).collect(),
        Err(_) => all.to_vec(),
    }
}

/// What a cell is judged by: (figure as printed, pass).
fn verdict(cell: &Cell, runs: &BTreeMap<Cell, Vec<Run>>) -> Option<(String, f64, bool)> {
    let worst = |f: &dyn Fn(&Run) -> f64, max: bool| {
        let v = runs.get(cell)?.iter().map(f).filter(|x| x.is_finite());
        if max { v.reduce(f64::max) } else { v.reduce(f64::min) }
    };
    match cell.links {
        "failover" => {
            let s = worst(&|r| r.below_half_secs, true)?;
            Some((format!("{s:.1} s"), s, s <= 1.0))
        }
        "flood" => {
            let m = worst(&|r| r.mbit, false)?;
            let clean = runs.get(&cell.clean())?.iter().map(|r| r.mbit).reduce(f64::max)?;
            let p = m / clean * 100.0;
            Some((format!("{p:.0}%c"), p, p >= 80.0))
        }
        _ => {
            let p = worst(&|r| r.mbit / cell.limit_mbit() * 100.0, false)?;
            Some((format!("{p:.0}%"), p, p >= 90.0))
        }
    }
}

fn main() {
    let Some(bin) = lab::bench_binary("matrix") else { return };
    let env_f64 = |k: &str, d: f64| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let secs = env_f64("MLVPN_BENCH_SECS", 12.0);
    let n_runs = env_f64("MLVPN_BENCH_RUNS", 1.0).max(1.0) as usize;
    let (ccs, bns, cfgs, links, dirs) = (
        pick("MLVPN_MATRIX_CC", &CCS),
        pick("MLVPN_MATRIX_BOTTLENECK", &BOTTLENECKS),
        pick("MLVPN_MATRIX_CONFIG", &[&CONFIGS[..], &EXTRA_CONFIGS[..]].concat())
            .into_iter()
            .filter(|c| std::env::var_os("MLVPN_MATRIX_CONFIG").is_some() || CONFIGS.contains(c))
            .collect::<Vec<_>>(),
        pick("MLVPN_MATRIX_LINKS", &LINKS),
        pick("MLVPN_MATRIX_DIR", &DIRS),
    );
    let mut cells = Vec::new();
    for &l in &links {
        for &config in &cfgs {
            for &dir in &dirs {
                for &bottleneck in &bns {
                    for &cc in &ccs {
                        cells.push(Cell { links: l, config, dir, bottleneck, cc });
                    }
                }
            }
        }
    }
    let available =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control").unwrap_or_default();
    println!("binary: {}", bin.display());
    println!(
        "machine: {} cores, kernel {}, congestion controls available: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        lab::host(&["uname", "-r"]).trim(),
        available.trim()
    );
    println!("{} cells × {n_runs} run(s), flows of {secs} s (failover 15 s)\n", cells.len());
    let mut runs: BTreeMap<Cell, Vec<Run>> = BTreeMap::new();
    let mut failures: BTreeMap<Cell, Vec<String>> = BTreeMap::new();
    let started = Instant::now();
    for rep in 0..n_runs {
        for (k, cell) in cells.iter().enumerate() {
            println!(
                "[{:>5.0} s] {}/{}: {} (run {}/{n_runs})",
                started.elapsed().as_secs_f64(),
                k + 1,
                cells.len(),
                cell.label(),
                rep + 1
            );
            let show = rep == 0
                && (k == 0 || cells[k - 1].config != cell.config || cells[k - 1].links != cell.links);
            match catch_unwind(AssertUnwindSafe(|| run_once(&bin, cell, secs, show))) {
                Ok(r) => {
                    println!("      {}", run_line(cell, &r));
                    runs.entry(cell.clone()).or_default().push(r);
                }
                Err(e) => {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    println!("      FAILED: {msg}");
                    failures.entry(cell.clone()).or_default().push(msg);
                }
            }
        }
    }
    print_tables(&cells, &runs, &failures, &bns, &ccs);
    println!("\nwhole matrix: {:.0} s", started.elapsed().as_secs_f64());
}

fn print_tables(
    cells: &[Cell],
    runs: &BTreeMap<Cell, Vec<Run>>,
    failures: &BTreeMap<Cell, Vec<String>>,
    bns: &[&'static str],
    ccs: &[&'static str],
) {
    println!(
        "\n==== condition matrix: % of the limit (failover: s below half the healthy rate; flood: % of the clean 3x40 rate, `c`); \
         worst of the runs; * = target missed ====\n"
    );
    let columns: Vec<(&str, &str)> = bns.iter().flat_map(|b| ccs.iter().map(move |c| (*b, *c))).collect();
    let mut rows: Vec<(&str, &str, &str)> = Vec::new();
    for c in cells {
        if !rows.contains(&(c.dir, c.links, c.config)) {
            rows.push((c.dir, c.links, c.config));
        }
    }
    print!("| dir | links | config |");
    for (b, c) in &columns {
        print!(" {b} {c} |");
    }
    println!();
    println!("|---|---|---|{}", "---:|".repeat(columns.len()));
    let mut worst: BTreeMap<&str, (f64, String)> = BTreeMap::new();
    let mut missed = 0;
    for (dir, links, config) in &rows {
        print!("| {dir} | {links} | {config} |");
        for (b, c) in &columns {
            let cell = Cell { links, config, dir, bottleneck: b, cc: c };
            match verdict(&cell, runs) {
                Some((text, value, ok)) => {
                    print!(" {text}{} |", if ok { "" } else { "*" });
                    missed += usize::from(!ok);
                    let kind = match *links {
                        "failover" => "failover (s below half, worst = most)",
                        "flood" => "flood (% of clean)",
                        _ => "goodput (% of limit)",
                    };
                    let bad = if *links == "failover" { -value } else { value };
                    let e = worst.entry(kind).or_insert((f64::INFINITY, String::new()));
                    if bad < e.0 {
                        *e = (bad, format!("{text} in {}", cell.label()));
                    }
                }
                None if failures.contains_key(&cell) => print!(" FAILED |"),
                None => print!(" – |"),
            }
        }
        println!();
    }
    println!("\nworst cells:");
    for (kind, (_, text)) in &worst {
        println!("  {kind}: {text}");
    }
    // A carried-over reorder_buffer_size must not cost more than 5% against leaving it out.
    let mut rbs_worst: Option<(f64, String)> = None;
    for (cell, _) in
        runs.iter().filter(|(c, _)| c.config == "mlvpn" && !matches!(c.links, "failover" | "flood"))
    {
        let none = Cell { config: "none", ..cell.clone() };
        let (Some(a), Some(b)) = (verdict(cell, runs), verdict(&none, runs)) else { continue };
        let ratio = a.1 / b.1 * 100.0;
        if rbs_worst.as_ref().is_none_or(|w| ratio < w.0) {
            rbs_worst = Some((ratio, cell.label()));
        }
    }
    if let Some((ratio, label)) = rbs_worst {
        println!(
            "  MLVPN's config against no keys, worst: {ratio:.0}% ({label}); target ≥ 95%: {}",
            if ratio >= 95.0 { "met" } else { "NOT met" }
        );
    }
    println!(
        "cells that missed their target: {missed}; failed runs: {}",
        failures.values().map(Vec::len).sum::<usize>()
    );
}
