//! Issue 14 end to end: one server process, one TUN device and one pair of ports for three
//! sites of two links each (`tests/netns/sites.rs`), with the real kernel.
//!
//! Run as root: `cargo test --test netns_sites -- --nocapture` (~1 min). Without root, or
//! without the daemon binary, it prints `SKIPPED` and passes. Needs (Debian): iproute2 python3.

#[path = "netns/json.rs"]
mod json;
#[path = "netns/lab.rs"]
mod lab;
#[path = "netns/sites.rs"]
mod sites;

use json::Json;
use lab::{Shape, poll_until};
use sites::{LINKS, SERVER_IP, SitesLab, lan_ip, tun_ip};
use std::time::{Duration, Instant};

/// Per link, both ways: two links make a 40 Mbit/s site.
const LINK_MBIT: f64 = 20.0;

/// Sites up in the server's status, by name.
fn sites_up(lab: &SitesLab) -> Vec<String> {
    let Ok(doc) = Json::parse(&lab.status_json("server")) else { return Vec::new() };
    let Some(sites) = doc.get("sites").and_then(Json::as_array) else { return Vec::new() };
    sites
        .iter()
        .filter(|s| s.get("status").and_then(Json::as_str) == Some("up"))
        .filter_map(|s| s.get("name").and_then(Json::as_str).map(String::from))
        .collect()
}

fn drops(lab: &SitesLab, reason: &str) -> f64 {
    let doc = Json::parse(&lab.status_json("server")).unwrap_or(Json::Null);
    doc.at(&["drops", reason]).and_then(Json::as_f64).unwrap_or(0.0)
}

fn links_up(lab: &SitesLab, who: &str) -> usize {
    let doc = Json::parse(&lab.status_json(who)).unwrap_or(Json::Null);
    let tunnels = doc.get("tunnels").and_then(Json::as_array).unwrap_or(&[]);
    tunnels.iter().filter(|t| t.get("state").and_then(Json::as_str) == Some("up")).count()
}

