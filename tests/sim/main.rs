//! Deterministic network simulation: two engines, N links, a virtual clock.
//!
//! Each scenario is named after the behaviour it proves and prints the figures it measured
//! (`cargo test --test sim -- --nocapture` shows them).

mod calls;
mod harness;
mod net;
mod pmtu;
mod sites;
mod tcp;
mod unequal;

use harness::{LinkSpec, Side, Sim, mbps, ms, percentile};
use mlvpn::proto::{DownReason, Duration, Event, Instant, LinkState, SchedulerKind};

/// Seeds every scenario runs with: a behaviour must hold for each, not for a lucky one.
pub(crate) const SEEDS: [u64; 3] = [1, 0xfeed, 0x5eed_1234];

fn data_share(sim: &Sim, side: Side) -> Vec<f64> {
    let links = match side {
        Side::Client => sim.client.links(),
        Side::Server => sim.server.links(),
    };
    let total: u64 = links.iter().map(|l| l.stats.tx_data_packets).sum();
    links.iter().map(|l| l.stats.tx_data_packets as f64 / total.max(1) as f64).collect()
}

#[test]
fn bonding_splits_by_weight_and_fills_the_links() {
    for seed in SEEDS {
        let specs = [
            LinkSpec::new("dsl", 50.0, 10).weight_from_rate(),
            LinkSpec::new("lte", 30.0, 10).weight_from_rate(),
            LinkSpec::new("fibre", 20.0, 10).weight_from_rate(),
        ];
        let mut sim = Sim::with_scheduler(seed, &specs, 256, SchedulerKind::Wrr);
        sim.run_until_all_up(ms(2000));
        let start = sim.now + Duration::from_millis(100);
        let stop = start + Duration::from_secs(3);
        // 10% more than the links can carry: every link saturates.
        sim.add_source(Side::Client, 110.0, 1400, start, stop);
        sim.run_until(stop + Duration::from_millis(500));

        let shares = data_share(&sim, Side::Client);
        let measure_from = start + Duration::from_millis(500);
        let measure_to = stop;
        let secs = (measure_to - measure_from).as_secs_f64();
        let goodput = mbps(sim.server_log.bytes_sent_between(measure_from, measure_to), secs);
        println!(
            "bonding seed={seed:#x}: packet shares {:.1}/{:.1}/{:.1}%, delivered {goodput:.1} Mbit/s of 100 ({:.1}%)",
            shares[0] * 100.0,
            shares[1] * 100.0,
            shares[2] * 100.0,
            goodput
        );
        for (got, want) in shares.iter().zip([0.5, 0.3, 0.2]) {
            assert!((got - want).abs() <= 0.02, "shares {shares:?}");
        }
        assert!(goodput >= 95.0, "delivered {goodput:.1} Mbit/s");
    }
}

/// Time from `since` to the first entry of `link` into `state` after it.
fn first_after(log: &harness::Log, link: usize, state: LinkState, since: Instant) -> Option<Duration> {
    log.entered(link, state).into_iter().find(|&t| t >= since).map(|t| t - since)
}

