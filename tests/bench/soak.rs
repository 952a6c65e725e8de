//! Soak: steady traffic through the tunnel for a long time, both daemons' fds and RSS sampled
//! every 10 s (issue 7: "both flat").
//!
//! `cargo bench --bench soak` (as root): 10 minutes; `cargo bench --bench soak -- --minutes 2`
//! or `MLVPN_SOAK_MINUTES=2` for a shorter run. Not run by CI.
//!
//! The lab of `tests/netns/lab.rs` with three links of 40 Mbit/s (`tbf`, both ways), both
//! daemons started with privilege separation (`tests/netns/ops.rs`), a TCP flow each way at
//! once, in rounds of 60 s back to back. After a warm-up (`ops::warm_up`: the daemons' rings
//! written once, see there), every 10 s the open fds and VmRSS of the four processes (each
//! daemon's privileged parent and network child) are read from /proc. The table ends with each
//! column's max − min, and a verdict: flat when no fd count moved and no RSS spread exceeds
//! 256 KiB beyond what the packet pools took meanwhile. The pools (reorder buffer, send queue,
//! resend store) are allocated once and take memory only as they are used, up to their size;
//! each daemon's status says how far each has been used (`pools.*.peak_bytes`), so RSS growth
//! they account for is the pools reaching a new peak, and growth beyond it would be a leak.
//! The links' events logged during the soak (state changes, handshakes failing) are printed too.
//!
//! The daemon is the one cargo built for the benchmark (`MLVPN_BIN=/path/to/mlvpn` for
//! another). That build has the test-only `nonce-audit` feature, which records nothing unless a
//! test starts it.

#[path = "../netns/json.rs"]
mod json;
#[path = "../netns/lab.rs"]
mod lab;
#[path = "../netns/ops.rs"]
mod ops;
#[path = "../netns/traffic.rs"]
mod traffic;

use lab::{LinkSpec, Side, TunnelOpts};
use ops::{Mode, ProcStats, Rig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const ROUND_SECS: f64 = 60.0;
const RSS_SPREAD_KIB: u64 = 256;

fn minutes() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().position(|a| a == "--minutes").and_then(|i| args.get(i + 1)).cloned();
    let text = from_args.or_else(|| std::env::var("MLVPN_SOAK_MINUTES").ok());
    match text {
        Some(t) => t.parse().unwrap_or_else(|_| panic!("--minutes / MLVPN_SOAK_MINUTES: not a number: {t}")),
        None => 10.0,
    }
}

/// One sample: seconds since the start, then (fds, RSS KiB) of each process.
type Sample = (f64, Vec<ProcStats>);

