//! Running the lab's daemons the way an operator does, for the operations and hostile-network
//! scenarios (`tests/netns_ops.rs`, `tests/netns_hostile.rs`) and the soak benchmark.
//!
//! [`Rig`] wraps a [`Lab`] (it derefs to it) and starts the daemons itself, so that it can
//! start them **with privilege separation** (the production default: no `--yes-run-as-root`),
//! send SIGHUP to the right process, find the network child, and restart or crash a daemon.
//! Each daemon logs to `<dir>/<side>.log` like the lab's own, so `Lab::log`, `Lab::wait_log` and
//! the lab's failure dump work unchanged.
//!
//! Also here: the control socket read into [`Json`] ([`Snapshot`]), a process's fds and RSS
//! ([`ProcStats`]), config text edits, a thread inside a namespace ([`in_netns`]), and pacing a
//! TCP flow with `fq maxrate` on the sender's TUN device ([`Rig::pace`]).
//!
//! Expects its includer to have `lab`, `json` and `traffic` modules at the crate root.
#![allow(dead_code)]

use crate::json::Json;
use crate::lab::{self, Lab, LinkSpec, Side, TunnelOpts, poll_until};
use std::collections::BTreeMap;
use std::fs;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How a daemon is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// As root without `--yes-run-as-root`: a root parent and a network child as `nobody`.
    Separated,
    /// Separated, the child running as this `--user`.
    SeparatedAs(String),
    /// `--yes-run-as-root`: one process.
    OneProcess,
}

/// One daemon started by a [`Rig`].
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub mode: Mode,
    pub config: PathBuf,
    pub started: Instant,
    status: Option<ExitStatus>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// `sig`, then SIGKILL after `grace`: the exit status and whether SIGKILL was needed.
    fn stop_with(&mut self, sig: libc::c_int, grace: Duration) -> (ExitStatus, bool) {
        if let Some(s) = self.try_status() {
            return (s, false);
        }
        signal(self.pid(), sig);
        poll_until(grace, || self.try_status().is_some());
        if let Some(s) = self.try_status() {
            return (s, false);
        }
        let _ = self.child.kill();
        let s = self.child.wait().expect("wait after SIGKILL");
        self.status = Some(s);
        (s, true)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_with(libc::SIGTERM, Duration::from_secs(5));
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we started or found in our own namespaces; no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A lab whose daemons this wrapper starts (see the module doc). Derefs to the [`Lab`].
#[derive(Debug)]
pub struct Rig {
    // Declared first: dropped (daemons stopped) before the lab tears the namespaces down.
    client: Option<Daemon>,
    server: Option<Daemon>,
    pub lab: Lab,
}

impl Deref for Rig {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // While the daemons still answer (the lab's own dump comes after they are stopped).
            for side in [Side::Server, Side::Client] {
                if let Some(d) = self.slot(side) {
                    eprintln!("---- {} daemon pid {} ({:?}) ----", side.name(), d.pid(), d.mode);
                    for pid in self.pids(side) {
                        eprintln!("  pid {pid}: {:?}", ProcStats::of(pid));
                    }
                    eprintln!("{}", self.lab.status(side, false).trim_end());
                }
            }
        }
    }
}

impl Rig {
    pub fn new(links: &[LinkSpec]) -> Rig {
        Rig { client: None, server: None, lab: Lab::new(links) }
    }

    fn slot(&self, side: Side) -> Option<&Daemon> {
        match side {
            Side::Client => self.client.as_ref(),
            Side::Server => self.server.as_ref(),
        }
    }

