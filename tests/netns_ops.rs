//! End-to-end evidence for operating the daemon (issue 6), in network namespaces: the control
//! socket (status JSON, Prometheus metrics, HTTP, `mlvpn status`) while traffic flows, SIGHUP
//! reloads during a transfer, and a crowd of control clients plus silent ones.
//!
//! Run as root: `cargo test --test netns_ops -- --nocapture` (figures are printed). Without
//! root each test prints `SKIPPED: needs root` and passes. Needs (Debian): iproute2 nftables
//! iperf3 python3 python3-prometheus-client. The lab is `tests/netns/lab.rs`; the daemons are
//! started by `tests/netns/ops.rs` **with privilege separation** (no `--yes-run-as-root`), as
//! in production, so every SIGHUP goes to the privileged parent.
//!
//! Flows that must show a loss or a dip are paced (`Rig::pace`: a `tbf` on the sender's TUN
//! that holds TCP back instead of dropping), so that on a loaded two-core machine the tunnel is
//! never the bottleneck and any packet lost or delayed by the daemon is visible in its counters
//! and in TCP's retransmits. Checks whose baseline the machine can spoil retry (up to three
//! attempts, the CPU pressure printed with each), as the scenarios of `tests/netns.rs` do.

#[path = "control_common/mod.rs"]
mod control_common;
#[path = "netns/json.rs"]
mod json;
#[path = "netns/lab.rs"]
mod lab;
#[path = "netns/ops.rs"]
mod ops;
#[path = "netns/traffic.rs"]
mod traffic;

use json::Json;
use lab::{LinkSpec, Side, TUN_SERVER_IP, TunnelOpts};
use ops::{Mode, ProcStats, Rig, Snapshot};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The HTTP control listener in each namespace (its own loopback).
const HTTP_PORT: u16 = 8372;

fn http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], HTTP_PORT))
}

fn with_http(mut opts: TunnelOpts) -> TunnelOpts {
    opts.extra_general.push(("control_bind_host".into(), "127.0.0.1".into()));
    opts.extra_general.push(("control_bind_port".into(), HTTP_PORT.to_string()));
    opts
}

fn mbit(bps: f64) -> f64 {
    bps / 1e6
}

// =============================================================================================
// Prometheus text, read back with the reference parser
// =============================================================================================

/// One metric family as `prometheus_client.parser` read it.
#[derive(Debug, Clone)]
struct Family {
    name: String,
    kind: String,
    help: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

#[derive(Debug, Clone)]
struct Metrics {
    families: Vec<Family>,
}

/// Separates documents on the parser's stdin (a record separator on a line of its own).
const SEPARATOR: &str = "\x1e\n";

/// Parses each document (split on [`SEPARATOR`]) with Python's
/// `prometheus_client.parser.text_string_to_metric_families` and hands every family back as
/// JSON, one line per document.
const PROM_TO_JSON: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
for text in sys.stdin.read().split("\x1e\n"):
    out = []
    for f in text_string_to_metric_families(text):
        out.append({"name": f.name, "type": f.type, "help": f.documentation,
                    "samples": [[s.name, s.labels, s.value if math.isfinite(s.value) else str(s.value)]
                                for s in f.samples]})
    print(json.dumps(out))
"#;

impl Metrics {
    /// Parses every document with one Python process. `None` (after a loud note) when
    /// Python's `prometheus_client` is missing, outside CI (under CI that fails).
    fn parse_all(texts: &[&str]) -> Option<Vec<Metrics>> {
        assert!(texts.iter().all(|t| !t.contains('\x1e')));
        let out = control_common::python(PROM_TO_JSON, &texts.join(SEPARATOR), "prometheus_client")?;
        let docs: Vec<Metrics> = out.lines().map(Metrics::from_parser).collect();
        assert_eq!(
            docs.len(),
            texts.len(),
            "the parser returned {} documents of {}",
            docs.len(),
            texts.len()
        );
        Some(docs)
    }

    fn from_parser(line: &str) -> Metrics {
        let doc = Json::parse(line.trim()).unwrap_or_else(|e| panic!("parser output: {e}: {line}"));
        let mut families = Vec::new();
        for f in doc.as_array().expect("a list of families") {
            let s = |k: &str| f.get(k).and_then(Json::as_str).unwrap_or("").to_string();
            let samples = f
                .get("samples")
                .and_then(Json::as_array)
                .unwrap_or(&[])
                .iter()
                .map(|s| {
                    let a = s.as_array().expect("sample");
                    let labels = match &a[1] {
                        Json::Obj(m) => {
                            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").into())).collect()
                        }
                        _ => BTreeMap::new(),
                    };
                    (a[0].as_str().unwrap_or("").to_string(), labels, a[2].as_f64().unwrap_or(f64::NAN))
                })
                .collect();
            families.push(Family { name: s("name"), kind: s("type"), help: s("help"), samples });
        }
        Metrics { families }
    }

    fn value(&self, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families.iter().flat_map(|f| &f.samples).find_map(|(n, l, v)| {
            (n == sample && labels.iter().all(|(k, want)| l.get(*k).is_some_and(|x| x == want))).then_some(*v)
        })
    }

    fn kind(&self, family: &str) -> Option<&str> {
        self.families.iter().find(|f| f.name == family).map(|f| f.kind.as_str())
    }

