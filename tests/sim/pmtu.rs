//! Issue 12: paths that swallow large packets. Each link's path MTU is found by probing
//! (`src/proto/pmtu.rs`), a path that shrinks mid-flow is noticed and searched again, one that
//! grows back is found by the periodic raise, and the tunnel's MTU follows the smallest path so
//! that TCP (`tcp.rs`, whose segments follow the tunnel's MTU as a kernel's follow the route's)
//! fills every link.

use crate::SEEDS;
use crate::harness::{LinkSpec, Side, Sim, mbps, ms};
use crate::net::IP_UDP_HEADERS;
use mlvpn::proto::pmtu::{PmtuState, RAISE_INTERVAL};
use mlvpn::proto::tunnel::TUNNEL_MTU_RAISE_HOLD;
use mlvpn::proto::wire::DATA_OVERHEAD;
use mlvpn::proto::{Duration, Event, Instant};

/// Issue 12's bond: 3 × 40 Mbit/s at 20/30/40 ms one way.
/// With 2 ms of jitter each way, so that the seeds differ.
fn bond() -> [LinkSpec; 3] {
    [LinkSpec::new("a", 40.0, 20), LinkSpec::new("b", 40.0, 30), LinkSpec::new("c", 40.0, 40)].map(|mut l| {
        l.up.jitter = Duration::from_millis(2);
        l.down.jitter = Duration::from_millis(2);
        l
    })
}

fn set_mtu(sim: &mut Sim, link: usize, mtu: Option<usize>) {
    sim.links[link].up.config.mtu = mtu;
    sim.links[link].down.config.mtu = mtu;
}

/// The path MTU the tunnel's configured MTU needs.
fn full_path(sim: &Sim) -> usize {
    sim.client_config.mtu + DATA_OVERHEAD + IP_UDP_HEADERS
}

/// The tunnel MTU a path MTU allows.
fn inner(path_mtu: usize) -> usize {
    path_mtu - IP_UDP_HEADERS - DATA_OVERHEAD
}

/// When `side` reported link `link` in `state`, and at what path MTU.
fn path_events(sim: &Sim, side: Side, link: usize) -> Vec<(Instant, usize, PmtuState)> {
    let log = if side == Side::Client { &sim.client_log } else { &sim.server_log };
    log.events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::PathMtu { link: l, mtu, state } if *l == link => Some((*t, *mtu, *state)),
            _ => None,
        })
        .collect()
}

fn tunnel_mtus(sim: &Sim) -> Vec<(Instant, usize)> {
    sim.client_log
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::TunnelMtu { mtu } => Some((*t, *mtu)),
            _ => None,
        })
        .collect()
}

/// TCP data delivered to the server in `[from, to)`, Mbit/s (segments of whatever size the
/// tunnel's MTU allowed).
fn tcp_rate(sim: &Sim, from: Instant, to: Instant) -> f64 {
    let bytes: u64 = sim
        .server_log
        .deliveries
        .iter()
        .filter(|d| d.at >= from && d.at < to && d.len > crate::tcp::ACK_LEN)
        .map(|d| d.len as u64)
        .sum();
    mbps(bytes, (to - from).as_secs_f64())
}

/// The limit of the bond for TCP through a tunnel of `tunnel_mtu`: 120 Mbit/s of datagrams,
/// each carrying `DATA_OVERHEAD` bytes besides the packet.
fn limit(tunnel_mtu: usize) -> f64 {
    120.0 * tunnel_mtu as f64 / (tunnel_mtu + DATA_OVERHEAD) as f64
}