    fn slot_mut(&mut self, side: Side) -> &mut Option<Daemon> {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    pub fn daemon(&self, side: Side) -> &Daemon {
        self.slot(side).unwrap_or_else(|| panic!("no {} daemon", side.name()))
    }

    /// Starts a side's daemon with `config` (a running one is stopped first): `mlvpn --config
    /// FILE --debug`, plus `--yes-run-as-root` or `--user NAME` per `mode`, and `-v` with
    /// `MLVPN_NETNS_VERBOSE`. Output is appended to `<dir>/<side>.log`.
    pub fn start(&mut self, side: Side, config: &Path, mode: Mode) {
        self.stop(side);
        let args: Vec<&str> = match &mode {
            Mode::Separated => vec![],
            Mode::SeparatedAs(user) => vec!["--user", user],
            Mode::OneProcess => vec!["--yes-run-as-root"],
        };
        let (child, _log) = self.lab.spawn_daemon(side, config, &args);
        let d = Daemon { child, mode, config: config.to_path_buf(), started: Instant::now(), status: None };
        *self.slot_mut(side) = Some(d);
    }

    /// Writes the lab's configs for `opts` and starts both daemons in `mode`, server first.
    pub fn start_both(&mut self, opts: &TunnelOpts, mode: Mode) -> (PathBuf, PathBuf) {
        let (c, s) = self.lab.write_configs(opts);
        self.start(Side::Server, &s, mode.clone());
        self.start(Side::Client, &c, mode);
        (c, s)
    }

    /// SIGTERM (SIGKILL after 5 s): the exit status and whether SIGKILL was needed.
    pub fn stop(&mut self, side: Side) -> Option<(ExitStatus, bool)> {
        self.slot_mut(side).take().map(|mut d| d.stop_with(libc::SIGTERM, Duration::from_secs(5)))
    }

    /// SIGKILL to the main process, and to the network child when separated (a crash, or an
    /// OOM kill): no goodbye to the peer.
    pub fn crash(&mut self, side: Side) {
        let pids = self.pids(side);
        for &pid in pids.iter().rev() {
            signal(pid, libc::SIGKILL);
        }
        if let Some(mut d) = self.slot_mut(side).take() {
            d.stop_with(libc::SIGKILL, Duration::from_secs(5));
        }
        poll_until(Duration::from_secs(5), || {
            pids.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists())
        });
    }

    /// The main process: the privileged parent when separated.
    pub fn pid(&self, side: Side) -> u32 {
        self.daemon(side).pid()
    }

