//! Benchmark of `mlvpn` in network namespaces (the lab of `tests/netns/lab.rs`).
//!
//! `cargo bench --bench netns` (as root). Prints a table:
//! * one unshaped link: TCP throughput each way, and the CPU seconds each daemon spends per GB
//!   carried (utime + stime from /proc/PID/stat of the daemon and its children, before/after);
//! * the same link: UDP packets per second at 64 and 1400 bytes (IP packet size; iperf3 sending
//!   as fast as it can), with each daemon's CPU µs per packet it handled (packets counted on the
//!   TUN devices) and, beside it, what the crypto alone costs per packet on this machine (a
//!   seal for the sender, an open for the receiver), so the overhead beyond crypto shows;
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

use lab::{Lab, LinkSpec, Side, TUN_DEVICE, TunnelOpts};
use mlvpn::proto::crypto::{self, Key};
use std::time::Duration;

struct Row {
    scenario: String,
    direction: String,
    mbit: f64,
    note: String,
    cpu_client: Option<f64>,
    cpu_server: Option<f64>,
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

/// One UDP rate measurement: packets per second through the tunnel and CPU per packet.
struct UdpRow {
    size: usize,
    offered_pps: f64,
    received_pps: f64,
    delivered_pps: f64,
    /// Datagrams the receiving namespace's kernel dropped on full socket buffers (the
    /// daemon's link socket and iperf3's: the received column tells the daemon's apart).
    socket_drops_pps: f64,
    /// CPU µs per packet: the sending daemon per packet read from its TUN, the receiving one per
    /// datagram it received.
    us_sender: f64,
    us_receiver: f64,
    /// µs of crypto per packet on this machine: seal (sender), open (receiver).
    seal_us: f64,
    open_us: f64,
}

/// Datagrams a side's daemon received on all its links (`recvpackets` of `mlvpn status`).
fn received_datagrams(lab: &Lab, side: Side) -> f64 {
    let text = lab.status(side, true);
    let doc = json::Json::parse(&text).unwrap_or_else(|e| panic!("mlvpn status --json: {e}: {text}"));
    let links = doc.get("tunnels").and_then(json::Json::as_array).unwrap_or(&[]);
    links.iter().filter_map(|l| l.get("recvpackets").and_then(json::Json::as_f64)).sum()
}

/// Packets through a side's TUN device as the kernel counts them (a super-packet is one):
/// (rx, tx). tx: handed to the daemon.
fn tun_packets(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        if name.trim() != TUN_DEVICE {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() >= 10 {
            return (f[1], f[9]);
        }
    }
    (0, 0)
}

/// Mean µs per call of seal and of open for `len` bytes of plaintext.
fn crypto_us(len: usize) -> (f64, f64) {
    let key = Key([7; 32]);
    let n = 20_000usize;
    let nonce = |i: usize| {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&(i as u64).to_be_bytes());
        b
    };
    let mut buf = vec![0u8; crypto::TAG_LEN + len];
    let start = std::time::Instant::now();
    for i in 0..n {
        crypto::seal(&key, &nonce(i), &mut buf);
    }
    let seal = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    // Open needs a fresh box each time (it decrypts in place): a pool of sealed ones, each
    // copied into place first (a copy costs a few ns, next to a µs of crypto).
    let pool: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            let mut b = vec![0u8; crypto::TAG_LEN + len];
            crypto::seal(&key, &nonce(i), &mut b);
            b
        })
        .collect();
    let start = std::time::Instant::now();
    for i in 0..n {
        buf.copy_from_slice(&pool[i % 64]);
        crypto::open(&key, &nonce(i % 64), &mut buf).expect("open");
    }
    let open = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    (seal, open)
}

