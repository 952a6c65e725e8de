//! Issue 4's evidence: one TCP flow over unequal links, `scheduler = arrival` against
//! `scheduler = wrr`, in network namespaces with the links going through `linkemu` (delay,
//! rate with a bounded queue, loss, run-time changes; `tests/netns/emulated.rs`).
//!
//! `cargo bench --bench unequal` (as root; ~11 min with 3 runs: 14 cells of 15–20 s each).
//! For each scenario and scheduler it runs one iperf3 flow (cubic, set per socket) client →
//! server through the tunnel with a ping through the tunnel every 50 ms, and prints a line per
//! run, then a table of medians with their spread, then each target of the issue against the
//! figures.
//!
//! Scenarios (issue 4, "Evidence"):
//! 1. 40/25/15 Mbit/s, one-way 5/20/40 ms: ≥ 90% of the physical limit (arrival);
//! 2. 50/50 Mbit/s, 5 and 60 ms: ≥ 90%;
//! 3. 50/30/20 Mbit/s, 10 ms each, **no** `bandwidth_upload` (either scheduler): ≥ 95%;
//! 4. scenario 1's links, link 0 dropping from 40 to 10 Mbit/s 6 s into a 14 s flow: the
//!    0.5 s-averaged delivery rate is back within 10% of the new limit within 3 s. The rate is
//!    the server TUN's (sampled every 0.1 s on our clock, the same clock that sends the
//!    emulator command); the time runs from the command to the end of the first 0.5 s window
//!    from which every later one is within the band (so it includes up to 0.5 s of window).
//!    Also printed: the time to settle within 10% of the flow's own last 3 s, and when link 0's
//!    capacity estimate reached its new rate. In the table its throughput is the whole flow's
//!    from 2 s, against the limit before the drop;
//! 5. the ping through the tunnel during the transfers of 1–3 stays within the slowest used
//!    link's idle RTT + 30 ms (no runs of its own);
//! 6. scenario 2's links with 1% and 5% random loss (both directions) on link 1 (the 60 ms
//!    one): ≥ 90% of scenario 2's throughput with the same scheduler.
//!
//! Rates and delays are per direction, the delay on both, so a link's RTT is twice its delay.
//! `wrr` gets `bandwidth_upload` = the link's rate (rate / 8 bytes/s) except in scenario 3;
//! `arrival` gets the same values (its starting estimate and ceiling), and in 1 and 2 also runs
//! without them ("arrival, no bw") to show what its own estimate achieves.
//!
//! The physical limit is the sum of the link rates times the goodput ratio of one TCP flow in
//! the tunnel: a full segment carries 1400 − 52 = 1348 bytes of payload (20 IP + 20 TCP + 12
//! timestamps in the lab's 1400 MTU) in a frame of 1400 + 61 (33 mlvpn + 8 UDP + 20 IPv4) + 14
//! (Ethernet, counted by the emulator as by `tbf`) = 1475 bytes: 1348 / 1475 = 0.9139.
//!
//! Knobs: `MLVPN_BENCH_RUNS` (runs per cell, default 3), `MLVPN_BENCH_SECS` (flow length,
//! default 12; scenario 4 adds 2), `MLVPN_BENCH_ONLY=1,4` (scenarios to run; 6 needs 2 for its
//! reference), `MLVPN_BIN` (a binary instead of the clean release build into
//! `target/netns-bench`), `MLVPN_NETNS_KEEP=1` (keep each lab's directory: configs, logs,
//! iperf3 JSON, emulator log), `LINKEMU_REALTIME=0`.

#[path = "../netns/emulated.rs"]
mod emulated;
#[path = "../netns/json.rs"]
mod json;
#[path = "../netns/lab.rs"]
mod lab;
#[path = "../netns/traffic.rs"]
mod traffic;

use emulated::{EmuLab, EmuLink, FlowPlan, FlowResult, goodput_ratio, num, per_link, tun_payload_ratio};
use json::Json;
use lab::{Side, TunnelOpts};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::time::{Duration, Instant};

const MTU: u32 = lab::DEFAULT_MTU;
/// Rates are the receiver's mean from this many seconds into the flow (after slow start).
const STEADY_FROM: f64 = 2.0;
/// Scenario 4: the drop, seconds into the flow.
const DROP_AT: f64 = 6.0;

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// Steady throughput ≥ this share of the physical limit.
    OfLimit(f64),
    /// After the drop the 0.5 s-averaged rate is within 10% of the new limit within this long.
    Reconverge(f64),
    /// Steady throughput ≥ this share of the same scheduler's in the scenario named.
    OfReference(&'static str, f64),
}

