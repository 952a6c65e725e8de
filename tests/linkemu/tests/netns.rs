//! Measured against configured: `linkemu` between two namespaces, driven through the test
//! harness (`../harness.rs`, as the end-to-end suite would), checked with ping and iperf3.
//!
//! Needs root, `ip`, `ping` and `iperf3`, and about a minute; so it is ignored by default:
//!
//! ```sh
//! cargo test --release --manifest-path tests/linkemu/Cargo.toml --test netns -- --ignored --nocapture
//! ```
//!
//! Layout (three namespaces `lemu-<pid>-{c,e,s}`; only addresses on veths created here):
//!
//! ```text
//!  client                 emulator                          server
//!  c0 10.251.0.1/24 ── e-c0 [linkemu link 0] e-s0 ── s0 10.251.0.2/24   iperf3 -s :5201
//!  c1 10.251.1.1/24 ── e-c1 [linkemu link 1] e-s1 ── s1 10.251.1.2/24   iperf3 -s :5201
//!  c2 10.251.2.1/24 ── e-c2 [linkemu link 2] e-s2 ── s2 10.251.2.2/24   iperf3 -s :5201
//! ```
//!
//! Prints a table of measured against configured figures and fails if any is out of bounds.

#[path = "../harness.rs"]
mod harness;
#[path = "../../netns/json.rs"]
mod json;

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use harness::{Emulator, ip, prepare_namespace, splice_link};
use json::Json;

const LINKS: usize = 3;
/// TCP payload per Ethernet frame (MSS 1448 with timestamps, frame 1514).
const TCP_EFFICIENCY: f64 = 1448.0 / 1514.0;

// ---------------------------------------------------------------------------------------------
// Namespaces and processes, cleaned up on drop (also when an assertion fails)
// ---------------------------------------------------------------------------------------------

struct Net {
    prefix: String,
    servers: Vec<Child>,
    emu: Option<Emulator>,
}

impl Net {
    fn ns(&self, side: char) -> String {
        format!("{}-{side}", self.prefix)
    }

    fn create() -> Net {
        remove_stale();
        let mut net = Net { prefix: format!("lemu-{}", std::process::id()), servers: Vec::new(), emu: None };
        for side in ['c', 'e', 's'] {
            let ns = net.ns(side);
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns]).unwrap();
            ip(&["-n", &ns, "link", "set", "lo", "up"]).unwrap();
        }
        prepare_namespace(&net.ns('e')).unwrap();
        let mut pairs = Vec::new();
        for l in 0..LINKS {
            let (c, s) = (format!("c{l}"), format!("s{l}"));
            pairs.push(splice_link(&net.ns('e'), l, &net.ns('c'), &c, &net.ns('s'), &s).unwrap());
            ip(&["-n", &net.ns('c'), "addr", "add", &format!("10.251.{l}.1/24"), "dev", &c]).unwrap();
            ip(&["-n", &net.ns('s'), "addr", "add", &format!("10.251.{l}.2/24"), "dev", &s]).unwrap();
        }
        let control = std::env::temp_dir().join(format!("{}.sock", net.prefix));
        let log = std::env::temp_dir().join(format!("{}.log", net.prefix));
        net.emu = Some(Emulator::start(&net.ns('e'), &pairs, &[], &control, &log).unwrap());
        for l in 0..LINKS {
            let server = Command::new("ip")
                .args(["netns", "exec", &net.ns('s'), "iperf3", "-s", "-p", "5201"])
                .args(["-B", &format!("10.251.{l}.2")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            net.servers.push(server);
        }
        sleep(Duration::from_millis(300));
        net
    }

    /// Frames sent so far, those of them sent more than 1 ms after their time, and the worst
    /// lateness so far (ms), over every link and direction.
    fn lateness(&self) -> (u64, u64, f64) {
        let stats = self.emu().show().unwrap();
        let sent = stats.iter().map(|s| s.get("tx")).sum();
        let late = stats.iter().map(|s| s.get("late_1ms")).sum();
        let worst = stats
            .iter()
            .filter_map(|s| s.fields.get("late_max")?.strip_suffix("us")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        (sent, late, worst as f64 / 1000.0)
    }

    fn emu(&self) -> &Emulator {
        self.emu.as_ref().unwrap()
    }

    fn set(&self, cmd: &str) {
        self.emu().cmd(cmd).unwrap();
    }

    /// Runs a command in the client namespace and returns its stdout.
    fn client(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.ns('c')]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ping(&self, link: usize, count: u32, interval: &str) -> Ping {
        let dst = format!("10.251.{link}.2");
        Ping::parse(&self.client(&["ping", "-n", "-c", &count.to_string(), "-i", interval, "-W", "1", &dst]))
    }

    fn iperf(&self, link: usize, args: &[&str]) -> Json {
        let dst = format!("10.251.{link}.2");
        let mut all = vec!["iperf3", "-c", &dst, "-p", "5201", "-J"];
        all.extend_from_slice(args);
        let text = self.client(&all);
        Json::parse(&text).unwrap_or_else(|e| panic!("iperf3 {args:?}: {e}: {text}"))
    }

    /// CPU time of the emulator so far, in seconds: (user, system).
    fn emu_cpu(&self) -> (f64, f64) {
        let pid = self.emu().pid().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = after.split(' ').skip(11).take(2).map(|x| x.parse().unwrap()).collect();
        (f[0] as f64 / clock_ticks(), f[1] as f64 / clock_ticks())
    }

    /// The emulator's CPU use while `f` runs, as % of one core: (total, user, system).
    fn cpu_during<T>(&self, f: impl FnOnce() -> T) -> (T, Cpu) {
        let ((u0, s0), w0) = (self.emu_cpu(), Instant::now());
        let r = f();
        let ((u1, s1), secs) = (self.emu_cpu(), w0.elapsed().as_secs_f64());
        (r, Cpu { user: (u1 - u0) / secs * 100.0, system: (s1 - s0) / secs * 100.0 })
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(emu) = self.emu.take() {
            let log = emu.stop();
            if thread::panicking() {
                eprintln!("--- linkemu log ---\n{log}");
            }
            let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{}.log", self.prefix)));
        }
        for mut s in self.servers.drain(..) {
            let _ = s.kill();
            let _ = s.wait();
        }
        for side in ['c', 'e', 's'] {
            let _ = ip(&["netns", "del", &self.ns(side)]);
        }
    }
}

struct Cpu {
    user: f64,
    system: f64,
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0}% of one core ({:.0}% user, {:.0}% kernel)",
            self.user + self.system,
            self.user,
            self.system
        )
    }
}