#[test]
fn failover_when_link_blackholes_and_back_when_it_recovers() {
    for seed in SEEDS {
        let mut specs = [
            LinkSpec::new("a", 20.0, 15).weight_from_rate(),
            LinkSpec::new("b", 20.0, 25).weight_from_rate(),
            LinkSpec::new("c", 20.0, 20).weight_from_rate(),
        ];
        for s in &mut specs {
            s.up.jitter = Duration::from_millis(3);
            s.down.jitter = Duration::from_millis(3);
        }
        let mut sim = Sim::new(seed, &specs, 256);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        // Both sides need every link (the arrival scheduler leaves a link idle when the faster
        // ones suffice, and an idle link's failure is found by its timeout instead).
        sim.add_source(Side::Client, 45.0, 1200, t0, t0 + Duration::from_secs(8));
        sim.add_source(Side::Server, 45.0, 1200, t0, t0 + Duration::from_secs(8));
        let cut = t0 + Duration::from_secs(2);
        sim.run_until(cut);
        sim.links[1].blackhole(true);
        sim.run_until(cut + Duration::from_millis(500));
        let carried_at_detection = sim.client.links()[1].stats.tx_data_packets;
        let heal = cut + Duration::from_secs(3);
        sim.run_until(heal);
        let carried_while_down = sim.client.links()[1].stats.tx_data_packets;
        sim.links[1].blackhole(false);
        sim.run_until(heal + Duration::from_secs(3));

        let client_down =
            first_after(&sim.client_log, 1, LinkState::Down, cut).expect("client never saw it down");
        let server_down =
            first_after(&sim.server_log, 1, LinkState::Down, cut).expect("server never saw it down");
        let client_back =
            first_after(&sim.client_log, 1, LinkState::Up, heal).expect("never came back (client)");
        let server_back =
            first_after(&sim.server_log, 1, LinkState::Up, heal).expect("never came back (server)");
        let reason = sim.client_log.events.iter().find_map(|(t, e)| match e {
            Event::Link { link: 1, to: LinkState::Down, reason, .. } if *t >= cut => *reason,
            _ => None,
        });
        let sent_after_recovery = sim.client.links()[1].stats.tx_data_packets - carried_while_down;
        let delivered_late_phase = sim.server_log.bytes_between(cut + Duration::from_secs(1), heal);
        println!(
            "failover seed={seed:#x}: down after {client_down:?} (client) {server_down:?} (server), \
             back {client_back:?} (client) {server_back:?} (server) after recovery; \
             {:.1} Mbit/s delivered while down (2 links of 20 left)",
            mbps(delivered_late_phase, 2.0)
        );
        assert!(client_down <= Duration::from_millis(500), "client detection {client_down:?}");
        assert!(server_down <= Duration::from_millis(500), "server detection {server_down:?}");
        assert_eq!(reason, Some(DownReason::Unanswered));
        assert!(client_back <= Duration::from_secs(2) && server_back <= Duration::from_secs(2));
        assert_eq!(carried_while_down, carried_at_detection, "a dead link carries nothing");
        assert!(sent_after_recovery > 0, "the link carries data again after recovery");
        assert!(mbps(delivered_late_phase, 2.0) > 37.0, "the other links carry what they can");
        // No other link was disturbed.
        for l in [0, 2] {
            assert!(sim.client_log.entered(l, LinkState::Down).is_empty(), "link {l} went down");
        }
    }
}

#[test]
fn failover_never_declares_a_jittery_link_dead() {
    for seed in SEEDS {
        let mut jittery = LinkSpec::new("sat", 20.0, 120);
        jittery.up.jitter = Duration::from_millis(100);
        jittery.down.jitter = Duration::from_millis(100);
        let specs = [LinkSpec::new("a", 20.0, 20), jittery];
        let mut sim = Sim::new(seed, &specs, 256);
        sim.run_until_all_up(ms(3000));
        let t0 = sim.now;
        // Busy, then idle, then busy: both liveness mechanisms are exercised.
        sim.add_source(Side::Client, 25.0, 1200, t0, t0 + Duration::from_secs(10));
        sim.add_source(Side::Server, 5.0, 1200, t0, t0 + Duration::from_secs(10));
        sim.add_source(Side::Client, 1.0, 200, t0 + Duration::from_secs(15), t0 + Duration::from_secs(25));
        sim.run_until(t0 + Duration::from_secs(25));
        let l = &sim.client.links()[1];
        println!(
            "jitter seed={seed:#x}: srtt {:?} rttvar {:?}, dead timeout {:?}, {} probes, downs: client {} server {}",
            l.rtt.srtt().unwrap(),
            l.rtt.rttvar(),
            l.dead_after(),
            l.stats.probes,
            sim.client_log.entered(1, LinkState::Down).len(),
            sim.server_log.entered(1, LinkState::Down).len()
        );
        assert!(sim.client_log.entered(1, LinkState::Down).is_empty());
        assert!(sim.server_log.entered(1, LinkState::Down).is_empty());
        assert!(
            l.stats.tx_data_packets > 1000,
            "the jittery link carried data: {} packets, estimate {}",
            l.stats.tx_data_packets,
            l.capacity.estimate()
        );
    }
}

