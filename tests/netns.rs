//! End-to-end tests of `mlvpn` in Linux network namespaces: the real kernel, real TUN devices,
//! real TCP through the tunnel. See `tests/netns/lab.rs` for the lab (layout, shaping numbers,
//! blackholes, teardown).
//!
//! Run as root: `cargo test --test netns -- --nocapture` (the figures are printed). Without root
//! every test prints `SKIPPED: needs root` and passes; before the daemon binary exists the
//! daemon scenarios print `SKIPPED` too, and only the lab's own checks run.
//!
//! Needs (Debian): iproute2 nftables iperf3 python3.
//!
//! Scenarios run one at a time (they share two cores), each in its own pair of namespaces.
//! Thresholds are the daemon's requirements; where a figure depends on how loaded the machine
//! is, the measurement is made robust (steady-state means, best of two runs) rather than the
//! threshold lowered. `cargo bench --bench netns` prints the strict figures.

#[path = "netns/json.rs"]
mod json;
#[path = "netns/lab.rs"]
mod lab;
#[path = "netns/traffic.rs"]
mod traffic;

use lab::{Lab, LinkSpec, Side, TUN_CLIENT_IP, TUN_DEVICE, TUN_SERVER_IP, TunnelOpts};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

fn lab_scenario(test: &str) -> Option<MutexGuard<'static, ()>> {
    if !lab::have_root(test) {
        return None;
    }
    let guard = lab::serial();
    println!("=== {test}");
    Some(guard)
}

fn mbit(bps: f64) -> f64 {
    bps / 1e6
}

/// Client-side tx bytes of each link's veth.
fn link_tx(lab: &Lab) -> Vec<u64> {
    let dev = lab.net_dev(Side::Client);
    lab.links.iter().map(|l| dev.get(&l.client_if).map_or(0, |c| c.1)).collect()
}

/// The harness's JSON reader handles what iperf3 prints.
#[test]
fn json_reader() {
    let doc = r#"{"start": {"connected": []}, "intervals": [{"sum": {"start": 0, "end": 0.1,
        "bits_per_second": 1.5e6, "omitted": false}}], "title": "a\"b\u0041", "x": null}"#;
    let v = json::Json::parse(doc).unwrap();
    let iv = v.get("intervals").unwrap().as_array().unwrap();
    assert_eq!(iv[0].at(&["sum", "bits_per_second"]).unwrap().as_f64(), Some(1.5e6));
    assert_eq!(v.get("title").unwrap().as_str(), Some("a\"bA"));
    assert_eq!(v.get("x"), Some(&json::Json::Null));
    assert!(json::Json::parse("{\"a\": 1,}").is_err());
    assert!(json::Json::parse("[1, 2] x").is_err());
}

// =============================================================================================
// The lab itself (no daemon): namespaces, veth, tbf, nftables, teardown
// =============================================================================================

/// tbf limits a veth to its rate (measured with iperf3 across the veth, both ways), the nft
/// blackhole drops a link and lets it go again, and a 100 MB transfer hashes the same on both
/// ends.
#[test]
fn lab_links_shaping_blackhole() {
    let Some(_turn) = lab_scenario("lab_links_shaping_blackhole") else { return };
    let lab = Lab::new(&[LinkSpec::shaped(40.0), LinkSpec::unshaped()]);
    let (shaped, plain) = (&lab.links[0], &lab.links[1]);

    // TCP goodput on a 40 Mbit/s tbf: 1448 payload bytes per 1514-byte frame → 38.3 Mbit/s.
    for (from, dst) in [(Side::Client, &shaped.server_ip), (Side::Server, &shaped.client_ip)] {
        let run = traffic::iperf(&lab, from, dst, 5201, 3.0);
        let steady = mbit(run.mean_bps_from(0.5));
        println!("tbf 40 Mbit/s, {} → {}: {steady:.1} Mbit/s steady", from.name(), from.other().name());
        assert!((30.0..=41.0).contains(&steady), "tbf 40 Mbit/s link measured {steady:.1} Mbit/s");
    }

    // Blackhole on and off.
    assert!(lab.ping(Side::Client, &plain.server_ip), "no ping on a fresh veth");
    lab.blackhole(1, true);
    assert!(!lab.ping(Side::Client, &plain.server_ip), "ping crosses a blackholed link");
    assert!(!lab.ping(Side::Server, &plain.client_ip), "ping crosses a blackholed link (server side)");
    assert!(lab.ping(Side::Client, &shaped.server_ip), "blackholing link1 broke link0");
    lab.blackhole(1, false);
    assert!(lab.ping(Side::Client, &plain.server_ip), "link still dead after removing the blackhole");

    // The byte-exact transfer, without a tunnel.
    let t =
        traffic::transfer(&lab, Side::Client, &plain.server_ip, 6000, 100 << 20, 1, Duration::from_secs(60));
    println!(
        "plain veth transfer: {} bytes in {:.2} s ({:.0} Mbit/s)",
        t.bytes_received,
        t.secs,
        t.mbit_per_sec()
    );
    assert_eq!((t.bytes_received, &t.sha_received), (t.bytes_sent, &t.sha_sent));
    assert_eq!(t.bytes_sent, 100 << 20);
}

