//! Issue 13's figures: a VoIP call beside a bulk upload over a failing bond
//! (`tests/netns/calls.rs`), the issue's full scenario in every cell.
//!
//! `cargo bench --bench calls` (as root; 8 cells × 2 runs of ~40 s each: ~11 min).
//!
//! The links: 3 × 40 Mbit/s, one-way 20/30/40 ms; link 0 loses 5 % of its frames both ways
//! and is blackholed both ways for 2 s a third into the call (10 s of the issue's 30). The
//! upload: one iperf3 flow client → server from 2 s before the call to 1 s after it. The call:
//! 50 packets/s of 200-byte IP packets client → server, DSCP EF. Each cell runs twice, on
//! fresh namespaces and daemons: with the call, and without it (same upload, same cut), so
//! that the upload's goodput beside the call can be read against its goodput alone.
//!
//! Dimensions (narrowed with comma-separated values):
//!
//! | dimension | values | variable |
//! |---|---|---|
//! | configuration | `none`: no tuning keys; `mlvpn`: MLVPN's `reorder_buffer_size = 64` | `MLVPN_CALLS_CONFIG` |
//! | bottleneck | `emu`: the emulator's rate and 50 ms byte queue; `tbf`: the kernel's `tbf` on both veth ends (`burst 64kb latency 50ms`), the emulator adding delay, loss and the cut | `MLVPN_CALLS_BOTTLENECK` |
//! | the upload's congestion control | `cubic`, `bbr` | `MLVPN_CALLS_CC` |
//! | direction of the call and the bulk transfer | `up` (client → server, the issue's), `down` | `MLVPN_CALLS_DIR` |
//!
//! Also: `MLVPN_CALLS_SECS` (the call's length, default 30), `MLVPN_CALLS_TOS` (the call's TOS
//! byte, default `0xb8` = DSCP EF; `0` sends it unmarked), `MLVPN_BIN`, `MLVPN_NETNS_KEEP=1`.
//!
//! Figures: the call's lost (never arrived), late (> 150 ms one way, ITU-T G.114), dup
//! (delivered more than once), one-way delay percentiles (one host clock, kernel arrival
//! stamps); the upload's goodput while the call ran (iperf3's receiver), with and without the
//! call; the call's frames on the links (counted as the client sends them: a frame of the
//! call's size, 200 + 61 bytes, is the call's, copies and resends included) against its own
//! packets; all the bytes the client put on the links (the emulator's counters); and whether
//! the run meets the CI test's floors (`tests/netns_calls.rs`).

#[path = "../netns/calls.rs"]
mod calls;
#[path = "../netns/emulated.rs"]
mod emulated;
#[path = "../netns/json.rs"]
mod json;
#[path = "../netns/lab.rs"]
mod lab;
#[path = "../netns/traffic.rs"]
mod traffic;

use calls::{Bottleneck, CI_FLOORS, CallRun, Timing};
use lab::TunnelOpts;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

const CONFIGS: [&str; 2] = ["none", "mlvpn"];
const BOTTLENECKS: [Bottleneck; 2] = [Bottleneck::Emu, Bottleneck::Tbf];
const CCS: [&str; 2] = ["cubic", "bbr"];
/// `up`: the call and the bulk transfer client → server (the issue's); `down`: server → client.
const DIRS: [&str; 2] = ["up", "down"];

#[derive(Debug, Clone, Copy)]
struct Cell {
    config: &'static str,
    bottleneck: Bottleneck,
    cc: &'static str,
    dir: &'static str,
}

impl Cell {
    fn from(&self) -> lab::Side {
        if self.dir == "up" { lab::Side::Client } else { lab::Side::Server }
    }

    fn opts(&self) -> TunnelOpts {
        let reorder_buffer_size = (self.config == "mlvpn").then_some(64);
        TunnelOpts { reorder_buffer_size, ..TunnelOpts::default() }
    }

    fn label(&self) -> String {
        format!("{} {} {} {}", self.dir, self.config, self.bottleneck.label(), self.cc)
    }
}

/// A cell's two runs: with the call and without it.
struct Measured {
    cell: Cell,
    with: Result<CallRun, String>,
    without: Result<CallRun, String>,
}

/// The values of `all` named in `var` (all of them when it is unset).
fn pick<T: Copy>(var: &str, all: &[T], name: impl Fn(&T) -> &str) -> Vec<T> {
    match std::env::var(var) {
        Ok(v) => all.iter().copied().filter(|a| v.split(',').any(|x| x.trim() == name(a))).collect(),
        Err(_) => all.to_vec(),
    }
}