#[test]
fn fallback_only_link_carries_nothing_until_the_others_are_down() {
    for seed in SEEDS {
        let mut backup = LinkSpec::new("lte-backup", 20.0, 30);
        backup.config.fallback_only = true;
        let specs = [LinkSpec::new("dsl", 20.0, 10), LinkSpec::new("cable", 20.0, 12), backup];
        let mut sim = Sim::new(seed, &specs, 256);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 10.0, 1000, t0, t0 + Duration::from_secs(9));
        sim.add_source(Side::Server, 10.0, 1000, t0, t0 + Duration::from_secs(9));
        sim.run_until(t0 + Duration::from_secs(3));
        let idle = (sim.client.links()[2].stats.tx_data_packets, sim.server.links()[2].stats.tx_data_packets);

        sim.links[0].blackhole(true);
        sim.links[1].blackhole(true);
        let cut = sim.now;
        sim.run_until(cut + Duration::from_millis(600));
        let before =
            (sim.client.links()[2].stats.tx_data_packets, sim.client.links()[0].stats.tx_data_packets);
        let delivered_from = sim.now;
        sim.run_until(cut + Duration::from_secs(3));
        let after =
            (sim.client.links()[2].stats.tx_data_packets, sim.client.links()[0].stats.tx_data_packets);
        let delivered = mbps(
            sim.server_log.bytes_between(delivered_from, sim.now),
            (sim.now - delivered_from).as_secs_f64(),
        );

        sim.links[0].blackhole(false);
        sim.links[1].blackhole(false);
        let heal = sim.now;
        sim.run_until(heal + Duration::from_secs(2));
        let quiet_from = sim.client.links()[2].stats.tx_data_packets;
        sim.run_until(heal + Duration::from_secs(3));
        let quiet_to = sim.client.links()[2].stats.tx_data_packets;
        println!(
            "fallback_only seed={seed:#x}: backup carried {}/{} packets while others up, {} while they were down \
             ({delivered:.1} Mbit/s delivered), {} after they returned",
            idle.0,
            idle.1,
            after.0 - before.0,
            quiet_to - quiet_from
        );
        assert_eq!(idle, (0, 0), "fallback link idle while normal links are up");
        assert!(after.0 - before.0 > 2000, "fallback link carries the traffic");
        assert_eq!(after.1, before.1, "dead links carry nothing");
        assert!(delivered > 9.5, "traffic flows over the fallback link");
        assert_eq!(quiet_to, quiet_from, "fallback link idle again");
    }
}

#[test]
fn reorder_delivers_in_order_across_unequal_delays() {
    // Loss-free; then 1% loss on the slow link without loss recovery (holes are skipped at the
    // timeout) and with it (holes are filled by resent packets).
    let runs = [(SEEDS[0], 0.0, 256), (SEEDS[1], 0.0, 256), (SEEDS[2], 0.01, 0), (SEEDS[2], 0.01, 256)];
    for (seed, loss, retransmit) in runs {
        let mut slow = LinkSpec::new("slow", 20.0, 60);
        slow.up.loss = loss;
        let specs = [LinkSpec::new("fast", 20.0, 10), slow];
        // Round-robin spreads the packets over both links, which is what this scenario is
        // about: the buffer, not the scheduler.
        let mut sim = Sim::with_options(seed, &specs, 512, SchedulerKind::Wrr, retransmit);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 20.0, 1000, t0, t0 + Duration::from_secs(5));
        sim.run_until(t0 + Duration::from_secs(6));

        let d = &sim.server_log.deliveries;
        let in_order = d.windows(2).all(|w| w[0].seq < w[1].seq);
        let sent = sim.sources[0].seq;
        let mut latency: Vec<u64> = d.iter().map(|d| (d.at - d.sent).as_micros()).collect();
        let p50 = percentile(&mut latency, 50.0);
        let p99 = percentile(&mut latency, 99.0);
        let max = percentile(&mut latency, 100.0);
        let stats = *sim.server.reorder_stats().unwrap();
        let wait = sim.server.reorder_wait().unwrap();
        println!(
            "reorder seed={seed:#x} loss={loss} resend={}: {} of {sent} delivered, in order: {in_order}; latency p50 {:.1} ms \
             p99 {:.1} ms max {:.1} ms; held {} packets, mean wait {:.1} ms, max wait {:.1} ms (timeout {wait:?}), \
             {} holes skipped",
            retransmit > 0,
            d.len(),
            p50 as f64 / 1e3,
            p99 as f64 / 1e3,
            max as f64 / 1e3,
            stats.reordered,
            stats.wait_total_us as f64 / stats.reordered.max(1) as f64 / 1e3,
            stats.wait_max_us as f64 / 1e3,
            stats.skipped
        );
        assert!(in_order, "delivered out of order");
        assert!(stats.reordered > 1000, "the buffer did reorder");
        if loss == 0.0 || retransmit > 0 {
            assert_eq!(d.len() as u64, sent, "nothing lost (on loss-free links, or recovered)");
        } else {
            assert!(stats.skipped > 0, "holes from real losses were skipped");
        }
        // No packet is held past the timeout in force when it was released (the timeout starts
        // conservative, RFC 6298's first RTTVAR is RTT/2, and converges to the links' spread).
        assert_eq!(stats.overdue_max_us, 0, "held longer than the timeout");
        assert!(wait <= Duration::from_millis(120), "timeout {wait:?} too long for a 50 ms spread");
        if loss == 0.0 {
            assert!(max <= 61_000, "in-order delivery adds nothing beyond the slow link's delay: {max} us");
        }
    }
}