fn main() {
    if !lab::have_root("soak") {
        return;
    }
    let Some(_) = lab::need_mlvpn("soak") else { return };
    let minutes = minutes();
    let mut rig = Rig::new(&[LinkSpec::shaped(40.0), LinkSpec::shaped(40.0), LinkSpec::shaped(40.0)]);
    rig.start_both(&TunnelOpts::default(), Mode::Separated);
    rig.wait_tunnel(Duration::from_secs(20));
    ops::warm_up(&rig);
    let marks = ops::log_marks(&rig);
    let pools_before = [Side::Client, Side::Server].map(|s| rig.snapshot(s).pool_peak_bytes());
    let procs: Vec<(String, u32)> = [Side::Client, Side::Server]
        .into_iter()
        .flat_map(|side| {
            let (parent, child) = (rig.pid(side), rig.net_pid(side));
            [(format!("{} parent", side.name()), parent), (format!("{} network", side.name()), child)]
        })
        .collect();
    println!(
        "soak: {minutes} min of a TCP flow each way over 3 × 40 Mbit/s, fds and RSS every {} s; processes {procs:?}",
        SAMPLE_EVERY.as_secs()
    );

    // The sampler.
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let sampler = {
        let stop = stop.clone();
        let pids: Vec<u32> = procs.iter().map(|p| p.1).collect();
        let names: Vec<String> = procs.iter().map(|p| p.0.clone()).collect();
        std::thread::spawn(move || {
            let mut samples: Vec<Sample> = Vec::new();
            let mut header = format!("{:>7}", "t (s)");
            for n in &names {
                header.push_str(&format!(" | {:>24}", format!("{n} fds / KiB")));
            }
            println!("{header}");
            let mut k = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let due = SAMPLE_EVERY * k;
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait.min(Duration::from_millis(200)));
                    continue;
                }
                let row: Vec<ProcStats> = pids
                    .iter()
                    .map(|&p| ProcStats::of(p).unwrap_or_else(|| panic!("process {p} is gone")))
                    .collect();
                let mut line = format!("{:>7.0}", start.elapsed().as_secs_f64());
                for s in &row {
                    line.push_str(&format!(" | {:>24}", format!("{} / {}", s.fds, s.rss_kib)));
                }
                println!("{line}");
                samples.push((start.elapsed().as_secs_f64(), row));
                k += 1;
            }
            samples
        })
    };

    // The traffic: rounds of a flow each way, back to back.
    let end = start + Duration::from_secs_f64(minutes * 60.0);
    let mut rounds = Vec::new();
    let mut round = 0u16;
    while Instant::now() + Duration::from_secs(2) < end {
        let secs = (end - Instant::now()).as_secs_f64().clamp(1.0, ROUND_SECS);
        let up = traffic::iperf_start(&rig, Side::Client, lab::TUN_SERVER_IP, 5201 + 2 * (round % 50), secs);
        let down =
            traffic::iperf_start(&rig, Side::Server, lab::TUN_CLIENT_IP, 5202 + 2 * (round % 50), secs);
        let (up, down) = (up.finish(), down.finish());
        rig.assert_running(Side::Client);
        rig.assert_running(Side::Server);
        rounds.push((secs, up.mean_bps_from(1.0) / 1e6, down.mean_bps_from(1.0) / 1e6));
        round += 1;
    }
    std::thread::sleep(end.saturating_duration_since(Instant::now()) + Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");

    println!("\nrounds (s, Mbit/s client → server, server → client):");
    for (s, u, d) in &rounds {
        println!("  {s:>5.1} {u:>7.1} {d:>7.1}");
    }
    let pools_after = [Side::Client, Side::Server].map(|s| rig.snapshot(s).pool_peak_bytes());
    let status: Vec<String> = [Side::Client, Side::Server]
        .iter()
        .map(|&s| {
            let snap = rig.snapshot(s);
            let drops: Vec<String> =
                snap.drops().into_iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
            format!(
                "{}: links {:?}, handshakes {:?}, drops [{}]",
                s.name(),
                snap.links.iter().map(|l| l.state.clone()).collect::<Vec<_>>(),
                snap.links.iter().map(|l| l.handshakes).collect::<Vec<_>>(),
                drops.join(", ")
            )
        })
        .collect();
    println!("at the end: {}", status.join("; "));
    for side in [Side::Client, Side::Server] {
        let events: Vec<String> = rig.log(side)[ops::mark(marks, side)..]
            .lines()
            .filter(|l| {
                l.contains("link ") || l.contains("tunnel") || l.contains("restarted") || l.contains("error")
            })
            .map(String::from)
            .collect();
        println!("{} log during the soak ({} lines of link events):", side.name(), events.len());
        for e in events.iter().take(40) {
            println!("  {e}");
        }
    }

    println!("\nspread over {} samples (max − min):", samples.len());
    let mut flat = true;
    for (i, (name, pid)) in procs.iter().enumerate() {
        let col: Vec<ProcStats> = samples.iter().map(|s| s.1[i]).collect();
        let fds =
            (col.iter().map(|s| s.fds).min().unwrap_or(0), col.iter().map(|s| s.fds).max().unwrap_or(0));
        let rss = (
            col.iter().map(|s| s.rss_kib).min().unwrap_or(0),
            col.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        );
        // The network processes (odd columns) hold the pools; the parents hold none.
        let pools_kib = if i % 2 == 1 {
            let side = i / 2;
            pools_after[side].saturating_sub(pools_before[side]).div_ceil(1024)
        } else {
            0
        };
        let spread = rss.1 - rss.0;
        let ok = fds.0 == fds.1 && spread <= RSS_SPREAD_KIB + pools_kib;
        flat &= ok;
        println!(
            "  {name:>16} ({pid}): fds {}..{} (spread {}), RSS {}..{} KiB (spread {} KiB; pools' peaks grew {} KiB){}",
            fds.0,
            fds.1,
            fds.1 - fds.0,
            rss.0,
            rss.1,
            spread,
            pools_kib,
            if ok { "" } else { "  <-- moves" }
        );
    }
    println!(
        "verdict: {}",
        if flat {
            format!(
                "flat (no fd count moved, every RSS spread ≤ {RSS_SPREAD_KIB} KiB beyond the pools' growth)"
            )
        } else {
            "NOT flat".into()
        }
    );
}
