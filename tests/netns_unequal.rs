//! End-to-end over unequal links through the link emulator (`tests/netns/emulated.rs`), sized
//! for CI: that the default scheduler bonds links of very different delay; and issue 11's
//! subset of its condition matrix — a carried-over MLVPN config with a BBR sender over
//! `tbf`-shaped links, and a link blackholed under a flow. `cargo bench --bench unequal` and
//! `cargo bench --bench matrix` print the real figures against the issues' targets.
//!
//! Run as root: `cargo test --test netns_unequal -- --nocapture` (~35 s; up to two minutes
//! when it retries). Without root, or without the daemon binary, it prints `SKIPPED` and passes.
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
    let Some(_turn) = lab::daemon_scenario("unequal_delays_bond_through_the_emulator") else { return };
    let limit = 100.0 * emulated::goodput_ratio(lab::DEFAULT_MTU);
    emulated::best_of(3, |attempt| {
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
            "{mbit:.1} Mbit/s = {:.0}% of {limit:.1} (floor 40%); 60 ms link carried {:.0}% \
             (floor 5%); ping under load {} (p99 floor {bound:.0} ms); idle RTT {:.1}/{:.1} ms; CPU pressure {:.0}%",
            mbit / limit * 100.0,
            slow_share * 100.0,
            r.ping.summary(),
            idle[0].percentile(50.0),
            idle[1].percentile(50.0),
            r.pressure.unwrap_or(f64::NAN),
        );
        let ok = mbit >= 0.40 * limit && slow_share >= 0.05 && p99 <= bound;
        if !ok && attempt == 3 {
            println!("client status:\n{}", lab.status(Side::Client, false));
            println!("server status:\n{}", lab.status(Side::Server, false));
        }
        (ok, line)
    });
}

/// Starts a lab over `links` (Mbit/s, one-way ms), each shaped by the kernel's `tbf` on both
/// veth ends (the emulator adding only the delay), as issue 11's matrix does; with
/// `bandwidth_upload` set to the true rates when `bandwidth`.
fn tbf_lab(links: &[(f64, f64)], bandwidth: bool, opts: &TunnelOpts) -> EmuLab {
    let specs: Vec<EmuLink> = links
        .iter()
        .map(|&(rate, delay)| {
            let link = EmuLink::new(rate, delay);
            EmuLink {
                settings: format!("delay {}", emulated::duration(delay)),
                bandwidth_upload: link.bandwidth_upload.filter(|_| bandwidth),
                ..link
            }
        })
        .collect();
    let mut lab = EmuLab::new(&specs);
    for (i, &(rate, _)) in links.iter().enumerate() {
        lab.shape_tbf(i, &emulated::rate(rate), "64kb", "50ms");
    }
    lab.start_both(opts);
    lab.wait_tunnel(Duration::from_secs(20));
    lab
}

/// Issue 11: a config carried over from MLVPN (`reorder_buffer_size = 64`, `bandwidth_upload`
/// per link) with a BBR sender, over 40/25/15 Mbit/s at one-way 5/20/40 ms shaped by `tbf`:
/// before the fix, 52–58 % of the limit (cubic: 32 %). Floor 75 % here, best of three (the
/// matrix bench, `cargo bench --bench matrix`, holds the 90 % target).
#[test]
fn a_carried_over_mlvpn_config_bonds_a_bbr_flow() {
    let Some(_turn) = lab::daemon_scenario("a_carried_over_mlvpn_config_bonds_a_bbr_flow") else { return };
    let links = [(40.0, 5.0), (25.0, 20.0), (15.0, 40.0)];
    let limit = 80.0 * emulated::goodput_ratio(lab::DEFAULT_MTU);
    let opts = TunnelOpts { reorder_buffer_size: Some(64), ..TunnelOpts::default() };
    emulated::best_of(3, |_| {
        let lab = tbf_lab(&links, true, &opts);
        let mut plan = FlowPlan::new(10.0);
        plan.cc = Some("bbr".into());
        let r = emulated::run_flow(&lab, &plan);
        let mbit = r.iperf.mean_bps_from(2.0) / 1e6;
        let line = format!(
            "{mbit:.1} Mbit/s = {:.0}% of {limit:.1} (floor 75%); CPU pressure {:.0}%",
            mbit / limit * 100.0,
            r.pressure.unwrap_or(f64::NAN)
        );
        (mbit >= 0.75 * limit, line)
    });
}

/// Issue 11: one of 3 × 40 Mbit/s (`tbf`, 10 ms one way) blackholed both ways for 4 s under a
/// cubic flow. The flow spends at most 2 s below half its healthy rate from the cut on (the
/// matrix bench: 0.0–0.4 s with cubic, target 1 s), and the link carries its share again
/// after it returns (it once came back estimated at 28 kB/s, or with a phantom 0.5 s queue,
/// and carried a third of its share): at least 18 % of the flow's bytes over the run (a third
/// of two thirds of the time is 22 %). Best of three.
#[test]
fn a_blackholed_link_costs_the_flow_little_and_comes_back() {
    let Some(_turn) = lab::daemon_scenario("a_blackholed_link_costs_the_flow_little_and_comes_back") else {
        return;
    };
    const CUT: (f64, f64) = (4.0, 8.0);
    emulated::best_of(3, |_| {
        let lab = tbf_lab(&[(40.0, 10.0); 3], false, &TunnelOpts::default());
        let mut plan = FlowPlan::new(12.0);
        plan.cc = Some("cubic".into());
        plan.events = vec![(CUT.0, "link 1 blackhole on".into()), (CUT.1, "link 1 blackhole off".into())];
        let r = emulated::run_flow(&lab, &plan);
        let healthy = r.iperf.mean_bps_between(2.0, CUT.0);
        let below = r.iperf.secs_below(healthy / 2.0, CUT.0);
        let carried: Vec<u64> = (0..3).map(|i| r.emu_delta(i, "up", "tx_bytes")).collect();
        let share = carried[1] as f64 / carried.iter().sum::<u64>().max(1) as f64;
        let line = format!(
            "healthy {:.1} Mbit/s, {below:.1} s below half of it (floor 2 s); link 1 carried \
             {:.0}% of the bytes (floor 18%); receiver Mbit/s per 0.1 s: {}; CPU pressure {:.0}%",
            healthy / 1e6,
            share * 100.0,
            r.iperf.sparkline(),
            r.pressure.unwrap_or(f64::NAN)
        );
        (below <= 2.0 && share >= 0.18, line)
    });
}