/// A link that now and then delivers a packet 150 ms after the ones behind it (a link-layer
/// retransmission on Wi-Fi or LTE). The receiver sees a gap and asks for the packet, the
/// sender resends it over a link, and then the original arrives too. Whatever the reorder
/// setting — `reorder_buffer_size = 0` included — every packet is delivered exactly once. And
/// without loss recovery, a packet that arrives after the reorder buffer gave up its hole is
/// delivered late rather than lost.
#[test]
fn every_packet_exactly_once_when_a_link_delays_some_of_its_own() {
    // (reorder slots, resend slots)
    for (seed, (reorder, resend)) in SEEDS.into_iter().zip([(0, 1024), (1024, 1024), (1024, 0)]) {
        let mut late = LinkSpec::new("late", 20.0, 10);
        late.up.late = 0.01;
        late.up.late_by = Duration::from_millis(150);
        let specs = [late, LinkSpec::new("steady", 20.0, 20)];
        let mut sim = Sim::with_options(seed, &specs, reorder, SchedulerKind::Wrr, resend);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 20.0, 1000, t0, t0 + Duration::from_secs(5));
        sim.run_until(t0 + Duration::from_secs(6));

        let sent = sim.sources[0].seq;
        let mut seqs: Vec<u64> = sim.server_log.deliveries.iter().map(|d| d.seq).collect();
        let out_of_order = seqs.windows(2).filter(|w| w[1] < w[0]).count();
        let delivered = seqs.len();
        seqs.sort_unstable();
        seqs.dedup();
        let drops = *sim.server.drops();
        let late_stat = sim.server.reorder_stats().map_or(0, |r| r.late);
        println!(
            "exactly once, reorder {reorder}, resend {resend}: {delivered} delivered of {sent} sent, {} distinct, \
             {out_of_order} out of order; copies dropped {}, too old {}; arrived after their hole was skipped {late_stat}; \
",
            seqs.len(),
            drops.duplicate,
            drops.late,
        );
        assert_eq!(seqs.len(), delivered, "a packet was delivered twice");
        assert_eq!(delivered as u64, sent, "every packet arrives once: none is lost on these links");
        assert_eq!(drops.late, 0, "nothing is too old to tell");
        if resend > 0 {
            assert!(drops.duplicate > 0, "the scenario made copies: resent packets whose original came too");
        } else {
            assert!(late_stat > 0 && out_of_order > 0, "holes were given up and filled late");
        }
        if reorder > 0 && resend > 0 {
            assert_eq!(out_of_order, 0, "resent packets fill the holes in time");
        }
    }
}