    /// The process that carries the packets: the network child when separated (waits up to
    /// 5 s for the fork), else the one process.
    pub fn net_pid(&self, side: Side) -> u32 {
        let d = self.daemon(side);
        if d.mode == Mode::OneProcess {
            return d.pid();
        }
        let mut found = None;
        poll_until(Duration::from_secs(5), || {
            found = daemon_children(d.pid()).first().copied();
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("{}: no network child of pid {}", side.name(), d.pid()))
    }

    /// The daemon's processes: main first, then the network child if any.
    pub fn pids(&self, side: Side) -> Vec<u32> {
        let Some(d) = self.slot(side) else { return Vec::new() };
        let mut v = vec![d.pid()];
        if d.mode != Mode::OneProcess {
            v.extend(daemon_children(d.pid()));
        }
        v
    }

    /// SIGHUP to whoever reloads: the privileged parent when separated.
    pub fn reload(&self, side: Side) {
        signal(self.pid(side), libc::SIGHUP);
    }

    /// Panics with the log's tail if a side's daemon has exited.
    pub fn assert_running(&mut self, side: Side) {
        let log = self.lab.log(side);
        if let Some(d) = self.slot_mut(side).as_mut()
            && let Some(s) = d.try_status()
        {
            panic!("{} daemon exited ({s}); log:\n{}", side.name(), lab::tail(&log, 40));
        }
    }

    /// Waits for both TUNs and a ping through the tunnel (the lab's check), then for every
    /// link to be up in both daemons' status.
    pub fn wait_tunnel(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        self.assert_running(Side::Server);
        self.assert_running(Side::Client);
        self.lab.wait_tunnel(timeout);
        let names: Vec<String> = self.lab.links.iter().map(|l| l.name.clone()).collect();
        self.wait_links_up(&names, timeout.saturating_sub(start.elapsed()).max(Duration::from_secs(5)));
        start.elapsed()
    }

    /// Waits until the named links are `up` in both daemons' status; panics otherwise.
    pub fn wait_links_up(&mut self, names: &[String], timeout: Duration) -> Duration {
        let took = poll_until(timeout, || {
            [Side::Client, Side::Server].iter().all(|&side| {
                let Ok(s) = self.try_snapshot(side) else { return false };
                names.iter().all(|n| s.link(n).is_some_and(|l| l.state == "up"))
            })
        });
        self.assert_running(Side::Server);
        self.assert_running(Side::Client);
        took.unwrap_or_else(|| {
            panic!(
                "links {names:?} not all up within {timeout:?}:\nclient:\n{}\nserver:\n{}",
                self.lab.status(Side::Client, false),
                self.lab.status(Side::Server, false)
            )
        })
    }

    /// The daemon's status document, or why not.
    pub fn try_snapshot(&self, side: Side) -> Result<Snapshot, String> {
        let text = mlvpn::control::query(&self.lab.control_path(side), "status", Duration::from_secs(5))
            .map_err(|e| format!("{} status: {e}", side.name()))?;
        Snapshot::parse(&text).map_err(|e| format!("{} status: {e}: {text}", side.name()))
    }

    pub fn snapshot(&self, side: Side) -> Snapshot {
        self.try_snapshot(side).unwrap_or_else(|e| panic!("{e}"))
    }

    /// fds and RSS of each of the daemon's processes (main first).
    pub fn proc_stats(&self, side: Side) -> Vec<(u32, ProcStats)> {
        self.pids(side).into_iter().filter_map(|p| ProcStats::of(p).map(|s| (p, s))).collect()
    }

    /// Paces every TCP flow leaving `side` through the tunnel at about `mbit`: a `tbf` on the
    /// TUN device whose queue (8 MB) is longer than what TCP small queues let one socket put
    /// in it (`tcp_limit_output_bytes`, 4 MB by default), so the sender is held back rather
    /// than dropped. Flows then stay below what the machine can carry, the tunnel loses
    /// nothing, and a dip or a loss shows. (This kernel may lack `fq`; `tbf` is what the lab
    /// uses anyway.) Applies to the current TUN device: redo it after a restart.
    pub fn pace(&self, side: Side, mbit: f64) {
        let rate = format!("{}kbit", (mbit * 1000.0) as u64);
        let burst = ((mbit * 1e6 / 8.0 * 0.004) as u64).max(16 * 1024).to_string();
        let ns = self.lab.ns(side);
        let argv =
            ["tc", "-n", &ns, "qdisc", "replace", "dev", lab::TUN_DEVICE, "root", "tbf", "rate", &rate];
        let mut argv = argv.to_vec();
        argv.extend(["burst", &burst, "limit", "8000000"]);
        lab::host(&argv);
    }
}

/// The mlvpn processes whose parent is `pid` (hook scripts are not: their command name is not
/// `mlvpn...`).
pub fn daemon_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) && comm.starts_with("mlvpn") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// What /proc says about a process's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStats {
    /// Open file descriptors (entries of /proc/PID/fd).
    pub fds: usize,
    /// Resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// Time on a CPU, ns (the first field of /proc/PID/schedstat: the main thread's, which is
    /// all of a single-threaded daemon's).
    pub cpu_ns: u64,
}

impl ProcStats {
    pub fn of(pid: u32) -> Option<ProcStats> {
        let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
        let status = proc_status(pid);
        let rss_kib = status.get("VmRSS")?.split_whitespace().next()?.parse().ok()?;
        let schedstat = fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
        let cpu_ns = schedstat.split_whitespace().next()?.parse().ok()?;
        Some(ProcStats { fds, rss_kib, cpu_ns })
    }
}

/// /proc/PID/status as key → value (value trimmed).
pub fn proc_status(pid: u32) -> BTreeMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// /proc/PID/cmdline with NULs shown as spaces (the process title when mlvpn set one).
pub fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// The status document
// ---------------------------------------------------------------------------------------------

/// One tunnel ("link") of a status document: the fields the scenarios compare.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSnap {
    pub name: String,
    pub state: String,
    pub status: String,
    pub destaddr: String,
    pub destport: String,
    pub sent_packets: u64,
    pub recv_packets: u64,
    pub sent_bytes: u64,
    pub recv_bytes: u64,
    pub disconnects: u64,
    pub handshakes: u64,
    pub handshake_failures: u64,
    pub timeout: u64,
}

/// A parsed `status` document.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub doc: Json,
    pub links: Vec<LinkSnap>,
    pub taken: Instant,
}

