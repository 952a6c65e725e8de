//! The network process's sandbox (issue 15) in network namespaces: both daemons started as
//! root, as installed, so each runs a network child under its seccomp filter. The tunnel, a
//! transfer each way, the control socket and a SIGHUP reload work under it; a forbidden call
//! kills the child, the parent says why and exits with the child's status, and a restart brings
//! the tunnel back.
//!
//! The forbidden call comes from the test build's `sandbox-selftest` feature: with
//! `MLVPN_SANDBOX_SELFTEST` set, the child calls `umask(2)` right after entering the sandbox.
//! Release builds have no such switch.
//!
//! Run as root: `cargo test --test netns_sandbox -- --nocapture`. Without root it prints
//! `SKIPPED: needs root` and passes. Every other scenario of the netns suite runs under the
//! filter too (the lab starts daemons with privilege separation).

#[path = "netns/json.rs"]
mod json;
#[path = "netns/lab.rs"]
mod lab;
#[path = "netns/traffic.rs"]
mod traffic;

use lab::{Lab, LinkSpec, Side, TunnelOpts};
use std::time::Duration;

fn transfer_both_ways(lab: &Lab, port: u16) {
    const BYTES: u64 = 8 << 20;
    for (i, from) in [Side::Client, Side::Server].into_iter().enumerate() {
        let dst = from.other().tun_ip();
        let t =
            traffic::transfer(lab, from, dst, port + i as u16, BYTES, port as u64, Duration::from_secs(60));
        println!("{} → {}: {} bytes in {:.2} s", from.name(), from.other().name(), t.bytes_received, t.secs);
        assert_eq!(t.bytes_received, BYTES, "{} → {}: bytes lost", from.name(), from.other().name());
        assert_eq!(t.sha_received, t.sha_sent, "{} → {}: content differs", from.name(), from.other().name());
    }
}

#[test]
fn the_network_process_works_in_its_sandbox_and_dies_outside_it() {
    let Some(_turn) = lab::daemon_scenario("sandbox") else { return };
    let mut lab = Lab::new(&[LinkSpec::unshaped(), LinkSpec::unshaped()]);
    let opts = TunnelOpts::default();
    lab.start_both(&opts);
    lab.wait_tunnel(Duration::from_secs(20));
    for side in [Side::Client, Side::Server] {
        let line = lab.wait_log(side, 0, "sandbox: seccomp filter", Duration::from_secs(5));
        assert!(
            line.is_some(),
            "{}: the network process did not enter its sandbox:\n{}",
            side.name(),
            lab.log(side)
        );
    }
    transfer_both_ways(&lab, 6100);

    let status = lab.status(Side::Server, true);
    assert!(status.contains("\"tunnels\""), "status through the control socket: {status}");

    // A reload that adds a link: the parent reads the file, hands its text over, and opens the
    // new link's socket for the child, which receives it and sets it up inside the sandbox.
    let link0 = &lab.links[0];
    let extra = format!("\n[extra]\nbindhost = {}\nbindport = {}\n", link0.server_ip, link0.port + 50);
    let text = lab.server_config(&opts) + &extra;
    lab.write_file("server.conf", &text, 0o600);
    let mark = lab.log(Side::Server).lines().count();
    lab::signal(lab.daemon_pid(Side::Server), libc::SIGHUP);
    let reloaded = lab.wait_log(Side::Server, mark, "1 added", Duration::from_secs(10));
    assert!(reloaded.is_some(), "no reload under the sandbox:\n{}", lab::tail(&lab.log(Side::Server), 20));
    let listening = lab.wait_log(Side::Server, mark, "link extra: listening", Duration::from_secs(10));
    assert!(listening.is_some(), "the new link's socket:\n{}", lab::tail(&lab.log(Side::Server), 20));
    transfer_both_ways(&lab, 6110);
    lab.assert_running(Side::Client);
    lab.assert_running(Side::Server);

    // A call outside the allow-list kills the child; the parent reports it and exits.
    let (_, server_conf) = lab.write_configs(&opts);
    let (stopped, _) = lab.stop_daemon(Side::Server).expect("running");
    assert!(stopped.success(), "server on SIGTERM: {stopped}");
    let mark = lab.log(Side::Server).lines().count();
    lab.daemon_env = vec![("MLVPN_SANDBOX_SELFTEST".into(), "1".into())];
    lab.start_daemon(Side::Server, &server_conf);
    lab.daemon_env.clear();
    let mut dying = lab.take_daemon(Side::Server).expect("started");
    let exit = dying.wait_timeout(Duration::from_secs(10));
    let log = lab.log(Side::Server);
    let exit = exit.unwrap_or_else(|| {
        panic!("the server outlived its child's forbidden call:\n{}", lab::tail(&log, 20))
    });
    assert_eq!(exit.code(), Some(128 + libc::SIGSYS), "exit status: {exit}\n{}", lab::tail(&log, 20));
    let said = lab.log_lines(Side::Server, mark, "killed by its sandbox");
    assert!(!said.is_empty(), "the parent did not say why:\n{}", lab::tail(&log, 20));
    println!("parent: {}", said[0].trim());
    assert!(!lab.tun_exists(Side::Server), "the tunnel device outlived the daemon");

    // As an init system would: start it again; the client's links come back.
    lab.start_daemon(Side::Server, &server_conf);
    lab.wait_tunnel(Duration::from_secs(30));
    transfer_both_ways(&lab, 6120);
    for side in [Side::Client, Side::Server] {
        let (stopped, _) = lab.stop_daemon(side).expect("running");
        assert!(stopped.success(), "{} on SIGTERM: {stopped}", side.name());
    }
}