/// Bit flips, truncations, replays, forgeries and another password, thrown at a running server.
#[test]
fn attacks_are_rejected_counted_and_change_nothing() {
    use mlvpn::proto::Received;
    use mlvpn::proto::wire::{HANDSHAKE_LEN, Header, Kind};
    use std::net::SocketAddr;

    for seed in SEEDS {
        let specs = [LinkSpec::new("a", 20.0, 10), LinkSpec::new("b", 20.0, 20)];
        let mut sim = Sim::new(seed, &specs, 256);
        sim.capture = Some(Vec::new());
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 10.0, 1000, t0, t0 + Duration::from_secs(6));
        sim.add_source(Side::Server, 10.0, 1000, t0, t0 + Duration::from_secs(6));
        sim.run_until(t0 + Duration::from_secs(1));
        let captured: Vec<_> =
            sim.capture.take().unwrap().into_iter().filter(|c| c.side == Side::Client).collect();
        let peers: Vec<_> = sim.server.links().iter().map(|l| l.peer).collect();
        let changes = |log: &harness::Log| {
            log.events
                .iter()
                .filter(|(_, e)| matches!(e, Event::Link { .. } | Event::PeerMoved { .. }))
                .count()
        };
        let events_before = (changes(&sim.client_log), changes(&sim.server_log));
        let drops_before = *sim.server.drops();
        let delivered_before = sim.server_log.deliveries.len();
        let attacker: SocketAddr = "192.0.2.66:6666".parse().unwrap();
        let mut rng = net::Rng::new(seed);
        let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
        let mut tally = |r: &Received| {
            let key = match r {
                Received::Dropped(d) => format!("{d:?}"),
                Received::Reply(_) => "Reply".into(),
                other => panic!("an attack packet was accepted: {other:?}"),
            };
            *outcomes.entry(key).or_default() += 1;
        };
        let mut injected = 0u64;
        let mut hellos = 0u64;
        for c in &captured {
            let kind = Header::parse(&c.bytes).map(|h| h.kind).ok();
            hellos += 2 * u64::from(kind == Some(Kind::Hello));
            // Replayed verbatim, from the real client's address and from elsewhere.
            for from in [c.from, attacker] {
                tally(&sim.attack(Side::Server, c.link, from, &c.bytes));
                injected += 1;
            }
            // A flipped bit anywhere.
            let mut b = c.bytes.clone();
            let bit = rng.next_u64() as usize % (b.len() * 8);
            b[bit / 8] ^= 1 << (bit % 8);
            tally(&sim.attack(Side::Server, c.link, c.from, &b));
            // Truncated.
            let cut = rng.next_u64() as usize % c.bytes.len();
            tally(&sim.attack(Side::Server, c.link, c.from, &c.bytes[..cut]));
            // Re-typed: the kind nibble changed (e.g. a keepalive made a disconnect).
            let mut b = c.bytes.clone();
            b[0] = (b[0] & 0xf0) | (((b[0] & 0x0f) % 6) + 1);
            if b[0] != c.bytes[0] {
                tally(&sim.attack(Side::Server, c.link, c.from, &b));
                injected += 1;
            }
            injected += 2;
            sim.run_until(sim.now + Duration::from_micros(200));
        }
        // Random datagrams of every size.
        for _ in 0..2000 {
            let len = rng.next_u64() as usize % 1500;
            let b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            tally(&sim.attack(Side::Server, 0, attacker, &b));
            injected += 1;
        }
        // A client with another password.
        let dropped_before_corruption = sim.server.drops().received_total() - drops_before.received_total();
        // Bits flipped in flight on fresh packets: 10% of everything the client sends on link 0
        // for a second (a replayed copy with a flipped bit was a replay above; these are new).
        sim.links[0].up.config.corrupt = 0.1;
        let corrupt_from = *sim.server.drops();
        sim.run_until(sim.now + Duration::from_secs(1));
        sim.links[0].up.config.corrupt = 0.0;
        sim.run_until(sim.now + Duration::from_millis(100)); // the last ones land
        let corrupted = sim.links[0].up.stats.corrupted;
        let d = sim.server.drops();
        // A flip in the packet number may also make it look like an old packet: a replay.
        // (Other drops in the meantime — resent copies arriving after their hole was skipped —
        // are not the corrupted packets.)
        let caught = (d.unauthenticated - corrupt_from.unauthenticated)
            + (d.malformed - corrupt_from.malformed)
            + (d.unknown_session - corrupt_from.unknown_session)
            + (d.replayed - corrupt_from.replayed);
        println!("  {corrupted} packets corrupted in flight, {caught} refused");
        assert!(corrupted > 30);
        assert_eq!(caught, corrupted, "each corrupted packet is refused");
        let drops_before = *sim.server.drops();

        let mut wrong = mlvpn::proto::Tunnel::new(
            sim.client_config.clone(),
            &mlvpn::proto::kdf::psk_from_password(b"wrong password"),
            [9; 32],
            sim.now,
        );
        wrong.set_remote(0, sim.links[0].server_addr);
        wrong.handle_timeout(sim.now);
        let mut buf = [0u8; 256];
        while let Some(tx) = wrong.poll_transmit(sim.now, &mut buf) {
            tally(&sim.attack(Side::Server, tx.link, attacker, &buf[..tx.len]));
            injected += 1;
        }
        sim.run_until(t0 + Duration::from_secs(6));

        let drops = sim.server.drops();
        let dropped = drops.received_total() - drops_before.received_total() + dropped_before_corruption;
        let replies = outcomes.get("Reply").copied().unwrap_or(0);
        println!(
            "attacks seed={seed:#x}: {injected} injected ({} captured), outcomes {outcomes:?}",
            captured.len()
        );
        assert_eq!(
            dropped + replies,
            injected,
            "every attack packet is dropped and counted, or a hello answered"
        );
        assert!(replies <= hellos, "only replayed hellos get an answer");
        for (_, _, to, len) in sim.server_log.replies.iter().filter(|r| r.0 > t0) {
            assert_eq!(*len, HANDSHAKE_LEN, "an answer no larger than the hello that caused it (to {to})");
        }
        assert!(outcomes.get("Replayed").copied().unwrap_or(0) >= captured.len() as u64, "replays counted");
        assert!(outcomes.get("Unauthenticated").copied().unwrap_or(0) > 0);
        assert!(outcomes.get("Malformed").copied().unwrap_or(0) > 0);
        // Nothing changed: no link event on either side, the peers' addresses stayed put, and
        // traffic kept flowing.
        assert_eq!((changes(&sim.client_log), changes(&sim.server_log)), events_before);
        let peers_after: Vec<_> = sim.server.links().iter().map(|l| l.peer).collect();
        assert_eq!(peers, peers_after);
        assert!(sim.all_up());
        let delivered = sim.server_log.deliveries.len() - delivered_before;
        assert!(
            delivered as u64 + corrupted > 5 * 1250 - 100,
            "traffic flowed during the attack: {delivered}"
        );
    }
}