#[derive(Debug, Clone)]
struct Variant {
    /// As printed: `arrival`, `arrival, no bw`, `wrr`, `wrr, no bw`.
    label: &'static str,
    scheduler: &'static str,
    /// Whether the configs carry `bandwidth_upload`.
    bandwidth: bool,
    /// `reorder_buffer_size` when not the default.
    reorder_buffer: Option<u32>,
}

#[derive(Debug, Clone)]
struct Scenario {
    key: &'static str,
    title: &'static str,
    links: Vec<EmuLink>,
    variants: Vec<Variant>,
    secs: f64,
    /// Emulator commands during the flow (seconds into it).
    events: Vec<(f64, String)>,
    /// Link rates after the events (for the new limit), Mbit/s.
    rates_after: Option<Vec<f64>>,
    target: Target,
    /// The variant the target applies to (`None`: every variant).
    target_variant: Option<&'static str>,
}

const ARRIVAL: Variant =
    Variant { label: "arrival", scheduler: "arrival", bandwidth: true, reorder_buffer: None };
const ARRIVAL_AUTO: Variant =
    Variant { label: "arrival, no bw", scheduler: "arrival", bandwidth: false, reorder_buffer: None };
const WRR: Variant = Variant { label: "wrr", scheduler: "wrr", bandwidth: true, reorder_buffer: None };
const WRR_NO_BW: Variant =
    Variant { label: "wrr, no bw", scheduler: "wrr", bandwidth: false, reorder_buffer: None };

fn scenarios(secs: f64) -> Vec<Scenario> {
    let s1 = || vec![EmuLink::new(40.0, 5.0), EmuLink::new(25.0, 20.0), EmuLink::new(15.0, 40.0)];
    let s2 = || vec![EmuLink::new(50.0, 5.0), EmuLink::new(50.0, 60.0)];
    let lossy = |loss: &str| {
        let mut l = s2();
        l[1] = l[1].clone().with(&format!("loss {loss}"));
        l
    };
    vec![
        Scenario {
            key: "1",
            title: "40/25/15 Mbit/s, 5/20/40 ms",
            links: s1(),
            variants: vec![ARRIVAL, ARRIVAL_AUTO, WRR],
            secs,
            events: Vec::new(),
            rates_after: None,
            target: Target::OfLimit(0.90),
            target_variant: Some("arrival"),
        },
        Scenario {
            key: "2",
            title: "50/50 Mbit/s, 5/60 ms",
            links: s2(),
            variants: vec![ARRIVAL, ARRIVAL_AUTO, WRR],
            secs,
            events: Vec::new(),
            rates_after: None,
            target: Target::OfLimit(0.90),
            target_variant: Some("arrival"),
        },
        Scenario {
            key: "3",
            title: "50/30/20 Mbit/s, 10 ms, no bw configured",
            links: vec![EmuLink::new(50.0, 10.0), EmuLink::new(30.0, 10.0), EmuLink::new(20.0, 10.0)],
            variants: vec![ARRIVAL_AUTO, WRR_NO_BW],
            secs,
            events: Vec::new(),
            rates_after: None,
            target: Target::OfLimit(0.95),
            target_variant: Some("arrival, no bw"),
        },
        Scenario {
            key: "4",
            title: "scenario 1, link 0 40 -> 10 Mbit/s at 6 s",
            links: s1(),
            variants: vec![ARRIVAL, WRR],
            secs: secs + 2.0,
            events: vec![(DROP_AT, "link 0 rate 10mbit".into())],
            rates_after: Some(vec![10.0, 25.0, 15.0]),
            target: Target::Reconverge(3.0),
            target_variant: Some("arrival"),
        },
        Scenario {
            key: "6a",
            title: "scenario 2, 1% loss on link 1",
            links: lossy("1%"),
            variants: vec![ARRIVAL, WRR],
            secs,
            events: Vec::new(),
            rates_after: None,
            target: Target::OfReference("2", 0.90),
            target_variant: Some("arrival"),
        },
        Scenario {
            key: "6b",
            title: "scenario 2, 5% loss on link 1",
            links: lossy("5%"),
            variants: vec![ARRIVAL, WRR],
            secs,
            events: Vec::new(),
            rates_after: None,
            target: Target::OfReference("2", 0.90),
            target_variant: Some("arrival"),
        },
    ]
}

impl Scenario {
    fn limit_mbit(&self) -> f64 {
        self.links.iter().filter_map(|l| l.rate_mbit).sum::<f64>() * goodput_ratio(MTU)
    }