/// Removes the namespaces of earlier runs that died without cleaning up (SIGKILL, Ctrl-C): their
/// names carry the pid of a process that no longer exists. Stops what still runs in them first
/// (an emulator or iperf3 server of that run).
fn remove_stale() {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name.strip_prefix("lemu-").and_then(|r| r.split('-').next()) else { continue };
        // Alive unless gone or a zombie (a killed run whose parent has not reaped it yet).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = stat.rfind(')').is_some_and(|i| !stat[i + 1..].trim_start().starts_with('Z'));
        if pid.parse::<u32>().is_err() || alive {
            continue;
        }
        let pids = Command::new("ip").args(["netns", "pids", name]).output().unwrap();
        for p in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", p]).status();
        }
        let _ = ip(&["netns", "del", name]);
    }
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// ping and iperf3 output
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Ping {
    /// (icmp_seq, rtt ms) of every reply.
    replies: Vec<(u32, f64)>,
}

impl Ping {
    fn parse(text: &str) -> Ping {
        let mut replies = Vec::new();
        for line in text.lines() {
            let field = |key: &str| line.split(key).nth(1).and_then(|r| r.split_whitespace().next());
            if let (Some(seq), Some(t)) = (field("icmp_seq="), field("time=")) {
                replies.push((seq.parse().unwrap(), t.parse().unwrap()));
            }
        }
        Ping { replies }
    }