impl Snapshot {
    /// Parses a status document; every field the scenarios use must be there with its type.
    pub fn parse(text: &str) -> Result<Snapshot, String> {
        let doc = Json::parse(text).map_err(|e| e.to_string())?;
        let tunnels = doc.get("tunnels").and_then(Json::as_array).ok_or("no `tunnels` array")?;
        let mut links = Vec::new();
        for t in tunnels {
            let s = |k: &str| {
                t.get(k).and_then(Json::as_str).map(String::from).ok_or(format!("tunnel: no string `{k}`"))
            };
            let n = |k: &str| {
                t.get(k)
                    .and_then(Json::as_f64)
                    .filter(|v| *v >= 0.0 && v.fract() == 0.0)
                    .map(|v| v as u64)
                    .ok_or(format!("tunnel: no count `{k}`"))
            };
            links.push(LinkSnap {
                name: s("name")?,
                state: s("state")?,
                status: s("status")?,
                destaddr: s("destaddr")?,
                destport: s("destport")?,
                sent_packets: n("sentpackets")?,
                recv_packets: n("recvpackets")?,
                sent_bytes: n("sentbytes")?,
                recv_bytes: n("recvbytes")?,
                disconnects: n("disconnects")?,
                handshakes: n("handshakes")?,
                handshake_failures: n("handshake_failures")?,
                timeout: n("timeout")?,
            });
        }
        match doc.get("drops") {
            Some(Json::Obj(_)) => {}
            _ => return Err("no `drops` object".into()),
        }
        Ok(Snapshot { doc, links, taken: Instant::now() })
    }

    pub fn link(&self, name: &str) -> Option<&LinkSnap> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.name.clone()).collect()
    }

    /// `drops.<reason>` (0 if absent).
    pub fn drop_count(&self, reason: &str) -> u64 {
        self.doc.at(&["drops", reason]).and_then(Json::as_f64).unwrap_or(0.0) as u64
    }

    /// Every drop counter by name.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        match self.doc.get("drops") {
            Some(Json::Obj(m)) => {
                m.iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0) as u64)).collect()
            }
            _ => BTreeMap::new(),
        }
    }

    /// `reorder.<key>` (0 when the buffer is off or the key absent).
    pub fn reorder(&self, key: &str) -> u64 {
        self.doc.at(&["reorder", key]).and_then(Json::as_f64).unwrap_or(0.0) as u64
    }

    /// Bytes the packet pools have touched at their peaks, all pools (`pools.*.peak_bytes`).
    pub fn pool_peak_bytes(&self) -> u64 {
        ["reorder", "send_queue", "resend"]
            .iter()
            .filter_map(|p| self.doc.at(&["pools", p, "peak_bytes"]).and_then(Json::as_f64))
            .sum::<f64>() as u64
    }

    pub fn top(&self, key: &str) -> u64 {
        self.doc.get(key).and_then(Json::as_f64).unwrap_or(0.0) as u64
    }

    pub fn sum(&self, f: impl Fn(&LinkSnap) -> u64) -> u64 {
        self.links.iter().map(f).sum()
    }
}

/// Counters that moved between two snapshots: drops by reason and the reorder buffer's
/// `late`/`skipped`/`duplicate`/`full`, as `name +delta`.
pub fn loss_counters_moved(a: &Snapshot, b: &Snapshot) -> Vec<String> {
    let mut moved = Vec::new();
    let (da, db) = (a.drops(), b.drops());
    for (k, v) in &db {
        let before = da.get(k).copied().unwrap_or(0);
        if *v != before {
            moved.push(format!("drops.{k} +{}", v.saturating_sub(before)));
        }
    }
    for k in ["late", "skipped", "duplicate", "full"] {
        if b.reorder(k) != a.reorder(k) {
            moved.push(format!("reorder.{k} +{}", b.reorder(k).saturating_sub(a.reorder(k))));
        }
    }
    moved
}

// ---------------------------------------------------------------------------------------------
// Config text
// ---------------------------------------------------------------------------------------------

/// The sections of an INI text: (header line or "" for the preamble, its lines).
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            out.push((t[1..t.len() - 1].to_string(), Vec::new()));
        } else {
            out.last_mut().unwrap().1.push(line.to_string());
        }
    }
    out
}

