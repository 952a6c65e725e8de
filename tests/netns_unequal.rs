//! End-to-end over unequal links through the link emulator (`tests/netns/emulated.rs`), sized
//! for CI: one check that the emulator path works and that the default scheduler bonds links
//! of very different delay. `cargo bench --bench unequal` prints the real figures against
//! issue 4's targets.
//!
//! Run as root: `cargo test --test netns_unequal -- --nocapture` (~30 s; up to a minute when
//! it retries). Without root, or without the daemon binary, it prints `SKIPPED` and passes.
//! Needs (Debian): iproute2 nftables iperf3 python3; builds `tests/linkemu` on first use.

#[path = "netns/emulated.rs"]
mod emulated;
#[path = "netns/json.rs"]
mod json;
#[path = "netns/lab.rs"]
mod lab;
#[path = "netns/traffic.rs"]
mod traffic;

use emulated::{EmuLab, EmuLink, FlowPlan};
use lab::{Side, TunnelOpts};
use std::time::Duration;

/// Issue 4's scenario 2 (50 and 50 Mbit/s, one-way 5 and 60 ms) for 8 s, `scheduler =
/// arrival`, one cubic flow client → server with a ping through the tunnel.
///
/// Floors, far below the targets (≥ 90% of the physical limit; ping within the slowest
/// used link's idle RTT + 30 ms), so that only a real regression fails on a loaded machine:
/// * ≥ 40% of the physical limit (the `bench` measured 52% with the engine of 2026-11-26, and
///   `wrr` reaches 30% in a flow this short): raise it as the engine improves;
/// * the 60 ms link carries at least 5% of the data: the tunnel bonds, it does not fall back
///   to the fast link alone;
/// * ping p99 under load ≤ 120 + 30 ms + 20 ms of slack.
///
/// Best of three attempts: the figures depend on how busy the machine's two cores are.
#[test]
fn unequal_delays_bond_through_the_emulator() {
    if !lab::have_root("unequal_delays_bond_through_the_emulator") {
        return;
    }
    let Some(_) = lab::need_mlvpn("unequal_delays_bond_through_the_emulator") else { return };
    let _turn = lab::serial();
    let limit = 100.0 * emulated::goodput_ratio(lab::DEFAULT_MTU);
    let mut report = Vec::new();
    for attempt in 1..=3 {
        let lab = {
            let mut lab = EmuLab::new(&[EmuLink::new(50.0, 5.0), EmuLink::new(50.0, 60.0)]);
            let opts = TunnelOpts {
                extra_general: vec![("scheduler".into(), "arrival".into())],
                ..TunnelOpts::default()
            };
            lab.start_both(&opts);
            lab.wait_tunnel(Duration::from_secs(20));
            lab
        };
        let idle = lab.idle_rtts(10, 0.05);
        let r = emulated::run_flow(&lab, &FlowPlan::new(8.0));
        let mbit = r.iperf.mean_bps_from(2.0) / 1e6;
        let carried: Vec<u64> = (0..2).map(|i| r.emu_delta(i, "up", "tx_bytes")).collect();
        let slow_share = carried[1] as f64 / (carried[0] + carried[1]).max(1) as f64;
        let bound = idle[1].percentile(50.0) + 30.0 + 20.0;
        let p99 = r.ping.percentile(99.0);
        let line = format!(
            "attempt {attempt}: {mbit:.1} Mbit/s = {:.0}% of {limit:.1} (floor 40%); 60 ms link carried {:.0}% \
             (floor 5%); ping under load {} (p99 floor {bound:.0} ms); idle RTT {:.1}/{:.1} ms; CPU pressure {:.0}%",
            mbit / limit * 100.0,
            slow_share * 100.0,
            r.ping.summary(),
            idle[0].percentile(50.0),
            idle[1].percentile(50.0),
            r.pressure.unwrap_or(f64::NAN),
        );
        println!("{line}");
        report.push(line);
        if mbit >= 0.40 * limit && slow_share >= 0.05 && p99 <= bound {
            return;
        }
        if attempt == 3 {
            println!("client status:\n{}", lab.status(Side::Client, false));
            println!("server status:\n{}", lab.status(Side::Server, false));
        }
    }
    panic!("below the floors in all three attempts:\n{}", report.join("\n"));
}
