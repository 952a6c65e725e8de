//! Traffic through the lab: `iperf3` flows (JSON, 0.1 s intervals) and byte-exact transfers.
//!
//! Expects its includer to have `lab` and `json` modules at the crate root (see `lab.rs`).
#![allow(dead_code)]

use crate::json::Json;
use crate::lab::{self, Lab, Proc, Side, poll_until};
use std::time::{Duration, Instant};

/// One iperf3 reporting interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub start: f64,
    pub end: f64,
    pub bps: f64,
}

impl Interval {
    pub fn secs(&self) -> f64 {
        self.end - self.start
    }
}

/// What one iperf3 TCP flow measured.
#[derive(Debug, Clone)]
pub struct IperfRun {
    /// As seen by the receiver (what actually crossed), every 0.1 s.
    pub receiver: Vec<Interval>,
    /// As seen by the sender (what it wrote into its socket).
    pub sender: Vec<Interval>,
    /// Receiver's average over the whole flow, bit/s.
    pub receiver_bps: f64,
    pub bytes_received: f64,
    pub retransmits: Option<f64>,
}

impl IperfRun {
    /// Mean receiver rate over the intervals that start at or after `from` seconds (skips slow
    /// start), bit/s.
    pub fn mean_bps_from(&self, from: f64) -> f64 {
        mean_bps(self.receiver.iter().filter(|i| i.start >= from - 1e-6))
    }

    /// Mean receiver rate over `[from, to)`, bit/s.
    pub fn mean_bps_between(&self, from: f64, to: f64) -> f64 {
        mean_bps(self.receiver.iter().filter(|i| i.start >= from - 1e-6 && i.end <= to + 1e-6))
    }

    /// Seconds of receiver intervals that start at or after `from` with a rate below `bps`.
    pub fn secs_below(&self, bps: f64, from: f64) -> f64 {
        self.receiver.iter().filter(|i| i.start >= from - 1e-6 && i.bps < bps).fold(0.0, |t, i| t + i.secs())
    }

    /// The receiver rate per interval as a compact string of Mbit/s, for printing.
    pub fn sparkline(&self) -> String {
        self.sparkline_per(1)
    }