#[test]
fn restart_of_the_server_is_rejoined_within_a_keepalive_period_and_no_nonce_repeats() {
    use mlvpn::proto::crypto::audit;
    for seed in SEEDS {
        audit::start();
        let specs =
            [LinkSpec::new("a", 20.0, 10), LinkSpec::new("b", 20.0, 25), LinkSpec::new("c", 20.0, 15)];
        let mut sim = Sim::new(seed, &specs, 256);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 15.0, 1000, t0, t0 + Duration::from_secs(8));
        sim.add_source(Side::Server, 15.0, 1000, t0, t0 + Duration::from_secs(8));
        sim.run_until(t0 + Duration::from_secs(2));
        let restart = sim.now;
        sim.restart_server();
        sim.run_until(restart + Duration::from_secs(2));
        let rejoined = (0..3)
            .map(|l| first_after(&sim.client_log, l, LinkState::Up, restart).expect("link never came back"))
            .max()
            .unwrap();
        let saw_restart =
            sim.client_log.events.iter().any(|(t, e)| *t >= restart && *e == Event::PeerRestarted);
        let resumed =
            sim.server_log.bytes_between(restart + Duration::from_secs(1), restart + Duration::from_secs(2));

        // And the client restarting, for good measure.
        let client_restart = sim.now;
        sim.restart_client();
        sim.run_until(client_restart + Duration::from_secs(2));
        let client_back = (0..3)
            .map(|l| first_after(&sim.client_log, l, LinkState::Up, client_restart).expect("never came back"))
            .max()
            .unwrap();
        let server_saw =
            sim.server_log.events.iter().any(|(t, e)| *t >= client_restart && *e == Event::PeerRestarted);
        let resumed_after_client_restart = sim
            .server_log
            .bytes_between(client_restart + Duration::from_secs(1), client_restart + Duration::from_secs(2));

        let sealed = audit::take();
        let unique: std::collections::HashSet<_> = sealed.iter().collect();
        println!(
            "restart seed={seed:#x}: all links back {rejoined:?} after the server restarted, {client_back:?} after \
             the client restarted; {} (key, nonce) pairs sealed, {} distinct",
            sealed.len(),
            unique.len()
        );
        assert!(rejoined <= Duration::from_secs(1), "rejoined after {rejoined:?}");
        assert!(client_back <= Duration::from_secs(1), "rejoined after {client_back:?}");
        assert!(server_saw && sim.all_up());
        assert!(mbps(resumed_after_client_restart, 1.0) > 14.0, "the new client's traffic is delivered");
        assert!(saw_restart, "client noticed the server's new instance");
        assert!(mbps(resumed, 1.0) > 14.0, "traffic resumed: {:.1} Mbit/s", mbps(resumed, 1.0));
        assert!(sealed.len() > 20_000);
        assert_eq!(unique.len(), sealed.len(), "a (key, nonce) pair was used twice");
    }
}

