//! A lab of one server namespace and several client namespaces (sites), for issue 14.
//!
//! ```text
//!   mlvpn-<id>-c0  (site c0)                           mlvpn-<id>-srv (server)
//!   lo      192.168.10.1/32   (the site's LAN)          mlvpn0 10.42.0.1/24
//!   mlvpn0  10.42.0.2/24                                 listens on :5080 (link0), :5081 (link1)
//!   c0l0    10.80.0.1/30  <---- veth ---->  s0l0 10.80.0.2/30
//!   c0l1    10.80.1.1/30  <---- veth ---->  s0l1 10.80.1.2/30
//!   mlvpn-<id>-c1: 192.168.20.1, 10.42.0.3, 10.81.k.1 ...
//! ```
//!
//! Every site's client reaches the server's same two ports, each over its own veths; the
//! server tells the sites apart by their keys alone. The server forwards between sites (its
//! kernel routes `192.168.N0.0/24` to the TUN device when a site comes up, from the hook's
//! `SITE_IP4_ROUTES`). Every address lives on a veth pair of the lab's own namespaces.

use super::lab::{self, Proc, Shape, host, kill_namespace, ns_name, poll_until, spawn_in, tail};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

pub const LINKS: usize = 2;
pub const SERVER_IP: &str = "10.42.0.1";

/// Site `i`'s password: the server knows the first sites it is configured with.
pub fn password(i: usize) -> String {
    format!("site c{i} password, not guessable")
}

/// Site `i`'s tunnel address.
pub fn tun_ip(i: usize) -> String {
    format!("10.42.0.{}", i + 2)
}

/// An address on site `i`'s LAN (on its loopback).
pub fn lan_ip(i: usize) -> String {
    format!("192.168.{}.1", (i + 1) * 10)
}

pub struct SitesLab {
    pub id: String,
    pub dir: PathBuf,
    pub server_ns: String,
    pub client_ns: Vec<String>,
    server: Option<Proc>,
    clients: Vec<Option<Proc>>,
    /// A `sleep` per namespace, server's first: /proc/PID/net/dev reads its counters.
    anchors: Vec<Proc>,
    bin: PathBuf,
}