    fn samples(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }
}

/// Per-link JSON counters and the metric that carries each.
const LINK_COUNTERS: [(&str, &str); 7] = [
    ("sentpackets", "mlvpn_link_sent_packets"),
    ("recvpackets", "mlvpn_link_recv_packets"),
    ("sentbytes", "mlvpn_link_sent_bytes"),
    ("recvbytes", "mlvpn_link_recv_bytes"),
    ("disconnects", "mlvpn_link_disconnects"),
    ("handshakes", "mlvpn_link_handshakes"),
    ("handshake_failures", "mlvpn_link_handshake_failures"),
];

fn link_field(s: &Snapshot, link: &str, key: &str) -> f64 {
    let t = s.doc.get("tunnels").and_then(Json::as_array).unwrap_or(&[]);
    t.iter()
        .find(|t| t.get("name").and_then(Json::as_str) == Some(link))
        .and_then(|t| t.get(key))
        .and_then(Json::as_f64)
        .unwrap_or_else(|| panic!("status: tunnel {link} has no number {key}"))
}

/// Checks metrics `m`, taken between status documents `a` and `b`, against them: every counter
/// lies between its two JSON values (they are taken under traffic, so only a sandwich is exact),
/// gauges that did not change equal them, and every family has its type and help. Returns the
/// number of values compared.
fn check_metrics_between(a: &Snapshot, m: &Metrics, b: &Snapshot, what: &str) -> usize {
    let mut compared = 0;
    let between = |name: &str, lo: f64, v: Option<f64>, hi: f64| {
        let v = v.unwrap_or_else(|| panic!("{what}: no sample {name}"));
        assert!(lo <= v && v <= hi, "{what}: {name} = {v}, not within the status documents' [{lo}, {hi}]");
    };
    for l in &a.links {
        let n = l.name.as_str();
        for (key, family) in LINK_COUNTERS {
            let sample = format!("{family}_total");
            between(
                &format!("{sample}{{tunnel={n}}}"),
                link_field(a, n, key),
                m.value(&sample, &[("tunnel", n)]),
                link_field(b, n, key),
            );
            assert_eq!(m.kind(family), Some("counter"), "{what}: {family} must be a counter");
            compared += 1;
        }
        let bl = b.link(n).expect("link in both documents");
        if l.state == bl.state {
            for s in ["down", "authenticating", "up", "lossy", "slow"] {
                let want = if s == l.state { 1.0 } else { 0.0 };
                assert_eq!(
                    m.value("mlvpn_link_state", &[("tunnel", n), ("state", s)]),
                    Some(want),
                    "{what}: {n} {s}"
                );
            }
            assert_eq!(
                m.value("mlvpn_link_up", &[("tunnel", n)]),
                Some(f64::from(u8::from(l.state == "up")))
            );
            compared += 6;
        }
        assert_eq!(m.value("mlvpn_link_timeout_seconds", &[("tunnel", n)]), Some(l.timeout as f64), "{what}");
        assert_eq!(
            m.value("mlvpn_link_bandwidth_bytes_per_second", &[("tunnel", n)]),
            Some(link_field(a, n, "bandwidth")),
            "{what}"
        );
        compared += 2;
    }
    for (reason, lo) in a.drops() {
        between(
            &format!("mlvpn_drops_total{{reason={reason}}}"),
            lo as f64,
            m.value("mlvpn_drops_total", &[("reason", &reason)]),
            b.drop_count(&reason) as f64,
        );
        compared += 1;
    }
    for k in ["in_order", "reordered", "late", "duplicate", "skipped", "full"] {
        let name = format!("mlvpn_reorder_{k}_total");
        between(&name, a.reorder(k) as f64, m.value(&name, &[]), b.reorder(k) as f64);
        assert_eq!(m.kind(&format!("mlvpn_reorder_{k}")), Some("counter"), "{what}");
        compared += 1;
    }
    between(
        "mlvpn_handshake_failures_total",
        a.top("handshake_failures") as f64,
        m.value("mlvpn_handshake_failures_total", &[]),
        b.top("handshake_failures") as f64,
    );
    assert_eq!(m.value("mlvpn_links", &[]), Some(a.links.len() as f64), "{what}: mlvpn_links");
    let mode = a.doc.get("mode").and_then(Json::as_str).unwrap_or("");
    assert_eq!(
        m.value("mlvpn_info", &[("mode", mode), ("tuntap_name", lab::TUN_DEVICE)]),
        Some(1.0),
        "{what}: mlvpn_info"
    );
    for f in &m.families {
        assert!(matches!(f.kind.as_str(), "counter" | "gauge"), "{what}: {} has type {}", f.name, f.kind);
        assert!(!f.help.is_empty(), "{what}: {} has no HELP", f.name);
    }
    compared + 3
}

// =============================================================================================
// 1. Status and metrics while a transfer flows
// =============================================================================================

/// Documents fetched during the flow, in order: (what, status before, metrics, status after).
struct Sandwich {
    what: String,
    before: Snapshot,
    metrics_text: String,
    after: Snapshot,
}

fn unix_query(rig: &Rig, side: Side, command: &str) -> (String, Duration) {
    let t = Instant::now();
    let doc = mlvpn::control::query(&rig.control_path(side), command, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{} {command} during the flow: {e}", side.name()));
    (doc, t.elapsed())
}

fn http_get(rig: &Rig, side: Side, path: &'static str) -> (u16, String, Duration) {
    let t = Instant::now();
    let (code, body) = ops::in_netns(&rig.ns(side), move || {
        mlvpn::control::query_http(http_addr(), path, Duration::from_secs(5))
    })
    .unwrap_or_else(|e| panic!("{} GET {path}: {e}", side.name()));
    (code, body, t.elapsed())
}

/// `status` (JSON) and `metrics` (Prometheus), over the UNIX socket and over HTTP, both
/// daemons, every 0.25 s during a TCP transfer: every document parses (the JSON with the
/// lab's reader, the metrics with `prometheus_client`); each metrics document agrees with the
/// status documents taken just before and after it; the counters match what crossed (the
/// receiver's `recvbytes` over all links ≥ the bytes iperf3 moved, within the protocol's
/// overhead; sent ≥ received on the other side; the kernel's veth counters ≥ the daemon's).
/// `mlvpn status` prints its table, `--json` the document, `-c FILE` finds the socket.
#[test]
fn status_and_metrics_during_transfer() {
    let Some(_turn) = lab::daemon_scenario("status_and_metrics_during_transfer") else { return };
    let mut rig = Rig::new(&[LinkSpec::unshaped(), LinkSpec::unshaped()]);
    let (client_conf, _) = rig.start_both(&with_http(TunnelOpts::default()), Mode::Separated);
    rig.wait_tunnel(Duration::from_secs(20));
    // Paced (at a rate far above what a status document needs to be interesting) so that a
    // loaded machine does not drop datagrams between the daemons and spoil the comparison.
    rig.pace(Side::Client, 100.0);

    let s0 = [rig.snapshot(Side::Client), rig.snapshot(Side::Server)];
    let wire0 = rig.net_dev(Side::Server);
    let frames0 = rig.net_dev_packets(Side::Server);
    const SECS: f64 = 6.0;
    let flow = traffic::iperf_start(&rig, Side::Client, TUN_SERVER_IP, 5201, SECS);
    std::thread::sleep(Duration::from_millis(700));
    let mut sandwiches = Vec::new();
    let mut http_docs = Vec::new();
    let mut latencies = Vec::new();
    let mut k = 0;
    while flow.elapsed() < SECS - 0.7 {
        let side = if k % 2 == 0 { Side::Server } else { Side::Client };
        let (a, t1) = unix_query(&rig, side, "status");
        let (m, t2) = unix_query(&rig, side, "metrics");
        let (b, t3) = unix_query(&rig, side, "status");
        let parse = |text: &str| {
            Snapshot::parse(text).unwrap_or_else(|e| panic!("{} status: {e}\n{text}", side.name()))
        };
        let (before, after) = (parse(&a), parse(&b));
        sandwiches.push(Sandwich {
            what: format!("{} UNIX #{k}", side.name()),
            before: before.clone(),
            metrics_text: m,
            after: after.clone(),
        });
        // The same over HTTP, between two more UNIX documents.
        let (code_s, body_s, t4) = http_get(&rig, side, "/status");
        let (code_m, body_m, t5) = http_get(&rig, side, "/metrics");
        let (c, t6) = unix_query(&rig, side, "status");
        assert_eq!((code_s, code_m), (200, 200), "{} HTTP status codes", side.name());
        let http_status = parse(&body_s);
        let after_http = parse(&c);
        for l in &http_status.links {
            let (lo, hi) = (after.link(&l.name).unwrap(), after_http.link(&l.name).unwrap());
            assert!(
                lo.recv_bytes <= l.recv_bytes && l.recv_bytes <= hi.recv_bytes,
                "HTTP /status out of order"
            );
        }
        sandwiches.push(Sandwich {
            what: format!("{} HTTP #{k}", side.name()),
            before: after,
            metrics_text: body_m,
            after: after_http,
        });
        http_docs.push(body_s);
        latencies.extend([t1, t2, t3, t4, t5, t6]);
        k += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    let run = flow.finish();
    std::thread::sleep(Duration::from_millis(500));
    let s1 = [rig.snapshot(Side::Client), rig.snapshot(Side::Server)];
    let wire1 = rig.net_dev(Side::Server);
    let frames1 = rig.net_dev_packets(Side::Server);

    let max_ms = latencies.iter().max().unwrap().as_secs_f64() * 1e3;
    let mean_ms = latencies.iter().map(Duration::as_secs_f64).sum::<f64>() / latencies.len() as f64 * 1e3;
    println!(
        "flow client → server: {:.1} Mbit/s, {} bytes, {:?} retransmits; {} control answers during it \
         (UNIX and HTTP), latency mean {mean_ms:.1} ms, max {max_ms:.1} ms",
        mbit(run.receiver_bps),
        run.bytes_received,
        run.retransmits,
        latencies.len()
    );
    assert!(run.bytes_received > 10e6, "the flow moved only {} bytes", run.bytes_received);

    // Every metrics document parses and lies between its status documents.
    let mut compared = 0;
    let mut samples = 0;
    let texts: Vec<&str> = sandwiches.iter().map(|s| s.metrics_text.as_str()).collect();
    for (s, m) in sandwiches.iter().zip(Metrics::parse_all(&texts).unwrap_or_default()) {
        samples = m.samples();
        compared += check_metrics_between(&s.before, &m, &s.after, &s.what);
    }
    println!(
        "{} metrics documents parsed by prometheus_client ({samples} samples each), {compared} values checked \
         against the status documents around them",
        sandwiches.len()
    );

    // The counters against what crossed.
    let d = |side: usize, f: fn(&ops::LinkSnap) -> u64| s1[side].sum(f) - s0[side].sum(f);
    let (c_sent, s_recv) = (d(0, |l| l.sent_bytes), d(1, |l| l.recv_bytes));
    let (s_sent, c_recv) = (d(1, |l| l.sent_bytes), d(0, |l| l.recv_bytes));
    let (c_sent_p, s_recv_p) = (d(0, |l| l.sent_packets), d(1, |l| l.recv_packets));
    let moved = run.bytes_received;
    let retransmitted = run.retransmits.unwrap_or(0.0) * 1448.0;
    println!(
        "client sent {c_sent} B / {c_sent_p} packets, server received {s_recv} B / {s_recv_p} packets \
         ({:.3} × the {moved} bytes iperf3 moved); server sent {s_sent} B, client received {c_recv} B",
        s_recv as f64 / moved
    );
    assert!(s_recv as f64 >= moved, "server recvbytes {s_recv} < the {moved} bytes the transfer moved");
    // Inner IP/TCP headers (52 of 1400 bytes) and mlvpn's 33 bytes: ≈ 6 %; allow 10 %, plus
    // what TCP sent twice and 1 MB of keepalives and the iperf3 control connection.
    let most = (moved + retransmitted) * 1.10 + 1e6;
    assert!((s_recv as f64) <= most, "server recvbytes {s_recv} > {most:.0}: counts more than crossed");
    // The two daemons' counters are read one after the other: a keepalive or tail probe (≤ 74
    // bytes each) sent in between counts on one side only.
    assert!(c_sent + 1024 >= s_recv && c_sent_p + 8 >= s_recv_p, "client sent less than the server received");
    assert!(s_sent + 1024 >= c_recv, "server sent {s_sent} < client received {c_recv}");
    assert!((c_sent - s_recv) as f64 <= 0.01 * c_sent as f64, "1 % of the bytes lost between the daemons");
    for l in &rig.links {
        let (rx0, rx1) = (wire0[&l.server_if].0, wire1[&l.server_if].0);
        let wire = rx1 - rx0;
        let counted = s1[1].link(&l.name).unwrap().recv_bytes - s0[1].link(&l.name).unwrap().recv_bytes;
        let packets = s1[1].link(&l.name).unwrap().recv_packets - s0[1].link(&l.name).unwrap().recv_packets;
        let frames = frames1[&l.server_if].0 - frames0[&l.server_if].0;
        // What the daemon counts whole (mlvpn header included) is 42 bytes more per frame on
        // the wire: Ethernet 14, IPv4 20, UDP 8. A frame is one datagram, or a run of them sent
        // with UDP segmentation offload (veth carries the run whole, with one set of headers).
        // ARP frames are 42 bytes of headers with nothing counted.
        let extra = wire as i64 - counted as i64 - 42 * frames as i64;
        println!(
            "  {}: veth {} received {wire} B in {frames} frames, the daemon counted {counted} B in \
             {packets} datagrams",
            l.name, l.server_if
        );
        assert!(wire >= counted, "{}: the daemon counted more bytes than the veth received", l.name);
        assert!(frames <= packets + 64, "{}: more frames than datagrams", l.name);
        assert!((0..=4096).contains(&extra), "{}: wire − counted − 42 × frames = {extra} bytes", l.name);
    }
    // Reverse direction: HTTP documents parsed too.
    println!("{} HTTP /status documents parsed", http_docs.len());

    // mlvpn status on the command line.
    let table = rig.status(Side::Server, false);
    println!("mlvpn status (server):\n{}", table.trim_end());
    for l in &rig.links {
        assert!(
            table.lines().any(|x| x.starts_with(&l.name) && x.contains(" up ")),
            "table row of {}",
            l.name
        );
    }
    let json = rig.status(Side::Client, true);
    let doc = Snapshot::parse(&json).unwrap_or_else(|e| panic!("mlvpn status --json: {e}\n{json}"));
    assert_eq!(doc.names(), ["link0", "link1"]);
    let out = std::process::Command::new(rig.bin.as_ref().unwrap())
        .args(["status", "--json", "-c"])
        .arg(&client_conf)
        .output()
        .expect("mlvpn status -c");
    assert!(out.status.success(), "mlvpn status -c: {}", String::from_utf8_lossy(&out.stderr));
    Snapshot::parse(&String::from_utf8_lossy(&out.stdout)).expect("mlvpn status -c FILE --json");
    println!("mlvpn status --json and -c {} --json: valid documents", client_conf.display());
}

// =============================================================================================
// 2. Reload in place
// =============================================================================================

/// Writes both configs for `opts` with only the links named, returns their paths.
fn write_configs_with(
    rig: &Rig,
    opts: &TunnelOpts,
    links: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        rig.write_file("client.conf", &ops::only_links(&rig.client_config(opts), links), 0o600),
        rig.write_file("server.conf", &ops::only_links(&rig.server_config(opts), links), 0o600),
    )
}

/// SIGHUP to both privileged parents (server first) and waits for both `reloaded` lines after
/// `marks`; returns them.
fn reload_both(rig: &mut Rig, marks: [usize; 2]) -> [String; 2] {
    rig.reload(Side::Server);
    rig.reload(Side::Client);
    let mut lines = [String::new(), String::new()];
    for (k, side) in [Side::Client, Side::Server].into_iter().enumerate() {
        if rig.wait_log(side, ops::mark(marks, side), "reloaded ", Duration::from_secs(5)).is_none() {
            panic!(
                "{}: no `reloaded` line within 5 s of SIGHUP:\n{}",
                side.name(),
                lab::tail(&rig.log(side), 20)
            );
        }
        lines[k] = rig.log_lines(side, ops::mark(marks, side), "reloaded ")[0].clone();
        rig.assert_running(side);
    }
    lines
}

/// One attempt at the lossless reload: a paced flow, SIGHUP to both parents at 4 s with a
/// changed `timeout`, windows of engine counters before (1.5–3.5 s) and around (3.5–8 s) it.
fn reload_unchanged_attempt(rig: &mut Rig, attempt: u32, timeout: u32) -> Result<(), String> {
    const PACE: f64 = 40.0;
    const SECS: f64 = 10.0;
    const RELOAD_AT: f64 = 4.0;
    let port = 5210 + attempt as u16;
    let pressure = lab::CpuPressure::start();
    let flow = traffic::iperf_start(rig, Side::Client, TUN_SERVER_IP, port, SECS);
    let t0 = flow.started;
    ops::sleep_until(t0, 1.5);
    let base = [rig.snapshot(Side::Client), rig.snapshot(Side::Server)];
    ops::sleep_until(t0, RELOAD_AT - 0.5);
    let before = [rig.snapshot(Side::Client), rig.snapshot(Side::Server)];
    let marks = ops::log_marks(rig);
    let opts = TunnelOpts { timeout, ..TunnelOpts::default() };
    write_configs_with(rig, &opts, &["link0", "link1"]);
    ops::sleep_until(t0, RELOAD_AT);
    let reload_at = flow.elapsed();
    let lines = reload_both(rig, marks);
    let applied = flow.elapsed();
    ops::sleep_until(t0, 8.0);
    let after = [rig.snapshot(Side::Client), rig.snapshot(Side::Server)];
    let run = flow.finish();
    let retr = ops::iperf_retransmits(rig, port);
    let retr_in =
        |a: f64, b: f64| retr.iter().filter(|r| r.0 >= a - 1e-6 && r.1 <= b + 1e-6).map(|r| r.2).sum::<f64>();

    let healthy = run.mean_bps_between(1.0, reload_at);
    let around = run.mean_bps_between(reload_at - 0.05, reload_at + 1.0);
    let min_around = run
        .receiver
        .iter()
        .filter(|i| i.start >= reload_at - 0.5 && i.end <= reload_at + 1.5)
        .map(|i| i.bps)
        .fold(f64::INFINITY, f64::min);
    let moved_base: Vec<_> = (0..2).flat_map(|k| ops::loss_counters_moved(&base[k], &before[k])).collect();
    let moved: Vec<String> = [Side::Client, Side::Server]
        .iter()
        .enumerate()
        .flat_map(|(k, s)| {
            ops::loss_counters_moved(&before[k], &after[k])
                .into_iter()
                .map(move |m| format!("{} {m}", s.name()))
        })
        .collect();
    let changes: Vec<String> = [Side::Client, Side::Server]
        .iter()
        .flat_map(|&s| ops::state_changes(rig, s, ops::mark(marks, s)))
        .collect();
    println!(
        "attempt {attempt}: SIGHUP at {reload_at:.2} s, applied by {applied:.2} s of a {SECS} s flow paced at {PACE} Mbit/s; \
         CPU pressure {}",
        ops::pressure_text(&pressure)
    );
    println!("  client: {}\n  server: {}", lines[0], lines[1]);
    println!("  receiver Mbit/s per 0.1 s: {}", run.sparkline());
    println!(
        "  rate: {:.1} Mbit/s before, {:.1} in the second after the reload (lowest 0.1 s: {:.1}); retransmits: \
         {} in the flow, {} from 3 s to 8 s",
        mbit(healthy),
        mbit(around),
        mbit(min_around),
        run.retransmits.unwrap_or(-1.0),
        retr_in(3.0, 8.0)
    );
    println!("  engine loss counters moved: baseline window {moved_base:?}, reload window {moved:?}");
    for k in 0..2 {
        for (a, b) in before[k].links.iter().zip(&after[k].links) {
            println!(
                "  {} {}: state {} → {}, handshakes {} → {}, disconnects {} → {}, timeout {} → {}",
                ["client", "server"][k],
                a.name,
                a.state,
                b.state,
                a.handshakes,
                b.handshakes,
                a.disconnects,
                b.disconnects,
                a.timeout,
                b.timeout
            );
        }
    }
    // What the daemon must do, whatever the machine's load.
    for line in &lines {
        if !line.contains("2 links unchanged, 0 with new addresses, 0 added, 0 removed") {
            panic!("reload did not keep both links: {line}");
        }
    }
    for k in 0..2 {
        for (a, b) in before[k].links.iter().zip(&after[k].links) {
            assert_eq!(b.timeout, u64::from(timeout), "the new timeout is not in force on {}", b.name);
            assert_eq!(
                (a.handshakes, a.disconnects, &a.state),
                (b.handshakes, b.disconnects, &b.state),
                "{}: the link was touched",
                a.name
            );
        }
    }
    assert!(changes.is_empty(), "link state changes logged during the reload: {changes:?}");
    // What the machine can spoil: then the baseline shows it too, and we try again.
    if !moved_base.is_empty() {
        return Err(format!(
            "the baseline window already lost packets ({moved_base:?}): the machine is overloaded"
        ));
    }
    if !moved.is_empty() {
        return Err(format!("packets lost around the reload: {moved:?}"));
    }
    if retr_in(3.0, 8.0) > 0.0 {
        return Err(format!("TCP retransmitted {} segments around the reload", retr_in(3.0, 8.0)));
    }
    if around < 0.8 * healthy {
        return Err(format!(
            "the flow dipped to {:.1} Mbit/s after the reload (before {:.1})",
            mbit(around),
            mbit(healthy)
        ));
    }
    Ok(())
}

/// SIGHUP reload, both sides, during a running TCP transfer:
/// 1. links unchanged (only `timeout` differs): nothing lost — no drop or reorder loss counter
///    moves, TCP retransmits nothing, the flow does not dip, no link changes state or
///    handshakes again, and the new timeout is in force;
/// 2. a link removed and another added: status shows the new set, the new link comes up on
///    both sides, the kept one is untouched, the flow goes on;
/// 3. a broken file: the log says it keeps the running configuration, the tunnel carries on,
///    and a good file afterwards reloads again.
#[test]
fn reload_during_transfer() {
    let Some(_turn) = lab::daemon_scenario("reload_during_transfer") else { return };
    let mut rig = Rig::new(&[LinkSpec::unshaped(), LinkSpec::unshaped(), LinkSpec::unshaped()]);
    let (c, s) = write_configs_with(&rig, &TunnelOpts::default(), &["link0", "link1"]);
    rig.start(Side::Server, &s, Mode::Separated);
    rig.start(Side::Client, &c, Mode::Separated);
    rig.wait_links_up(&["link0".into(), "link1".into()], Duration::from_secs(20));
    rig.lab.wait_tunnel(Duration::from_secs(10));
    rig.pace(Side::Client, 40.0);

    // 1. Unchanged links.
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        match reload_unchanged_attempt(&mut rig, attempt, 10 + attempt) {
            Ok(()) => break,
            Err(why) => {
                println!("  attempt {attempt} failed: {why}");
                failures.push(why);
            }
        }
    }
    assert!(failures.len() < 3, "lossless reload failed 3 times: {failures:#?}");
    let pids = [rig.pids(Side::Client), rig.pids(Side::Server)];

    // 2. link1 removed, link2 added, during a flow.
    let flow = traffic::iperf_start(&rig, Side::Client, TUN_SERVER_IP, 5220, 8.0);
    ops::sleep_until(flow.started, 2.0);
    let before = [rig.snapshot(Side::Client), rig.snapshot(Side::Server)];
    let marks = ops::log_marks(&rig);
    write_configs_with(&rig, &TunnelOpts::default(), &["link0", "link2"]);
    let t = Instant::now();
    let lines = reload_both(&mut rig, marks);
    let reloaded = t.elapsed().as_secs_f64();
    rig.wait_links_up(&["link0".into(), "link2".into()], Duration::from_secs(5));
    println!(
        "link1 removed, link2 added: both reloaded {reloaded:.2} s after SIGHUP, link2 up on both sides after {:.2} s\n  \
         client: {}\n  server: {}",
        t.elapsed().as_secs_f64(),
        lines[0],
        lines[1]
    );
    let run = flow.finish();
    println!(
        "  flow through it: {:.1} Mbit/s, receiver Mbit/s per 0.1 s: {}",
        mbit(run.receiver_bps),
        run.sparkline()
    );
    // (The "removed" count depends on which daemon took its SIGHUP first: see
    // `reload_removes_a_link_the_peer_removed_first` for that case, in a fixed order.)
    for line in &lines {
        assert!(line.contains("1 links unchanged, 0 with new addresses, 1 added, "), "{line}");
    }
    for (k, side) in [Side::Client, Side::Server].into_iter().enumerate() {
        let now = rig.snapshot(side);
        assert_eq!(now.names(), ["link0", "link2"], "{}: links after the reload", side.name());
        let (a, b) = (before[k].link("link0").unwrap(), now.link("link0").unwrap());
        assert_eq!(
            (a.handshakes, a.disconnects),
            (b.handshakes, b.disconnects),
            "{}: link0 was touched",
            side.name()
        );
        let link0_changes: Vec<_> = ops::state_changes(&rig, side, ops::mark(marks, side))
            .into_iter()
            .filter(|l| l.contains("link link0"))
            .collect();
        assert!(link0_changes.is_empty(), "{}: link0 changed state: {link0_changes:?}", side.name());
        assert!(
            !rig.log_lines(side, ops::mark(marks, side), "link link1: removed").is_empty(),
            "{}: link1 not removed",
            side.name()
        );
        let hooks: Vec<String> = rig.hook_calls(side).iter().map(|c| c.args.join(" ")).collect();
        assert!(
            hooks.iter().any(|h| h.ends_with("rtun_down link1")),
            "{}: no rtun_down link1 hook: {hooks:?}",
            side.name()
        );
        assert!(
            hooks.iter().any(|h| h.ends_with("rtun_up link2")),
            "{}: no rtun_up link2 hook: {hooks:?}",
            side.name()
        );
    }
    assert!(
        run.bytes_received > 0.0 && run.mean_bps_from(6.0) > 0.5 * 40e6 * 0.9,
        "the flow did not carry on after the reload"
    );

    // 3. A broken file on each side: refused, the tunnel carries on; a good one reloads again.
    let marks = ops::log_marks(&rig);
    let (c, s) = write_configs_with(&rig, &TunnelOpts::default(), &["link0", "link2"]);
    let broken_client = ops::set_key(&std::fs::read_to_string(&c).unwrap(), "general", "mtu", Some("lots"));
    let broken_server =
        ops::set_key(&std::fs::read_to_string(&s).unwrap(), "link2", "bindport", Some("99999"));
    rig.write_file("client.conf", &broken_client, 0o600);
    rig.write_file("server.conf", &broken_server, 0o600);
    rig.reload(Side::Server);
    rig.reload(Side::Client);
    for side in [Side::Client, Side::Server] {
        let said = rig.wait_log(
            side,
            ops::mark(marks, side),
            "reload: keeping the running configuration",
            Duration::from_secs(5),
        );
        let log = rig.log(side);
        let tail: Vec<&str> = log[ops::mark(marks, side)..].lines().take(3).collect();
        println!("{} on a broken file: {tail:?}", side.name());
        assert!(said.is_some(), "{}: no `reload: keeping the running configuration` line", side.name());
        assert!(
            rig.log_lines(side, ops::mark(marks, side), "reloaded ").is_empty(),
            "{}: reloaded a broken file",
            side.name()
        );
        rig.assert_running(side);
    }
    assert!(
        rig.log(Side::Client)[marks[0]..].contains(&format!("{}:", c.display())),
        "client: the error names no file"
    );
    assert!(rig.log(Side::Client)[marks[0]..].contains("mtu"), "client: the error names no key");
    let run = traffic::iperf(&rig, Side::Client, TUN_SERVER_IP, 5221, 3.0);
    println!("after the refused reload: {:.1} Mbit/s (paced at 40)", mbit(run.mean_bps_from(0.5)));
    assert!(run.mean_bps_from(0.5) > 0.5 * 40e6, "the tunnel does not carry traffic after a refused reload");
    for side in [Side::Client, Side::Server] {
        let now = rig.snapshot(side);
        assert_eq!(now.names(), ["link0", "link2"]);
        assert!(now.links.iter().all(|l| l.state == "up"), "{}: {:?}", side.name(), now.links);
        assert!(
            ops::state_changes(&rig, side, ops::mark(marks, side)).is_empty(),
            "{}: a link changed state",
            side.name()
        );
    }
    let marks = ops::log_marks(&rig);
    write_configs_with(&rig, &TunnelOpts { timeout: 20, ..TunnelOpts::default() }, &["link0", "link2"]);
    let lines = reload_both(&mut rig, marks);
    println!("a good file after the broken one: {lines:?}");
    assert!(rig.snapshot(Side::Client).links.iter().all(|l| l.timeout == 20));
    // The same processes all along.
    assert_eq!([rig.pids(Side::Client), rig.pids(Side::Server)], pids, "a daemon process was replaced");
}

/// The order an operator who edits the server first gets: the server drops link1 (and tells
/// the client, whose link1 goes down), then the client drops it too. The client's summary line
/// counts link1 as removed, and its hook runs `rtun_down link1` once — the link went down once.
#[test]
fn reload_removes_a_link_the_peer_removed_first() {
    let Some(_turn) = lab::daemon_scenario("reload_removes_a_link_the_peer_removed_first") else { return };
    let mut rig = Rig::new(&[LinkSpec::unshaped(), LinkSpec::unshaped()]);
    rig.start_both(&TunnelOpts::default(), Mode::Separated);
    rig.wait_tunnel(Duration::from_secs(20));
    let marks = ops::log_marks(&rig);
    write_configs_with(&rig, &TunnelOpts::default(), &["link0"]);
    rig.reload(Side::Server);
    let server_done = rig.wait_log(Side::Server, marks[1], "reloaded ", Duration::from_secs(5));
    let client_down =
        rig.wait_log(Side::Client, marks[0], "link link1: down (peer disconnected)", Duration::from_secs(5));
    rig.reload(Side::Client);
    let client_done = rig.wait_log(Side::Client, marks[0], "reloaded ", Duration::from_secs(5));
    assert!(server_done.is_some() && client_done.is_some(), "no `reloaded` line");
    let rtun_down = |side: Side| {
        rig.hook_calls(side)
            .iter()
            .filter(|c| c.event() == "rtun_down" && c.args.get(2).is_some_and(|l| l == "link1"))
            .count()
    };
    lab::poll_until(Duration::from_secs(2), || rtun_down(Side::Client) >= 1 && rtun_down(Side::Server) >= 1);
    std::thread::sleep(Duration::from_millis(300)); // room for a second, wrong, hook call
    for side in [Side::Server, Side::Client] {
        let from = ops::mark(marks, side);
        let lines: Vec<String> = rig.log(side)[from..]
            .lines()
            .filter(|l| l.contains("link1") || l.contains("reloaded"))
            .map(String::from)
            .collect();
        println!("{}: {lines:#?}\n  rtun_down link1 hook calls: {}", side.name(), rtun_down(side));
    }
    assert!(client_down.is_some(), "the client's link1 did not go down when the server removed it");
    for side in [Side::Server, Side::Client] {
        let line = &rig.log_lines(side, ops::mark(marks, side), "reloaded ")[0];
        assert!(
            line.contains("1 links unchanged, 0 with new addresses, 0 added, 1 removed"),
            "{}: {line}",
            side.name()
        );
        assert_eq!(
            rtun_down(side),
            1,
            "{}: `rtun_down link1` hook calls (link1 went down once)",
            side.name()
        );
        assert_eq!(rig.snapshot(side).names(), ["link0"]);
    }
}

// =============================================================================================
// 3. A crowd of control clients, and silent ones
// =============================================================================================

/// A control client that misbehaves: it holds its socket and we watch, without reading, when
/// the daemon closes it.
struct Silent {
    what: &'static str,
    fd: std::os::fd::OwnedFd,
    opened: Instant,
    closed_after: Option<Duration>,
}

impl Silent {
    fn new(what: &'static str, fd: std::os::fd::OwnedFd) -> Silent {
        Silent { what, fd, opened: Instant::now(), closed_after: None }
    }

