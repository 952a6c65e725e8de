//! Issue 14's scale run: one server, 100 sites × 3 links (`cargo bench --bench sites`, as root,
//! about 2 min).
//!
//! Two namespaces. The server's has three veths, one per link, each shaped to 40 Mbit/s both
//! ways (`tbf`, as the other benches: a 109 Mbit/s bond); the server listens on one port per
//! link for every site. The other namespace runs the sites' 100 client daemons, each with its
//! own TUN device (`st0`..) and its own source address on each veth, and a routing rule that
//! sends what leaves from its tunnel address back through its own device (its hook adds it).
//!
//! Printed:
//! * **handshakes**: the clients start first (each retries its hellos every 0.5 s); then the
//!   server, and the time until all 100 sites are up in its status (target 5 s);
//! * **memory**: the server's RSS with 100 sites configured and none connected, then with
//!   all connected and idle: the difference per site (target 64 KiB), and one site's
//!   configuration alone;
//! * **throughput**: one TCP flow from the server to one site, then one to each of 10 sites
//!   at once, hashed on both ends: the aggregate against the single flow (target within 10 %);
//! * **CPU**: the server's CPU time per packet through its TUN device during the flows.
//!
//! `MLVPN_SITES=N` changes the number of sites, `MLVPN_SITES_CC` the senders' congestion
//! control (default: the kernel's, cubic here; `bbr`, `reno`); `MLVPN_BIN`,
//! `MLVPN_NETNS_KEEP=1` as elsewhere. The flows go from the server to the sites only (the
//! sites' namespace has no route to the server but through each site's own device).

#[path = "../netns/lab.rs"]
mod lab;

use lab::{Proc, Shape, host, kill_namespace, ns_name, poll_until, spawn_in};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LINKS: usize = 3;
const LINK_MBIT: f64 = 40.0;
const PARALLEL: usize = 10;
const FLOW_BYTES: u64 = 40_000_000;

