//! A stranger on the internet, for the hostile-network scenarios (`tests/netns_hostile.rs`).
//!
//! ```text
//!   namespace mlvpn-<pid>-<n>-a (attacker)         namespace mlvpn-<pid>-<n>-s (server)
//!   a-eth0 10.88.0.1/30  <------ veth ------>      s-atk 10.88.0.2/30
//!   route 10.77.0.0/16 via 10.88.0.2               (the server's link addresses 10.77.<i>.2)
//! ```
//!
//! The attacker reaches every server port from an address that is not the client's. The
//! server's namespace gets a table `inet mlvpn_atk` whose output chain counts every packet
//! sent to the attacker ([`Attacker::sent_to_attacker`]): a VPN server must not answer
//! garbage, replays or a wrong password (no reflection, no amplification).
//!
//! Also here: capturing real datagrams off a veth ([`capture`], with `sniff.py`: a raw socket,
//! no tcpdump), sending datagrams from inside any namespace ([`send_all`]), and a paced flood
//! of random datagrams from a thread ([`Flood`]).
//!
//! Expects its includer to have `lab` and `ops` modules at the crate root.
#![allow(dead_code)]

use crate::lab::{self, Lab, Side, poll_until};
use crate::ops;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const ATTACKER_IP: &str = "10.88.0.1";
pub const ATTACKER_GW: &str = "10.88.0.2";

/// The attacker's namespace and its veth to the server. Dropping it deletes both.
#[derive(Debug)]
pub struct Attacker {
    pub ns: String,
    server_ns: String,
    daemons: Vec<Child>,
}