/// UDP from the client to the server through the tunnel, `size`-byte IP packets, as fast as
/// iperf3 sends them, for `secs`.
fn udp_rate(lab: &mut Lab, size: usize, secs: f64) -> UdpRow {
    let (from, to) = (Side::Client, Side::Server);
    let dst = to.tun_ip();
    let port = "5202";
    let mut server = lab.spawn(to, "iperf3-udp-server", &["iperf3", "-s", "-1", "-B", dst, "-p", port]);
    lab::poll_until(Duration::from_secs(5), || lab.tcp_listening(to, 5202)).expect("iperf3 server");
    let pids = [lab.daemon_pid(from), lab.daemon_pid(to)];
    let cpu0 = pids.map(lab::cpu_seconds);
    let (_, handed0) = tun_packets(pids[0]);
    let received0 = received_datagrams(lab, to);
    let rcvbuf = |pid| lab::udp_counters(pid).get("RcvbufErrors").copied().unwrap_or(0);
    let drops0 = rcvbuf(pids[1]);
    let payload = (size - 28).to_string(); // IPv4 + UDP headers
    let secs_s = secs.to_string();
    let started = std::time::Instant::now();
    let out = lab.run(
        from,
        "iperf3-udp-client",
        &["iperf3", "-u", "-b", "0", "-l", &payload, "-t", &secs_s, "-c", dst, "-p", port, "-J"],
        Duration::from_secs_f64(secs + 30.0),
    );
    let elapsed = started.elapsed().as_secs_f64().min(secs + 1.0);
    let cpu1 = pids.map(lab::cpu_seconds);
    let (_, handed1) = tun_packets(pids[0]);
    let received1 = received_datagrams(lab, to);
    let drops1 = rcvbuf(pids[1]);
    server.wait_timeout(Duration::from_secs(5));
    // What the receiving application got: iperf3's count of datagrams sent less those lost.
    let doc =
        json::Json::parse(&out.stdout).unwrap_or_else(|e| panic!("iperf3 -u JSON: {e}: {}", out.stdout));
    let count = |k: &str| doc.at(&["end", "sum", k]).and_then(json::Json::as_f64).unwrap_or(0.0);
    let delivered = count("packets") - count("lost_packets");
    let handed = (handed1 - handed0) as f64;
    let received = received1 - received0;
    let (seal_us, open_us) = crypto_us(size);
    UdpRow {
        size,
        offered_pps: handed / elapsed,
        received_pps: received / elapsed,
        delivered_pps: delivered / elapsed,
        socket_drops_pps: drops1.saturating_sub(drops0) as f64 / elapsed,
        us_sender: (cpu1[0] - cpu0[0]) * 1e6 / handed.max(1.0),
        us_receiver: (cpu1[1] - cpu0[1]) * 1e6 / received.max(1.0),
        seal_us,
        open_us,
    }
}

fn main() {
    let Some(bin) = lab::bench_binary("netns") else { return };
    let secs: f64 = std::env::var("MLVPN_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    println!("binary: {}", bin.display());
    println!("machine: {} cores, kernel {}", num_cpus(), lab::host(&["uname", "-r"]).trim());
    println!(
        "each flow: one TCP connection (iperf3, {}), {secs} s; rates are receiver means from 1 s on\n",
        lab::tcp_congestion_control().unwrap_or("default congestion control".into())
    );

    let mut rows = Vec::new();
    let mut udp_rows = Vec::new();
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
        for size in [64, 1400] {
            udp_rows.push(udp_rate(&mut lab, size, secs.min(5.0)));
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
        "\nUDP through 1 unshaped link, client → server (iperf3 -u -b 0), packets/s and CPU µs per packet"
    );
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>12}  {:>10} {:>8} {:>8}  {:>10} {:>8} {:>8}",
        "bytes",
        "into tunnel",
        "received",
        "delivered",
        "socket drops",
        "sender µs",
        "seal",
        "beyond",
        "receiver",
        "open",
        "beyond"
    );
    for u in &udp_rows {
        println!(
            "{:>6} {:>12.0} {:>12.0} {:>12.0} {:>12.0}  {:>10.2} {:>8.2} {:>8.2}  {:>10.2} {:>8.2} {:>8.2}",
            u.size,
            u.offered_pps,
            u.received_pps,
            u.delivered_pps,
            u.socket_drops_pps,
            u.us_sender,
            u.seal_us,
            u.us_sender - u.seal_us,
            u.us_receiver,
            u.open_us,
            u.us_receiver - u.open_us
        );
    }
    println!(
        "(packets per second: into tunnel: handed by the client's TUN to its daemon; received: datagrams"
    );
    println!(" the server's daemon received; delivered: datagrams iperf3's receiver got; socket drops: what");
    println!(" the server namespace's kernel dropped on full UDP socket buffers (iperf3's, when received");
    println!(" matches into tunnel). µs: the daemon's");
    println!(" user + system CPU per packet into the tunnel (sender) or received (receiver), kernel work in");
    println!(" its syscalls included: on veth, sending runs the peer's receive path too)");
    println!(
        "\n(CPU s/GB: user + system CPU seconds of the daemon and its children per 10^9 bytes received;"
    );
    println!(" CPU pressure: share of the flow's time during which some task on the machine, ours included,");
    println!(" waited for a CPU; a flow that fills both cores by itself shows 50-80 %)");
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
