//! Issue 12 in CI: a link whose path swallows large packets (`tests/netns/pmtu.rs`: link 2 of 3 ×
//! 40 Mbit/s behind a 1400-byte hop that sends no ICMP), from the start and mid-flow.
//! `cargo bench --bench pmtu` runs the matrix (both directions, cubic and BBR, `tbf`
//! and the emulator's queue) against its targets; the floors here are lower, for a loaded
//! machine.
//!
//! Run as root: `cargo test --test netns_pmtu -- --nocapture` (~1 min). Without root, or
//! without the daemon binary, it prints `SKIPPED` and passes. Needs (Debian): iproute2 nftables
//! iperf3 python3; builds `tests/linkemu` on first use.

#[path = "netns/emulated.rs"]
mod emulated;
#[path = "netns/json.rs"]
mod json;
#[path = "netns/lab.rs"]
mod lab;
#[path = "netns/pmtu.rs"]
mod pmtu;
#[path = "netns/traffic.rs"]
mod traffic;

use emulated::FlowPlan;
use lab::{Side, TunnelOpts};
use pmtu::{Bottleneck, HOP_MTU, SMALL};
use std::time::Duration;

/// Link 2 behind the 1400-byte hop from the start: both daemons find its path MTU within 10 s
/// (the search converges in a few round trips; the link comes up in under a second), lower
/// their TUN devices to what it carries, keep the other links at the full size, and 60 MB go
/// through byte for byte in each direction. Throughput floor 60 % of the limit (the bench
/// holds the 100 Mbit/s), best of two.
#[test]
fn a_link_behind_a_small_hop_is_found_and_every_link_carries_the_flow() {
    let Some(_turn) =
        lab::daemon_scenario("a_link_behind_a_small_hop_is_found_and_every_link_carries_the_flow")
    else {
        return;
    };
    emulated::best_of(2, |attempt| {
        let lab = pmtu::start_lab(None, Bottleneck::Tbf, Some(HOP_MTU), &TunnelOpts::default());
        let mut notes = Vec::new();
        for side in [Side::Client, Side::Server] {
            let (took, found) =
                pmtu::wait_done(&lab, side, SMALL, Duration::from_secs(10)).unwrap_or_else(|| {
                    panic!("{side:?}: link 2's search did not end: {:?}", pmtu::path_of(&lab, side, SMALL))
                });
            assert!((1396..=u64::from(HOP_MTU)).contains(&found), "{side:?}: path MTU {found}");
            let full = u64::from(lab::DEFAULT_MTU + pmtu::PATH_OVERHEAD);
            for other in [0, 1] {
                assert_eq!(pmtu::path_of(&lab, side, other).0, full, "{side:?}: link {other}");
            }
            let device = pmtu::device_mtu(&lab, side);
            assert_eq!(u64::from(device), found - u64::from(pmtu::PATH_OVERHEAD), "{side:?}: TUN MTU");
            notes.push(format!(
                "{side:?}: path MTU {found} found ({took:.1?} after the check began), TUN {device}"
            ));
        }
        let limit = pmtu::limit_mbit(pmtu::tunnel_mtu_for(HOP_MTU));
        let mut ok = true;
        for (k, from) in [Side::Client, Side::Server].into_iter().enumerate() {
            let t = traffic::transfer(
                &lab,
                from,
                from.other().tun_ip(),
                5301 + k as u16,
                60_000_000,
                12 + k as u64,
                Duration::from_secs(60),
            );
            assert_eq!(
                (t.bytes_received, &t.sha_received),
                (t.bytes_sent, &t.sha_sent),
                "{from:?}: bytes differ"
            );
            let mbit = t.mbit_per_sec();
            ok &= mbit >= 0.6 * limit;
            notes.push(format!(
                "{from:?} -> 60 MB byte-identical at {mbit:.1} Mbit/s of {limit:.1} (floor 60%)"
            ));
        }
        let carried: Vec<u64> = (0..3)
            .map(|i| lab.emu_show().iter().filter(|p| p.link == i).map(|p| p.get("tx_bytes")).sum())
            .collect();
        let share = carried[SMALL] as f64 / carried.iter().sum::<u64>().max(1) as f64;
        ok &= share >= 0.2;
        notes.push(format!("link 2 carried {:.0}% of the bytes (floor 20%)", share * 100.0));
        if !ok && attempt == 2 {
            println!("client status:\n{}", lab.status(Side::Client, false));
        }
        (ok, notes.join("; "))
    });
}

/// The hop shrinks to 1400 bytes 4 s into a cubic upload: the client sees the black hole, finds
/// the new size, and the flow spends at most 4 s below half its rate before the drop (the
/// issue's target, 3 s, is the bench's). Best of two.
#[test]
fn a_hop_that_shrinks_under_a_flow_is_noticed_and_costs_it_little() {
    let Some(_turn) = lab::daemon_scenario("a_hop_that_shrinks_under_a_flow_is_noticed_and_costs_it_little")
    else {
        return;
    };
    const DROP: f64 = 4.0;
    emulated::best_of(2, |attempt| {
        let lab = pmtu::start_lab(None, Bottleneck::Tbf, None, &TunnelOpts::default());
        let mut plan = FlowPlan::new(12.0);
        plan.cc = Some("cubic".into());
        plan.spawns = pmtu::hop_mtu_at(&lab, DROP, SMALL, HOP_MTU);
        let r = emulated::run_flow(&lab, &plan);
        let healthy = r.iperf.mean_bps_between(2.0, DROP);
        let below = r.iperf.secs_below(healthy / 2.0, DROP);
        let (mtu, state, holes) = pmtu::path_of(&lab, Side::Client, SMALL);
        let line = format!(
            "healthy {:.1} Mbit/s, {below:.1} s below half of it after the drop (floor 4 s); link 2 {state} at \
             {mtu} after {holes} black hole(s); TUN {}; Mbit/s per 0.1 s: {}",
            healthy / 1e6,
            pmtu::device_mtu(&lab, Side::Client),
            r.iperf.sparkline(),
        );
        let ok = below <= 4.0 && holes >= 1 && state == "done" && (1396..=u64::from(HOP_MTU)).contains(&mtu);
        if !ok && attempt == 2 {
            println!("client status:\n{}", lab.status(Side::Client, false));
        }
        (ok, line)
    });
}
