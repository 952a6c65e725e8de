//! Golden renderings of a status snapshot (`tests/control_golden/`): JSON, Prometheus text,
//! the table; the JSON and the metrics are also read back with real parsers (Python's `json`
//! and `prometheus_client`, the reference Python client's parser).
//!
//! After a deliberate change, `UPDATE_GOLDEN=1 cargo test --test control_render` rewrites the
//! files; read the diff before committing it: it *is* the assertion.

mod control_common;

use control_common::{JSON_DIGEST, PROM_DIGEST, python, sample};
use mlvpn::control::{LinkStatus, Ratio, Status};
use mlvpn::proto::Duration;
use std::path::Path;

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/control_golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected != actual {
        for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
            assert_eq!(e, a, "{name}: first difference at line {}", i + 1);
        }
        assert_eq!(expected, actual, "{name}: lengths differ");
    }
}

fn render(s: &Status) -> (String, String, String) {
    let (mut j, mut p, mut t) = (String::new(), String::new(), String::new());
    s.write_json(&mut j);
    s.write_prometheus(&mut p);
    s.write_table(&mut t);
    (j, p, t)
}

#[test]
fn status_json_golden() {
    golden("status.json", &render(&sample()).0);
}

#[test]
fn metrics_golden() {
    golden("metrics.prom", &render(&sample()).1);
}

#[test]
fn table_golden() {
    golden("table.txt", &render(&sample()).2);
}

#[test]
fn json_parses_with_python() {
    let Some(digest) = python(JSON_DIGEST, &render(&sample()).0, "json") else { return };
    golden("status.json.digest", &digest);
}

#[test]
fn metrics_parse_with_prometheus_client() {
    let metrics = render(&sample()).1;
    let Some(digest) = python(PROM_DIGEST, &metrics, "prometheus_client") else { return };
    golden("metrics.prom.digest", &digest);
    // Every sample of the text came through the parser.
    let samples = metrics.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(digest.lines().count(), samples);
}

/// Hostile values: every control character in names, the largest figures.
fn hostile() -> Status {
    let all_controls: String = (0u8..0x20).map(char::from).chain(['\u{7f}', '\u{2028}', '"', '\\']).collect();
    Status {
        name: all_controls.clone(),
        version: "\u{0}".into(),
        tuntap_name: "tap\"0".into(),
        links: vec![LinkStatus {
            name: all_controls.clone(),
            bindaddr: all_controls,
            srtt: Some(Duration::MAX),
            rttvar: Some(Duration::MAX),
            share: Ratio::new(u64::MAX, 1),
            capacity: Some(u64::MAX),
            bandwidth: u64::MAX,
            sent_bytes: u64::MAX,
            ..Default::default()
        }],
        drops: vec![("x", u64::MAX)],
        ..Default::default()
    }
}

#[test]
fn hostile_values_still_give_valid_documents() {
    let (json, metrics, table) = render(&hostile());
    assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
    assert!(table.chars().all(|c| c == '\n' || !c.is_control()), "{table:?}");
    let check = r#"
import json, sys
d = json.loads(sys.stdin.read())
t = d["tunnels"][0]
assert d["name"] == "".join(map(chr, range(32))) + "\x7f\u2028\"\\", repr(d["name"])
assert t["srtt_ms"] == t["rttvar"] == 18446744073709551.615, t
assert t["srtt"] == 18446744073709551 and t["share"] == 2**64 - 1, t
assert d["drops"]["x"] == 2**64 - 1
print("ok")
"#;
    if let Some(out) = python(check, &json, "json") {
        assert_eq!(out, "ok\n");
    }
    let check = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
name = fams["mlvpn_info"].samples[0].labels["name"]
assert name == "".join(map(chr, range(32))) + "\x7f\u2028\"\\", repr(name)
assert fams["mlvpn_link_srtt_seconds"].samples[0].value == 18446744073709.551615
# Prometheus values are float64: the parser gives the nearest one (an int in some versions).
assert float(fams["mlvpn_link_share_ratio"].samples[0].value) == float(2**64 - 1)
print("ok")
"#;
    if let Some(out) = python(check, &metrics, "prometheus_client") {
        assert_eq!(out, "ok\n");
    }
}

#[test]
fn empty_status_renders() {
    let (json, metrics, table) = render(&Status::default());
    assert!(
        json.contains("\"tunnels\": [],")
            && json.contains("\"drops\": {},")
            && json.contains("\"reorder\": null")
    );
    assert!(metrics.contains("# TYPE mlvpn_link_up gauge\n# HELP"));
    assert_eq!(table.lines().count(), 2);
    if let Some(out) = python("import json,sys; json.loads(sys.stdin.read()); print('ok')", &json, "json") {
        assert_eq!(out, "ok\n");
    }
    if let Some(out) = python(
        "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
         list(p(sys.stdin.read())); print('ok')",
        &metrics,
        "prometheus_client",
    ) {
        assert_eq!(out, "ok\n");
    }
}