/// Broken variants of a valid client config: (name, text, key at fault, its line).
fn broken_configs(good: &str) -> Vec<(&'static str, String, &'static str, usize)> {
    let cases = [
        ("bad-mtu", good.replace(&format!("mtu = {}", lab::DEFAULT_MTU), "mtu = lots"), "mtu"),
        ("bad-mode", good.replace("mode = client", "mode = bridge"), "mode"),
        ("bad-port", good.replace("remoteport = 5080", "remoteport = 99999"), "remoteport"),
        ("bad-timeout", good.replace("timeout = 10", "timeout = -3"), "timeout"),
    ];
    cases
        .into_iter()
        .map(|(name, text, key)| {
            assert_ne!(text, good, "{name}: the substitution did not apply");
            let line = text.lines().position(|l| l.split('=').next().unwrap().trim() == key).unwrap() + 1;
            (name, text, key, line)
        })
        .collect()
}

/// The configs the lab writes are valid for the config reader, and the broken variants fail on
/// the expected line and key (checks the scenarios' inputs without the daemon).
#[test]
fn lab_configs_parse() {
    let Some(_turn) = lab_scenario("lab_configs_parse") else { return };
    let lab = Lab::new(&[LinkSpec::shaped(40.0), LinkSpec::unshaped(), LinkSpec::shaped(10.0)]);
    let opts = TunnelOpts::default();
    let wrong = TunnelOpts { client_password: Some("x".into()), ..TunnelOpts::default() };
    for (name, text) in [
        ("server", lab.server_config(&opts)),
        ("client", lab.client_config(&opts)),
        ("wrong", lab.client_config(&wrong)),
    ] {
        if let Err(e) = mlvpn::config::parse(name, &text) {
            panic!("the lab's {name} config is invalid:\n{e}\n{text}");
        }
    }
    for (name, text, key, line) in broken_configs(&lab.client_config(&opts)) {
        let errors = mlvpn::config::parse(name, &text).expect_err(name).to_string();
        println!("{errors}");
        assert!(errors.contains(&format!("{name}:{line}: {key}: ")), "{name}: {errors}");
    }
}

/// A panic inside a scenario still removes namespaces, processes and files.
#[test]
fn lab_teardown_on_panic() {
    let Some(_turn) = lab_scenario("lab_teardown_on_panic") else { return };
    let mut seen: Option<(Vec<String>, u32, PathBuf)> = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new(&[LinkSpec::shaped(10.0)]);
        let sleeper = lab.spawn(Side::Server, "sleeper", &["sleep", "600"]);
        seen = Some((vec![lab.ns(Side::Client), lab.ns(Side::Server)], sleeper.pid(), lab.dir.clone()));
        std::mem::forget(sleeper); // only the lab's teardown can stop it now
        panic!("deliberate panic to test the teardown");
    }));
    assert!(result.is_err());
    let (names, pid, dir) = seen.expect("the lab was created");
    let left = lab::namespaces();
    for n in &names {
        assert!(!left.contains(n), "namespace {n} left behind");
    }
    // The sleeper was forgotten, not reaped: it may linger as a zombie of ours, never as a
    // running process.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit(") ").next().and_then(|r| r.chars().next());
    assert!(matches!(state, None | Some('Z')), "process {pid} still running (state {state:?})");
    assert!(!dir.exists(), "{} left behind", dir.display());
    println!("teardown after panic: namespaces, process {pid} and {} are gone", dir.display());
}

