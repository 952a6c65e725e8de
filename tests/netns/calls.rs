//! Issue 13: a VoIP call beside a bulk upload over a failing bond, measured end to end.
//!
//! The issue's links, through the link emulator ([`crate::emulated`]): 3 × 40 Mbit/s, one-way
//! 20/30/40 ms; link 0 (the fastest) loses 5 % of its frames both ways and is cut (blackholed
//! both ways) for a while during the call. Client → server: a bulk TCP upload (iperf3) that
//! saturates the bond from [`LEAD`] seconds before the call to [`TAIL`] after it, and the call,
//! `call.py send`: 50 packets/s of 200-byte IP packets, marked DSCP EF unless told otherwise,
//! timed by `call.py recv` on the one host clock both namespaces share. `call.py tap` counts
//! the call's datagrams on each link as the client sends them (a datagram of the call is the
//! only one of its size: 200 + the tunnel's 61 bytes), so the cost of sending the call twice
//! can be told from the upload.
//!
//! Shared by `tests/netns_calls.rs` (CI: [`Floors`]) and `tests/bench/calls.rs` (the figures).
//! Expects its includer to have `emulated`, `json`, `lab` and `traffic` modules at the crate
//! root.
#![allow(dead_code)]

use crate::emulated::{self, EmuLab, EmuLink, FlowPlan, TimedSpawn};
use crate::json::Json;
use crate::lab::{self, Proc, Side, TunnelOpts, poll_until};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The call: packets per second, IP packet size (172 bytes of UDP payload), and the TOS byte
/// of DSCP EF (46 << 2), what VoIP phones mark and the engine treats as real-time.
pub const CALL_PPS: f64 = 50.0;
pub const CALL_IP_BYTES: u32 = 200;
pub const DSCP_EF: u8 = 0xb8;
pub const CALL_PORT: u16 = 5300;
/// A packet of the call on a link: through the tunnel (33 bytes, UDP, IPv4) in an Ethernet
/// frame. The only frames of that size: how `call.py tap` tells the call's from the upload's.
pub const CALL_FRAME_BYTES: u32 = CALL_IP_BYTES + emulated::MLVPN_OVERHEAD_V4 + emulated::ETHERNET_HEADER;
/// One-way delay past which a voice packet is as good as lost (ITU-T G.114); `call.py`'s.
pub const LATE_MS: f64 = 150.0;
/// The upload runs this long before the call starts (past slow start, the bond saturated)...
pub const LEAD: f64 = 2.0;
/// ... and this long after it ends.
pub const TAIL: f64 = 1.0;
/// The issue's links: (Mbit/s, one-way ms); link 0 is the lossy one that is cut.
pub const LINKS: [(f64, f64); 3] = [(40.0, 20.0), (40.0, 30.0), (40.0, 40.0)];
pub const LOSS: &str = "5%";
const MTU: u32 = lab::DEFAULT_MTU;

/// The call's length and link 0's cut, seconds into the call.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub secs: f64,
    pub cut_at: f64,
    pub cut_secs: f64,
}

/// The issue's: a 30 s call, link 0 cut for 2 s at 10 s.
pub const ISSUE: Timing = Timing { secs: 30.0, cut_at: 10.0, cut_secs: 2.0 };

/// Where the links' 40 Mbit/s bottleneck and its queue are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bottleneck {
    /// The emulator's rate and byte queue (50 ms of the rate).
    Emu,
    /// The kernel's `tbf` on both veth ends (`burst 64kb latency 50ms`), as a user shapes a WAN;
    /// the emulator adds only the delay, the loss and the cut.
    Tbf,
}

impl Bottleneck {
    pub fn label(self) -> &'static str {
        match self {
            Bottleneck::Emu => "emu",
            Bottleneck::Tbf => "tbf",
        }
    }
}

