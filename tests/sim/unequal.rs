//! Links that differ: the arrival scheduler, capacity estimation, adaptive reordering and loss
//! recovery (issue 4). Sources here are constant-rate and push more than the links carry, the
//! harshest case for queues; TCP through real kernels is measured in the netns benchmark.

use crate::SEEDS;
use crate::harness::{LinkSpec, Side, Sim, mbps, ms, percentile};
use mlvpn::proto::Duration;

/// Goodput the links can give 1200-byte packets: each carries 33 bytes of mlvpn besides.
fn ceiling(mbit: f64) -> f64 {
    mbit * 1200.0 / 1233.0
}

struct Run {
    goodput: f64,
    in_order: bool,
    estimates: Vec<f64>,
    max_queue_ms: Vec<f64>,
    /// Packets the links' own queues dropped for being full: the scheduler overfilled them.
    tail_drops: u64,
    congested: u64,
}

/// Client pushes `offered` Mbit/s of 1200-byte packets for `secs`; measures the last `measure`.
fn saturate(seed: u64, specs: &[LinkSpec], offered: f64, secs: u64, measure: u64) -> (Sim, Run) {
    let mut sim = Sim::new(seed, specs, 1024);
    sim.run_until_all_up(ms(3000));
    let t0 = sim.now;
    let end = t0 + Duration::from_secs(secs);
    sim.add_source(Side::Client, offered, 1200, t0, end);
    let from = end - Duration::from_secs(measure);
    sim.run_until(from);
    for l in &mut sim.links {
        l.up.stats = Default::default();
    }
    sim.run_until(end + Duration::from_millis(500));
    let d = &sim.server_log.deliveries;
    let run = Run {
        goodput: mbps(sim.server_log.bytes_sent_between(from, end), measure as f64),
        in_order: d.windows(2).all(|w| w[0].seq < w[1].seq),
        estimates: sim.client.links().iter().map(|l| l.capacity.estimate() as f64 * 8.0 / 1e6).collect(),
        max_queue_ms: sim.links.iter().map(|l| l.up.stats.max_queue.as_micros() as f64 / 1e3).collect(),
        tail_drops: sim.links.iter().map(|l| l.up.stats.dropped_queue).sum(),
        congested: sim.client.drops().congested,
    };
    (sim, run)
}

fn print(name: &str, seed: u64, r: &Run, limit: f64) {
    println!(
        "{name} seed={seed:#x}: {:.1} of {:.1} Mbit/s ({:.1}%), estimates {:?} Mbit/s, longest queue per link {:?} ms, \
         {} tail drops in the links, {} refused as congestion, in order: {}",
        r.goodput,
        limit,
        r.goodput / limit * 100.0,
        r.estimates.iter().map(|e| (e * 10.0).round() / 10.0).collect::<Vec<_>>(),
        r.max_queue_ms.iter().map(|e| (e * 10.0).round() / 10.0).collect::<Vec<_>>(),
        r.tail_drops,
        r.congested,
        r.in_order
    );
}

#[test]
fn arrival_fills_links_of_unequal_speed_and_delay() {
    for seed in SEEDS {
        let specs =
            [LinkSpec::new("fibre", 40.0, 5), LinkSpec::new("dsl", 25.0, 20), LinkSpec::new("lte", 15.0, 40)];
        let (_, r) = saturate(seed, &specs, 90.0, 8, 5);
        let limit = ceiling(80.0);
        print("unequal 40/25/15 at 5/20/40 ms", seed, &r, limit);
        assert!(r.goodput >= 0.9 * limit, "{:.1}", r.goodput);
        assert!(r.in_order);
        for (e, truth) in r.estimates.iter().zip([40.0, 25.0, 15.0]) {
            assert!((e / truth - 1.0).abs() < 0.2, "estimate {e:.1} for {truth}");
        }
        // The links' queues (50 ms each) never overflowed: the tunnel kept them short itself.
        assert_eq!(r.tail_drops, 0);
    }
}

#[test]
fn arrival_uses_a_slow_link_only_as_far_as_it_pays() {
    for seed in SEEDS {
        let specs = [LinkSpec::new("near", 50.0, 5), LinkSpec::new("far", 50.0, 60)];
        let (sim, r) = saturate(seed, &specs, 110.0, 8, 5);
        let limit = ceiling(100.0);
        print("two links 50/50 at 5/60 ms", seed, &r, limit);
        assert!(r.goodput >= 0.9 * limit, "{:.1}", r.goodput);
        assert!(r.in_order);
        assert_eq!(r.tail_drops, 0);
        let stats = sim.server.reorder_stats().unwrap();
        assert_eq!(stats.overdue_max_us, 0);
    }
}

#[test]
fn capacity_is_learnt_without_any_configured_bandwidth() {
    for seed in SEEDS {
        let specs =
            [LinkSpec::new("a", 50.0, 10), LinkSpec::new("b", 30.0, 10), LinkSpec::new("c", 20.0, 10)];
        let (_, r) = saturate(seed, &specs, 110.0, 8, 5);
        let limit = ceiling(100.0);
        print("50/30/20 equal delay, no bandwidth set", seed, &r, limit);
        assert!(r.goodput >= 0.95 * limit, "{:.1}", r.goodput);
        for (e, truth) in r.estimates.iter().zip([50.0, 30.0, 20.0]) {
            assert!((e / truth - 1.0).abs() < 0.15, "estimate {e:.1} for {truth}");
        }
    }
}