/// A link behind a 1400-byte hop from the start: found within 2 s at 1400 (to the
/// search's granularity) on both sides, the tunnel's MTU follows it, and TCP fills all three
/// links rather than two.
///
/// Against the other candidate policy of the issue, keeping the tunnel's MTU and sending only
/// the packets that fit on the small link (measured here by TCP segments that ignore the lowered
/// MTU): the lowered MTU must win clearly, or it would not be worth its cost (flows' MSS shrinks
/// by 4 %).
#[test]
fn a_link_with_a_smaller_path_mtu_from_the_start() {
    for seed in SEEDS {
        let run = |follow: bool| {
            let mut sim = Sim::new(seed, &bond(), 1024);
            sim.tcp_follows_tunnel_mtu = follow;
            set_mtu(&mut sim, 2, Some(1400));
            sim.run_until_all_up(ms(3000));
            let up = sim.now;
            sim.add_tcp(up, up + Duration::from_secs(8));
            sim.run_until(up + Duration::from_secs(8));
            let rate = tcp_rate(&sim, up + Duration::from_secs(4), up + Duration::from_secs(8));
            (sim, rate)
        };
        let (sim, rate) = run(true);
        // The other policy once (it is the same for every seed: no loss, no jitter to speak of).
        let keep_mtu = if seed == SEEDS[0] { Some(run(false).1) } else { None };
        for side in [Side::Client, Side::Server] {
            let events = path_events(&sim, side, 2);
            let done = events.iter().find(|e| e.2 == PmtuState::Done).copied();
            println!("seed {seed:#x} {side:?}: link 2 path MTU events {events:?}");
            let (at, mtu, _) = done.expect("the search ends");
            assert!((1396..=1400).contains(&mtu), "{mtu}");
            // From the link's first event, when it came up.
            assert!(at - events[0].0 < Duration::from_secs(2), "found after {:?}", at - events[0].0);
            let full = full_path(&sim);
            for other in [0, 1] {
                let e = path_events(&sim, side, other);
                assert!(e.iter().all(|&(_, m, _)| m == full), "{e:?}");
                assert_eq!(e.last().map(|e| e.2), Some(PmtuState::Done), "{e:?}");
            }
        }
        let mtus = tunnel_mtus(&sim);
        let expected = inner(1400);
        assert!(
            mtus.first().is_some_and(|&(_, m)| (expected - 4..=expected).contains(&m)),
            "tunnel MTU events {mtus:?}"
        );
        let carried: Vec<u64> = sim.links.iter().map(|l| l.up.stats.bytes).collect();
        let lost_to_mtu = sim.links[2].up.stats.dropped_mtu;
        println!(
            "seed {seed:#x}: TCP {rate:.1} Mbit/s of {:.1} with the tunnel MTU lowered ({keep_mtu:.1?} keeping it and \
             only fitting packets on link 2); bytes per link {carried:?}; {lost_to_mtu} datagrams too big for link 2",
            limit(expected)
        );
        assert!(rate >= 0.85 * limit(expected), "{rate:.1} Mbit/s");
        if let Some(keep_mtu) = keep_mtu {
            assert!(rate >= 1.2 * keep_mtu, "lowering the MTU pays: {rate:.1} against {keep_mtu:.1}");
        }
        let total: u64 = carried.iter().sum();
        assert!(carried[2] * 5 >= total, "link 2 carries its share: {carried:?}");
    }
}

/// Link 2's path drops to 1400 mid-flow and later grows back: the black hole is seen within
/// 2 s, large packets leave the link at once, the search finds 1400, the flow is below half
/// rate for at most 3 s; after the path grows back, the raise timer finds it and the tunnel's
/// MTU goes back up once it has been stable.
#[test]
fn a_path_mtu_drop_mid_flow_is_noticed_and_its_rise_found_again() {
    for seed in SEEDS {
        let mut sim = Sim::new(seed, &bond(), 1024);
        sim.run_until_all_up(ms(3000));
        let up = sim.now;
        let drop_at = up + Duration::from_secs(5);
        sim.add_tcp(up, up + Duration::from_secs(14));
        sim.run_until(drop_at);
        set_mtu(&mut sim, 2, Some(1400));
        sim.run_until(drop_at + Duration::from_secs(2));
        let sent_on_2 = |sim: &Sim| sim.client.links()[2].stats.tx_data_packets;
        let before = sent_on_2(&sim);
        sim.run_until(drop_at + Duration::from_secs(3));
        let carried_after = sent_on_2(&sim) - before;
        sim.run_until(up + Duration::from_secs(14));
        let events = path_events(&sim, Side::Client, 2);
        println!("seed {seed:#x}: link 2 path MTU events {events:?}");
        let hole =
            events.iter().find(|e| e.0 >= drop_at && e.2 == PmtuState::BlackHole).expect("a black hole");
        assert!(hole.0 - drop_at <= Duration::from_secs(2), "seen after {:?}", hole.0 - drop_at);
        let found = events.iter().find(|e| e.0 > hole.0 && e.2 == PmtuState::Done).expect("searched again");
        assert!((1396..=1400).contains(&found.1), "{found:?}");
        let lowered = tunnel_mtus(&sim).into_iter().find(|e| e.0 >= drop_at).expect("the tunnel MTU follows");
        assert!(lowered.1 <= inner(1400) && lowered.0 - drop_at <= Duration::from_secs(1), "{lowered:?}");
        // Half-second windows of the flow from 2 s before the drop.
        let windows: Vec<f64> = (0..18)
            .map(|k| {
                let from = drop_at - Duration::from_secs(2) + Duration::from_millis(500 * k);
                tcp_rate(&sim, from, from + Duration::from_millis(500))
            })
            .collect();
        let below_half = windows.iter().filter(|&&r| r < 0.5 * limit(inner(1400))).count() as f64 / 2.0;
        let tail = tcp_rate(&sim, drop_at + Duration::from_secs(3), drop_at + Duration::from_secs(7));
        let stats = sim.tcp.as_ref().unwrap().sender.stats;
        println!(
            "seed {seed:#x}: black hole {:?} after the drop, tunnel MTU {} after {:?}; TCP per 0.5 s around it \
             {windows:.0?}: {below_half} s below half rate, {tail:.1} Mbit/s from 3 to 7 s after; {} window \
             reductions, {} holes given up, {} refused as congestion",
            hole.0 - drop_at,
            lowered.1,
            lowered.0 - drop_at,
            stats.reductions,
            sim.server.reorder_stats().unwrap().skipped,
            sim.client.drops().congested,
        );
        assert!(below_half <= 3.0, "{below_half} s below half rate");
        assert!(tail >= 0.6 * limit(inner(1400)), "{tail:.1} Mbit/s");
        assert!(carried_after > 1000, "link 2 carries data at the new size: {carried_after} packets in 1 s");

        // The path grows back; only the raise timer can tell.
        let grow_at = sim.now;
        set_mtu(&mut sim, 2, None);
        let end = found.0 + RAISE_INTERVAL + TUNNEL_MTU_RAISE_HOLD + Duration::from_secs(10);
        sim.run_until(end);
        let after: Vec<_> =
            path_events(&sim, Side::Client, 2).into_iter().filter(|e| e.0 > grow_at).collect();
        println!("seed {seed:#x}: after the path grew back: {after:?}, tunnel MTU {:?}", tunnel_mtus(&sim));
        let full = full_path(&sim);
        let raised = after.iter().find(|e| e.1 == full && e.2 == PmtuState::Done).expect("found again");
        assert!(raised.0 >= found.0 + RAISE_INTERVAL - Duration::from_secs(1), "not before the raise timer");
        let back = tunnel_mtus(&sim).last().copied().unwrap();
        assert_eq!(back.1, sim.client_config.mtu, "the tunnel MTU is back");
        assert!(back.0 >= raised.0 + TUNNEL_MTU_RAISE_HOLD, "after a stable period: {back:?} {raised:?}");
    }
}