// =============================================================================================
// The daemon
// =============================================================================================

/// Both TUN devices come up; the hook runs with the contract's arguments, order and
/// environment, on the way up and, after SIGTERM, on the way down; SIGTERM (client) and SIGINT
/// (server) exit 0 and leave no TUN device; the peer sees the disconnect.
#[test]
fn tunnel_up_and_hooks() {
    let Some(_turn) = lab::daemon_scenario("tunnel_up_and_hooks") else { return };
    let mut lab = Lab::new(&[LinkSpec::unshaped(), LinkSpec::unshaped()]);
    let extra = [
        ("ip6", "fd42::X/64"),
        ("ip6_gateway", "fd42::Y"),
        ("ip4_routes", "10.99.0.0/24"),
        ("ip6_routes", "fd99::/64"),
    ];
    let env_for = |side: Side| -> Vec<(&'static str, String)> {
        let (me, peer) = if side == Side::Server { ("1", "2") } else { ("2", "1") };
        vec![
            ("DEVICE", TUN_DEVICE.to_string()),
            ("MTU", lab::DEFAULT_MTU.to_string()),
            ("IP4", format!("{}/{}", side.tun_ip(), lab::TUN_PREFIX)),
            ("IP4_GATEWAY", side.other().tun_ip().to_string()),
            ("IP6", format!("fd42::{me}/64")),
            ("IP6_GATEWAY", format!("fd42::{peer}")),
            ("IP4_ROUTES", "10.99.0.0/24".into()),
            ("IP6_ROUTES", "fd99::/64".into()),
        ]
    };
    // The two sides differ in ip6/ip6_gateway: write each config with its own values.
    for side in [Side::Server, Side::Client] {
        let (me, peer) = if side == Side::Server { ("1", "2") } else { ("2", "1") };
        let mut opts = TunnelOpts::default();
        for (k, v) in extra {
            opts.extra_general.push((k.into(), v.replace('X', me).replace('Y', peer)));
        }
        let text = if side == Side::Server { lab.server_config(&opts) } else { lab.client_config(&opts) };
        let path = lab.write_file(&format!("{}.conf", side.name()), &text, 0o600);
        lab.start_daemon(side, &path);
    }

    let took = lab.wait_tunnel(Duration::from_secs(20));
    println!("tunnel up and pinging after {:.2} s", took.as_secs_f64());
    for side in [Side::Client, Side::Server] {
        for l in lab.links.clone() {
            let t = lab.wait_log(side, 0, &format!("link {}: up", l.name), Duration::from_secs(10));
            assert!(t.is_some(), "{}: no `link {}: up` in the log", side.name(), l.name);
        }
    }
    assert!(lab.ping(Side::Server, TUN_CLIENT_IP), "no ping server → client through the tunnel");

    let link_names: Vec<String> = lab.links.iter().map(|l| l.name.clone()).collect();
    for side in [Side::Client, Side::Server] {
        // Hooks may run asynchronously: give the second rtun_up a moment.
        lab::poll_until(Duration::from_secs(5), || {
            lab.hook_calls(side).iter().filter(|c| c.event() == "rtun_up").count() >= link_names.len()
        });
        let calls = lab.hook_calls(side);
        let summary: Vec<String> = calls.iter().map(|c| c.args.join(" ")).collect();
        println!("{} hook calls (up): {summary:?}", side.name());
        assert!(!calls.is_empty(), "{}: hook never ran", side.name());
        assert_eq!(
            calls[0].event(),
            "rtun_up",
            "{}: first hook call must be rtun_up: {summary:?}",
            side.name()
        );
        let tuntap_up: Vec<_> = calls.iter().filter(|c| c.event() == "tuntap_up").collect();
        assert_eq!(tuntap_up.len(), 1, "{}: tuntap_up calls: {summary:?}", side.name());
        assert_eq!(tuntap_up[0].args, [TUN_DEVICE, "tuntap_up"], "{}: tuntap_up arguments", side.name());
        for name in &link_names {
            let ups: Vec<_> =
                calls.iter().filter(|c| c.event() == "rtun_up" && c.args.get(2) == Some(name)).collect();
            assert_eq!(ups.len(), 1, "{}: rtun_up {name} calls: {summary:?}", side.name());
            assert_eq!(
                ups[0].args,
                [TUN_DEVICE, "rtun_up", name.as_str()],
                "{}: rtun_up arguments",
                side.name()
            );
        }
        for c in &calls {
            for (k, want) in env_for(side) {
                assert_eq!(c.env(k), Some(want.as_str()), "{}: hook {:?}: ${k}", side.name(), c.args);
            }
        }
    }

    // SIGTERM the client: exit 0, disconnect seen by the server, hooks on the way down.
    let server_log_at = lab.log(Side::Server).len();
    let t0 = Instant::now();
    let (status, killed) = lab.stop_daemon(Side::Client).unwrap();
    println!("client stopped by SIGTERM in {:.2} s: {status}", t0.elapsed().as_secs_f64());
    assert!(!killed && status.success(), "client on SIGTERM: {status} (needed SIGKILL: {killed})");
    assert!(!lab.tun_exists(Side::Client), "client left its TUN device behind");
    for l in lab.links.clone() {
        let t = lab.wait_log(
            Side::Server,
            server_log_at,
            &format!("link {}: down", l.name),
            Duration::from_secs(3),
        );
        assert!(t.is_some(), "server did not see link {} go down after the client's disconnect", l.name);
        println!(
            "server: {}",
            lab.log_lines(Side::Server, server_log_at, &format!("link {}: down", l.name))[0]
        );
    }
    lab::poll_until(Duration::from_secs(3), || {
        lab.hook_calls(Side::Server).iter().any(|c| c.event() == "tuntap_down")
    });
    for side in [Side::Client, Side::Server] {
        let calls = lab.hook_calls(side);
        let summary: Vec<String> = calls.iter().map(|c| c.args.join(" ")).collect();
        println!("{} hook calls (all): {summary:?}", side.name());
        let last = calls.last().expect("hook calls");
        assert_eq!(
            last.args,
            [TUN_DEVICE, "tuntap_down"],
            "{}: last hook call must be tuntap_down",
            side.name()
        );
        assert_eq!(
            calls.iter().filter(|c| c.event() == "tuntap_down").count(),
            1,
            "{}: tuntap_down",
            side.name()
        );
        let pos_down = calls.len() - 1;
        for name in &link_names {
            let pos = calls.iter().position(|c| c.event() == "rtun_down" && c.args.get(2) == Some(name));
            let pos = pos.unwrap_or_else(|| panic!("{}: no rtun_down {name}: {summary:?}", side.name()));
            assert!(pos < pos_down);
            assert_eq!(calls[pos].args, [TUN_DEVICE, "rtun_down", name.as_str()]);
        }
        for c in &calls {
            for (k, want) in env_for(side) {
                assert_eq!(c.env(k), Some(want.as_str()), "{}: hook {:?}: ${k}", side.name(), c.args);
            }
        }
    }
    let (status, killed) = lab.stop_daemon_with(Side::Server, libc::SIGINT).unwrap();
    assert!(!killed && status.success(), "server on SIGINT: {status} (needed SIGKILL: {killed})");
    assert!(!lab.tun_exists(Side::Server), "server left its TUN device behind");
}