/// The issue's links; no `bandwidth_upload` (no tuning keys).
pub fn links(bottleneck: Bottleneck) -> Vec<EmuLink> {
    LINKS
        .iter()
        .enumerate()
        .map(|(i, &(rate, delay))| {
            let mut link = EmuLink::new(rate, delay).no_bandwidth();
            if bottleneck == Bottleneck::Tbf {
                link.settings = format!("delay {}", emulated::duration(delay));
            }
            if i == 0 { link.with(&format!("loss {LOSS}")) } else { link }
        })
        .collect()
}

/// A lab over the issue's links with the tunnel up; `bin` replaces the test's binary.
pub fn start_lab(bin: Option<&Path>, bottleneck: Bottleneck, opts: &TunnelOpts) -> EmuLab {
    let mut lab = EmuLab::new(&links(bottleneck));
    if let Some(bin) = bin {
        lab.bin = Some(bin.to_path_buf());
    }
    if bottleneck == Bottleneck::Tbf {
        for (i, &(rate, _)) in LINKS.iter().enumerate() {
            lab.shape_tbf(i, &emulated::rate(rate), "64kb", "50ms");
        }
    }
    lab.start_both(opts);
    lab.wait_tunnel(Duration::from_secs(20));
    lab
}

/// The bond's goodput limit for the upload: the links' rates × one TCP flow's goodput ratio
/// (loss and cut not deducted: they are what the tunnel has to hide).
pub fn limit_mbit() -> f64 {
    LINKS.iter().map(|l| l.0).sum::<f64>() * emulated::goodput_ratio(MTU)
}

/// What `call.py` measured (sender and receiver).
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    /// One-way delay of each sequence number, ms (`None`: lost).
    pub owd: Vec<Option<f64>>,
    /// How far the sender fell behind its schedule, and the receiver behind the kernel's
    /// arrival stamps, at worst (ms): the test machine's share in the figures.
    pub sender_behind_ms: f64,
    pub receiver_lag_ms: f64,
}

impl CallStats {
    fn parse(sender: &str, receiver: &str) -> Result<CallStats, String> {
        let last = |text: &str| text.lines().rfind(|l| l.starts_with('{')).map(Json::parse);
        let s = last(sender).ok_or("no summary")?.map_err(|e| e.to_string())?;
        let r = last(receiver).ok_or("no summary")?.map_err(|e| e.to_string())?;
        let n = |j: &Json, k: &str| j.get(k).and_then(Json::as_f64).unwrap_or(f64::NAN);
        let sent = n(&s, "sent") as u64;
        let received = n(&r, "received") as u64;
        Ok(CallStats {
            sent,
            received,
            lost: sent.saturating_sub(received),
            late: n(&r, "late") as u64,
            duplicated: n(&r, "duplicated") as u64,
            out_of_order: n(&r, "out_of_order") as u64,
            p50: n(&r, "p50_ms"),
            p95: n(&r, "p95_ms"),
            p99: n(&r, "p99_ms"),
            max: n(&r, "max_ms"),
            owd: r.get("owd_ms").and_then(Json::as_array).unwrap_or(&[]).iter().map(Json::as_f64).collect(),
            sender_behind_ms: n(&s, "behind_max_ms"),
            receiver_lag_ms: n(&r, "receiver_lag_max_ms"),
        })
    }

    /// Packets the call could not play: lost, or later than [`LATE_MS`].
    pub fn unplayable(&self) -> u64 {
        self.lost + self.late
    }