    /// The receiver rate averaged over every `n` intervals (0.1 s each), as a compact string of
    /// Mbit/s, for printing.
    pub fn sparkline_per(&self, n: usize) -> String {
        self.receiver
            .chunks(n)
            .map(|c| format!("{:.0}", c.iter().map(|i| i.bps).sum::<f64>() / c.len() as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn mean_bps<'a>(it: impl Iterator<Item = &'a Interval>) -> f64 {
    let (bits, secs) = it.fold((0.0, 0.0), |(b, s), i| (b + i.bps * i.secs(), s + i.secs()));
    if secs > 0.0 { bits / secs } else { 0.0 }
}

/// An iperf3 flow running in the background.
#[derive(Debug)]
pub struct IperfFlow {
    server: Proc,
    client: Proc,
    secs: f64,
    /// When the client was started (the flow starts a few ms later).
    pub started: Instant,
}

/// Starts a `secs` long TCP flow from side `from` to `dst_ip:port` (an address of the other
/// side): iperf3 server on the other side, client on `from`, with the lab's congestion control
/// ([`lab::tcp_congestion_control`]).
pub fn iperf_start(lab: &Lab, from: Side, dst_ip: &str, port: u16, secs: f64) -> IperfFlow {
    iperf_start_cc(lab, from, dst_ip, port, secs, lab::tcp_congestion_control().as_deref())
}

/// [`iperf_start`] with the sender's congestion control named (`None`: the host's default).
pub fn iperf_start_cc(
    lab: &Lab,
    from: Side,
    dst_ip: &str,
    port: u16,
    secs: f64,
    cc: Option<&str>,
) -> IperfFlow {
    let to = from.other();
    let port_s = port.to_string();
    let server = lab.spawn(
        to,
        &format!("iperf3-server-{port}"),
        &["iperf3", "-s", "-1", "-B", dst_ip, "-p", &port_s, "-J", "-i", "0.1"],
    );
    if poll_until(Duration::from_secs(5), || lab.tcp_listening(to, port)).is_none() {
        panic!("iperf3 server on {dst_ip}:{port} not listening; stderr: {}", server.stderr());
    }
    let secs_s = format!("{secs}");
    let mut argv = vec![
        "iperf3",
        "-c",
        dst_ip,
        "-p",
        &port_s,
        "-t",
        &secs_s,
        "-i",
        "0.1",
        "-J",
        "--get-server-output",
        "--connect-timeout",
        "5000",
    ];
    if let Some(cc) = cc {
        argv.extend(["-C", cc]);
    }
    let client = lab.spawn(from, &format!("iperf3-client-{port}"), &argv);
    IperfFlow { server, client, secs, started: Instant::now() }
}

impl IperfFlow {
    /// Seconds since the flow started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Waits for the flow to end and parses what it measured. Panics on any iperf3 error.
    pub fn finish(mut self) -> IperfRun {
        let limit = Duration::from_secs_f64(self.secs + 30.0);
        if self.client.wait_timeout(limit).is_none() {
            self.client.terminate(Duration::from_secs(1));
            panic!("iperf3 client did not finish within {limit:?}");
        }
        self.server.wait_timeout(Duration::from_secs(5));
        let text = self.client.stdout();
        let doc = Json::parse(&text).unwrap_or_else(|e| {
            panic!("iperf3 printed no JSON ({e}); stdout: {text}; stderr: {}", self.client.stderr())
        });
        if let Some(err) = doc.get("error").and_then(Json::as_str) {
            panic!("iperf3 failed: {err}; server stderr: {}", self.server.stderr());
        }
        let server_doc = doc.get("server_output_json").expect("iperf3 JSON without server_output_json");
        let f = |v: &Json, path: &[&str]| v.at(path).and_then(Json::as_f64);
        IperfRun {
            receiver: intervals(server_doc),
            sender: intervals(&doc),
            receiver_bps: f(&doc, &["end", "sum_received", "bits_per_second"]).unwrap_or(0.0),
            bytes_received: f(&doc, &["end", "sum_received", "bytes"]).unwrap_or(0.0),
            retransmits: f(&doc, &["end", "sum_sent", "retransmits"]),
        }
    }
}

fn intervals(doc: &Json) -> Vec<Interval> {
    doc.get("intervals")
        .and_then(Json::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| {
            let sum = i.get("sum")?;
            Some(Interval {
                start: sum.get("start")?.as_f64()?,
                end: sum.get("end")?.as_f64()?,
                bps: sum.get("bits_per_second")?.as_f64()?,
            })
        })
        .filter(|i| i.secs() > 0.01) // iperf3 may close with a sliver of an interval
        .collect()
}

/// A `secs` long TCP flow from `from` to `dst_ip:port`, to completion.
pub fn iperf(lab: &Lab, from: Side, dst_ip: &str, port: u16, secs: f64) -> IperfRun {
    iperf_start(lab, from, dst_ip, port, secs).finish()
}

/// What a byte-exact transfer saw on each end.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub bytes_sent: u64,
    pub sha_sent: String,
    pub bytes_received: u64,
    pub sha_received: String,
    /// Receiver's time from accept to EOF.
    pub secs: f64,
}

impl Transfer {
    pub fn mbit_per_sec(&self) -> f64 {
        self.bytes_received as f64 * 8.0 / self.secs.max(1e-9) / 1e6
    }
}

/// Sends `nbytes` of a pseudo-random stream (seeded) over TCP from side `from` to
/// `dst_ip:port` on the other side, hashing on both ends (`xfer.py`).
pub fn transfer(
    lab: &Lab,
    from: Side,
    dst_ip: &str,
    port: u16,
    nbytes: u64,
    seed: u64,
    timeout: Duration,
) -> Transfer {
    let cc = lab::tcp_congestion_control().unwrap_or_default();
    transfer_cc(lab, from, (dst_ip, port), nbytes, seed, timeout, &cc)
}

/// [`transfer`] with the sender's congestion control `cc` (empty: the namespace's default).
pub fn transfer_cc(
    lab: &Lab,
    from: Side,
    (dst_ip, port): (&str, u16),
    nbytes: u64,
    seed: u64,
    timeout: Duration,
    cc: &str,
) -> Transfer {
    let script = lab.write_file("xfer.py", include_str!("xfer.py"), 0o700);
    let script = script.to_str().unwrap();
    let t = format!("{}", timeout.as_secs());
    let port_s = port.to_string();
    let mut receiver = lab.spawn(
        from.other(),
        &format!("xfer-recv-{port}"),
        &["python3", script, "recv", dst_ip, &port_s, &t],
    );
    if poll_until(Duration::from_secs(10), || receiver.stdout().starts_with("listening")).is_none() {
        panic!("xfer receiver not listening: {}", receiver.stderr());
    }
    let (n, seed) = (nbytes.to_string(), seed.to_string());
    let mut sender = lab.spawn(
        from,
        &format!("xfer-send-{port}"),
        &["python3", script, "send", dst_ip, &port_s, &n, &seed, &t, cc],
    );
    let start = Instant::now();
    for p in [&mut sender, &mut receiver] {
        let left = timeout.saturating_sub(start.elapsed());
        match p.wait_timeout(left) {
            Some(s) if s.success() => {}
            Some(s) => panic!("{} failed ({s}): {}", p.name, p.stderr()),
            None => panic!("{} did not finish within {timeout:?}", p.name),
        }
    }
    let parse = |p: &Proc| -> (u64, String, f64) {
        let out = p.stdout();
        let line = out.lines().last().unwrap_or("").to_string();
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [n, sha, secs] => (n.parse().unwrap(), sha.to_string(), secs.parse().unwrap()),
            _ => panic!("{}: unexpected output {out:?}", p.name),
        }
    };
    let (bytes_sent, sha_sent, _) = parse(&sender);
    let (bytes_received, sha_received, secs) = parse(&receiver);
    Transfer { bytes_sent, sha_sent, bytes_received, sha_received, secs }
}
