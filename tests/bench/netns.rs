//! Benchmark of `mlvpn` in network namespaces (the lab of `tests/netns/lab.rs`).
//!
//! `cargo bench --bench netns` (as root). Prints a table:
//! * one unshaped link: TCP throughput each way, and the CPU seconds each daemon spends per GB
//!   carried (utime + stime from /proc/PID/stat of the daemon and its children, before/after);
//! * 3 links of 40 Mbit/s each (tbf): one TCP flow each way, against the wire's limit;
//! * plain TCP over the same veth without the tunnel, for scale.
//!
//! The daemon is a clean release build made here with `cargo build --release` into
//! `target/netns-bench`: the binary `cargo bench` itself builds carries the `nonce-audit` test
//! feature (the dev-dependency on ourselves turns it on for every target), which records every
//! nonce sealed. `MLVPN_BIN=/path/to/mlvpn` uses that binary instead. `MLVPN_BENCH_SECS` sets
//! the length of each flow (default 10).

#[path = "../netns/json.rs"]
mod json;
#[path = "../netns/lab.rs"]
mod lab;
#[path = "../netns/traffic.rs"]
mod traffic;

use lab::{Lab, LinkSpec, Side, TunnelOpts};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

struct Row {
    scenario: String,
    direction: String,
    mbit: f64,
    note: String,
    cpu_client: Option<f64>,
    cpu_server: Option<f64>,
}

fn release_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MLVPN_BIN") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join("netns-bench");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!(
        "building a clean release binary: cargo build --release --bin mlvpn --target-dir {}",
        target.display()
    );
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "mlvpn", "--target-dir"])
        .arg(&target)
        .current_dir(&root)
        .status()
        .ok()?;
    let bin = target.join("release").join("mlvpn");
    (status.success() && bin.exists()).then_some(bin)
}

/// One flow from `from` through the tunnel, with the daemons' CPU time per GB received.
fn tunnel_flow(lab: &mut Lab, from: Side, secs: f64, scenario: &str, limit_mbit: Option<f64>) -> Row {
    let pids = [lab.daemon_pid(Side::Client), lab.daemon_pid(Side::Server)];
    let pressure = lab::CpuPressure::start();
    let cpu0 = pids.map(lab::cpu_seconds);
    let run = traffic::iperf(lab, from, from.other().tun_ip(), 5201, secs);
    let cpu1 = pids.map(lab::cpu_seconds);
    lab.assert_running(Side::Client);
    lab.assert_running(Side::Server);
    let gb = run.bytes_received / 1e9;
    let steady = run.mean_bps_from(1.0) / 1e6;
    let mut note = format!("overall {:.1}", run.receiver_bps / 1e6);
    if let Some(limit) = limit_mbit {
        note = format!("{note}, {:.0}% of ≈{limit:.0}", steady / limit * 100.0);
    }
    if let Some(r) = run.retransmits {
        note = format!("{note}, {r} retr");
    }
    if let Some(p) = pressure.percent() {
        note = format!("{note}, CPU pressure {p:.0} %");
    }
    Row {
        scenario: scenario.into(),
        direction: format!("{} → {}", from.name(), from.other().name()),
        mbit: steady,
        note,
        cpu_client: Some((cpu1[0] - cpu0[0]) / gb),
        cpu_server: Some((cpu1[1] - cpu0[1]) / gb),
    }
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("netns benchmark: run it with `cargo bench --bench netns` (as root)");
        return;
    }
    if !lab::have_root("netns benchmark") {
        return;
    }
    lab::need_tools();
    let Some(bin) = release_binary() else {
        lab::loud("SKIPPED: netns benchmark: cannot build the mlvpn binary (no src/main.rs yet?)");
        return;
    };
    let secs: f64 = std::env::var("MLVPN_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    println!("binary: {}", bin.display());
    println!("machine: {} cores, kernel {}", num_cpus(), lab::host(&["uname", "-r"]).trim());
    println!(
        "each flow: one TCP connection (iperf3, {}), {secs} s; rates are receiver means from 1 s on\n",
        lab::tcp_congestion_control().unwrap_or("default congestion control".into())
    );

    let mut rows = Vec::new();
    let opts = TunnelOpts::default();

    // One unshaped link.
    {
        let mut lab = Lab::new(&[LinkSpec::unshaped()]);
        lab.bin = Some(bin.clone());
        let plain = traffic::iperf(&lab, Side::Client, &lab.links[0].server_ip.clone(), 5301, secs.min(5.0));
        rows.push(Row {
            scenario: "1 veth, no tunnel (scale)".into(),
            direction: "client → server".into(),
            mbit: plain.mean_bps_from(1.0) / 1e6,
            note: String::new(),
            cpu_client: None,
            cpu_server: None,
        });
        lab.start_both(&opts);
        let up = lab.wait_tunnel(Duration::from_secs(20));
        println!("1 unshaped link: tunnel up in {:.2} s", up.as_secs_f64());
        for from in [Side::Client, Side::Server] {
            rows.push(tunnel_flow(&mut lab, from, secs, "1 link, unshaped", None));
        }
    }

    // 3 × 40 Mbit/s. Wire limit for TCP in the tunnel: 3 × 40 × 1348 / 1475 (MSS 1348 with
    // timestamps in a 1400 MTU; frame = 1400 + 61 mlvpn/UDP/IP + 14 Ethernet).
    {
        let limit = 3.0 * 40.0 * 1348.0 / 1475.0;
        let mut lab = Lab::new(&[LinkSpec::shaped(40.0), LinkSpec::shaped(40.0), LinkSpec::shaped(40.0)]);
        lab.bin = Some(bin.clone());
        lab.start_both(&opts);
        let up = lab.wait_tunnel(Duration::from_secs(20));
        println!("3 x 40 Mbit/s: tunnel up in {:.2} s", up.as_secs_f64());
        for from in [Side::Client, Side::Server] {
            rows.push(tunnel_flow(&mut lab, from, secs, "3 x 40 Mbit/s (tbf)", Some(limit)));
        }
    }

    println!();
    println!(
        "{:<28} {:<18} {:>8}  {:>16} {:>16}  notes",
        "scenario", "direction", "Mbit/s", "client CPU s/GB", "server CPU s/GB"
    );
    let cpu = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{c:.2}"));
    for r in &rows {
        println!(
            "{:<28} {:<18} {:>8.1}  {:>16} {:>16}  {}",
            r.scenario,
            r.direction,
            r.mbit,
            cpu(r.cpu_client),
            cpu(r.cpu_server),
            r.note
        );
    }
    println!(
        "\n(CPU s/GB: user + system CPU seconds of the daemon and its children per 10^9 bytes received;"
    );
    println!(" CPU pressure: share of the flow's time during which some task on the machine, ours included,");
    println!(" waited for a CPU; a flow that fills both cores by itself shows 50-80 %)");
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