    /// Per second of the call: the worst one-way delay (ms), and `(-lost >late)` where any.
    pub fn per_second(&self) -> String {
        let per = CALL_PPS as usize;
        let mut out = Vec::new();
        for (k, chunk) in self.owd.chunks(per).enumerate() {
            let lost = chunk.iter().filter(|d| d.is_none()).count();
            let late = chunk.iter().flatten().filter(|&&d| d > LATE_MS).count();
            let max = chunk.iter().flatten().copied().fold(f64::NAN, f64::max);
            let mut s = format!("{k}s:{max:.0}");
            if lost + late > 0 {
                let _ = write!(s, "(-{lost} >{late})");
            }
            out.push(s);
        }
        out.join(" ")
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct CallRun {
    /// `None` in a run without the call.
    pub call: Option<CallStats>,
    /// The upload's goodput over the call's time (iperf3's receiver; with or without the call),
    /// Mbit/s; per second of the whole flow.
    pub upload_mbit: f64,
    pub upload_per_second: String,
    pub retransmits: f64,
    /// Bytes the client put on each link over the whole flow (the emulator's counters, frames
    /// whole: Ethernet header included).
    pub link_bytes: Vec<u64>,
    /// The call's datagrams the client put on each link (`call.py tap`): frames, bytes.
    pub call_on_links: Vec<(u64, u64)>,
    /// The receiving daemon: copies it dropped as duplicates; the sending one: packets it
    /// refused as congested.
    pub daemon_duplicates: f64,
    pub congested: f64,
    /// When the cut began and ended, seconds into the call (by when the sender was started).
    pub cut: (f64, f64),
    pub pressure: f64,
}

impl CallRun {
    /// How many times the client sent each of the call's packets on the links, on average.
    pub fn copies_per_packet(&self) -> f64 {
        let frames: u64 = self.call_on_links.iter().map(|c| c.0).sum();
        self.call.as_ref().map_or(f64::NAN, |c| frames as f64 / c.sent.max(1) as f64)
    }

    /// Everything measured, for a test's or a bench's log.
    pub fn report(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.call {
            let _ = writeln!(
                s,
                "call: {} sent, {} lost, {} late (> {LATE_MS} ms), {} duplicated, {} out of order; one-way \
                 p50 {:.1} p95 {:.1} p99 {:.1} max {:.1} ms (sender at worst {:.1} ms behind schedule, \
                 receiver {:.1} ms behind arrivals)",
                c.sent,
                c.lost,
                c.late,
                c.duplicated,
                c.out_of_order,
                c.p50,
                c.p95,
                c.p99,
                c.max,
                c.sender_behind_ms,
                c.receiver_lag_ms
            );
            let _ = writeln!(
                s,
                "call per second, worst one-way ms (-lost >late); link 0 cut {:.1}-{:.1} s: {}",
                self.cut.0,
                self.cut.1,
                c.per_second()
            );
            let frames: Vec<String> = self.call_on_links.iter().map(|c| c.0.to_string()).collect();
            let bytes: u64 = self.call_on_links.iter().map(|c| c.1).sum();
            let _ = writeln!(
                s,
                "call on the links: {} frames per link, {:.1} kB in all = {:.2} copies per packet \
                 (each packet once: {:.1} kB of frames)",
                frames.join("/"),
                bytes as f64 / 1e3,
                self.copies_per_packet(),
                (c.sent * u64::from(CALL_FRAME_BYTES)) as f64 / 1e3
            );
            if bytes == 0 && c.received > 0 {
                let _ = writeln!(
                    s,
                    "  (no frame of {CALL_FRAME_BYTES} bytes seen although the call arrived: has the tunnel's \
                     per-packet overhead changed from emulated::MLVPN_OVERHEAD_V4?)"
                );
            }
        }
        let mb: Vec<String> = self.link_bytes.iter().map(|b| format!("{:.1}", *b as f64 / 1e6)).collect();
        let _ = write!(
            s,
            "upload {:.1} Mbit/s over the call's time ({:.0}% of the limit {:.1}), retransmits {:.0}, per second: {}\n\
             links carried {} MB client -> server; receiving daemon dropped {:.0} duplicates, sending \
             daemon refused {:.0} as congested; CPU pressure {:.0}%",
            self.upload_mbit,
            self.upload_mbit / limit_mbit() * 100.0,
            limit_mbit(),
            self.retransmits,
            self.upload_per_second,
            mb.join("/"),
            self.daemon_duplicates,
            self.congested,
            self.pressure
        );
        s
    }
}

/// Starts `call.py MODE ARGS` on `side` and waits for its "listening".
fn listener(lab: &EmuLab, side: Side, name: &str, args: &[&str]) -> Proc {
    let script = lab.write_file("call.py", include_str!("call.py"), 0o700);
    let mut argv = vec!["python3", script.to_str().expect("UTF-8 path")];
    argv.extend(args);
    let p = lab.spawn(side, name, &argv);
    if poll_until(Duration::from_secs(10), || p.stdout().starts_with("listening")).is_none() {
        panic!("{name} not listening: {}", p.stderr());
    }
    p
}

fn finish(p: &mut Proc, within: Duration) -> String {
    match p.wait_timeout(within) {
        Some(s) if s.success() => p.stdout(),
        Some(s) => panic!("{} failed ({s}): {}", p.name, p.stderr()),
        None => panic!("{} did not finish within {within:?}", p.name),
    }
}

/// One run on a lab with the tunnel up: the bulk transfer from `from` (client: an upload,
/// server: a download) with the sender's congestion control `cc`, link 0 cut as `timing` says,
/// and, when `tos` is `Some`, the call marked with it, in the same direction.
pub fn run(lab: &EmuLab, timing: Timing, cc: &str, tos: Option<u8>, from: Side) -> CallRun {
    let to = from.other();
    let mut plan = FlowPlan::new(LEAD + timing.secs + TAIL);
    plan.from = from;
    plan.cc = Some(cc.into());
    plan.ping_from = f64::INFINITY; // the call is the probe
    let cut = LEAD + timing.cut_at;
    plan.events =
        vec![(cut, "link 0 blackhole on".into()), (cut + timing.cut_secs, "link 0 blackhole off".into())];
    let dst = to.tun_ip();
    let (port, secs) = (CALL_PORT.to_string(), timing.secs.to_string());
    let mut ends = None;
    if let Some(tos) = tos {
        let limit = (LEAD + timing.secs + TAIL + 20.0).to_string();
        let receiver = listener(lab, to, "call-recv", &["recv", dst, &port, &limit]);
        let size = (CALL_FRAME_BYTES - emulated::ETHERNET_HEADER).to_string();
        let mut tap = vec!["tap", &size, &limit];
        tap.extend(
            lab.links.iter().map(|l| if from == Side::Client { &l.client_if } else { &l.server_if }.as_str()),
        );
        let tap = listener(lab, from, "call-tap", &tap);
        let script = lab.dir.join("call.py").to_string_lossy().into_owned();
        let (pps, bytes, tos) = (CALL_PPS.to_string(), CALL_IP_BYTES.to_string(), format!("{tos:#x}"));
        let argv =
            ["python3", &script, "send", dst, &port, &pps, &bytes, &secs, &tos].map(String::from).to_vec();
        plan.spawns.push(TimedSpawn { at: LEAD, side: from, name: "call-send".into(), argv });
        ends = Some((receiver, tap));
    }
    let mut r = emulated::run_flow(lab, &plan);
    let mut out = CallRun {
        upload_mbit: r.iperf.mean_bps_between(LEAD, LEAD + timing.secs) / 1e6,
        upload_per_second: r.iperf.sparkline_per(10),
        retransmits: r.iperf.retransmits.unwrap_or(f64::NAN),
        link_bytes: (0..lab.links.len())
            .map(|i| r.emu_delta(i, if from == Side::Client { "up" } else { "down" }, "rx_bytes"))
            .collect(),
        pressure: r.pressure.unwrap_or(f64::NAN),
        ..CallRun::default()
    };
    if let (Some((a, b)), Some((c, d))) = (r.status_ends(to), r.status_ends(from)) {
        out.daemon_duplicates =
            emulated::num(b, &["drops", "duplicate"]) - emulated::num(a, &["drops", "duplicate"]);
        out.congested = emulated::num(d, &["drops", "congested"]) - emulated::num(c, &["drops", "congested"]);
    }
    if let Some((mut receiver, mut tap)) = ends {
        let (started, sender) = r.spawned.first_mut().expect("the call's sender was started");
        let sent = finish(sender, Duration::from_secs_f64(timing.secs + 10.0));
        let received = finish(&mut receiver, Duration::from_secs(15));
        let call = CallStats::parse(&sent, &received)
            .unwrap_or_else(|e| panic!("call.py: {e}; sender: {sent:?}; receiver: {received:?}"));
        out.call = Some(call);
        let cut_in_call = r.events.first().map_or(f64::NAN, |e| e.0) - *started;
        out.cut = (cut_in_call, cut_in_call + timing.cut_secs);
        tap.terminate(Duration::from_secs(3));
        let counts = Json::parse(tap.stdout().lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("call.py tap: {e}: {}", tap.stderr()));
        out.call_on_links = lab
            .links
            .iter()
            .map(|l| {
                let n = |k: &str| emulated::num(&counts, &[&l.client_if, k]) as u64;
                (n("frames"), n("bytes"))
            })
            .collect();
    }
    out
}

/// The behaviour CI requires, with margins for a loaded 2-core machine (the bench shows the
/// real figures): none of the call's packets delivered twice; at most 2 % lost or late; the
/// median one-way delay within the fastest link's + 15 ms (the call rides the fastest link,
/// not the upload's queues); and the upload is not starved beside it: at least 35 % of the
/// bond's limit. That floor is low on purpose: through 5 % loss and a cut, a cubic upload in
/// this 12 s run lands anywhere from 49 to 89 Mbit/s of 110 from one run to the next (runs on
/// one quiet machine; the call's figures hardly move), so 70 % failed CI one run in three. The
/// starvation it guards against read 3.6 Mbit/s; the bench keeps the strict with/without
/// comparison.
#[derive(Debug, Clone, Copy)]
pub struct Floors {
    /// The largest share of the call's packets lost or late.
    pub unplayable_share: f64,
    /// The most the median one-way delay may exceed the fastest link's one-way delay.
    pub p50_over_fastest_ms: f64,
    /// The least share of [`limit_mbit`] the upload keeps while the call runs.
    pub upload_share: f64,
}

/// One floor against one run.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Short: `dup`, `lost+late`, `p50`, `upload`.
    pub name: &'static str,
    /// The figure against the floor, in words.
    pub what: String,
    pub met: bool,
}

pub const CI_FLOORS: Floors =
    Floors { unplayable_share: 0.02, p50_over_fastest_ms: 15.0, upload_share: 0.35 };

impl Floors {
    /// Each floor against `run`.
    pub fn check(&self, run: &CallRun) -> Vec<Verdict> {
        let v = |name, what, met| Verdict { name, what, met };
        let Some(c) = &run.call else { return vec![v("call", "no call in this run".into(), false)] };
        let fastest = LINKS[0].1;
        let p50_bound = fastest + self.p50_over_fastest_ms;
        let upload_floor = self.upload_share * limit_mbit();
        let unplayable = c.unplayable() as f64 / c.sent.max(1) as f64;
        vec![
            v("dup", format!("{} delivered twice (floor 0)", c.duplicated), c.duplicated == 0),
            v(
                "lost+late",
                format!(
                    "{} lost + {} late = {:.1}% of {} (floor {:.0}%)",
                    c.lost,
                    c.late,
                    unplayable * 100.0,
                    c.sent,
                    self.unplayable_share * 100.0
                ),
                c.sent > 0 && unplayable <= self.unplayable_share,
            ),
            v("p50", format!("p50 one-way {:.1} ms (floor {p50_bound:.0} ms)", c.p50), c.p50 <= p50_bound),
            v(
                "upload",
                format!(
                    "upload {:.1} Mbit/s (floor {upload_floor:.1} = {:.0}% of the limit)",
                    run.upload_mbit,
                    self.upload_share * 100.0
                ),
                run.upload_mbit >= upload_floor,
            ),
        ]
    }
}