/// 100 MiB each way over two links arrives complete and byte-identical.
#[test]
fn transfer_100mb_both_ways() {
    let Some(_turn) = lab::daemon_scenario("transfer_100mb_both_ways") else { return };
    let mut lab = Lab::new(&[LinkSpec::unshaped(), LinkSpec::unshaped()]);
    lab.start_both(&TunnelOpts::default());
    lab.wait_tunnel(Duration::from_secs(20));
    const BYTES: u64 = 100 << 20;
    for (seed, from) in [(7, Side::Client), (8, Side::Server)] {
        let dst = from.other().tun_ip();
        let t = traffic::transfer(&lab, from, dst, 6000 + seed as u16, BYTES, seed, Duration::from_secs(180));
        println!(
            "{} → {}: {} bytes in {:.2} s ({:.0} Mbit/s), sha256 sent {} received {}",
            from.name(),
            from.other().name(),
            t.bytes_received,
            t.secs,
            t.mbit_per_sec(),
            &t.sha_sent[..16],
            &t.sha_received[..16]
        );
        assert_eq!(t.bytes_sent, BYTES);
        assert_eq!(t.bytes_received, BYTES, "{} → {}: bytes lost or added", from.name(), from.other().name());
        assert_eq!(t.sha_received, t.sha_sent, "{} → {}: content differs", from.name(), from.other().name());
        lab.assert_running(Side::Client);
        lab.assert_running(Side::Server);
    }
}