/// One run on a fresh lab; a panic (a daemon or a tool failing) becomes its message.
fn run_once(bin: &Path, cell: Cell, timing: Timing, tos: Option<u8>) -> Result<CallRun, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let lab = calls::start_lab(Some(bin), cell.bottleneck, &cell.opts());
        calls::run(&lab, timing, cell.cc, tos, cell.from())
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn main() {
    let Some(bin) = lab::bench_binary("calls") else { return };
    let secs =
        std::env::var("MLVPN_CALLS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(calls::ISSUE.secs);
    let timing = Timing { secs, cut_at: secs / 3.0, cut_secs: calls::ISSUE.cut_secs };
    let tos = match std::env::var("MLVPN_CALLS_TOS") {
        Ok(s) => s
            .strip_prefix("0x")
            .map_or_else(|| s.parse(), |hex| u8::from_str_radix(hex, 16))
            .expect("MLVPN_CALLS_TOS: a byte, e.g. 0xb8"),
        Err(_) => calls::DSCP_EF,
    };
    let mut cells = Vec::new();
    for config in pick("MLVPN_CALLS_CONFIG", &CONFIGS, |c| c) {
        for bottleneck in pick("MLVPN_CALLS_BOTTLENECK", &BOTTLENECKS, |b| b.label()) {
            for cc in pick("MLVPN_CALLS_CC", &CCS, |c| c) {
                for dir in pick("MLVPN_CALLS_DIR", &DIRS, |d| d) {
                    cells.push(Cell { config, bottleneck, cc, dir });
                }
            }
        }
    }
    println!("binary: {}", bin.display());
    println!("machine: {}", lab::machine());
    println!(
        "links: {} (Mbit/s, one-way ms), link 0 loss {} both ways, blackholed both ways {:.1}-{:.1} s into the call",
        calls::LINKS.iter().map(|l| format!("{}/{}", l.0, l.1)).collect::<Vec<_>>().join(", "),
        calls::LOSS,
        timing.cut_at,
        timing.cut_at + timing.cut_secs
    );
    println!(
        "call: call.py send 10.42.0.1 {} {} {} {secs} {tos:#x} (client ns) from {} s into the upload; upload: iperf3 -c \
         10.42.0.1 -t {} -C CC (client ns); upload goodput limit {:.1} Mbit/s",
        calls::CALL_PORT,
        calls::CALL_PPS,
        calls::CALL_IP_BYTES,
        calls::LEAD,
        calls::LEAD + secs + calls::TAIL,
        calls::limit_mbit()
    );
    println!("{} cells, each with and without the call\n", cells.len());
    let started = Instant::now();
    let mut results = Vec::new();
    for (k, &cell) in cells.iter().enumerate() {
        let mut pair = Vec::new();
        for with in [true, false] {
            println!(
                "[{:>4.0} s] {}/{}: {}, {}",
                started.elapsed().as_secs_f64(),
                k + 1,
                cells.len(),
                cell.label(),
                if with { "with the call" } else { "without the call" }
            );
            let r = run_once(&bin, cell, timing, with.then_some(tos));
            match &r {
                Ok(r) => println!("      {}", r.report().replace('\n', "\n      ")),
                Err(e) => println!("      FAILED: {e}"),
            }
            pair.push(r);
        }
        let without = pair.pop().expect("two runs");
        results.push(Measured { cell, with: pair.pop().expect("two runs"), without });
    }
    print_table(&results);
    println!("\nwhole benchmark: {:.0} s", started.elapsed().as_secs_f64());
}

fn print_table(results: &[Measured]) {
    println!(
        "\n==== a call beside an upload over a failing bond (issue 13); one run each; upload limit {:.1} Mbit/s ====\n",
        calls::limit_mbit()
    );
    println!(
        "| dir | config | bottleneck | cc | lost | late | dup | p50 / p95 / p99 / max ms | upload Mbit/s with call | \
         without | call on links: frames per link (copies/packet) | links MB with call | without | CI floors |"
    );
    println!("|---|---|---|---|---:|---:|---:|---|---:|---:|---|---|---|---|");
    let mb = |r: &CallRun| {
        r.link_bytes.iter().map(|b| format!("{:.0}", *b as f64 / 1e6)).collect::<Vec<_>>().join("/")
    };
    for Measured { cell, with, without } in results {
        let (bare, bare_mb) = match without {
            Ok(r) => (format!("{:.1}", r.upload_mbit), mb(r)),
            Err(_) => ("FAILED".into(), String::new()),
        };
        let head = format!("| {} | {} | {} | {} |", cell.dir, cell.config, cell.bottleneck.label(), cell.cc);
        let Ok(r) = with else {
            println!("{head} FAILED | | | | | {bare} | | | {bare_mb} | |");
            continue;
        };
        let c = r.call.clone().unwrap_or_default();
        let frames: Vec<String> = r.call_on_links.iter().map(|f| f.0.to_string()).collect();
        let missed: Vec<&str> = CI_FLOORS.check(r).iter().filter(|v| !v.met).map(|v| v.name).collect();
        println!(
            "{head} {} | {} | {} | {:.1} / {:.1} / {:.1} / {:.1} | {:.1} | {bare} | {} ({:.2}) | {} | {bare_mb} | {} |",
            c.lost,
            c.late,
            c.duplicated,
            c.p50,
            c.p95,
            c.p99,
            c.max,
            r.upload_mbit,
            frames.join("/"),
            r.copies_per_packet(),
            mb(r),
            if missed.is_empty() { "met".into() } else { format!("missed: {}", missed.join(", ")) }
        );
    }
}