    /// Whether the daemon has closed its end (POLLRDHUP/POLLHUP; nothing is read).
    fn check(&mut self) {
        if self.closed_after.is_some() {
            return;
        }
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
        // SAFETY: one valid pollfd, the count says 1, no wait.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0 {
            self.closed_after = Some(self.opened.elapsed());
        }
    }
}

fn small_rcvbuf(s: &std::net::TcpStream) {
    let v: libc::c_int = 1; // the kernel rounds it up to its minimum
    // SAFETY: setsockopt on an open socket with a pointer to a c_int and its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Opens the misbehaving clients against a side's daemon: over UNIX, one that never sends and
/// one that asks and never reads; over HTTP, one that never sends, one that sends half a
/// request, and one with the smallest receive buffer that asks for the metrics and never reads.
fn open_silent(rig: &Rig, side: Side) -> Vec<Silent> {
    let path = rig.control_path(side);
    let mut v = Vec::new();
    let never_sends = UnixStream::connect(&path).expect("connect");
    v.push(Silent::new("UNIX, never sends", never_sends.into()));
    let mut never_reads = UnixStream::connect(&path).expect("connect");
    never_reads.write_all(b"metrics\n").unwrap();
    v.push(Silent::new("UNIX, asks, never reads", never_reads.into()));
    let tcp: Vec<std::net::TcpStream> = ops::in_netns(&rig.ns(side), || {
        let a = std::net::TcpStream::connect(http_addr()).expect("connect");
        let mut b = std::net::TcpStream::connect(http_addr()).expect("connect");
        b.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap();
        let c = std::net::TcpStream::connect(http_addr()).expect("connect");
        small_rcvbuf(&c);
        let mut c = c;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        vec![a, b, c]
    });
    let names = ["HTTP, never sends", "HTTP, half a request", "HTTP, tiny buffer, never reads"];
    for (what, s) in names.into_iter().zip(tcp) {
        v.push(Silent::new(what, s.into()));
    }
    v
}

/// One client of the crowd: the answer, how long it took, and whether it was valid.
fn crowd_client(
    path: std::path::PathBuf,
    ns: String,
    k: usize,
    barrier: std::sync::Arc<std::sync::Barrier>,
) -> Result<(Duration, String), String> {
    barrier.wait();
    let t = Instant::now();
    if k % 5 == 4 {
        // Every fifth over HTTP, for the metrics.
        let (code, body) = ops::in_netns(&ns, || {
            mlvpn::control::query_http(http_addr(), "/metrics", Duration::from_secs(10))
        })
        .map_err(|e| format!("client {k}: HTTP: {e}"))?;
        if code != 200 || !body.contains("# TYPE mlvpn_link_up gauge") || !body.ends_with('\n') {
            return Err(format!("client {k}: HTTP {code}: {body:.200}"));
        }
        Ok((t.elapsed(), body))
    } else {
        let doc = mlvpn::control::query(&path, "status", Duration::from_secs(10))
            .map_err(|e| format!("client {k}: {e}"))?;
        Snapshot::parse(&doc).map_err(|e| format!("client {k}: {e}: {doc:.200}"))?;
        Ok((t.elapsed(), String::new()))
    }
}

/// `n` clients at once (a barrier releases them together); the answers' latencies and one
/// metrics document, or the first failure.
fn crowd(rig: &Rig, side: Side, n: usize) -> Result<(Vec<Duration>, String), String> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|k| {
            let (path, ns, b) = (rig.control_path(side), rig.ns(side), barrier.clone());
            std::thread::spawn(move || crowd_client(path, ns, k, b))
        })
        .collect();
    let mut lat = Vec::new();
    let mut metrics = String::new();
    for h in handles {
        let (d, m) = h.join().expect("client thread")?;
        lat.push(d);
        if !m.is_empty() {
            metrics = m;
        }
    }
    Ok((lat, metrics))
}