/// UDP datagrams of runs of equal sizes (which the tunnel joins on the way to the TUN device
/// where the kernel allows it) arrive whole and unaltered, each way.
#[test]
fn udp_datagrams_arrive_whole() {
    let Some(_turn) = lab::daemon_scenario("udp_datagrams_arrive_whole") else { return };
    let mut lab = Lab::new(&[LinkSpec::unshaped()]);
    lab.start_both(&TunnelOpts::default());
    lab.wait_tunnel(Duration::from_secs(20));
    let script = lab.write_file("udpcheck.py", include_str!("netns/udpcheck.py"), 0o700);
    let script = script.to_str().unwrap();
    const COUNT: u64 = 20_000;
    for (k, from) in [Side::Client, Side::Server].into_iter().enumerate() {
        let dst = from.other().tun_ip();
        let port = (7100 + k).to_string();
        let mut receiver =
            lab.spawn(from.other(), "udpcheck-recv", &["python3", script, "recv", dst, &port, "60"]);
        lab::poll_until(Duration::from_secs(10), || receiver.stdout().starts_with("listening"))
            .expect("udpcheck receiver listening");
        let sent = lab.run(
            from,
            "udpcheck-send",
            &["python3", script, "send", dst, &port, &COUNT.to_string()],
            Duration::from_secs(60),
        );
        assert!(sent.status.success(), "sender: {}", sent.stderr);
        receiver.wait_timeout(Duration::from_secs(30)).expect("receiver ends");
        let out = receiver.stdout();
        let line = out.lines().last().unwrap_or_default();
        let doc = json::Json::parse(line).unwrap_or_else(|e| panic!("receiver summary {line:?}: {e}"));
        let n = |key: &str| doc.get(key).and_then(json::Json::as_f64).unwrap_or(-1.0);
        println!("{} → {}: {line}", from.name(), from.other().name());
        if n("whole") < 0.95 * COUNT as f64 {
            for side in [from, from.other()] {
                println!("  {} status:\n{}", side.name(), lab.status(side, false).trim_end());
            }
        }
        assert_eq!(n("corrupt"), 0.0, "altered datagrams");
        assert_eq!(n("duplicate"), 0.0, "duplicated datagrams");
        // Bursts into an unshaped link lose next to nothing; a loaded machine may drop a few.
        assert!(n("whole") >= 0.95 * COUNT as f64, "only {} of {COUNT} arrived", n("whole"));
    }
    lab.assert_running(Side::Client);
    lab.assert_running(Side::Server);
}

/// One unshaped link carries a TCP flow at full speed whichever way the previous flows went:
/// server → client (8 s), client → server, server → client (4 s each). (A link that has carried only the
/// acknowledgements of the other direction must still let a flow of its own grow.)
#[test]
fn single_link_both_ways() {
    let Some(_turn) = lab::daemon_scenario("single_link_both_ways") else { return };
    let mut lab = Lab::new(&[LinkSpec::unshaped()]);
    lab.start_both(&TunnelOpts::default());
    lab.wait_tunnel(Duration::from_secs(20));
    // An unshaped veth carries 400-800 Mbit/s through the tunnel on this machine; a flow stuck
    // at a few Mbit/s is a failure, a loaded machine is not.
    const MIN_MBIT: f64 = 50.0;
    let mut slow = Vec::new();
    for (k, (from, secs)) in
        [(Side::Server, 8.0), (Side::Client, 4.0), (Side::Server, 4.0)].into_iter().enumerate()
    {
        let pressure = lab::CpuPressure::start();
        let run = traffic::iperf(&lab, from, from.other().tun_ip(), 5201 + k as u16, secs);
        let steady = mbit(run.mean_bps_from(1.0));
        println!(
            "flow {}: {} → {}: {steady:.1} Mbit/s steady, retransmits {:?}, CPU pressure {}",
            k + 1,
            from.name(),
            from.other().name(),
            run.retransmits,
            pressure.percent().map_or("unknown".into(), |p| format!("{p:.0} %"))
        );
        if steady < MIN_MBIT {
            println!("  receiver Mbit/s per 0.1 s: {}", run.sparkline());
            for side in [from, from.other()] {
                println!("  {} status:\n{}", side.name(), lab.status(side, false).trim_end());
            }
            slow.push(format!(
                "flow {} {} → {}: {steady:.1} Mbit/s",
                k + 1,
                from.name(),
                from.other().name()
            ));
        }
    }
    assert!(slow.is_empty(), "flows below {MIN_MBIT} Mbit/s over one unshaped link: {slow:?}");
}