    fn rtts(&self) -> Vec<f64> {
        self.replies.iter().map(|r| r.1).collect()
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn stdev(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

fn min(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
}

/// `iperf3 -J` figures, read with the netns lab's JSON reader.
trait Iperf {
    fn num(&self, path: &[&str]) -> f64;
    fn items(&self, path: &[&str]) -> &[Json];
    /// (end time, bit/s) of every reporting interval.
    fn intervals(&self) -> Vec<(f64, f64)>;
}

impl Iperf for Json {
    fn num(&self, path: &[&str]) -> f64 {
        self.at(path).and_then(Json::as_f64).unwrap_or_else(|| panic!("iperf3 JSON: no number at {path:?}"))
    }

    fn items(&self, path: &[&str]) -> &[Json] {
        self.at(path).and_then(Json::as_array).unwrap_or(&[])
    }

    fn intervals(&self) -> Vec<(f64, f64)> {
        self.items(&["intervals"])
            .iter()
            .map(|i| (i.num(&["sum", "end"]), i.num(&["sum", "bits_per_second"])))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

struct Row {
    what: String,
    configured: String,
    measured: String,
    ok: bool,
}

#[derive(Default)]
struct Table(Vec<Row>);

impl Table {
    fn row(&mut self, what: &str, configured: String, measured: String, ok: bool) {
        eprintln!(
            "{} {what}: configured {configured}, measured {measured}",
            if ok { "  ok" } else { "FAIL" }
        );
        self.0.push(Row { what: what.into(), configured, measured, ok });
    }

    fn print(&self) -> String {
        let mut s = String::new();
        let w0 = self.0.iter().map(|r| r.what.len()).max().unwrap_or(0);
        let w1 = self.0.iter().map(|r| r.configured.len()).max().unwrap_or(0).max(10);
        let _ = writeln!(s, "| {:w0$} | {:w1$} | measured | |", "what", "configured");
        let _ = writeln!(s, "|{}|{}|---|---|", "-".repeat(w0 + 2), "-".repeat(w1 + 2));
        for r in &self.0 {
            let verdict = if r.ok { "ok" } else { "**FAIL**" };
            let _ = writeln!(s, "| {:w0$} | {:w1$} | {} | {verdict} |", r.what, r.configured, r.measured);
        }
        s
    }
}

fn within(x: f64, lo: f64, hi: f64) -> bool {
    (lo..=hi).contains(&x)
}

fn mbit(bps: f64) -> f64 {
    bps / 1e6
}

#[test]
#[ignore = "needs root, network namespaces, ping and iperf3; run with --ignored --nocapture"]
fn measured_against_configured() {
    let net = Net::create();
    let mut t = Table::default();

    // Warm ARP on every link, so no measurement includes a neighbour resolution.
    for l in 0..LINKS {
        assert_eq!(net.ping(l, 1, "0.2").replies.len(), 1, "link {l} does not forward");
    }

    // Delay.
    net.set("link 0 delay 10ms");
    let p = net.ping(0, 50, "0.02").rtts();
    t.row(
        "delay 10 ms each way: ping RTT (50)",
        "20.0 ms".into(),
        format!("{:.2} ms (min {:.2}, max {:.2})", mean(&p), min(&p), max(&p)),
        p.len() == 50 && within(mean(&p), 19.0, 21.0) && min(&p) >= 20.0,
    );
    net.set("link 1 up delay 30ms");
    net.set("link 1 down delay 5ms");
    let p = net.ping(1, 50, "0.02").rtts();
    t.row(
        "delay 30 ms up, 5 ms down: ping RTT (50)",
        "35.0 ms".into(),
        format!("{:.2} ms (min {:.2}, max {:.2})", mean(&p), min(&p), max(&p)),
        p.len() == 50 && within(mean(&p), 34.0, 36.0) && min(&p) >= 35.0,
    );

    // Jitter: pings 40 ms apart, more than 2 x jitter, so each draw is independent.
    net.set("link 2 delay 20ms jitter 5ms");
    let p = net.ping(2, 150, "0.04").rtts();
    let sd_expected = (2.0 * 25.0 / 3.0f64).sqrt();
    t.row(
        "delay 20 ms jitter 5 ms each way: ping RTT (150)",
        format!("30..50 ms, mean 40, sd {sd_expected:.2}"),
        format!("{:.2}..{:.2} ms, mean {:.2}, sd {:.2}", min(&p), max(&p), mean(&p), stdev(&p)),
        p.len() == 150
            && min(&p) >= 30.0
            && max(&p) <= 51.0
            && within(mean(&p), 39.0, 41.0)
            && within(stdev(&p), sd_expected - 0.8, sd_expected + 0.8),
    );
    let j = net.iperf(2, &["-u", "-b", "20M", "-l", "1200", "-t", "3"]);
    let (ooo, pkts, lost) = (
        j.items(&["end", "streams"])[0].num(&["udp", "out_of_order"]),
        j.num(&["end", "sum_received", "packets"]),
        j.num(&["end", "sum_received", "lost_packets"]),
    );
    t.row(
        "jitter 5 ms, UDP 20 Mbit/s: order kept",
        "0 out of order, 0 lost".into(),
        format!("{ooo} out of order, {lost} lost of {pkts}"),
        ooo == 0.0 && lost == 0.0 && pkts > 5_000.0,
    );

    // Loss, on the up direction only.
    net.set("link 0 reset");
    net.set("link 0 up loss 5%");
    let before = net.emu().show().unwrap()[0].get("lost");
    let j = net.iperf(0, &["-u", "-b", "10M", "-l", "1000", "-t", "4"]);
    let (pkts, lost) =
        (j.num(&["end", "sum_received", "packets"]), j.num(&["end", "sum_received", "lost_packets"]));
    let emu_lost = net.emu().show().unwrap()[0].get("lost") - before;
    let sigma = (0.05 * 0.95 / pkts).sqrt() * 100.0;
    let pct = lost / pkts * 100.0;
    t.row(
        "loss 5% up: UDP 10 Mbit/s, iperf3 lost",
        format!("5.00% (3 sigma = {:.2}%)", 3.0 * sigma),
        format!("{pct:.2}% ({lost} of {pkts}; emulator dropped {emu_lost} incl. TCP control)"),
        within(pct, 5.0 - 3.0 * sigma, 5.0 + 3.0 * sigma),
    );

    // Rate, UDP: offered 30 Mbit/s to a 20 Mbit/s link. iperf3 counts UDP payload; the link
    // counts frames (payload + 8 UDP + 20 IP + 14 Ethernet).
    net.set("link 1 reset rate 20mbit");
    let j = net.iperf(1, &["-u", "-b", "30M", "-l", "1400", "-t", "5"]);
    let frames = mbit(j.num(&["end", "sum_received", "bits_per_second"])) * 1442.0 / 1400.0;
    t.row(
        "rate 20 Mbit/s: UDP offered 30, frames received",
        "20.00 Mbit/s".into(),
        format!("{frames:.2} Mbit/s"),
        within(frames, 19.6, 20.4),
    );

    // Rate, TCP (reverse: the client receives, so iperf3's intervals are the receiver's).
    net.set("link 1 delay 10ms");
    let j = net.iperf(1, &["-R", "-t", "5"]);
    let good = mbit(j.num(&["end", "sum_received", "bits_per_second"]));
    t.row(
        "rate 20 Mbit/s delay 10 ms: TCP goodput",
        format!("{:.2} Mbit/s", 20.0 * TCP_EFFICIENCY),
        format!("{good:.2} Mbit/s"),
        within(good, 20.0 * TCP_EFFICIENCY * 0.93, 20.0 * TCP_EFFICIENCY * 1.02),
    );

    // Rate changed at run time, mid-transfer: 40 -> 10 Mbit/s at 3 s.
    net.set("link 0 reset delay 10ms rate 40mbit");
    // The emulator's own clock schedules the change, 3 s from now; iperf3 starts within ms.
    net.set("after 3s link 0 rate 10mbit");
    let j = net.iperf(0, &["-R", "-t", "8", "-i", "0.5"]);
    let iv = j.intervals();
    let rate_in = |from: f64, to: f64| {
        let v: Vec<f64> =
            iv.iter().filter(|(end, _)| *end > from + 0.25 && *end <= to + 0.01).map(|x| mbit(x.1)).collect();
        mean(&v)
    };
    let (r1, r2) = (rate_in(1.0, 3.0), rate_in(4.0, 8.0));
    let settle = iv.iter().find(|(end, bps)| *end > 3.0 && mbit(*bps) <= 10.0 * 1.1).map(|x| x.0 - 3.0);
    t.row(
        "rate 40 -> 10 Mbit/s at 3 s: TCP goodput 1-3 s / 4-8 s",
        format!("{:.2} / {:.2} Mbit/s", 40.0 * TCP_EFFICIENCY, 10.0 * TCP_EFFICIENCY),
        format!("{r1:.2} / {r2:.2} Mbit/s (at 10 +10% within {:.1} s)", settle.unwrap_or(f64::NAN)),
        within(r1, 40.0 * TCP_EFFICIENCY * 0.9, 40.0 * TCP_EFFICIENCY * 1.02)
            && within(r2, 10.0 * TCP_EFFICIENCY * 0.9, 10.0 * TCP_EFFICIENCY * 1.02)
            && settle.is_some_and(|s| s <= 1.0),
    );

    // A scripted outage: blackhole from 1 s to 3 s after the command, measured by a UDP flow at
    // a steady 1250 datagrams/s: outage = lost / rate. (The emulator's clock runs the script;
    // iperf3 starts within a few ms, its TCP control connection rides out the outage.)
    net.set("link 2 reset");
    net.set("after 1s link 2 blackhole on");
    net.set("after 3s link 2 blackhole off");
    let j = net.iperf(2, &["-u", "-b", "1M", "-l", "100", "-t", "4"]);
    let (pkts, lost) =
        (j.num(&["end", "sum_received", "packets"]), j.num(&["end", "sum_received", "lost_packets"]));
    let outage = lost / 1250.0;
    t.row(
        "blackhole from 1 s to 3 s: UDP 1250 datagrams/s, lost / rate",
        "2.000 s".into(),
        format!("{outage:.3} s ({lost} lost of {pkts})"),
        within(outage, 1.98, 2.02),
    );

    // 200 Mbit/s in all: three TCP flows at once, 80 + 70 + 60 Mbit/s, 5 / 10 / 20 ms.
    let rates = [80.0, 70.0, 60.0];
    for (l, (r, d)) in rates.iter().zip([5, 10, 20]).enumerate() {
        net.set(&format!("link {l} reset rate {r}mbit delay {d}ms"));
    }
    let (sent0, late0, _) = net.lateness();
    let (total, cpu, per) = parallel(&net, 10);
    let (sent1, late1, _) = net.lateness();
    let expected = rates.iter().sum::<f64>() * TCP_EFFICIENCY;
    t.row(
        "80+70+60 Mbit/s, 5/10/20 ms: 3 TCP flows at once, total goodput",
        format!("{expected:.1} Mbit/s"),
        format!(
            "{total:.1} Mbit/s ({per}); linkemu CPU {cpu}; {} of {} frames sent > 1 ms late",
            late1 - late0,
            sent1 - sent0
        ),
        within(total, expected * 0.93, expected * 1.02),
    );

    // Idle: no busy spinning.
    let ((), idle) = net.cpu_during(|| sleep(Duration::from_secs(3)));
    t.row(
        "idle for 3 s: linkemu CPU",
        "~0%".into(),
        format!("{:.1}% of one core", idle.user + idle.system),
        idle.user + idle.system < 1.0,
    );

    // Scheduling: how late frames left, over everything so far (the headroom run below
    // saturates the emulator on purpose, so its frames queue behind each other).
    let (sent, late, worst) = net.lateness();
    t.row(
        "all of the above: frames sent after their time, > 1 ms and worst",
        "at most 0.1% > 1 ms".into(),
        format!("{late} of {sent} ({:.3}%), worst {worst:.3} ms", late as f64 * 100.0 / sent as f64),
        late * 1000 <= sent,
    );

    // Headroom: no rate limit, three flows at once (informative: the machine's limit, where the
    // emulator itself is the bottleneck).
    net.set("link all reset delay 5ms");
    let (total, cpu, per) = parallel(&net, 5);
    t.row(
        "no rate limit, 5 ms: 3 TCP flows at once (headroom)",
        "as fast as it goes".into(),
        format!("{total:.1} Mbit/s ({per}); linkemu CPU {cpu}"),
        total > 200.0,
    );

    // Nothing the emulator could not handle, and nothing stuck once the last flow is over.
    sleep(Duration::from_millis(500));
    let stats = net.emu().show().unwrap();
    let bad: u64 = stats.iter().map(|s| s.get("oversize") + s.get("tx_error") + s.get("ring_full")).sum();
    let held: u64 = stats.iter().map(|s| s.get("held")).sum();
    t.row(
        "whole run: oversize + tx_error + ring_full, frames held at the end",
        "0, 0".into(),
        format!("{bad}, {held}"),
        bad == 0 && held == 0,
    );

    let table = t.print();
    eprintln!("\n{table}");
    assert!(t.0.iter().all(|r| r.ok), "some figures are out of bounds:\n{table}");
}

/// Runs one reverse TCP flow per link at once for `secs`; returns the total goodput (Mbit/s),
/// the emulator's CPU over the run, and the per-link figures.
fn parallel(net: &Net, secs: u32) -> (f64, Cpu, String) {
    let (results, cpu) = net.cpu_during(|| {
        thread::scope(|s| {
            let hs: Vec<_> = (0..LINKS)
                .map(|l| {
                    s.spawn(move || {
                        let j = net.iperf(l, &["-R", "-t", &secs.to_string()]);
                        mbit(j.num(&["end", "sum_received", "bits_per_second"]))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<f64>>()
        })
    });
    let per = results.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(" + ");
    (results.iter().sum(), cpu, per)
}