/// 50 control clients at once, every 0.25 s for 5 s, while a paced flow crosses, and five that
/// misbehave (never send, half a request, ask and never read — over UNIX and HTTP): every one
/// of the 1000 gets a valid document; the flow keeps its rate; the network process's fd count comes back
/// to where it was and its RSS does not grow; the silent clients are closed after the daemon's
/// 5 s timeout.
///
/// The flow's rate is a figure a loaded machine can spoil, and RSS one the flow's pools, which
/// allocate as they are first used, can raise in the first attempt: up to three attempts, the
/// CPU pressure printed with each; everything else is checked every time.
#[test]
fn control_crowd_and_silent_clients() {
    let Some(_turn) = lab::daemon_scenario("control_crowd_and_silent_clients") else { return };
    let mut rig = Rig::new(&[LinkSpec::unshaped(), LinkSpec::unshaped()]);
    rig.start_both(&with_http(TunnelOpts::default()), Mode::Separated);
    rig.wait_tunnel(Duration::from_secs(20));
    rig.pace(Side::Client, 40.0);
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        match crowd_attempt(&rig, attempt) {
            Ok(()) => break,
            Err(why) => {
                println!("  attempt {attempt} failed: {why}");
                failures.push(why);
            }
        }
    }
    assert!(failures.len() < 3, "the crowd test failed 3 times: {failures:#?}");
}