#[test]
fn server_follows_a_client_whose_address_changes() {
    for seed in SEEDS {
        let specs = [LinkSpec::new("lte", 20.0, 30), LinkSpec::new("dsl", 20.0, 10)];
        let mut sim = Sim::new(seed, &specs, 256);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 5.0, 1000, t0, t0 + Duration::from_secs(4));
        sim.add_source(Side::Server, 5.0, 1000, t0, t0 + Duration::from_secs(4));
        sim.run_until(t0 + Duration::from_secs(1));
        // The 4G modem got a new address (or the NAT a new port).
        let moved: std::net::SocketAddr = "10.7.7.7:31337".parse().unwrap();
        sim.links[0].client_addr = moved;
        let t1 = sim.now;
        sim.run_until(t1 + Duration::from_secs(2));
        let followed = sim.server_log.events.iter().find_map(|(t, e)| match e {
            Event::PeerMoved { link: 0, to } if *to == moved => Some(*t - t1),
            _ => None,
        });
        let carried = sim.links[0].down.stats.delivered;
        println!("rebinding seed={seed:#x}: server followed after {followed:?}");
        assert!(followed.is_some_and(|d| d < Duration::from_millis(100)), "{followed:?}");
        assert_eq!(sim.server.links()[0].peer, Some(moved));
        assert!(sim.server_log.entered(0, LinkState::Down).is_empty(), "no outage");
        assert!(carried > 0);
    }
}

#[test]
fn lossy_link_stops_carrying_data_and_comes_back_when_clean() {
    for seed in SEEDS {
        // The flaky link is the faster one, so that it carries data when the loss begins.
        let mut flaky = LinkSpec::new("lte", 20.0, 10);
        flaky.config.loss_tolerance = 10;
        let mut clean = LinkSpec::new("dsl", 20.0, 25);
        clean.config.loss_tolerance = 10;
        let mut sim = Sim::new(seed, &[clean, flaky], 256);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 8.0, 1000, t0, t0 + Duration::from_secs(12));
        sim.run_until(t0 + Duration::from_secs(1));
        sim.links[1].up.config.loss = 0.3;
        let bad = sim.now;
        sim.run_until(bad + Duration::from_secs(3));
        let lossy_after = first_after(&sim.client_log, 1, LinkState::Lossy, bad);
        let carried = sim.client.links()[1].stats.tx_data_packets;
        sim.run_until(sim.now + Duration::from_secs(2));
        let carried_while_lossy = sim.client.links()[1].stats.tx_data_packets - carried;
        sim.links[1].up.config.loss = 0.0;
        let good = sim.now;
        sim.run_until(good + Duration::from_secs(5));
        let back_after = first_after(&sim.client_log, 1, LinkState::Up, good);
        println!(
            "lossy seed={seed:#x}: lossy {lossy_after:?} after 30% loss began, carried {carried_while_lossy} packets \
             while lossy, up again {back_after:?} after the loss stopped"
        );
        assert!(lossy_after.is_some_and(|d| d < Duration::from_secs(1)), "{lossy_after:?}");
        assert_eq!(carried_while_lossy, 0, "a lossy link carries no data");
        assert!(back_after.is_some_and(|d| d < Duration::from_secs(3)), "{back_after:?}");
        assert!(sim.client_log.entered(1, LinkState::Down).is_empty(), "lossy is not down");
        assert!(sim.client_log.entered(0, LinkState::Lossy).is_empty());
    }
}