    fn limit_after_mbit(&self) -> Option<f64> {
        self.rates_after.as_ref().map(|r| r.iter().sum::<f64>() * goodput_ratio(MTU))
    }

    fn links_for(&self, v: &Variant) -> Vec<EmuLink> {
        self.links.iter().map(|l| if v.bandwidth { l.clone() } else { l.clone().no_bandwidth() }).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------------

/// What one run measured, reduced to figures.
#[derive(Debug, Clone, Default)]
struct Run {
    /// Receiver's mean from STEADY_FROM, Mbit/s; and over the whole flow.
    mbit: f64,
    mbit_overall: f64,
    retransmits: f64,
    ping_p50: f64,
    ping_p99: f64,
    ping_max: f64,
    ping_lost: u32,
    ping_sent: u32,
    /// Idle RTT of each link (direct, p50) and of the tunnel, ms.
    idle_links: Vec<f64>,
    idle_tunnel: f64,
    /// Per link, client → server: Mbit/s of frames the emulator carried from STEADY_FROM on
    /// (the link's utilisation, frames counted whole); over the whole flow, frames it dropped
    /// at its queue's tail and frames lost to random loss.
    link_mbit: Vec<f64>,
    link_tail_drops: Vec<u64>,
    link_lost: Vec<u64>,
    /// Client daemon (the sender): packets refused as congested during the flow; at the end,
    /// each link's capacity estimate (Mbit/s), srtt (ms) and share.
    congested: f64,
    capacity: Vec<f64>,
    srtt: Vec<f64>,
    share: Vec<f64>,
    /// Server daemon (the receiver) reorder buffer over the flow.
    reordered: f64,
    skipped: f64,
    late: f64,
    reorder_full: f64,
    wait_max_ms: f64,
    wait_mean_ms: f64,
    timeout_ms: f64,
    /// The sender's TCP: median smoothed RTT (ms) and congestion window (KB) from STEADY_FROM
    /// (iperf3's tcp_info every 0.1 s); reordering events detected, RTOs and D-SACKs received
    /// (client namespace counters over the flow).
    tcp_rtt_ms: f64,
    cwnd_kb: f64,
    sack_reorder: f64,
    rto: f64,
    dsack: f64,
    /// CPU: pressure over the flow (%), and each daemon's share of a core.
    pressure: f64,
    cpu_client: f64,
    cpu_server: f64,
    /// Scenario 4: seconds from the drop until the 0.5 s rate stays within 10% of the new
    /// limit (`None`: never), the mean rate from 3 s after the drop, and link 0's capacity
    /// estimate after the drop (t, Mbit/s).
    reconverge: Option<f64>,
    after_drop_mbit: f64,
    /// Scenario 4: the mean rate over the flow's last 3 s, and the time from the drop until
    /// the 0.5 s rate stays within 10% of it (how fast the tunnel settles, whatever the level).
    plateau_mbit: f64,
    settle: Option<f64>,
    cap0_series: Vec<(f64, f64)>,
    /// Receiver rate every 0.5 s (from the server's TUN), Mbit/s of goodput.
    sparkline: String,
    /// Over the flow, per status interval: each link's capacity estimate, packets refused as
    /// congested, frames tail-dropped by the emulator per link (links with any).
    series: String,
}

fn run_once(bin: &std::path::Path, sc: &Scenario, v: &Variant, show_config: bool) -> Run {
    let mut lab = EmuLab::new(&sc.links_for(v));
    lab.bin = Some(bin.to_path_buf());
    let mut opts =
        TunnelOpts { extra_general: vec![("scheduler".into(), v.scheduler.into())], ..TunnelOpts::default() };
    if let Some(n) = v.reorder_buffer {
        opts.reorder_buffer_size = Some(n);
    }
    if show_config {
        println!("    emulator: {}", lab.emu_command_line());
        for e in &sc.events {
            println!("    during the flow, at {:.1} s: linkemu ctl SOCKET {}", e.0, e.1);
        }
        let conf = lab.client_config(&opts);
        let keys: Vec<&str> = conf
            .lines()
            .filter(|l| {
                ["scheduler", "bandwidth_upload", "reorder_buffer_size", "["].iter().any(|k| l.starts_with(k))
            })
            .collect();
        println!("    client and server configs (lab.rs, mtu {MTU}): {}", keys.join(" "));
    }
    lab.start_both(&opts);
    lab.wait_tunnel(Duration::from_secs(20));
    // Idle RTTs: 20 pings 50 ms apart on each link directly and through the tunnel, at once.
    let idle = lab.idle_rtts(20, 0.05);
    let (idle_links, idle_tunnel) = idle.split_at(idle.len() - 1);

    let mut plan = FlowPlan::new(sc.secs);
    plan.events = sc.events.clone();
    plan.status_every = Some(if sc.events.is_empty() { 1.0 } else { 0.5 });
    let pids = [lab.daemon_pid(Side::Client), lab.daemon_pid(Side::Server)];
    let cpu0 = pids.map(lab::cpu_seconds);
    let tcp0 = lab.tcp_counters(Side::Client);
    let t0 = Instant::now();
    let r = run_flow_checked(&mut lab, &plan);
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = pids.map(lab::cpu_seconds);
    let tcp1 = lab.tcp_counters(Side::Client);
    let tcp =
        |k: &str| tcp1.get(k).copied().unwrap_or(0).saturating_sub(tcp0.get(k).copied().unwrap_or(0)) as f64;
    let (tcp_rtt_ms, cwnd_kb) = sender_view(&lab.dir.join(format!("iperf3-client-{}.out", plan.port)));

    let mut run = Run {
        mbit: r.iperf.mean_bps_from(STEADY_FROM) / 1e6,
        mbit_overall: r.iperf.receiver_bps / 1e6,
        retransmits: r.iperf.retransmits.unwrap_or(f64::NAN),
        ping_p50: r.ping.percentile(50.0),
        ping_p99: r.ping.percentile(99.0),
        ping_max: r.ping.max(),
        ping_lost: r.ping.lost(),
        ping_sent: r.ping.sent,
        idle_links: idle_links.iter().map(|p| p.percentile(50.0)).collect(),
        idle_tunnel: idle_tunnel[0].percentile(50.0),
        pressure: r.pressure.unwrap_or(f64::NAN),
        cpu_client: (cpu1[0] - cpu0[0]) / wall * 100.0,
        cpu_server: (cpu1[1] - cpu0[1]) / wall * 100.0,
        tcp_rtt_ms,
        cwnd_kb,
        sack_reorder: tcp("TCPSACKReorder"),
        rto: tcp("TCPTimeouts"),
        dsack: tcp("TCPDSACKRecv"),
        ..Run::default()
    };
    // What each link carried in the steady part (the emulator's counters every status interval
    // from STEADY_FROM to the end of the flow), to compare with the throughput figure.
    let steady: Vec<&(f64, Vec<emulated::linkemu::PipeStats>)> =
        r.emu_series.iter().filter(|(t, _)| *t >= STEADY_FROM - 0.05 && *t <= sc.secs).collect();
    for i in 0..sc.links.len() {
        let tx = |v: &[emulated::linkemu::PipeStats]| {
            v.iter().find(|p| p.link == i && p.dir == "up").map_or(0, |p| p.get("tx_bytes"))
        };
        run.link_mbit.push(match (steady.first(), steady.last()) {
            (Some(a), Some(b)) if b.0 - a.0 >= 1.0 => {
                tx(&b.1).saturating_sub(tx(&a.1)) as f64 * 8.0 / (b.0 - a.0) / 1e6
            }
            _ => r.emu_delta(i, "up", "tx_bytes") as f64 * 8.0 / r.wall_secs / 1e6,
        });
        run.link_tail_drops.push(r.emu_delta(i, "up", "tail_drop"));
        run.link_lost.push(r.emu_delta(i, "up", "lost"));
    }
    if let Some((a, b)) = r.status_ends(Side::Client) {
        run.congested = num(b, &["drops", "congested"]) - num(a, &["drops", "congested"]);
        run.capacity = per_link(b, "capacity").iter().map(|c| c * 8.0 / 1e6).collect();
        run.srtt = per_link(b, "srtt_ms");
        run.share = per_link(b, "share");
    }
    if let Some((a, b)) = r.status_ends(Side::Server) {
        let d = |k: &str| num(b, &["reorder", k]) - num(a, &["reorder", k]);
        run.reordered = d("reordered");
        run.skipped = d("skipped");
        run.late = d("late");
        run.reorder_full = d("full");
        run.wait_max_ms = num(b, &["reorder", "wait_max_ms"]);
        run.wait_mean_ms = num(b, &["reorder", "wait_mean_ms"]);
        run.timeout_ms = num(b, &["reorder", "timeout_ms"]);
    }
    run.series = r.series(Side::Client, sc.links.len());
    let goodput = |bps: f64| bps * tun_payload_ratio(MTU) / 1e6;
    let half = r.tun_rate(0.5);
    run.sparkline =
        thin(&half, 0.5).iter().map(|(_, b)| format!("{:.0}", goodput(*b))).collect::<Vec<_>>().join(" ");
    if let (Some(new_limit), Some((drop_t, _))) = (sc.limit_after_mbit(), r.events.first()) {
        let drop_t = *drop_t;
        let end = sc.secs - 0.2;
        let series: Vec<(f64, f64)> =
            half.iter().filter(|(t, _)| *t > drop_t && *t <= end).map(|(t, b)| (*t, goodput(*b))).collect();
        // From the drop until the sample after the last one out of ±10% of `target`.
        let settled = |target: f64| match series.iter().rposition(|(_, m)| (m - target).abs() > 0.1 * target)
        {
            None => series.first().map(|(t, _)| t - drop_t),
            Some(i) if i + 1 < series.len() => Some(series[i + 1].0 - drop_t),
            Some(_) => None,
        };
        run.reconverge = settled(new_limit);
        let mean_between = |from: f64, to: f64| {
            let v: Vec<f64> =
                r.tun_rate(0.1).iter().filter(|(t, _)| *t >= from && *t <= to).map(|x| x.1).collect();
            goodput(v.iter().sum::<f64>() / v.len().max(1) as f64)
        };
        run.after_drop_mbit = mean_between(drop_t + 3.0, end);
        // Its own plateau: the mean of the last 3 s.
        run.plateau_mbit = mean_between(end - 3.0, end);
        run.settle = settled(run.plateau_mbit);
        run.cap0_series = r
            .status
            .iter()
            .filter(|s| s.side == Side::Client && s.t >= drop_t - 1.0)
            .filter_map(|s| Some((s.t - drop_t, per_link(s.json.as_ref()?, "capacity").first()? * 8.0 / 1e6)))
            .collect();
    }
    run
}

/// The sender's view from iperf3's client JSON: median RTT (ms) and snd_cwnd (KB) over the
/// intervals from STEADY_FROM.
fn sender_view(path: &std::path::Path) -> (f64, f64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let Ok(doc) = Json::parse(&text) else { return (f64::NAN, f64::NAN) };
    let (mut rtt, mut cwnd) = (Vec::new(), Vec::new());
    for i in doc.get("intervals").and_then(Json::as_array).unwrap_or(&[]) {
        if num(i, &["sum", "start"]) < STEADY_FROM - 1e-6 {
            continue;
        }
        for st in i.get("streams").and_then(Json::as_array).unwrap_or(&[]) {
            rtt.push(num(st, &["rtt"]) / 1e3);
            cwnd.push(num(st, &["snd_cwnd"]) / 1e3);
        }
    }
    (emulated::percentile(&rtt, 50.0), emulated::percentile(&cwnd, 50.0))
}

/// [`emulated::run_flow`], dumping both daemons' status if the flow fails.
fn run_flow_checked(lab: &mut EmuLab, plan: &FlowPlan) -> FlowResult {
    let r = emulated::run_flow(lab, plan);
    lab.assert_running(Side::Client);
    lab.assert_running(Side::Server);
    r
}

/// Every `step` seconds of a series.
fn thin(v: &[(f64, f64)], step: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for &(t, x) in v {
        if out.last().is_none_or(|(t0, _)| t - t0 >= step - 0.05) {
            out.push((t, x));
        }
    }
    out
}

fn fmt_list(v: &[f64], prec: usize) -> String {
    v.iter().map(|x| format!("{x:.prec$}")).collect::<Vec<_>>().join("/")
}

fn run_line(sc: &Scenario, r: &Run) -> String {
    let limit = sc.limit_mbit();
    let mut s = format!(
        "{:.1} Mbit/s ({:.1}% of {:.1}; whole flow {:.1}), retr {:.0}, ping {:.1}/{:.1}/{:.1} ms ({} of {} lost), \
         idle RTT links {} tunnel {:.1} ms\n      links carried {} Mbit/s, tail drops {}, lost {}; \
         client: congested {:.0}, capacity {} Mbit/s, srtt {} ms, share {}; \
         server reorder: {:.0} held, {:.0} skipped, {:.0} late, {:.0} full, wait max {:.1} mean {:.1} ms, \
         timeout {:.1} ms\n      sender TCP: srtt {:.1} ms, cwnd {:.0} KB, {:.0} reordering events, {:.0} D-SACKs, \
         {:.0} RTOs; CPU pressure {:.0}%, daemons {:.0}%/{:.0}% of a core; 0.5 s goodput: {}\n      {}",
        r.mbit,
        r.mbit / limit * 100.0,
        limit,
        r.mbit_overall,
        r.retransmits,
        r.ping_p50,
        r.ping_p99,
        r.ping_max,
        r.ping_lost,
        r.ping_sent,
        fmt_list(&r.idle_links, 1),
        r.idle_tunnel,
        fmt_list(&r.link_mbit, 1),
        r.link_tail_drops.iter().map(u64::to_string).collect::<Vec<_>>().join("/"),
        r.link_lost.iter().map(u64::to_string).collect::<Vec<_>>().join("/"),
        r.congested,
        fmt_list(&r.capacity, 1),
        fmt_list(&r.srtt, 1),
        fmt_list(&r.share, 2),
        r.reordered,
        r.skipped,
        r.late,
        r.reorder_full,
        r.wait_max_ms,
        r.wait_mean_ms,
        r.timeout_ms,
        r.tcp_rtt_ms,
        r.cwnd_kb,
        r.sack_reorder,
        r.dsack,
        r.rto,
        r.pressure,
        r.cpu_client,
        r.cpu_server,
        r.sparkline,
        r.series,
    );
    if sc.rates_after.is_some() {
        s += &format!(
            "\n      after the drop: back within 10% of {:.1} after {}, mean from drop + 3 s {:.1} Mbit/s, \
             within 10% of the last 3 s' {:.1} after {}; link 0 capacity estimate (s after drop: Mbit/s) {}",
            sc.limit_after_mbit().unwrap_or(f64::NAN),
            r.reconverge.map_or("never".into(), |t| format!("{t:.1} s")),
            r.after_drop_mbit,
            r.plateau_mbit,
            r.settle.map_or("never".into(), |t| format!("{t:.1} s")),
            r.cap0_series.iter().map(|(t, c)| format!("{t:+.1}:{c:.1}")).collect::<Vec<_>>().join(" ")
        );
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Statistics and the table
// ---------------------------------------------------------------------------------------------

/// Median, min and max of the finite values of `f` over `runs`.
fn stats(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = runs.iter().map(f).filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    (median, v[0], v[n - 1])
}

fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    stats(runs, f).0
}

fn spread(runs: &[Run], f: impl Fn(&Run) -> f64, prec: usize) -> String {
    let (m, lo, hi) = stats(runs, f);
    format!("{m:.prec$} ({lo:.prec$}–{hi:.prec$})")
}

struct Cell {
    scenario: usize,
    variant: Variant,
    runs: Vec<Run>,
    failures: Vec<String>,
}

/// The slowest link that carried at least 2% of the flow: its idle RTT (ms).
fn slowest_used_idle(r: &Run) -> f64 {
    used_links(r).iter().map(|&i| r.idle_links[i]).fold(f64::NAN, f64::max)
}

/// The links that carried at least 2% of the flow's frames (steady part).
fn used_links(r: &Run) -> Vec<usize> {
    let total: f64 = r.link_mbit.iter().sum();
    (0..r.link_mbit.len()).filter(|&i| r.link_mbit[i] >= 0.02 * total).collect()
}

fn git_head() -> String {
    Command::new("git")
        .args(["log", "-1", "--format=%h %s"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() {
    let Some(bin) = lab::bench_binary("unequal") else { return };
    let env_f64 = |k: &str, d: f64| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let secs = env_f64("MLVPN_BENCH_SECS", 12.0);
    let n_runs = env_f64("MLVPN_BENCH_RUNS", 3.0).max(1.0) as usize;
    let only: Option<Vec<String>> =
        std::env::var("MLVPN_BENCH_ONLY").ok().map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let all = scenarios(secs);
    let chosen: Vec<usize> = (0..all.len())
        .filter(|&i| {
            only.as_ref()
                .is_none_or(|o| o.iter().any(|k| all[i].key == k || all[i].key.starts_with(k.as_str())))
        })
        .collect();
    let cc = lab::tcp_congestion_control().unwrap_or("the host's default congestion control".into());

    println!("binary: {} (at {})", bin.display(), git_head());
    println!("machine: {}", lab::machine());
    println!(
        "linkemu: {}",
        emulated::linkemu::binary().map_or_else(|e| e.to_string(), |p| p.display().to_string())
    );
    println!(
        "each run: fresh namespaces and daemons (mlvpn -c FILE --debug --yes-run-as-root, mtu {MTU}, \
         reorder_buffer_size and retransmit_buffer_size default);"
    );
    println!(
        "  tunnel up, then idle RTTs: 20 pings 50 ms apart on each link (not through the tunnel) and \
         through the tunnel, at once;"
    );
    println!(
        "  then one TCP flow client -> server through the tunnel: iperf3 -s -1 -B 10.42.0.1 -p 5201 -J -i 0.1 \
         (server ns); iperf3 -c 10.42.0.1 -p 5201 -t SECS -i 0.1 -J --get-server-output -C {cc} (client ns);"
    );
    println!(
        "  during it, from {STEADY_FROM} s to 0.5 s before its end: pinger.py 10.42.0.1 0.05 SECS (client ns; \
         the script is emulated::PINGER_PY: ICMP echo, kernel receive timestamps)"
    );
    println!(
        "throughput: the iperf3 receiver's mean from {STEADY_FROM} s on; limit: sum of the link rates x {:.4} \
         (1348 TCP payload bytes per 1475-byte frame: MTU 1400 + 61 mlvpn/UDP/IPv4 + 14 Ethernet)",
        goodput_ratio(MTU)
    );
    println!("runs per cell: {n_runs} (interleaved), flow {secs} s (scenario 4: {} s)\n", secs + 2.0);

    let mut cells: Vec<Cell> = Vec::new();
    for &i in &chosen {
        for v in &all[i].variants {
            cells.push(Cell { scenario: i, variant: v.clone(), runs: Vec::new(), failures: Vec::new() });
        }
    }
    let started = Instant::now();
    for rep in 0..n_runs {
        for cell in cells.iter_mut() {
            let sc = &all[cell.scenario];
            println!(
                "[{:>4.0} s] scenario {} ({}), {}, run {}/{n_runs}:",
                started.elapsed().as_secs_f64(),
                sc.key,
                sc.title,
                cell.variant.label,
                rep + 1
            );
            let v = cell.variant.clone();
            let result = catch_unwind(AssertUnwindSafe(|| run_once(&bin, sc, &v, rep == 0)));
            match result {
                Ok(r) => {
                    println!("      {}", run_line(sc, &r));
                    cell.runs.push(r);
                }
                Err(e) => {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    println!("      FAILED: {msg}");
                    cell.failures.push(msg);
                }
            }
        }
    }

    print_table(&all, &cells, n_runs);
    print_targets(&all, &cells);
    println!("\nwhole benchmark: {:.0} s", started.elapsed().as_secs_f64());
}

fn print_table(all: &[Scenario], cells: &[Cell], n_runs: usize) {
    println!("\n==== unequal links: median (min–max) of {n_runs} runs per cell ====\n");
    println!(
        "| scenario | scheduler | Mbit/s | % of limit | ping p50 / p99 / max ms (idle tunnel) | links carried Mbit/s | \
         congested drops | emulator tail drops | reorder held / skipped, wait max ms | retr | CPU pressure % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for c in cells {
        let sc = &all[c.scenario];
        let r = &c.runs;
        let limit = sc.limit_mbit();
        if r.is_empty() {
            println!(
                "| {} {} | {} | all {} runs failed | | | | | | | |",
                sc.key,
                sc.title,
                c.variant.label,
                c.failures.len()
            );
            continue;
        }
        let links: Vec<String> =
            (0..sc.links.len()).map(|i| format!("{:.1}", med(r, |x| x.link_mbit[i]))).collect();
        let failed =
            if c.failures.is_empty() { String::new() } else { format!(" ({} failed)", c.failures.len()) };
        println!(
            "| {} {} (limit {:.1}) | {}{} | {} | {} | {:.1} / {:.1} / {:.1} ({:.1}) | {} | {:.0} | {:.0} | {:.0} / {:.0}, {:.1} | {:.0} | {} |",
            sc.key,
            sc.title,
            limit,
            c.variant.label,
            failed,
            spread(r, |x| x.mbit, 1),
            spread(r, |x| x.mbit / limit * 100.0, 1),
            med(r, |x| x.ping_p50),
            med(r, |x| x.ping_p99),
            med(r, |x| x.ping_max),
            med(r, |x| x.idle_tunnel),
            links.join(" / "),
            med(r, |x| x.congested),
            med(r, |x| x.link_tail_drops.iter().sum::<u64>() as f64),
            med(r, |x| x.reordered),
            med(r, |x| x.skipped),
            med(r, |x| x.wait_max_ms),
            med(r, |x| x.retransmits),
            spread(r, |x| x.pressure, 0),
        );
    }
}

fn print_targets(all: &[Scenario], cells: &[Cell]) {
    println!("\n==== issue 4's targets ====\n");
    let find = |key: &str, label: &str| {
        cells
            .iter()
            .find(|c| all[c.scenario].key == key && c.variant.label == label)
            .filter(|c| !c.runs.is_empty())
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for c in cells {
        let sc = &all[c.scenario];
        let r = &c.runs;
        if r.is_empty() {
            continue;
        }
        let applies = sc.target_variant.is_none_or(|v| v == c.variant.label);
        let tag = if applies { "" } else { " (comparison)" };
        match sc.target {
            Target::OfLimit(share) => {
                let (m, lo, hi) = stats(r, |x| x.mbit / sc.limit_mbit() * 100.0);
                println!(
                    "{} {}, {}{tag}: {:.1}% of the limit (runs {:.1}–{:.1}%), target ≥ {:.0}%: {}",
                    sc.key,
                    sc.title,
                    c.variant.label,
                    m,
                    lo,
                    hi,
                    share * 100.0,
                    verdict(m >= share * 100.0)
                );
            }
            Target::Reconverge(within) => {
                let times: Vec<String> =
                    r.iter().map(|x| x.reconverge.map_or("never".into(), |t| format!("{t:.1} s"))).collect();
                let sorted = {
                    let mut v: Vec<f64> = r.iter().map(|x| x.reconverge.unwrap_or(f64::INFINITY)).collect();
                    v.sort_by(f64::total_cmp);
                    v
                };
                let median = sorted[sorted.len() / 2];
                // When link 0's capacity estimate came within 10% of its new rate (status every
                // 0.5 s, so to the next half second).
                let new_rate = sc.rates_after.as_ref().map_or(f64::NAN, |r| r[0]);
                let estimate: Vec<String> = r
                    .iter()
                    .map(|x| {
                        x.cap0_series
                            .iter()
                            .find(|(t, c)| *t >= 0.0 && *c <= new_rate * 1.1)
                            .map_or("never".into(), |(t, _)| format!("{t:.1} s"))
                    })
                    .collect();
                println!(
                    "{} {}, {}{tag}: back within 10% of {:.1} Mbit/s after {} (runs: {}), target ≤ {within:.0} s: {}; \
                     mean from drop + 3 s {}; settled within 10% of its own last 3 s ({}) after {}; \
                     link 0's capacity estimate within 10% of {new_rate} Mbit/s after: {}",
                    sc.key,
                    sc.title,
                    c.variant.label,
                    sc.limit_after_mbit().unwrap_or(f64::NAN),
                    if median.is_finite() { format!("{median:.1} s") } else { "never".into() },
                    times.join(", "),
                    verdict(median <= within),
                    spread(r, |x| x.after_drop_mbit, 1),
                    spread(r, |x| x.plateau_mbit, 1),
                    r.iter()
                        .map(|x| x.settle.map_or("never".into(), |t| format!("{t:.1} s")))
                        .collect::<Vec<_>>()
                        .join(", "),
                    estimate.join(", "),
                );
            }
            Target::OfReference(key, share) => {
                let Some(reference) = find(key, c.variant.label) else {
                    println!(
                        "{} {}, {}: no reference (scenario {key} not run)",
                        sc.key, sc.title, c.variant.label
                    );
                    continue;
                };
                let base = med(&reference.runs, |x| x.mbit);
                let m = med(r, |x| x.mbit);
                println!(
                    "{} {}, {}{tag}: {:.1} Mbit/s = {:.1}% of {:.1} without loss (scenario {key}), target ≥ {:.0}%: {}",
                    sc.key,
                    sc.title,
                    c.variant.label,
                    m,
                    m / base * 100.0,
                    base,
                    share * 100.0,
                    verdict(m >= share * base)
                );
            }
        }
    }
    println!("\n5 (ping through the tunnel under load ≤ the slowest used link's idle RTT + 30 ms):");
    for c in cells {
        let sc = &all[c.scenario];
        let r = &c.runs;
        if r.is_empty() || !matches!(sc.target, Target::OfLimit(_)) {
            continue;
        }
        let bound = med(r, slowest_used_idle) + 30.0;
        let (p99, max) = (med(r, |x| x.ping_p99), med(r, |x| x.ping_max));
        println!(
            "  {} {}, {}: bound {:.1} ms (idle RTT of links {}; used ≥ 2% in run 1: {}); under load p50 {:.1}, p99 {:.1}, max {:.1} ms: \
             p99 {}, max {}",
            sc.key,
            sc.title,
            c.variant.label,
            bound,
            (0..sc.links.len())
                .map(|i| format!("{:.1}", med(r, |x| x.idle_links[i])))
                .collect::<Vec<_>>()
                .join("/"),
            used_links(&r[0]).iter().map(|i| format!("link{i}")).collect::<Vec<_>>().join(", "),
            med(r, |x| x.ping_p50),
            p99,
            max,
            verdict(p99 <= bound),
            verdict(max <= bound)
        );
    }
}