/// One TCP flow over 3 × 40 Mbit/s reaches 100 Mbit/s (the wire allows ≈ 110 after headers).
#[test]
fn bonded_throughput_3x40() {
    let Some(_turn) = lab::daemon_scenario("bonded_throughput_3x40") else { return };
    let mut lab = Lab::new(&[LinkSpec::shaped(40.0), LinkSpec::shaped(40.0), LinkSpec::shaped(40.0)]);
    lab.start_both(&TunnelOpts::default());
    lab.wait_tunnel(Duration::from_secs(20));
    const WANT_MBIT: f64 = 100.0;
    // Best of three: other work on a shared 2-core machine must not fail the daemon.
    let mut best = 0.0f64;
    for attempt in 1..=3 {
        let pressure = lab::CpuPressure::start();
        let before = link_tx(&lab);
        let run = traffic::iperf(&lab, Side::Client, TUN_SERVER_IP, 5201, 10.0);
        let after = link_tx(&lab);
        let steady = mbit(run.mean_bps_from(1.0));
        let shares: Vec<String> =
            before.iter().zip(&after).map(|(b, a)| format!("{:.1}", (a - b) as f64 * 8.0 / 10e6)).collect();
        println!(
            "attempt {attempt}: 3 x 40 Mbit/s, one TCP flow: {steady:.1} Mbit/s steady (from 1 s), {:.1} overall, \
             retransmits {:?}; per-link Mbit/s on the wire {shares:?}; CPU pressure {}",
            mbit(run.receiver_bps),
            run.retransmits,
            pressure.percent().map_or("unknown".into(), |p| format!("{p:.0} %"))
        );
        println!("  receiver Mbit/s per 0.1 s: {}", run.sparkline());
        best = best.max(steady);
        if best >= WANT_MBIT {
            break;
        }
    }
    assert!(best >= WANT_MBIT, "3 x 40 Mbit/s bond: best steady rate {best:.1} Mbit/s < {WANT_MBIT}");
}

/// A link blackholed mid-flow: the TCP connection survives, the flow spends at most 1 s below
/// half its healthy rate, the link goes down, and comes back within 2 s of the blackhole's end.
///
/// Up to three attempts, each in a fresh lab: other work on a shared 2-core machine can starve
/// the flow for a second anywhere in it (the CPU pressure printed with each attempt shows it).
/// A daemon that fails the requirement by itself fails every attempt.
#[test]
fn blackhole_failover() {
    let Some(_turn) = lab::daemon_scenario("blackhole_failover") else { return };
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        match blackhole_attempt(attempt) {
            Ok(()) => return,
            Err(why) => {
                println!("  attempt {attempt} failed: {why}");
                failures.push(why);
            }
        }
    }
    panic!("blackhole failover failed 3 times: {failures:#?}");
}

