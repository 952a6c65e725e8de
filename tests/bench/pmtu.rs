//! Issue 12's figures: a link whose path swallows large packets (`tests/netns/pmtu.rs`: link 2 of
//! 3 × 40 Mbit/s at one-way 10/20/30 ms behind a 1400-byte hop that sends no ICMP).
//!
//! `cargo bench --bench pmtu` (as root; 8 cells of two runs, ~40 s a cell: ~6 min).
//!
//! Each cell runs twice, on fresh namespaces and daemons:
//! * **small from the start**: the hop is 1400 bytes before the daemons start. How long each
//!   side's search takes (from the tunnel up), the path MTU and TUN MTU found; then 100 MB in
//!   one TCP flow, hashed on both ends (`xfer.py`: its rate includes slow start), and one
//!   iperf3 flow for 12 s, whose rate from 2 s on is held against the 100 Mbit/s.
//! * **shrinks mid-flow**: one iperf3 flow for 14 s; 5 s in, the hop drops from 1500 to 1400
//!   bytes. Its rate before, the seconds it spends below half of that afterwards (target 3 s),
//!   its rate over the last 4 s, and what the sending side's status says of link 2.
//!
//! Dimensions (narrowed with comma-separated values):
//!
//! | dimension | values | variable |
//! |---|---|---|
//! | bottleneck | `tbf` (the kernel's, `burst 64kb latency 50ms`, the emulator adding delay), `emu` (the emulator's rate and queue) | `MLVPN_PMTU_BOTTLENECK` |
//! | the sender's congestion control | `cubic`, `bbr` | `MLVPN_PMTU_CC` |
//! | direction | `up` (client → server), `down` | `MLVPN_PMTU_DIR` |
//!
//! Also `MLVPN_BIN`, `MLVPN_NETNS_KEEP=1`.

#[path = "../netns/emulated.rs"]
mod emulated;
#[path = "../netns/json.rs"]
mod json;
#[path = "../netns/lab.rs"]
mod lab;
#[path = "../netns/pmtu.rs"]
mod pmtu;
#[path = "../netns/traffic.rs"]
mod traffic;

use emulated::FlowPlan;
use lab::{Side, TunnelOpts};
use pmtu::{Bottleneck, HOP_MTU, SMALL};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

const BOTTLENECKS: [Bottleneck; 2] = [Bottleneck::Tbf, Bottleneck::Emu];
const CCS: [&str; 2] = ["cubic", "bbr"];
const DIRS: [&str; 2] = ["up", "down"];
/// When the hop shrinks, and how long the flow runs.
const DROP: f64 = 5.0;
const FLOW: f64 = 14.0;
/// The targets.
const TARGET_MBIT: f64 = 100.0;
const TARGET_BELOW_HALF: f64 = 3.0;

#[derive(Debug, Clone, Copy)]
struct Cell {
    bottleneck: Bottleneck,
    cc: &'static str,
    dir: &'static str,
}

impl Cell {
    fn from(&self) -> Side {
        if self.dir == "up" { Side::Client } else { Side::Server }
    }
}

/// The hop small from the start.
struct Static {
    /// (search time from the tunnel up, path MTU) per side, client first.
    found: Vec<Option<(Duration, u64)>>,
    tun_mtu: u32,
    mbit: f64,
    identical: bool,
    /// iperf3's rate from 2 s into a 12 s flow.
    steady: f64,
    link2_share: f64,
}

/// The hop shrinking mid-flow.
struct Shrink {
    healthy: f64,
    below: f64,
    tail: f64,
    state: String,
    mtu: u64,
    black_holes: u64,
    tun_mtu: u32,
}

fn pick<T: Copy>(var: &str, all: &[T], name: impl Fn(&T) -> &str) -> Vec<T> {
    match std::env::var(var) {
        Ok(v) => all.iter().copied().filter(|a| v.split(',').any(|x| x.trim() == name(a))).collect(),
        Err(_) => all.to_vec(),
    }
}

fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn run_static(bin: &Path, cell: Cell) -> Static {
    let lab = pmtu::start_lab(Some(bin), cell.bottleneck, Some(HOP_MTU), &TunnelOpts::default());
    let found = [Side::Client, Side::Server]
        .map(|side| pmtu::wait_done(&lab, side, SMALL, Duration::from_secs(15)))
        .to_vec();
    let from = cell.from();
    let before: Vec<u64> = carried(&lab);
    let t = traffic::transfer_cc(
        &lab,
        from,
        (from.other().tun_ip(), 5301),
        100_000_000,
        7,
        Duration::from_secs(90),
        cell.cc,
    );
    let after = carried(&lab);
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let mut plan = FlowPlan::new(12.0);
    plan.cc = Some(cell.cc.into());
    plan.from = from;
    plan.port = 5202;
    let steady = emulated::run_flow(&lab, &plan).iperf.mean_bps_from(2.0) / 1e6;
    Static {
        steady,
        found,
        tun_mtu: pmtu::device_mtu(&lab, from),
        mbit: t.mbit_per_sec(),
        identical: t.bytes_received == t.bytes_sent && t.sha_received == t.sha_sent,
        link2_share: delta[SMALL] as f64 / delta.iter().sum::<u64>().max(1) as f64,
    }
}

/// Bytes each link carried so far, both directions (the emulator's counters).
fn carried(lab: &emulated::EmuLab) -> Vec<u64> {
    let show = lab.emu_show();
    (0..3).map(|i| show.iter().filter(|p| p.link == i).map(|p| p.get("tx_bytes")).sum()).collect()
}