#[test]
fn reload_with_the_same_links_loses_nothing_and_changes_no_state() {
    for seed in SEEDS {
        let mut specs =
            [LinkSpec::new("a", 20.0, 10), LinkSpec::new("b", 20.0, 25), LinkSpec::new("c", 20.0, 15)];
        let mut sim = Sim::new(seed, &specs, 512);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        // Warm the capacity estimates, then measure around the reload.
        sim.add_source(Side::Client, 20.0, 1000, t0, t0 + Duration::from_secs(6));
        sim.add_source(Side::Server, 20.0, 1000, t0, t0 + Duration::from_secs(6));
        sim.run_until(t0 + Duration::from_secs(3));
        let events = (sim.client_log.events.len(), sim.server_log.events.len());
        let from = sim.now;
        for s in &mut specs {
            s.config.timeout = Duration::from_secs(30);
            s.config.loss_tolerance = 50;
        }
        let r1 = sim.reconfigure(Side::Server, &specs);
        sim.run_until(sim.now + Duration::from_millis(300));
        let r2 = sim.reconfigure(Side::Client, &specs);
        let to = from + Duration::from_secs(2);
        sim.run_until(t0 + Duration::from_secs(7));
        let expect = (2.0 * 20e6 / 8.0 / 1000.0) as usize;
        let got =
            |log: &harness::Log| log.deliveries.iter().filter(|d| d.sent >= from && d.sent < to).count();
        let drops = (sim.client.drops().received_total(), sim.server.drops().received_total());
        println!(
            "reload seed={seed:#x}: {} and {} of ~{expect} packets around the reload delivered, drops {drops:?}, \
             events after: {} {}",
            got(&sim.server_log),
            got(&sim.client_log),
            sim.client_log.events.len() - events.0,
            sim.server_log.events.len() - events.1
        );
        assert_eq!(r1.continued_from, [Some(0), Some(1), Some(2)]);
        assert!(r1.goodbyes.is_empty() && r2.goodbyes.is_empty());
        assert_eq!((sim.client_log.events.len(), sim.server_log.events.len()), events, "no state change");
        assert!(got(&sim.server_log) >= expect - 1 && got(&sim.client_log) >= expect - 1, "nothing lost");
        assert_eq!(sim.client.links()[0].config.loss_tolerance, 50);
    }
}

#[test]
fn reload_adds_and_removes_links() {
    for seed in SEEDS {
        let specs =
            [LinkSpec::new("a", 20.0, 10), LinkSpec::new("b", 20.0, 25), LinkSpec::new("c", 20.0, 15)];
        let mut sim = Sim::new(seed, &specs, 512);
        sim.run_until_all_up(ms(2000));
        let t0 = sim.now;
        sim.add_source(Side::Client, 10.0, 1000, t0, t0 + Duration::from_secs(8));
        sim.run_until(t0 + Duration::from_secs(1));
        // The client drops link c: it says goodbye, the server marks it down at once.
        let cut = sim.now;
        let r = sim.reconfigure(Side::Client, &specs[..2]);
        sim.run_until(cut + Duration::from_millis(200));
        let down = sim.server_log.events.iter().find_map(|(t, e)| match e {
            Event::Link { link: 2, to: LinkState::Down, reason, .. } if *t >= cut => {
                Some((*t - cut, *reason))
            }
            _ => None,
        });
        // Both ends gain link d.
        let mut more = specs.to_vec();
        more[2] = LinkSpec::new("d", 20.0, 5);
        sim.reconfigure(Side::Server, &more);
        let add = sim.now;
        sim.reconfigure(Side::Client, &more);
        sim.run_until(add + Duration::from_secs(2));
        let up = first_after(&sim.client_log, 2, LinkState::Up, add);
        let gap = sim
            .server_log
            .deliveries
            .windows(2)
            .filter(|w| w[0].at >= t0 && w[1].at - w[0].at > Duration::from_millis(100))
            .count();
        println!(
            "reload seed={seed:#x}: removed link down at the server after {down:?}; added link up after {up:?}; {gap} stalls"
        );
        assert_eq!(r.goodbyes.len(), 1);
        assert!(down.is_some_and(
            |(d, why)| d <= Duration::from_millis(20) && why == Some(DownReason::PeerDisconnected)
        ));
        assert!(up.is_some_and(|d| d <= Duration::from_secs(1)));
        assert_eq!(sim.server.links()[2].config.name, "d");
        assert_eq!(gap, 0, "traffic never stalled");
    }
}