fn join(secs: &[(String, Vec<String>)]) -> String {
    let mut s = String::new();
    for (name, lines) in secs {
        if !name.is_empty() {
            s.push_str(&format!("[{name}]\n"));
        }
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

/// `text` with only the link sections in `keep` (and `[general]`).
pub fn only_links(text: &str, keep: &[&str]) -> String {
    let secs: Vec<_> = sections(text)
        .into_iter()
        .filter(|(n, _)| n.is_empty() || n == "general" || keep.contains(&n.as_str()))
        .collect();
    join(&secs)
}

/// `text` with `key` in `section` set to `value` (`None` removes it); added at the end of
/// the section when absent.
pub fn set_key(text: &str, section: &str, key: &str, value: Option<&str>) -> String {
    let mut secs = sections(text);
    let (_, lines) =
        secs.iter_mut().find(|(n, _)| n == section).unwrap_or_else(|| panic!("no section [{section}]"));
    let pos = lines.iter().position(|l| l.split('=').next().is_some_and(|k| k.trim() == key));
    match (pos, value) {
        (Some(i), Some(v)) => lines[i] = format!("{key} = {v}"),
        (Some(i), None) => {
            lines.remove(i);
        }
        (None, Some(v)) => {
            let at = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(0, |i| i + 1);
            lines.insert(at, format!("{key} = {v}"));
        }
        (None, None) => {}
    }
    join(&secs)
}

// ---------------------------------------------------------------------------------------------
// Namespaces, logs, iperf3 details
// ---------------------------------------------------------------------------------------------

/// Runs `f` on a thread that has joined the network namespace `ns` (`/run/netns/NAME`):
/// sockets it opens live there. Only that thread moves; the test's own threads stay put.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, f).join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Like [`in_netns`] in the background.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns(2) with an open namespace fd; it changes only this thread's network
        // namespace (a thread may do that alone, CLONE_NEWNET is per thread).
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Byte offsets of both logs now (client, server), for "what was logged since".
pub fn log_marks(lab: &Lab) -> [usize; 2] {
    [lab.log(Side::Client).len(), lab.log(Side::Server).len()]
}

pub fn mark(marks: [usize; 2], side: Side) -> usize {
    if side == Side::Client { marks[0] } else { marks[1] }
}

/// Link state changes logged by a side since `from`: `link X: up|down|lossy|slow` lines.
pub fn state_changes(lab: &Lab, side: Side, from: usize) -> Vec<String> {
    let log = lab.log(side);
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| {
            l.split("link ").skip(1).any(|rest| {
                rest.split_once(": ").is_some_and(|(_, what)| {
                    ["up", "down", "lossy", "slow"].iter().any(|w| what.starts_with(w))
                })
            })
        })
        .map(String::from)
        .collect()
}

/// Per-interval sender retransmits of the iperf3 flow on `port` (its client's JSON, once it
/// has finished): (start, end, retransmits).
pub fn iperf_retransmits(lab: &Lab, port: u16) -> Vec<(f64, f64, f64)> {
    let text = fs::read_to_string(lab.dir.join(format!("iperf3-client-{port}.out"))).unwrap_or_default();
    let Ok(doc) = Json::parse(&text) else { return Vec::new() };
    doc.get("intervals")
        .and_then(Json::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| {
            let s = i.get("sum")?;
            Some((s.get("start")?.as_f64()?, s.get("end")?.as_f64()?, s.get("retransmits")?.as_f64()?))
        })
        .collect()
}

/// Sleeps until `t` seconds after `since`.
pub fn sleep_until(since: Instant, t: f64) {
    let now = since.elapsed().as_secs_f64();
    if t > now {
        std::thread::sleep(Duration::from_secs_f64(t - now));
    }
}

/// The CPU pressure figure for printing.
pub fn pressure_text(p: &lab::CpuPressure) -> String {
    p.percent().map_or("unknown".into(), |p| format!("{p:.0} %"))
}

/// A second of TCP each way through the tunnel, so that both daemons have written their
/// preallocated rings once (the retransmit store, 512 packets of MTU bytes, advances with every
/// data packet sent; its memory comes zeroed from the kernel and is committed page by page when
/// first written). A fresh daemon's RSS grows by up to the ring's size until then: not a leak,
/// but it would hide one, so measurements of growth start after this.
pub fn warm_up(lab: &Lab) {
    for (k, from) in [Side::Client, Side::Server].into_iter().enumerate() {
        crate::traffic::iperf(lab, from, from.other().tun_ip(), 5390 + k as u16, 1.0);
    }
}