impl SitesLab {
    /// The server namespace and `n` client namespaces, each with [`LINKS`] veths shaped to
    /// `shape` both ways.
    pub fn new(bin: PathBuf, n: usize, shape: Shape) -> SitesLab {
        let (id, dir) = lab::new_lab_dir();
        let server_ns = ns_name(&id, "srv");
        let client_ns: Vec<String> = (0..n).map(|i| ns_name(&id, &format!("c{i}"))).collect();
        let mut lab = SitesLab {
            id,
            dir,
            server_ns: server_ns.clone(),
            client_ns: Vec::new(),
            server: None,
            clients: (0..n).map(|_| None).collect(),
            anchors: Vec::new(),
            bin,
        };
        host(&["ip", "netns", "add", &server_ns]);
        host(&["ip", "-n", &server_ns, "link", "set", "lo", "up"]);
        host(&["ip", "netns", "exec", &server_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        for (i, ns) in client_ns.iter().enumerate() {
            host(&["ip", "netns", "add", ns]);
            lab.client_ns.push(ns.clone());
            host(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            host(&["ip", "-n", ns, "addr", "add", &format!("{}/32", lan_ip(i)), "dev", "lo"]);
            for k in 0..LINKS {
                let (c_if, s_if) = (format!("c{i}l{k}"), format!("s{i}l{k}"));
                host(&[
                    "ip", "link", "add", &c_if, "netns", ns, "type", "veth", "peer", "name", &s_if, "netns",
                    &server_ns,
                ]);
                for (space, ifname, host_part) in [(ns, &c_if, 1), (&server_ns, &s_if, 2)] {
                    // No IPv6 on the veths: what the server sends a site is then ours alone.
                    let sysctl = format!("net.ipv6.conf.{ifname}.disable_ipv6=1");
                    host(&["ip", "netns", "exec", space, "sysctl", "-qw", &sysctl]);
                    let addr = format!("10.{}.{k}.{host_part}/30", 80 + i);
                    host(&["ip", "-n", space, "addr", "add", &addr, "dev", ifname]);
                    host(&["ip", "-n", space, "link", "set", ifname, "up"]);
                    let mut argv: Vec<String> =
                        ["tc", "-n", space, "qdisc", "add", "dev", ifname, "root", "tbf"]
                            .map(String::from)
                            .to_vec();
                    argv.extend(shape.tbf_args());
                    host(&argv.iter().map(String::as_str).collect::<Vec<_>>());
                }
            }
        }
        let anchors: Vec<Proc> = std::iter::once(&server_ns)
            .chain(&lab.client_ns)
            .enumerate()
            .map(|(k, ns)| spawn_in(ns, &lab.dir, &format!("anchor-{k}"), &["sleep", "2147483647"]))
            .collect();
        lab.anchors = anchors;
        lab.write_hook("server");
        lab.write_hook("client");
        lab.write_file("ping.py", include_str!("ping.py"), 0o700);
        lab.write_file("xfer.py", include_str!("xfer.py"), 0o700);
        lab
    }

    pub fn write_file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, text).expect("write lab file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod lab file");
        path
    }

    pub fn hook_record(&self, who: &str) -> String {
        fs::read_to_string(self.dir.join(format!("hook-{who}.rec"))).unwrap_or_default()
    }

    /// The hook: records `event arg SITE` per call, sets up the device on `tuntap_up`, and
    /// routes a site's networks to it on `site_up` (the client routes its `ip4_routes`).
    fn write_hook(&self, who: &str) {
        let rec = self.dir.join(format!("hook-{who}.rec"));
        let script = format!(
            r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
printf '%s %s %s\n' "$2" "$3" "${{SITE:-}}" >> '{rec}'
case "$2" in
tuntap_up)
    ip addr add "$IP4" dev "$DEVICE" || exit 1
    ip link set dev "$DEVICE" mtu "$MTU" up || exit 1
    for r in $(echo "$IP4_ROUTES" | tr ',' ' '); do ip route replace "$r" dev "$DEVICE"; done
    ;;
site_up)
    for r in $(echo "$SITE_IP4_ROUTES" | tr ',' ' '); do ip route replace "$r" dev "$DEVICE"; done
    ;;
site_down)
    for r in $(echo "$SITE_IP4_ROUTES" | tr ',' ' '); do ip route del "$r" dev "$DEVICE"; done
    ;;
esac
exit 0
"#,
            rec = rec.display()
        );
        self.write_file(&format!("hook-{who}.sh"), &script, 0o700);
    }

    pub fn control_path(&self, who: &str) -> PathBuf {
        self.dir.join(format!("control-{who}.sock"))
    }

    /// The server's config serving `sites` (indexes: site `i` is `[site:c<i>]`).
    pub fn server_config(&self, sites: &[usize]) -> String {
        let mut s = format!(
            "[general]\nmode = server\nstatuscommand = {}\ninterface_name = mlvpn0\nmtu = 1400\n\
             ip4 = {SERVER_IP}/24\ncontrol_unix_path = {}\n",
            self.dir.join("hook-server.sh").display(),
            self.control_path("server").display()
        );
        for k in 0..LINKS {
            let _ = write!(s, "\n[link{k}]\nbindport = {}\n", 5080 + k);
        }
        for &i in sites {
            let _ = write!(
                s,
                "\n[site:c{i}]\npassword = \"{}\"\nip4 = {}\nip4_routes = 192.168.{}.0/24\n",
                password(i),
                tun_ip(i),
                (i + 1) * 10
            );
        }
        s
    }

    /// Client `i`'s config: an ordinary client config, nothing about sites in it.
    pub fn client_config(&self, i: usize) -> String {
        let mut s = format!(
            "[general]\nmode = client\npassword = \"{}\"\nstatuscommand = {}\ninterface_name = mlvpn0\n\
             mtu = 1400\nip4 = {}/24\nip4_routes = 192.168.0.0/16\ncontrol_unix_path = {}\n",
            password(i),
            self.dir.join("hook-client.sh").display(),
            tun_ip(i),
            self.control_path(&format!("c{i}")).display()
        );
        for k in 0..LINKS {
            let _ = write!(
                s,
                "\n[link{k}]\nbindhost = 10.{n}.{k}.1\nremotehost = 10.{n}.{k}.2\nremoteport = {}\n",
                5080 + k,
                n = 80 + i
            );
        }
        s
    }

    fn daemon(&self, ns: &str, name: &str, config: &str, args: &[&str]) -> Proc {
        let path = self.write_file(&format!("{name}.conf"), config, 0o600);
        let bin = self.bin.to_str().unwrap().to_string();
        let path = path.to_str().unwrap().to_string();
        let mut argv = vec![bin.as_str(), "--config", path.as_str(), "--debug"];
        argv.extend(args);
        spawn_in(ns, &self.dir, name, &argv)
    }

    /// Starts the server (with privilege separation: its parent runs the hooks and checks
    /// every site the network process names).
    pub fn start_server(&mut self, sites: &[usize]) {
        let ns = self.server_ns.clone();
        self.server = Some(self.daemon(&ns, "server", &self.server_config(sites), &[]));
    }

    /// Rewrites the server's config for `sites` and sends it SIGHUP.
    pub fn reload_server(&mut self, sites: &[usize]) {
        self.write_file("server.conf", &self.server_config(sites), 0o600);
        let pid = self.server.as_ref().expect("a server").pid();
        // SAFETY: kill(2) on a child we started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
    }

    /// Starts client `i` with `password` (its site's unless given).
    pub fn start_client(&mut self, i: usize, password: Option<&str>) {
        let mut config = self.client_config(i);
        if let Some(p) = password {
            config = config.replace(&super::sites::password(i), p);
        }
        let ns = self.client_ns[i].clone();
        self.clients[i] = Some(self.daemon(&ns, &format!("c{i}"), &config, &["--yes-run-as-root"]));
    }

    /// SIGKILL: the router loses power.
    pub fn kill_client(&mut self, i: usize) {
        if let Some(mut p) = self.clients[i].take() {
            p.stop_with(libc::SIGKILL, Duration::from_secs(2));
        }
    }

    pub fn log(&self, who: &str) -> String {
        String::from_utf8_lossy(&fs::read(self.dir.join(format!("{who}.err"))).unwrap_or_default())
            .into_owned()
    }

    /// `mlvpn status --json` of `who` ("server", "c0"...).
    pub fn status_json(&self, who: &str) -> String {
        let out = std::process::Command::new(&self.bin)
            .args(["status", "--json", "--socket"])
            .arg(self.control_path(who))
            .output()
            .expect("run mlvpn status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status_table(&self, who: &str) -> String {
        let out = std::process::Command::new(&self.bin)
            .args(["status", "--socket"])
            .arg(self.control_path(who))
            .output()
            .expect("run mlvpn status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One ping from client `i` to `ip`.
    pub fn ping(&self, i: usize, ip: &str) -> bool {
        let script = self.dir.join("ping.py");
        std::process::Command::new(lab::tool("ip"))
            .args(["netns", "exec", &self.client_ns[i]])
            .arg(lab::tool("python3"))
            .arg(script)
            .args([ip, "1"])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Pings from client `i` until one answers, for up to `timeout`.
    pub fn reaches(&self, i: usize, ip: &str, timeout: Duration) -> bool {
        poll_until(timeout, || self.ping(i, ip)).is_some()
    }

    /// /proc/net/dev of namespace `k` (0 the server, 1.. the clients): name → (rx, tx) bytes.
    pub fn net_dev(&self, k: usize) -> Vec<(String, u64, u64)> {
        let text = fs::read_to_string(format!("/proc/{}/net/dev", self.anchors[k].pid())).unwrap_or_default();
        text.lines()
            .skip(2)
            .filter_map(|line| {
                let (name, rest) = line.split_once(':')?;
                let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                Some((name.trim().to_string(), *f.first()?, *f.get(8)?))
            })
            .collect()
    }

    /// Bytes site `i`'s veths received (in its namespace), all links.
    pub fn site_rx_bytes(&self, i: usize) -> u64 {
        self.net_dev(i + 1).iter().filter(|(n, _, _)| n.starts_with(&format!("c{i}l"))).map(|d| d.1).sum()
    }

    /// Bytes the server sent on site `i`'s veths.
    pub fn server_tx_to(&self, i: usize) -> u64 {
        self.net_dev(0).iter().filter(|(n, _, _)| n.starts_with(&format!("s{i}l"))).map(|d| d.2).sum()
    }

    /// A TCP transfer from client `from` to `dst_ip:port` in client `to`'s namespace: spawns
    /// both ends and returns them (the receiver listening).
    pub fn transfer_start(
        &self,
        from: usize,
        to: usize,
        dst_ip: &str,
        port: u16,
        nbytes: u64,
    ) -> (Proc, Proc) {
        let script = self.dir.join("xfer.py");
        let script = script.to_str().unwrap();
        let port_s = port.to_string();
        let recv = spawn_in(
            &self.client_ns[to],
            &self.dir,
            &format!("recv-{port}"),
            &["python3", script, "recv", dst_ip, &port_s, "60"],
        );
        if poll_until(Duration::from_secs(10), || recv.stdout().starts_with("listening")).is_none() {
            panic!("receiver not listening: {}", recv.stderr());
        }
        let n = nbytes.to_string();
        let send = spawn_in(
            &self.client_ns[from],
            &self.dir,
            &format!("send-{port}"),
            &["python3", script, "send", dst_ip, &port_s, &n, "7", "60", ""],
        );
        (send, recv)
    }

    /// Waits for a transfer; returns (bytes, seconds) if both ends agree on every byte.
    pub fn transfer_finish(&self, (mut send, mut recv): (Proc, Proc)) -> Result<(u64, f64), String> {
        let done = |p: &mut Proc| p.wait_timeout(Duration::from_secs(70)).is_some_and(|s| s.success());
        if !done(&mut send) || !done(&mut recv) {
            return Err(format!("transfer failed: send {} recv {}", send.stderr(), recv.stderr()));
        }
        let last = |p: &Proc| p.stdout().lines().last().unwrap_or("").to_string();
        let (s, r) = (last(&send), last(&recv));
        let fields: Vec<&str> = r.split_whitespace().collect();
        let sent: Vec<&str> = s.split_whitespace().collect();
        if fields.len() < 3 || sent.len() < 2 || fields[..2] != sent[..2] {
            return Err(format!("sent `{s}`, received `{r}`"));
        }
        Ok((fields[0].parse().unwrap_or(0), fields[2].parse().unwrap_or(0.0)))
    }

    fn dump(&self) {
        eprintln!("==== sites lab {} (dir {}) ====", self.id, self.dir.display());
        for who in
            std::iter::once("server".to_string()).chain((0..self.clients.len()).map(|i| format!("c{i}")))
        {
            eprintln!("---- {who} log ----\n{}", tail(&self.log(&who), 40));
        }
        eprintln!("---- server status ----\n{}", self.status_table("server"));
        eprintln!("---- server hook ----\n{}", self.hook_record("server"));
    }
}

impl Drop for SitesLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        self.clients.clear();
        self.server = None;
        self.anchors.clear();
        for ns in std::iter::once(&self.server_ns).chain(&self.client_ns) {
            kill_namespace(ns);
        }
        if std::env::var_os("MLVPN_NETNS_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
