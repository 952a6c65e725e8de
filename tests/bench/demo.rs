//! A guided demo of `mlvpn` bonding three unequal links, in network namespaces.
//!
//! `cargo bench --bench demo` (as root). It builds two namespaces joined by three veth links
//! shaped to 30, 20 and 10 Mbit/s, starts a server and a client, pushes one TCP flow through
//! the tunnel and prints every second how much each link carries. After 10 s it blackholes the
//! 30 Mbit/s link (nftables drops everything on it), so you see the traffic move to the other
//! two; after 20 s it lifts the blackhole and you see the link come back. Then it tears
//! everything down.
//!
//! It uses the binary cargo built for it (`MLVPN_BIN` overrides); it builds nothing else.

#[path = "../netns/json.rs"]
mod json;
#[path = "../netns/lab.rs"]
mod lab;
#[path = "../netns/traffic.rs"]
mod traffic;

use lab::{Lab, LinkSpec, Side, TUN_DEVICE, TUN_SERVER_IP, TunnelOpts};
use std::time::{Duration, Instant};

const RATES: [f64; 3] = [30.0, 20.0, 10.0];
const PHASE: u64 = 10;
const VICTIM: usize = 0;

fn bar(mbit: f64) -> String {
    "#".repeat((mbit / 2.0).round().clamp(0.0, 20.0) as usize)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("demo: run it with `cargo bench --bench demo` (as root)");
        return;
    }
    if !lab::have_root("demo") {
        return;
    }
    let Some(_bin) = lab::need_mlvpn("demo") else { return };

    println!("mlvpn demo: one client, one server, three links of unequal speed\n");
    let mut lab = Lab::new(&RATES.map(LinkSpec::shaped));
    println!("  client namespace {}      server namespace {}", lab.ns(Side::Client), lab.ns(Side::Server));
    for (l, rate) in lab.links.iter().zip(RATES) {
        println!(
            "  {}: {} {:<10} <-- veth, tbf {rate:>2} Mbit/s each way -->  {} {}:{}",
            l.name, l.client_if, l.client_ip, l.server_if, l.server_ip, l.port
        );
    }
    println!(
        "  tunnel: {TUN_DEVICE} {} (client)  <==>  {TUN_DEVICE} {TUN_SERVER_IP} (server)\n",
        lab::TUN_CLIENT_IP
    );

    lab.start_both(&TunnelOpts::default());
    let up = lab.wait_tunnel(Duration::from_secs(20));
    println!(
        "tunnel up, ping crosses it ({:.1} s). Logs: {}/{{client,server}}.log\n",
        up.as_secs_f64(),
        lab.dir.display()
    );

    let total = 3 * PHASE;
    println!("one TCP flow client → server (iperf3) for {total} s; Mbit/s each link sends, client side:");
    println!(
        "  at {PHASE} s: blackhole {} ({} Mbit/s); at {} s: lift it\n",
        lab.links[VICTIM].name,
        RATES[VICTIM],
        2 * PHASE
    );
    let mut header = String::from("  time ");
    for (l, rate) in lab.links.iter().zip(RATES) {
        header += &format!("| {:<26}", format!("{} {rate} Mbit/s", l.name));
    }
    println!("{header}| tunnel");

    let flow = traffic::iperf_start(&lab, Side::Client, TUN_SERVER_IP, 5201, total as f64 + 0.5);
    let counters = |lab: &Lab| {
        let dev = lab.net_dev(Side::Client);
        let mut v: Vec<u64> = lab.links.iter().map(|l| dev.get(&l.client_if).map_or(0, |c| c.1)).collect();
        v.push(dev.get(TUN_DEVICE).map_or(0, |c| c.1));
        v
    };
    let mut logs_at = [lab.log(Side::Client).len(), lab.log(Side::Server).len()];
    let mut prev = counters(&lab);
    let mut prev_t = Instant::now();
    let start = Instant::now();
    for sec in 1..=total {
        if sec == PHASE + 1 {
            lab.blackhole(VICTIM, true);
            println!(
                "  ---- {} blackholed: nftables drops every packet on it, both ways ----",
                lab.links[VICTIM].name
            );
        }
        if sec == 2 * PHASE + 1 {
            lab.blackhole(VICTIM, false);
            println!("  ---- blackhole on {} lifted ----", lab.links[VICTIM].name);
        }
        let next = start + Duration::from_secs(sec);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let now = counters(&lab);
        let dt = prev_t.elapsed().as_secs_f64();
        prev_t = Instant::now();
        let mut line = format!("  {sec:>3}s ");
        for i in 0..lab.links.len() {
            let m = (now[i] - prev[i]) as f64 * 8.0 / dt / 1e6;
            line += &format!("| {m:>5.1} {:<20}", bar(m));
        }
        let tun = (now[3] - prev[3]) as f64 * 8.0 / dt / 1e6;
        println!("{line}| {tun:>5.1}");
        prev = now;
        // Link events from the daemons' logs, as they happen.
        for (k, side) in [Side::Client, Side::Server].into_iter().enumerate() {
            let log = lab.log(side);
            for l in log.get(logs_at[k]..).unwrap_or("").lines() {
                if l.contains(": up") || l.contains(": down") {
                    println!("         {} log: {}", side.name(), l.trim());
                }
            }
            logs_at[k] = log.len();
        }
    }
    let run = flow.finish();
    println!(
        "\nflow done: {:.1} MB received, {:.1} Mbit/s on average, TCP connection never broke.",
        run.bytes_received / 1e6,
        run.receiver_bps / 1e6
    );
    println!("(link figures are UDP on the wire, headers included; 'tunnel' is what entered the TUN device)");
    println!("tearing down the namespaces...");
    drop(lab);
    println!("done.");
}