fn crowd_attempt(rig: &Rig, attempt: u32) -> Result<(), String> {
    const ROUNDS: usize = 20;
    const CLIENTS: usize = 50;
    const SECS: f64 = 14.0;
    let net = rig.net_pid(Side::Server);
    let parent = rig.pid(Side::Server);

    let pressure = lab::CpuPressure::start();
    let flow = traffic::iperf_start(rig, Side::Client, TUN_SERVER_IP, 5230 + attempt as u16, SECS);
    ops::sleep_until(flow.started, 1.5);
    crowd(rig, Side::Server, CLIENTS).expect("warm-up crowd"); // the daemon's client slots, in use once
    std::thread::sleep(Duration::from_millis(300));
    let before = (ProcStats::of(net).unwrap(), ProcStats::of(parent).unwrap());
    let storm_start = flow.elapsed();
    let mut silent = open_silent(rig, Side::Server);
    let with_silent = ProcStats::of(net).unwrap();
    let mut latencies = Vec::new();
    let mut metrics = Vec::new();
    let mut peak = with_silent;
    for round in 0..ROUNDS {
        ops::sleep_until(flow.started, storm_start + 0.25 * round as f64);
        let (lat, m) =
            crowd(rig, Side::Server, CLIENTS).unwrap_or_else(|e| panic!("a control client failed: {e}"));
        latencies.extend(lat);
        metrics.push(m);
        silent.iter_mut().for_each(Silent::check);
        let now = ProcStats::of(net).unwrap();
        peak = ProcStats { fds: peak.fds.max(now.fds), rss_kib: peak.rss_kib.max(now.rss_kib), ..now };
    }
    let storm_end = flow.elapsed();
    lab::poll_until(Duration::from_secs(9), || {
        silent.iter_mut().for_each(Silent::check);
        silent.iter().all(|s| s.closed_after.is_some())
    });
    std::thread::sleep(Duration::from_millis(200));
    let after = (ProcStats::of(net).unwrap(), ProcStats::of(parent).unwrap());
    let run = flow.finish();

    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let healthy = run.mean_bps_between(1.0, storm_start);
    let storm = run.mean_bps_between(storm_start, storm_end);
    println!(
        "{ROUNDS} × {CLIENTS} clients at once ({} UNIX status, {} HTTP metrics): all valid; latency median \
         {:.1} ms, 90 % {:.1} ms, max {:.1} ms; crowd from {storm_start:.1} s to {storm_end:.1} s",
        ROUNDS * CLIENTS * 4 / 5,
        ROUNDS * CLIENTS / 5,
        pct(0.5),
        pct(0.9),
        pct(1.0)
    );
    println!(
        "attempt {attempt}: flow paced at 40 Mbit/s: {:.1} before the crowd, {:.1} during it; CPU pressure {}; \
         receiver Mbit/s per 0.1 s: {}",
        mbit(healthy),
        mbit(storm),
        ops::pressure_text(&pressure),
        run.sparkline()
    );
    println!(
        "network process {net}: {} fds and {} KiB before, {} fds with the silent clients, peak {} fds / {} KiB, \
         {} fds and {} KiB after; privileged parent {parent}: {:?} → {:?}",
        before.0.fds,
        before.0.rss_kib,
        with_silent.fds,
        peak.fds,
        peak.rss_kib,
        after.0.fds,
        after.0.rss_kib,
        before.1,
        after.1
    );
    for s in &silent {
        println!(
            "  {}: closed by the daemon after {:?}",
            s.what,
            s.closed_after.map(|d| format!("{:.2} s", d.as_secs_f64()))
        );
    }
    if let Some(parsed) = Metrics::parse_all(&metrics.iter().map(String::as_str).collect::<Vec<_>>()) {
        println!("  {} metrics documents of the crowd parsed by prometheus_client", parsed.len());
    }
    assert!(with_silent.fds <= before.0.fds + silent.len(), "more than one fd per silent client");
    assert_eq!(
        after.0.fds, before.0.fds,
        "fds of the network process: {} before, {} after",
        before.0.fds, after.0.fds
    );
    assert_eq!(after.1.fds, before.1.fds, "fds of the privileged parent");
    // The flow's own pools (reorder window, resend store) may still be filling in the first
    // attempt; a leak the crowd causes grows every attempt.
    if after.0.rss_kib > before.0.rss_kib + 256 {
        return Err(format!("RSS grew from {} to {} KiB", before.0.rss_kib, after.0.rss_kib));
    }
    for s in &silent {
        let t = s.closed_after.unwrap_or_else(|| panic!("{}: never closed", s.what));
        if s.what.contains("never sends") || s.what.contains("half") {
            assert!(
                (4.5..8.0).contains(&t.as_secs_f64()),
                "{}: closed after {t:?}, not at the 5 s timeout",
                s.what
            );
        } else {
            assert!(t.as_secs_f64() < 8.0, "{}: closed after {t:?}", s.what);
        }
    }
    if storm < 0.9 * healthy {
        return Err(format!(
            "the flow fell from {:.1} to {:.1} Mbit/s during the crowd",
            mbit(healthy),
            mbit(storm)
        ));
    }
    Ok(())
}