#[test]
fn capacity_drop_is_followed_within_seconds() {
    for seed in SEEDS {
        let specs = [LinkSpec::new("lte", 40.0, 15), LinkSpec::new("dsl", 20.0, 15)];
        let mut sim = Sim::new(seed, &specs, 1024);
        sim.run_until_all_up(ms(3000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 70.0, 1200, t0, t0 + Duration::from_secs(14));
        sim.run_until(t0 + Duration::from_secs(6));
        let before =
            mbps(sim.server_log.bytes_between(t0 + Duration::from_secs(4), t0 + Duration::from_secs(6)), 2.0);
        // The 4G cell gets crowded: 40 → 10 Mbit/s.
        let cut = sim.now;
        sim.links[0].up.config.rate_bps = Some(10_000_000);
        sim.links[0].up.config.queue_bytes = 10_000_000 / 8 / 20;
        let mut converged = None;
        while sim.now < cut + Duration::from_secs(6) {
            let t = sim.now + Duration::from_millis(100);
            sim.run_until(t);
            let rate = mbps(sim.server_log.bytes_between(t - Duration::from_millis(500), t), 0.5);
            let estimate = sim.client.links()[0].capacity.estimate() as f64 * 8.0 / 1e6;
            let settled = (estimate / 10.0 - 1.0).abs() < 0.25 && rate >= 0.85 * ceiling(30.0);
            match (settled, converged) {
                (true, None) => converged = Some(t - cut),
                (false, Some(_)) => converged = None,
                _ => {}
            }
        }
        let after = mbps(
            sim.server_log.bytes_between(cut + Duration::from_secs(4), cut + Duration::from_secs(6)),
            2.0,
        );
        println!(
            "capacity drop seed={seed:#x}: {before:.1} Mbit/s before, {after:.1} after (of {:.1}); settled {converged:?} after the drop",
            ceiling(30.0)
        );
        assert!(converged.is_some_and(|c| c <= Duration::from_secs(3)), "{converged:?}");
        assert!(after >= 0.9 * ceiling(30.0));
    }
}

#[test]
fn latency_under_load_stays_near_the_idle_delay() {
    for seed in SEEDS {
        let specs = [LinkSpec::new("a", 40.0, 5), LinkSpec::new("b", 25.0, 20), LinkSpec::new("c", 15.0, 40)];
        let mut sim = Sim::new(seed, &specs, 1024);
        sim.run_until_all_up(ms(3000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 100.0, 1200, t0, t0 + Duration::from_secs(8));
        // "ping": 64-byte packets, 20 a second, sharing the tunnel; the server echoes them.
        sim.echo_len = Some(64);
        sim.add_source(Side::Client, 64.0 * 8.0 * 20.0 / 1e6, 64, t0, t0 + Duration::from_secs(8));
        sim.run_until(t0 + Duration::from_secs(9));
        let from = t0 + Duration::from_secs(3);
        let mut rtts: Vec<u64> = sim
            .client_log
            .deliveries
            .iter()
            .filter(|d| d.len == 64 && d.sent >= from)
            .map(|d| (d.at - d.sent).as_micros())
            .collect();
        let p50 = percentile(&mut rtts, 50.0) as f64 / 1e3;
        let p99 = percentile(&mut rtts, 99.0) as f64 / 1e3;
        let max = percentile(&mut rtts, 100.0) as f64 / 1e3;
        println!(
            "ping under load seed={seed:#x}: {} replies, rtt p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms \
             (slowest link's idle rtt 80 ms)",
            rtts.len()
        );
        assert!(rtts.len() >= 99, "small packets are never refused for congestion");
        assert!(max <= 80.0 + 30.0, "{max} ms");
    }
}

#[test]
fn loss_on_one_link_is_recovered() {
    for (seed, loss) in [(SEEDS[0], 0.01), (SEEDS[1], 0.05), (SEEDS[2], 0.05)] {
        let mut lossy = LinkSpec::new("lte", 30.0, 20);
        lossy.up.loss = loss;
        let specs = [LinkSpec::new("dsl", 30.0, 10), lossy];
        let mut sim = Sim::new(seed, &specs, 1024);
        sim.run_until_all_up(ms(3000));
        let t0 = sim.now + Duration::from_secs(1);
        let end = t0 + Duration::from_secs(6);
        sim.add_source(Side::Client, 45.0, 1200, sim.now, end);
        sim.run_until(end + Duration::from_secs(1));
        // Packets sent in the window (the source sends at a constant rate).
        let sent = (6.0 * 45e6 / 8.0 / 1200.0) as usize;
        let lost_on_link = sim.links[1].up.stats.dropped_loss;
        // Everything the links lost: the random loss, and any queue overflow.
        let lost: u64 = sim.links.iter().map(|l| l.up.stats.dropped_loss + l.up.stats.dropped_queue).sum();
        let delivered = sim.server_log.deliveries.iter().filter(|d| d.sent >= t0 && d.sent < end).count();
        let resent: u64 = sim.client.links().iter().map(|l| l.stats.retransmits).sum();
        let rate = mbps(sim.server_log.bytes_sent_between(t0, end), 6.0);
        let holes = sim.server.reorder_stats().unwrap().skipped;
        let congested = sim.client.drops().congested;
        println!(
            "loss {:.0}% on one link seed={seed:#x}: {lost_on_link} packets lost on the link ({lost} in all), \
             {resent} resent, {holes} never recovered; {delivered} of {sent} delivered ({congested} refused as congestion while the \
             lossy link's capacity was re-learnt), {rate:.1} Mbit/s of 45 offered",
            loss * 100.0
        );
        assert!(holes * 10 <= lost, "at least 90% of the losses are recovered");
        assert!(delivered as f64 >= 0.99 * sent as f64, "{delivered} of {sent}");
    }
}