fn blackhole_attempt(attempt: u32) -> Result<(), String> {
    const VICTIM: usize = 1;
    const HOLE_AT: f64 = 5.0;
    const HOLE_END: f64 = 10.0;
    const FLOW: f64 = 15.0;
    const MAX_BELOW_HALF: f64 = 1.0;
    const MAX_BACK: f64 = 2.0;
    let mut lab = Lab::new(&[LinkSpec::shaped(40.0), LinkSpec::shaped(40.0), LinkSpec::shaped(40.0)]);
    let victim = lab.links[VICTIM].name.clone();
    lab.start_both(&TunnelOpts::default());
    lab.wait_tunnel(Duration::from_secs(20));
    let _capture = lab.capture_tun_if_asked();

    let pressure = lab::CpuPressure::start();
    let tcp_before = lab.tcp_counters(Side::Client);
    let flow = traffic::iperf_start(&lab, Side::Client, TUN_SERVER_IP, 5201, FLOW);
    let wait_until = |t: f64| {
        let now = flow.elapsed();
        if t > now {
            std::thread::sleep(Duration::from_secs_f64(t - now));
        }
    };
    wait_until(HOLE_AT);
    let tx_healthy = link_tx(&lab);
    let logs_at = [lab.log(Side::Client).len(), lab.log(Side::Server).len()];
    lab.blackhole(VICTIM, true);
    let hole_at = flow.elapsed();
    let down =
        lab.wait_log(Side::Client, logs_at[0], &format!("link {victim}: down"), Duration::from_secs(4));
    wait_until(HOLE_END);
    let tx_hole = link_tx(&lab);
    let down_server = lab.log_lines(Side::Server, logs_at[1], &format!("link {victim}: down"));
    let logs_at = [lab.log(Side::Client).len(), lab.log(Side::Server).len()];
    lab.blackhole(VICTIM, false);
    let hole_end = flow.elapsed();
    let removed = Instant::now();
    let pattern = format!("link {victim}: up");
    let mut back: [Option<Duration>; 2] = [None, None];
    lab::poll_until(Duration::from_secs(5), || {
        for (k, side) in [Side::Client, Side::Server].into_iter().enumerate() {
            lab.assert_running(side);
            if back[k].is_none() && !lab.log_lines(side, logs_at[k], &pattern).is_empty() {
                back[k] = Some(removed.elapsed());
            }
        }
        back.iter().all(Option::is_some)
    });
    let [back_client, back_server] = back;
    let run = flow.finish();
    let tx_end = link_tx(&lab);
    let tcp_after = lab.tcp_counters(Side::Client);
    let tcp = |k: &str| tcp_after.get(k).unwrap_or(&0) - tcp_before.get(k).unwrap_or(&0);

    let healthy = run.mean_bps_between(1.0, hole_at);
    let during = run.mean_bps_between(hole_at + 1.0, hole_end);
    let after = run.mean_bps_between(hole_end + 1.0, FLOW);
    let below = run.secs_below(healthy / 2.0, 1.0);
    let phase = |a: &[u64], b: &[u64], secs: f64| -> Vec<String> {
        a.iter().zip(b).map(|(x, y)| format!("{:.1}", (y - x) as f64 * 8.0 / secs / 1e6)).collect()
    };
    let secs = |d: Option<Duration>| d.map(|d| format!("{:.2} s", d.as_secs_f64())).unwrap_or("never".into());
    println!(
        "attempt {attempt}: blackhole {victim} at {hole_at:.2} s, removed at {hole_end:.2} s of a {FLOW} s flow"
    );
    println!("  receiver Mbit/s per 0.1 s: {}", run.sparkline());
    println!(
        "  rate: healthy {:.1}, blackholed {:.1}, after {:.1} Mbit/s; {below:.1} s below half the healthy rate",
        mbit(healthy),
        mbit(during),
        mbit(after)
    );
    println!(
        "  per-link client tx Mbit/s: blackholed phase {:?}, after {:?}",
        phase(&tx_healthy, &tx_hole, hole_end - hole_at),
        phase(&tx_hole, &tx_end, FLOW - hole_end)
    );
    println!(
        "  {victim} down after {} (client; server said {down_server:?}); back up after {} (client), {} (server)",
        secs(down),
        secs(back_client),
        secs(back_server)
    );
    println!(
        "  sender TCP ({}): {} segments retransmitted, {} RTOs, {} loss probes; CPU pressure {}",
        lab::tcp_congestion_control().unwrap_or("default".into()),
        tcp("RetransSegs"),
        tcp("TCPTimeouts"),
        tcp("TCPLossProbes"),
        pressure.percent().map_or("unknown".into(), |p| format!("{p:.0} %"))
    );
    let victim_after = (tx_end[VICTIM] - tx_hole[VICTIM]) as f64;
    let back_in_time = |t: Option<Duration>| t.is_some_and(|t| t.as_secs_f64() <= MAX_BACK);
    if !(run.bytes_received > 0.0 && healthy > 0.0) {
        Err("no traffic".into())
    } else if down.is_none() {
        Err(format!("the client never declared {victim} down while it was blackholed"))
    } else if below > MAX_BELOW_HALF {
        Err(format!("flow spent {below:.1} s below half its healthy rate (max {MAX_BELOW_HALF})"))
    } else if !back_in_time(back_client) || !back_in_time(back_server) {
        Err(format!(
            "{victim} not up within {MAX_BACK} s of the blackhole's end (client {}, server {})",
            secs(back_client),
            secs(back_server)
        ))
    } else if victim_after <= 1e6 {
        Err(format!("{victim} carries no data after it came back ({victim_after} bytes)"))
    } else {
        Ok(())
    }
}