/// A 600 ms round trip (a satellite or a bad LTE link) behind a 1400-byte hop: its search
/// converges too, as the probe timer follows the link's RTT.
#[test]
fn a_600_ms_round_trip_link_converges() {
    for seed in SEEDS {
        let mut sat = LinkSpec::new("sat", 20.0, 300);
        // Its delay is what it is: not "slow" next to the other.
        sat.config.latency_tolerance = Duration::from_secs(2);
        let specs = [sat, LinkSpec::new("dsl", 20.0, 20)];
        let mut sim = Sim::new(seed, &specs, 1024);
        set_mtu(&mut sim, 0, Some(1400));
        sim.run_until_all_up(ms(5_000));
        let up = sim.now;
        sim.add_source(Side::Client, 2.0, 1000, up, up + Duration::from_secs(15));
        sim.run_until(up + Duration::from_secs(15));
        let events = path_events(&sim, Side::Client, 0);
        println!("seed {seed:#x}: 600 ms link path MTU events {events:?}");
        let (at, mtu, _) = *events.iter().find(|e| e.2 == PmtuState::Done).expect("converges");
        assert!((1396..=1400).contains(&mtu), "{mtu}");
        assert!(at < up + Duration::from_secs(10), "after {:?}", at - up);
    }
}

/// A path that carries not even 1280 bytes inside the tunnel is marked unusable (carrying no
/// data) instead of losing every large packet, and the tunnel's MTU does not follow it down.
#[test]
fn a_path_below_the_ipv6_minimum_is_unusable_not_the_tunnel_limit() {
    let seed = SEEDS[0];
    let mut sim = Sim::new(seed, &bond(), 1024);
    set_mtu(&mut sim, 1, Some(1300));
    sim.run_until_all_up(ms(3000));
    let up = sim.now;
    sim.add_source(Side::Client, 30.0, 1400, up, up + Duration::from_secs(6));
    sim.run_until(up + Duration::from_secs(7));
    let events = path_events(&sim, Side::Client, 1);
    println!("link 1 path MTU events {events:?}; tunnel MTU {:?}", tunnel_mtus(&sim));
    assert!(events.iter().any(|e| e.2 == PmtuState::Unusable), "{events:?}");
    assert!(tunnel_mtus(&sim).is_empty(), "the tunnel MTU stays");
    let from = up + Duration::from_secs(2);
    let delivered = mbps(sim.server_log.bytes_sent_between(from, up + Duration::from_secs(6)), 4.0);
    println!("{delivered:.1} Mbit/s delivered of 30 offered once the link is out");
    assert!(delivered >= 29.0, "{delivered:.1}");
}