fn run_shrink(bin: &Path, cell: Cell) -> Shrink {
    let lab = pmtu::start_lab(Some(bin), cell.bottleneck, None, &TunnelOpts::default());
    let mut plan = FlowPlan::new(FLOW);
    plan.cc = Some(cell.cc.into());
    plan.from = cell.from();
    plan.spawns = pmtu::hop_mtu_at(&lab, DROP, SMALL, HOP_MTU);
    let r = emulated::run_flow(&lab, &plan);
    let healthy = r.iperf.mean_bps_between(2.0, DROP) / 1e6;
    let (mtu, state, black_holes) = pmtu::path_of(&lab, cell.from(), SMALL);
    Shrink {
        healthy,
        below: r.iperf.secs_below(healthy * 1e6 / 2.0, DROP),
        tail: r.iperf.mean_bps_between(FLOW - 4.0, FLOW) / 1e6,
        state,
        mtu,
        black_holes,
        tun_mtu: pmtu::device_mtu(&lab, cell.from()),
    }
}

fn main() {
    let Some(bin) = lab::bench_binary("pmtu") else { return };
    let mut cells = Vec::new();
    for bottleneck in pick("MLVPN_PMTU_BOTTLENECK", &BOTTLENECKS, |b| b.name()) {
        for cc in pick("MLVPN_PMTU_CC", &CCS, |c| c) {
            for dir in pick("MLVPN_PMTU_DIR", &DIRS, |d| d) {
                cells.push(Cell { bottleneck, cc, dir });
            }
        }
    }
    let limit = pmtu::limit_mbit(pmtu::tunnel_mtu_for(HOP_MTU));
    println!("binary: {}", bin.display());
    println!("machine: {}", lab::machine());
    println!(
        "links: {} (Mbit/s, one-way ms); link {SMALL} behind a {HOP_MTU}-byte hop without ICMP; tunnel MTU {} \
         configured; one TCP flow's limit at the tunnel MTU the hop allows ({}): {limit:.1} Mbit/s",
        pmtu::LINKS.iter().map(|l| format!("{}/{}", l.0, l.1)).collect::<Vec<_>>().join(", "),
        lab::DEFAULT_MTU,
        pmtu::tunnel_mtu_for(HOP_MTU),
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    for (k, &cell) in cells.iter().enumerate() {
        let label = format!("{} {} {}", cell.bottleneck.name(), cell.cc, cell.dir);
        println!("[{:>4.0} s] {}/{}: {label}", started.elapsed().as_secs_f64(), k + 1, cells.len());
        let s = caught(|| run_static(&bin, cell));
        match &s {
            Ok(s) => println!(
                "      small from the start: found {:?}; TUN {}; 100 MB {} at {:.1} Mbit/s; link 2 carried {:.0}%; \
                 iperf3 {:.1} Mbit/s from 2 s",
                s.found,
                s.tun_mtu,
                if s.identical { "byte-identical" } else { "DIFFERENT" },
                s.mbit,
                s.link2_share * 100.0,
                s.steady
            ),
            Err(e) => println!("      small from the start: FAILED: {e}"),
        }
        let d = caught(|| run_shrink(&bin, cell));
        match &d {
            Ok(d) => println!(
                "      shrinks at {DROP} s: {:.1} Mbit/s before, {:.1} s below half after, {:.1} Mbit/s over the last 4 s; \
                 link 2 {} at {} after {} black hole(s); TUN {}",
                d.healthy, d.below, d.tail, d.state, d.mtu, d.black_holes, d.tun_mtu
            ),
            Err(e) => println!("      shrinks mid-flow: FAILED: {e}"),
        }
        rows.push((cell, s, d));
    }
    println!(
        "\n==== a path that swallows large packets (issue 12); one run each; limit {limit:.1} Mbit/s, \
         targets ≥ {TARGET_MBIT} Mbit/s and ≤ {TARGET_BELOW_HALF} s below half ====\n"
    );
    println!(
        "| bottleneck | cc | dir | search client / server | TUN | 100 MB Mbit/s | identical | link 2 share | \
         iperf3 Mbit/s | before drop | s below half | last 4 s | link 2 after | targets |"
    );
    println!("|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|");
    for (cell, s, d) in &rows {
        let head = format!("| {} | {} | {} |", cell.bottleneck.name(), cell.cc, cell.dir);
        let (static_cols, static_ok) = match s {
            Ok(s) => {
                let found: Vec<String> = s
                    .found
                    .iter()
                    .map(|f| f.map_or("none".into(), |(t, m)| format!("{m} in {:.1} s", t.as_secs_f64())))
                    .collect();
                (
                    format!(
                        " {} | {} | {:.1} | {} | {:.0}% | {:.1} |",
                        found.join(" / "),
                        s.tun_mtu,
                        s.mbit,
                        if s.identical { "yes" } else { "NO" },
                        s.link2_share * 100.0,
                        s.steady
                    ),
                    s.identical && s.steady >= TARGET_MBIT,
                )
            }
            Err(_) => (" FAILED | | | | | |".into(), false),
        };
        let (shrink_cols, shrink_ok) = match d {
            Ok(d) => (
                format!(
                    " {:.1} | {:.1} | {:.1} | {} {} ({} bh) |",
                    d.healthy, d.below, d.tail, d.state, d.mtu, d.black_holes
                ),
                d.below <= TARGET_BELOW_HALF,
            ),
            Err(_) => (" FAILED | | | |".into(), false),
        };
        let verdict = match (static_ok, shrink_ok) {
            (true, true) => "met".to_string(),
            (a, b) => format!("missed:{}{}", if a { "" } else { " rate" }, if b { "" } else { " drop" }),
        };
        println!("{head}{static_cols}{shrink_cols} {verdict} |");
    }
    println!("\nwhole benchmark: {:.0} s", started.elapsed().as_secs_f64());
}