/// A client with the wrong password: its link never comes up, the server says why exactly once
/// and the client says it gets no answer.
#[test]
fn wrong_password() {
    let Some(_turn) = lab::daemon_scenario("wrong_password") else { return };
    let mut lab = Lab::new(&[LinkSpec::unshaped()]);
    let opts = TunnelOpts { client_password: Some("not the password".into()), ..TunnelOpts::default() };
    lab.start_both(&opts);
    let started = Instant::now();
    let client_said =
        lab.wait_log(Side::Client, 0, "link link0: no answer to handshake", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    lab.assert_running(Side::Client);
    lab.assert_running(Side::Server);

    let auth = lab.log_lines(Side::Server, 0, "authentication failed");
    println!("after {:.1} s: server says {auth:?}", started.elapsed().as_secs_f64());
    println!("client says {:?}", lab.log_lines(Side::Client, 0, "no answer to handshake"));
    for side in [Side::Client, Side::Server] {
        assert!(lab.log_lines(side, 0, "link link0: up").is_empty(), "{}: link came up", side.name());
        assert!(!lab.hook_calls(side).iter().any(|c| c.event() == "tuntap_up"), "{}: tuntap_up", side.name());
        assert!(!lab.tun_up(side), "{}: TUN up with a wrong password", side.name());
    }
    assert_eq!(auth.len(), 1, "server should report the failed authentication exactly once: {auth:?}");
    let want = format!("link link0: authentication failed from {}", lab.links[0].client_ip);
    assert!(auth[0].contains(&want) && auth[0].contains("(wrong password?)"), "server line {:?}", auth[0]);
    assert!(client_said.is_some(), "client never said `link link0: no answer to handshake`");
}

/// A broken config: `--check` and a start both exit non-zero with `FILE:LINE: KEY: message`;
/// the valid config passes `--check`.
#[test]
fn broken_config() {
    let Some(_turn) = lab::daemon_scenario("broken_config") else { return };
    let lab = Lab::new(&[LinkSpec::unshaped()]);
    let bin = lab::mlvpn_bin().unwrap();
    let opts = TunnelOpts::default();
    let check = |path: &Path| -> (bool, String) {
        let out = std::process::Command::new(&bin).arg("--config").arg(path).arg("--check").output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let start = |path: &Path| -> (bool, String) {
        let argv =
            [bin.to_str().unwrap(), "--config", path.to_str().unwrap(), "--debug", "--yes-run-as-root"];
        let out = lab.run(Side::Client, "start-broken", &argv, Duration::from_secs(10));
        (out.status.success(), format!("{}{}", out.stdout, out.stderr))
    };

    let good = lab.client_config(&opts);
    let path = lab.write_file("good.conf", &good, 0o600);
    let (ok, msg) = check(&path);
    assert!(ok, "--check rejects the lab's valid client config: {msg}");
    let (ok, msg) = check(&lab.write_file("good-server.conf", &lab.server_config(&opts), 0o600));
    assert!(ok, "--check rejects the lab's valid server config: {msg}");

    for (name, text, key, line) in broken_configs(&good) {
        let path = lab.write_file(&format!("{name}.conf"), &text, 0o600);
        let want = format!("{}:{line}: {key}: ", path.display());
        for (how, (ok, msg)) in [("--check", check(&path)), ("start", start(&path))] {
            println!("{name} ({how}): {}", msg.trim());
            assert!(!ok, "{name}: {how} exited 0");
            assert!(msg.contains(&want), "{name}: {how} did not print `{want}...`: {msg}");
        }
    }

    // The password file must not be readable by others.
    let path = lab.write_file("world-readable.conf", &good, 0o644);
    for (how, (ok, msg)) in [("--check", check(&path)), ("start", start(&path))] {
        println!("world-readable ({how}): {}", msg.trim());
        assert!(!ok, "world-readable config: {how} exited 0");
        assert!(
            msg.contains(&path.display().to_string()),
            "world-readable config: {how} does not name the file"
        );
    }
}