impl Attacker {
    pub fn new(lab: &Lab) -> Attacker {
        let ns = format!("mlvpn-{}-a", lab.id);
        let server_ns = lab.ns(Side::Server);
        lab::host(&["ip", "netns", "add", &ns]);
        let a = Attacker { ns: ns.clone(), server_ns: server_ns.clone(), daemons: Vec::new() };
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "-n", &ns, "link", "set", "lo", "up"],
            vec![
                "ip", "link", "add", "a-eth0", "netns", &ns, "type", "veth", "peer", "name", "s-atk",
                "netns", &server_ns,
            ],
            vec!["ip", "-n", &ns, "addr", "add", "10.88.0.1/30", "dev", "a-eth0"],
            vec!["ip", "-n", &server_ns, "addr", "add", "10.88.0.2/30", "dev", "s-atk"],
            vec!["ip", "-n", &ns, "link", "set", "a-eth0", "up"],
            vec!["ip", "-n", &server_ns, "link", "set", "s-atk", "up"],
            vec!["ip", "-n", &ns, "route", "add", "10.77.0.0/16", "via", ATTACKER_GW],
        ];
        for argv in steps {
            lab::host(&argv);
        }
        let rules = "table inet mlvpn_atk {\n\
                     \tcounter to_attacker { }\n\
                     \tchain output { type filter hook output priority 0; policy accept; \
                     ip daddr 10.88.0.1 counter name \"to_attacker\"; }\n\
                     }\n";
        let path = lab.write_file("attacker.nft", rules, 0o600);
        lab::host(&["ip", "netns", "exec", &server_ns, "nft", "-f", path.to_str().unwrap()]);
        a
    }

    /// Packets (and bytes) the server's namespace has sent to the attacker's address.
    pub fn sent_to_attacker(&self) -> (u64, u64) {
        let out = lab::host(&[
            "ip",
            "netns",
            "exec",
            &self.server_ns,
            "nft",
            "list",
            "counter",
            "inet",
            "mlvpn_atk",
            "to_attacker",
        ]);
        let num = |key: &str| {
            out.split_whitespace()
                .skip_while(|w| *w != key)
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX)
        };
        (num("packets"), num("bytes"))
    }

    /// Starts an mlvpn client in the attacker's namespace (one process, `--yes-run-as-root`)
    /// with `config`, logging to `log`; stopped when the attacker is dropped.
    pub fn start_daemon(&mut self, bin: &std::path::Path, config: &std::path::Path, log: &std::path::Path) {
        let file = std::fs::File::create(log).expect("attacker log");
        let child = Command::new(lab::tool("ip"))
            .args(["netns", "exec", &self.ns])
            .arg(bin)
            .arg("--config")
            .arg(config)
            .args(["--debug", "--yes-run-as-root"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start the attacker's mlvpn");
        self.daemons.push(child);
    }

    pub fn stop_daemons(&mut self) {
        for mut c in self.daemons.drain(..) {
            ops::signal(c.id(), libc::SIGTERM);
            if poll_until(Duration::from_secs(3), || c.try_wait().ok().flatten().is_some()).is_none() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop_daemons();
        let pids = Command::new(lab::tool("ip"))
            .args(["netns", "pids", &self.ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for p in pids.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
            ops::signal(p, libc::SIGKILL);
        }
        let _ = Command::new(lab::tool("ip")).args(["netns", "del", &self.ns]).stderr(Stdio::null()).status();
    }
}

/// One captured datagram.
#[derive(Debug, Clone)]
pub struct Captured {
    pub src: SocketAddr,
    pub payload: Vec<u8>,
}

/// Captures up to `count` UDP datagrams arriving on `ifname` (in `side`'s namespace) for port
/// `dport`, within `timeout`. Call it while traffic flows.
pub fn capture(
    lab: &Lab,
    side: Side,
    ifname: &str,
    dport: u16,
    count: usize,
    timeout: Duration,
) -> Vec<Captured> {
    let script = lab.write_file("sniff.py", include_str!("sniff.py"), 0o700);
    let argv = [
        "python3",
        script.to_str().unwrap(),
        ifname,
        &dport.to_string(),
        &count.to_string(),
        &format!("{}", timeout.as_secs_f64()),
    ];
    let out = lab.run(side, "sniff", &argv, timeout + Duration::from_secs(10));
    assert!(out.status.success(), "sniff.py failed: {}", out.stderr);
    out.stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [ip, port, hex] = f[..] else { return None };
            let payload =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            Some(Captured { src: format!("{ip}:{port}").parse().ok()?, payload })
        })
        .collect()
}

/// Sends `datagrams` to `dst` from a fresh socket in namespace `ns` (bound to `bind`, or to
/// any address), `gap` apart. Returns how many the kernel took.
pub fn send_all(
    ns: &str,
    bind: Option<&str>,
    dst: SocketAddr,
    datagrams: Vec<Vec<u8>>,
    gap: Duration,
) -> usize {
    let bind = bind.map_or("0.0.0.0:0".to_string(), |b| format!("{b}:0"));
    ops::in_netns(ns, move || {
        let s = UdpSocket::bind(&bind).expect("bind");
        let mut sent = 0;
        for d in &datagrams {
            if s.send_to(d, dst).is_ok() {
                sent += 1;
            }
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
        sent
    })
}

/// xorshift64*: reproducible noise.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// What a flood sent.
#[derive(Debug, Clone, Copy)]
pub struct FloodReport {
    pub sent: u64,
    pub bytes: u64,
    /// Sends the kernel refused (a full socket buffer).
    pub refused: u64,
    pub secs: f64,
}

impl FloodReport {
    pub fn pps(&self) -> f64 {
        self.sent as f64 / self.secs.max(1e-9)
    }
}

/// Random datagrams (1 to 1400 bytes) at `pps` per second, spread over `targets`, from a
/// thread in namespace `ns`, until stopped.
#[derive(Debug)]
pub struct Flood {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<FloodReport>,
}

impl Flood {
    pub fn start(ns: &str, targets: Vec<SocketAddr>, pps: u64, seed: u64) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = ops::spawn_in_netns(ns, move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            s.set_nonblocking(true).unwrap();
            let mut rng = Rng::new(seed);
            let pool: Vec<Vec<u8>> = (0..512)
                .map(|_| {
                    let len = 1 + rng.below(1400) as usize;
                    rng.bytes(len)
                })
                .collect();
            let start = Instant::now();
            let (mut sent, mut bytes, mut refused) = (0u64, 0u64, 0u64);
            let mut k = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * pps as f64) as u64;
                // At most 1024 at a time, so that the stop flag is seen when `pps` is more than
                // one core can send.
                let due = due.min(sent + refused + 1024);
                while sent + refused < due {
                    let mut d = pool[k % pool.len()].clone();
                    let n = rng.next().to_le_bytes();
                    let m = d.len().min(8);
                    d[..m].copy_from_slice(&n[..m]);
                    match s.send_to(&d, targets[k % targets.len()]) {
                        Ok(_) => {
                            sent += 1;
                            bytes += d.len() as u64;
                        }
                        Err(_) => refused += 1,
                    }
                    k += 1;
                }
                if (start.elapsed().as_secs_f64() * pps as f64) as u64 <= sent + refused {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            FloodReport { sent, bytes, refused, secs: start.elapsed().as_secs_f64() }
        });
        Flood { stop, handle }
    }

    pub fn stop(self) -> FloodReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

/// The config of a client in the attacker's namespace aiming at the server's `link0` with
/// the wrong password.
pub fn wrong_password_client(lab: &Lab) -> PathBuf {
    let l = &lab.links[0];
    let text = format!(
        "[general]\nmode = client\npassword = \"not the password\"\ninterface_name = mlvpn9\ntimeout = 10\n\
         \n[{name}]\nbindhost = {ATTACKER_IP}\nremotehost = {server}\nremoteport = {port}\n",
        name = l.name,
        server = l.server_ip,
        port = l.port
    );
    lab.write_file("attacker.conf", &text, 0o600)
}