struct Bench {
    dir: PathBuf,
    srv: String,
    cli: String,
    bin: PathBuf,
    anchors: Vec<Proc>,
    clients: Vec<Proc>,
    server: Option<Proc>,
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn site_ip(i: usize) -> String {
    format!("10.42.{}.{}", 1 + i / 250, 2 + i % 250)
}

fn password(i: usize) -> String {
    format!("bench site {i} password")
}

impl Bench {
    fn new(bin: PathBuf, sites: usize) -> Bench {
        let (id, dir) = lab::new_lab_dir();
        let (srv, cli) = (ns_name(&id, "srv"), ns_name(&id, "cli"));
        for ns in [&srv, &cli] {
            host(&["ip", "netns", "add", ns]);
            host(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        host(&["ip", "netns", "exec", &cli, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
        for k in 0..LINKS {
            let (s_if, c_if) = (format!("s{k}"), format!("c{k}"));
            host(&[
                "ip", "link", "add", &c_if, "netns", &cli, "type", "veth", "peer", "name", &s_if, "netns",
                &srv,
            ]);
            host(&["ip", "-n", &srv, "addr", "add", &format!("10.{}.0.1/16", 90 + k), "dev", &s_if]);
            for i in 0..sites {
                let a = format!("10.{}.{}.{}/16", 90 + k, 1 + i / 250, 1 + i % 250);
                host(&["ip", "-n", &cli, "addr", "add", &a, "dev", &c_if]);
            }
            for (ns, ifname) in [(&srv, &s_if), (&cli, &c_if)] {
                host(&["ip", "-n", ns, "link", "set", ifname, "up"]);
                let mut argv: Vec<String> =
                    ["tc", "-n", ns, "qdisc", "add", "dev", ifname, "root", "tbf"].map(String::from).to_vec();
                argv.extend(Shape { rate_mbit: LINK_MBIT }.tbf_args());
                host(&argv.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
        let anchors = [&srv, &cli]
            .iter()
            .enumerate()
            .map(|(k, ns)| spawn_in(ns, &dir, &format!("anchor{k}"), &["sleep", "2147483647"]))
            .collect();
        let hook = r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
case "$2" in
tuntap_up)
    ip addr add "$IP4" dev "$DEVICE" || exit 1
    ip link set dev "$DEVICE" mtu "$MTU" up || exit 1
    # A site's client (device stN): what leaves from its address goes back through stN.
    case "$DEVICE" in
    st*)
        table=$((1000 + ${DEVICE#st}))
        ip rule add from "${IP4%/*}" table "$table"
        ip route replace default dev "$DEVICE" table "$table"
        ;;
    esac
    ;;
esac
exit 0
"#;
        write(&dir.join("hook.sh"), hook, 0o700);
        write(&dir.join("xfer.py"), include_str!("../netns/xfer.py"), 0o700);
        Bench { dir, srv, cli, bin, anchors, clients: Vec::new(), server: None }
    }

    fn server_config(&self, sites: usize) -> String {
        let mut s = format!(
            "[general]\nmode = server\nstatuscommand = {}\ninterface_name = mlvpn0\nmtu = 1400\n\
             ip4 = 10.42.0.1/16\ncontrol_unix_path = {}\nmax_sites = {}\n",
            self.dir.join("hook.sh").display(),
            self.dir.join("server.sock").display(),
            sites.max(1)
        );
        for k in 0..LINKS {
            let _ = write!(s, "\n[link{k}]\nbindport = {}\n", 5080 + k);
        }
        for i in 0..sites {
            let _ = write!(s, "\n[site:s{i}]\npassword = \"{}\"\nip4 = {}\n", password(i), site_ip(i));
        }
        s
    }

    fn start_server(&mut self, sites: usize) {
        let conf = self.dir.join("server.conf");
        write(&conf, &self.server_config(sites), 0o600);
        let (bin, conf) = (self.bin.to_str().unwrap().to_string(), conf.to_str().unwrap().to_string());
        self.server = Some(spawn_in(
            &self.srv,
            &self.dir,
            "server",
            &[&bin, "--config", &conf, "--debug", "--yes-run-as-root"],
        ));
    }

    fn stop_server(&mut self) {
        self.server = None;
    }

    fn start_client(&mut self, i: usize) {
        let mut s = format!(
            "[general]\nmode = client\npassword = \"{}\"\nstatuscommand = {}\ninterface_name = st{i}\n\
             mtu = 1400\nip4 = {}/32\n",
            password(i),
            self.dir.join("hook.sh").display(),
            site_ip(i)
        );
        for k in 0..LINKS {
            let _ = write!(
                s,
                "\n[link{k}]\nbindhost = 10.{}.{}.{}\nremotehost = 10.{}.0.1\nremoteport = {}\n",
                90 + k,
                1 + i / 250,
                1 + i % 250,
                90 + k,
                5080 + k
            );
        }
        let conf = self.dir.join(format!("c{i}.conf"));
        write(&conf, &s, 0o600);
        let (bin, conf) = (self.bin.to_str().unwrap().to_string(), conf.to_str().unwrap().to_string());
        let argv = [bin.as_str(), "--config", &conf, "--debug", "--yes-run-as-root"];
        self.clients.push(spawn_in(&self.cli, &self.dir, &format!("c{i}"), &argv));
    }

    fn status(&self) -> String {
        let out = std::process::Command::new(&self.bin)
            .args(["status", "--json", "--socket"])
            .arg(self.dir.join("server.sock"))
            .output()
            .expect("mlvpn status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sites_up(&self) -> usize {
        self.status().matches("\"status\": \"up\"").count()
    }

    fn server_pid(&self) -> u32 {
        self.server.as_ref().expect("server").pid()
    }

    /// The server daemon's resident memory, in KiB (`ip netns exec` runs it as a child).
    fn server_rss_kib(&self) -> u64 {
        let daemon = daemon_pid(self.server_pid());
        let status = fs::read_to_string(format!("/proc/{daemon}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Packets and bytes through the server's TUN device, both ways (a super-packet counts
    /// once).
    fn server_tun_counters(&self) -> (u64, u64) {
        let text = fs::read_to_string(format!("/proc/{}/net/dev", self.anchors[0].pid())).unwrap_or_default();
        text.lines()
            .find(|l| l.trim_start().starts_with("mlvpn0:"))
            .map(|l| {
                let f: Vec<u64> =
                    l.split_once(':').unwrap().1.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                (f[1] + f[9], f[0] + f[8])
            })
            .unwrap_or((0, 0))
    }

    /// TCP flows from the server to each of `sites` at once, `FLOW_BYTES` each; returns the
    /// aggregate rate in Mbit/s if every byte arrived.
    fn flows(&self, sites: &[usize]) -> f64 {
        let script = self.dir.join("xfer.py");
        let script = script.to_str().unwrap();
        let mut receivers = Vec::new();
        for &i in sites {
            let port = (7000 + i).to_string();
            let r = spawn_in(
                &self.cli,
                &self.dir,
                &format!("recv{i}"),
                &["python3", script, "recv", &site_ip(i), &port, "120"],
            );
            assert!(
                poll_until(Duration::from_secs(10), || r.stdout().starts_with("listening")).is_some(),
                "receiver {i}"
            );
            receivers.push(r);
        }
        let start = Instant::now();
        let n = FLOW_BYTES.to_string();
        let senders: Vec<Proc> = sites
            .iter()
            .map(|&i| {
                let port = (7000 + i).to_string();
                spawn_in(
                    &self.srv,
                    &self.dir,
                    &format!("send{i}"),
                    &["python3", script, "send", &site_ip(i), &port, &n, "3", "120", &cc()],
                )
            })
            .collect();
        for (mut s, mut r) in senders.into_iter().zip(receivers) {
            assert!(
                s.wait_timeout(Duration::from_secs(130)).is_some_and(|x| x.success()),
                "sender: {}",
                s.stderr()
            );
            assert!(
                r.wait_timeout(Duration::from_secs(10)).is_some_and(|x| x.success()),
                "receiver: {}",
                r.stderr()
            );
            let (a, b) = (s.stdout(), r.stdout());
            let key = |t: &str| {
                t.lines().last().unwrap_or("").split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            };
            assert_eq!(key(&a), key(&b), "a flow's bytes differ");
        }
        (sites.len() as u64 * FLOW_BYTES) as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e6
    }
}

/// The senders' congestion control (`MLVPN_SITES_CC`; empty: the kernel's default).
fn cc() -> String {
    std::env::var("MLVPN_SITES_CC").unwrap_or_default()
}

/// The mlvpn process under `ip netns exec` (its only child, or itself once exec'd).
fn daemon_pid(pid: u32) -> u32 {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_default();
    if exe.contains("mlvpn") {
        return pid;
    }
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(pid)
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.clients.clear();
        self.server = None;
        self.anchors.clear();
        for ns in [&self.srv, &self.cli] {
            kill_namespace(ns);
        }
        if std::env::var_os("MLVPN_NETNS_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn main() {
    if !lab::have_root("bench sites") {
        return;
    }
    let Some(bin) = lab::release_mlvpn() else { return };
    let sites: usize = std::env::var("MLVPN_SITES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let cc = if cc().is_empty() { lab::tcp_congestion_control().unwrap_or_default() } else { cc() };
    println!(
        "{sites} sites × {LINKS} links of {LINK_MBIT} Mbit/s, one server, TCP {cc} ({})",
        lab::machine()
    );
    let mut b = Bench::new(bin, sites);

    // Memory of the configuration alone: one site, then all of them, none connected.
    b.start_server(1);
    std::thread::sleep(Duration::from_secs(2));
    let one = b.server_rss_kib();
    b.stop_server();
    b.start_server(sites);
    std::thread::sleep(Duration::from_secs(3));
    let configured = b.server_rss_kib();
    b.stop_server();

    for i in 0..sites {
        b.start_client(i);
    }
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    b.start_server(sites);
    let all_up = poll_until(Duration::from_secs(60), || b.sites_up() == sites);
    match all_up {
        Some(_) => println!(
            "handshakes: all {sites} sites up {:.2} s after the server started (target 5 s)",
            start.elapsed().as_secs_f64()
        ),
        None => println!("handshakes: only {} of {sites} sites up after 60 s", b.sites_up()),
    }
    std::thread::sleep(Duration::from_secs(3));
    let connected = b.server_rss_kib();
    let per_site = (connected.saturating_sub(configured)) as f64 / sites as f64;
    println!(
        "memory: server RSS {one} KiB with 1 site, {configured} KiB with {sites} configured, {connected} KiB with all connected and idle"
    );
    println!(
        "memory: {per_site:.1} KiB per connected idle site (target 64), {:.1} KiB per configured site",
        (configured.saturating_sub(one)) as f64 / (sites.max(2) - 1) as f64
    );

    let pid = daemon_pid(b.server_pid());
    // The server's CPU per 1500 bytes through its TUN device during `flows` (the device counts
    // a 64 KiB super-packet once: bytes are what compares across runs).
    let measured = |flows: &dyn Fn() -> f64| {
        let (cpu0, (_, by0)) = (lab::cpu_seconds(pid), b.server_tun_counters());
        let rate = flows();
        let (cpu1, (_, by1)) = (lab::cpu_seconds(pid), b.server_tun_counters());
        (rate, (cpu1 - cpu0) * 1e6 / (by1.saturating_sub(by0).max(1) as f64 / 1500.0))
    };
    let (single, cpu_single) = measured(&|| b.flows(&[0]));
    let parallel: Vec<usize> = (0..PARALLEL.min(sites)).map(|k| k * sites / PARALLEL.min(sites)).collect();
    let (aggregate, cpu_parallel) = measured(&|| b.flows(&parallel));
    println!(
        "throughput: one site {single:.1} Mbit/s; {} sites at once {aggregate:.1} Mbit/s in all ({:+.1} %, target within 10 %)",
        parallel.len(),
        (aggregate / single - 1.0) * 100.0
    );
    println!(
        "cpu: {cpu_single:.2} µs of server CPU per 1500 bytes through its TUN with one flow, {cpu_parallel:.2} with {} flows to as many sites",
        parallel.len()
    );
    println!("server status: {} sites up at the end", b.sites_up());
}