/// Three sites on one server: every site reaches the server and the others (through the
/// server's kernel); a router with a key no site has gets no answer at all; a transfer
/// between two sites never touches the third's links; the third site's router losing power
/// and coming back leaves that transfer alone; a reload removes one site and adds another
/// without touching the others' sessions.
#[test]
fn three_sites_share_one_server_and_stay_apart() {
    let Some(_turn) = lab::daemon_scenario("three_sites_share_one_server_and_stay_apart") else { return };
    let Some(bin) = lab::need_mlvpn("three_sites_share_one_server_and_stay_apart") else { return };
    // Namespaces c0..c2 are the sites; c3 starts as a stranger and becomes a site on reload.
    let mut lab = SitesLab::new(bin, 4, Shape { rate_mbit: LINK_MBIT });
    let start = Instant::now();
    lab.start_server(&[0, 1, 2]);
    for i in 0..3 {
        lab.start_client(i, None);
    }
    let up = poll_until(Duration::from_secs(15), || sites_up(&lab).len() == 3);
    assert!(up.is_some(), "sites up: {:?}", sites_up(&lab));
    println!("3 sites × {LINKS} links up {:.1?} after start", start.elapsed());
    let table = lab.status_table("server");
    assert!(table.contains("sites: 3 up of 3"), "{table}");
    println!("{table}");

    // Every site reaches the server and the two others.
    for i in 0..3 {
        assert!(lab.reaches(i, SERVER_IP, Duration::from_secs(5)), "c{i} -> server");
        for j in (0..3).filter(|&j| j != i) {
            assert!(lab.reaches(i, &tun_ip(j), Duration::from_secs(5)), "c{i} -> c{j}");
        }
    }
    let hooks = lab.hook_record("server");
    for i in 0..3 {
        assert!(hooks.contains(&format!("site_up c{i} c{i}")), "server hook calls:\n{hooks}");
        assert!(hooks.contains(&format!("rtun_up link0 c{i}")), "server hook calls:\n{hooks}");
    }
    assert_eq!(hooks.matches("tuntap_up").count(), 1, "one device, brought up once:\n{hooks}");

    // A router whose password is no site's: not one datagram answered.
    let stranger_before = lab.server_tx_to(3);
    lab.start_client(3, Some("a password no site has"));
    std::thread::sleep(Duration::from_secs(4));
    let answered = lab.server_tx_to(3) - stranger_before;
    assert!(answered < 300, "the server sent {answered} bytes to the stranger (ARP at most)");
    assert!(drops(&lab, "unknown_site") >= 4.0, "unknown_site {}", drops(&lab, "unknown_site"));
    assert_eq!(links_up(&lab, "c3"), 0);
    assert!(lab.log("c3").contains("no answer to handshake"), "{}", lab.log("c3"));

    // c0 -> c1's LAN, 16 MB: byte for byte, and nothing of it on c2's links.
    let c2_before = lab.site_rx_bytes(2);
    let (bytes, secs) = lab
        .transfer_finish(lab.transfer_start(0, 1, &lan_ip(1), 7001, 16_000_000))
        .unwrap_or_else(|e| panic!("c0 -> c1: {e}"));
    let baseline = bytes as f64 * 8.0 / secs / 1e6;
    let c2_got = lab.site_rx_bytes(2) - c2_before;
    println!("c0 -> c1: {bytes} bytes at {baseline:.1} Mbit/s; c2's links got {c2_got} bytes meanwhile");
    assert!(c2_got < 200_000, "c2's links carried {c2_got} bytes of a transfer between c0 and c1");
    assert!(baseline > 0.25 * 2.0 * LINK_MBIT, "c0 -> c1 at {baseline:.1} Mbit/s");

    // The same while c2's router loses power and comes back.
    let flow = lab.transfer_start(0, 1, &lan_ip(1), 7002, 16_000_000);
    std::thread::sleep(Duration::from_millis(800));
    lab.kill_client(2);
    std::thread::sleep(Duration::from_millis(1500));
    lab.start_client(2, None);
    let (bytes, secs) =
        lab.transfer_finish(flow).unwrap_or_else(|e| panic!("c0 -> c1 during c2's restart: {e}"));
    let during = bytes as f64 * 8.0 / secs / 1e6;
    println!("c0 -> c1 while c2 restarted: {during:.1} Mbit/s (before: {baseline:.1})");
    assert!(during > 0.5 * baseline, "c2's restart slowed c0 -> c1 to {during:.1} of {baseline:.1} Mbit/s");
    assert!(
        poll_until(Duration::from_secs(10), || links_up(&lab, "c2") == LINKS).is_some(),
        "c2 reconnected after its restart"
    );
    assert!(lab.reaches(2, &tun_ip(0), Duration::from_secs(5)), "c2 -> c0 after its restart");

    // Reload: c2 removed, c3 (the stranger's password now a site's) added... the stranger keeps
    // its wrong password, so the site added is proven by a new router with the right one.
    let c0_log = lab.log("c0").len();
    let c1_log = lab.log("c1").len();
    lab.kill_client(3);
    lab.reload_server(&[0, 1, 3]);
    let gone = poll_until(Duration::from_secs(10), || links_up(&lab, "c2") == 0);
    assert!(gone.is_some(), "c2's links went down when its site was removed");
    lab.start_client(3, None);
    let added = poll_until(Duration::from_secs(10), || sites_up(&lab).contains(&"c3".to_string()));
    assert!(added.is_some(), "c3 up after the reload: {:?}", sites_up(&lab));
    assert!(lab.reaches(3, &tun_ip(0), Duration::from_secs(5)), "c3 -> c0");
    assert!(lab.reaches(1, &tun_ip(3), Duration::from_secs(5)), "c1 -> c3");
    assert!(!lab.ping(2, SERVER_IP), "the removed site no longer gets through");
    for (who, from) in [("c0", c0_log), ("c1", c1_log)] {
        let log = lab.log(who);
        let downs: Vec<&str> = log[from..].lines().filter(|l| l.contains(": down")).collect();
        assert!(downs.is_empty(), "{who}'s links went down across the reload: {downs:?}");
    }
    let hooks = lab.hook_record("server");
    assert!(hooks.contains("site_down c2 c2"), "server hook calls:\n{hooks}");
    assert!(hooks.contains("site_up c3 c3"), "server hook calls:\n{hooks}");
    println!("reload: c2 removed (its links down {:.1?} after SIGHUP), c3 added", gone.unwrap());
}
