//! Shared by the control tests: a sample snapshot and checks with real parsers.
#![allow(dead_code)]

use mlvpn::control::{
    DuplicationStatus, LinkStatus, PathMtuStatus, PoolStatus, QueueStatus, Ratio, ReorderStatus, Status,
};
use mlvpn::proto::Duration;

/// Three links in three states, a name that needs escaping everywhere, unknowns, drops, a
/// reorder buffer and two pools (the send queue off).
pub fn sample() -> Status {
    Status {
        name: "mlvpn".into(),
        version: "0.1.0".into(),
        pid: 4242,
        time: 1_700_000_100,
        uptime_secs: 3725,
        last_reload: 1_700_000_000,
        tuntap_type: "tun".into(),
        tuntap_name: "mlvpn0".into(),
        tuntap_mtu: 1379,
        mode: "client".into(),
        sites: Vec::new(),
        links: vec![
            LinkStatus {
                name: "dsl".into(),
                site: String::new(),
                bindaddr: String::new(),
                bindport: 0,
                destaddr: "203.0.113.1".into(),
                destport: 5080,
                status: "connected",
                state: "up",
                sent_packets: 1000,
                recv_packets: 900,
                sent_bytes: 1_234_567,
                recv_bytes: 987_654,
                bandwidth: 1_000_000,
                capacity: Some(1_250_000),
                srtt: Some(Duration::from_micros(12_346)),
                rttvar: Some(Duration::from_micros(2_500)),
                loss_out: Some(0),
                loss_in: Some(1),
                share: Ratio::new(5, 8),
                disconnects: 1,
                handshakes: 2,
                handshake_failures: 0,
                duplicates_sent: 120,
                duplicates_dropped: 3,
                path_mtu: PathMtuStatus {
                    mtu: 1480,
                    state: "done",
                    probes_sent: 4,
                    probes_lost: 0,
                    black_holes: 0,
                },
                last_packet: 1_700_000_099,
                timeout: 30,
            },
            LinkStatus {
                name: "lte \"4G\"\\é\n📶".into(),
                site: String::new(),
                bindaddr: "192.0.2.10".into(),
                bindport: 5081,
                destaddr: "203.0.113.1".into(),
                destport: 5081,
                status: "lossy link",
                state: "lossy",
                sent_packets: 600,
                recv_packets: 550,
                sent_bytes: 700_000,
                recv_bytes: 650_000,
                bandwidth: 250_000,
                capacity: None,
                srtt: Some(Duration::from_millis(80)),
                rttvar: Some(Duration::from_millis(10)),
                loss_out: Some(12),
                loss_in: Some(3),
                share: Ratio::new(3, 8),
                disconnects: 0,
                handshakes: 1,
                handshake_failures: 2,
                duplicates_sent: 0,
                duplicates_dropped: 117,
                path_mtu: PathMtuStatus {
                    mtu: 1440,
                    state: "black_hole",
                    probes_sent: 31,
                    probes_lost: 12,
                    black_holes: 1,
                },
                last_packet: 1_700_000_000,
                timeout: 30,
            },
            LinkStatus {
                name: "sat".into(),
                site: String::new(),
                bindaddr: String::new(),
                bindport: 0,
                destaddr: String::new(),
                destport: 0,
                status: "disconnected",
                state: "down",
                path_mtu: PathMtuStatus { probes_sent: 9, probes_lost: 9, ..Default::default() },
                timeout: 60,
                ..Default::default()
            },
        ],
        drops: vec![("malformed", 3), ("unauthenticated", 0), ("replayed", 1)],
        reorder: Some(ReorderStatus {
            size: 64,
            in_order: 1500,
            reordered: 20,
            late: 1,
            duplicate: 0,
            skipped: 2,
            full: 0,
            passed: 300,
            equalized: 900,
            wait_max: Duration::from_micros(12_250),
            wait_mean: Duration::from_micros(1_500),
            timeout: Duration::from_millis(40),
            hold: Duration::from_micros(35_500),
        }),
        pools: vec![
            PoolStatus { name: "reorder", slots: 64, peak: 20, peak_bytes: 28_480 },
            PoolStatus { name: "resend", slots: 1024, peak: 256, peak_bytes: 364_544 },
        ],
        handshake_failures: 2,
        queue: Some(QueueStatus {
            flows: 2,
            packets: 37,
            sojourn: Duration::from_micros(18_400),
            counters: [("codel_drops", 12), ("overflow_drops", 5), ("expired", 0), ("new_flows", 940)],
        }),
        duplication: Some(DuplicationStatus {
            mode: "auto",
            counters: [("packets", 120), ("bytes", 27_960), ("over_budget", 4), ("one_link", 0)],
        }),
    }
}

/// Debian's python3 when there is one (Debian's python3-* packages install for it, not for a
/// pyenv or venv python3 earlier in PATH), else the first on PATH.
fn python3() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" }
}

/// Runs `python3 -c SCRIPT` with `input` on stdin. A missing `module` is installed first when we
/// are root (`tests/tools.sh`, once). If it is still missing: `None` and a note on the real
/// stderr (not captured by the test harness), so the caller skips; but under CI (`CI` set)
/// that is a failure, since the check would never run.
pub fn python(script: &str, input: &str, module: &str) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let probe = || Command::new(python3()).args(["-c", &format!("import {module}")]).output();
    let have = || probe().is_ok_and(|o| o.status.success());
    static INSTALL: std::sync::Once = std::sync::Once::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if !have() && unsafe { libc::geteuid() } == 0 {
        INSTALL.call_once(|| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools.sh");
            let _ = writeln!(std::io::stderr(), "python3 module {module} missing: running tests/tools.sh");
            let _ = Command::new("sh").arg(script).status();
        });
    }
    if !have() {
        let msg = format!(
            "python3 with the module {module} is missing: install it with \
             `apt-get install python3-prometheus-client` (or run tests/tools.sh as root)"
        );
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        let _ = writeln!(std::io::stderr(), "SKIPPED a parser check: {msg}");
        return None;
    }
    let mut child = Command::new(python3())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed on:\n{input}\n--- stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Parses a status document with Python's `json` and prints a digest of it: the top-level
/// keys, then per tunnel `name|status|state|srtt|loss_out`.
pub const JSON_DIGEST: &str = r#"
import json, sys
d = json.loads(sys.stdin.read())
print(",".join(sorted(d.keys())))
for t in d["tunnels"]:
    print("|".join(repr(t[k]) for k in ("name", "status", "state", "srtt", "srtt_ms", "loss_out", "bindport")))
print(json.dumps(d["drops"], sort_keys=True))
"#;

/// Parses Prometheus text with the reference parser (prometheus_client) and prints one line per
/// sample: `family type name labels value`, sorted.
pub const PROM_DIGEST: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
lines = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        labels = ",".join("%s=%r" % kv for kv in sorted(s.labels.items()))
        lines.append("%s %s %s {%s} %r" % (f.name, f.type, s.name, labels, float(s.value)))
print("\n".join(sorted(lines)))
"#;
