//! A two-namespace lab for end-to-end runs of `mlvpn` against the real kernel.
//!
//! Shared by `tests/netns.rs`, `tests/bench/netns.rs` and `tests/bench/demo.rs` (each includes
//! it with `#[path]`).
//!
//! ## Layout
//!
//! ```text
//!   namespace mlvpn-<pid>-<n>-c (client)          namespace mlvpn-<pid>-<n>-s (server)
//!   mlvpn0  10.42.0.2/30  <==== tunnel ====>      mlvpn0  10.42.0.1/30
//!   c-link0 10.77.0.1/30  <---- veth ----->      s-link0 10.77.0.2/30   (server port 5080)
//!   c-link1 10.77.1.1/30  <---- veth ----->      s-link1 10.77.1.2/30   (server port 5081)
//!   ...                                          ...
//! ```
//!
//! Link `i` is the config section `link<i>`. Every address lives on a veth pair created inside
//! the lab's own namespaces; nothing is routed anywhere else.
//!
//! ## Shaping ([`Shape`])
//!
//! A shaped link gets a `tbf` qdisc on the egress of *both* ends of its veth pair, so both
//! directions are limited to the same rate. `tbf` counts whole frames (Ethernet header
//! included). The numbers:
//! * `rate`: as given, in Mbit/s (10^6 bit/s, tc's `mbit`).
//! * `burst`: 4 ms worth of the rate, at least 8 KiB (40 Mbit/s → 20,000 bytes). Large enough
//!   that timer granularity does not cap the rate, small enough that a burst is noise in a
//!   0.1 s sample.
//! * `limit` (the queue): 50 ms worth of the rate, at least 3 bursts (40 Mbit/s → 250,000
//!   bytes). Roughly a bandwidth-delay product of a broadband link: TCP inside the tunnel can
//!   fill the pipe, and the queue stays bounded (no bufferbloat of seconds).
//!
//! ## Blackholes
//!
//! Each namespace gets an nftables table `inet mlvpn_lab` whose input chain drops packets
//! arriving on an interface in the set `@blackholed`. [`Lab::blackhole`] adds or removes a link's
//! veth on *both* sides, so the link silently loses every packet in both directions, like a WAN
//! that died upstream; senders see no error.
//!
//! ## Teardown
//!
//! [`Lab`]'s `Drop` stops every process it started (SIGTERM, then SIGKILL after a grace
//! period), kills whatever is left in its namespaces, deletes the namespaces (and with them the
//! veths and TUN devices) and removes its temporary directory — also when a test panics, in
//! which case it first prints the tail of each daemon log and the hook records. Set
//! `MLVPN_NETNS_KEEP=1` to keep the directory (renamed `<dir>-kept`). Namespaces left by a run that was SIGKILLed are
//! removed by the next run (their name carries the pid of a process that no longer exists).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// TUN device name in both namespaces.
pub const TUN_DEVICE: &str = "mlvpn0";
pub const TUN_SERVER_IP: &str = "10.42.0.1";
pub const TUN_CLIENT_IP: &str = "10.42.0.2";
pub const TUN_PREFIX: u8 = 30;
/// Tunnel MTU: the veths have 1500; mlvpn adds 33 bytes + UDP/IPv4 (61 in all), so anything up
/// to 1439 would fit. 1400 leaves room for a future header change.
pub const DEFAULT_MTU: u32 = 1400;
pub const DEFAULT_PASSWORD: &str = "correct horse battery staple";
const NS_PREFIX: &str = "mlvpn-";
const TMP_PREFIX: &str = "mlvpn-netns-";
const HOOK_ENV: [&str; 8] =
    ["DEVICE", "MTU", "IP4", "IP6", "IP4_GATEWAY", "IP6_GATEWAY", "IP4_ROUTES", "IP6_ROUTES"];

// ---------------------------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------------------------

/// Writes straight to the process's stderr, past the test harness's capture, so that a skip is
/// seen even without `--nocapture`.
pub fn loud(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// True when we are root; otherwise prints a loud `SKIPPED: needs root` line.
pub fn have_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        loud(&format!("SKIPPED: needs root: {test} (network namespaces, veth, TUN)"));
        return false;
    }
    true
}

/// The daemon binary: `$MLVPN_BIN` if set, else the one cargo built for this test or bench.
pub fn mlvpn_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MLVPN_BIN") {
        return Some(PathBuf::from(p));
    }
    option_env!("CARGO_BIN_EXE_mlvpn").map(PathBuf::from).filter(|p| p.exists())
}

/// For benchmarks: `$MLVPN_BIN` if set, else a clean release build made now (in
/// `netns-bench` under `$CARGO_TARGET_DIR`, or `target`, so that two checkouts' benches can
/// keep their builds apart), not the binary cargo built for the bench with its test-only
/// features.
pub fn release_mlvpn() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MLVPN_BIN") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root
        .join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()))
        .join("netns-bench");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!(
        "building a clean release binary: cargo build --release --bin mlvpn --target-dir {}",
        target.display()
    );
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "mlvpn", "--target-dir"])
        .arg(&target)
        .current_dir(&root)
        .status()
        .ok()?;
    let bin = target.join("release").join("mlvpn");
    (status.success() && bin.exists()).then_some(bin)
}

/// The prologue of a root benchmark run by `cargo bench --bench NAME`: `None` (doing nothing)
/// under `cargo test --benches`, which runs it without `--bench`; without root (a loud
/// `SKIPPED` line); or if the release binary cannot be built. Otherwise the tools are there
/// ([`need_tools`]) and this is the binary to measure ([`release_mlvpn`]).
pub fn bench_binary(name: &str) -> Option<PathBuf> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name}: run it with `cargo bench --bench {name}` (as root)");
        return None;
    }
    if !have_root(name) {
        return None;
    }
    need_tools();
    let bin = release_mlvpn();
    if bin.is_none() {
        loud(&format!("SKIPPED: {name}: cannot build the mlvpn binary"));
    }
    bin
}

/// The daemon binary, or a loud `SKIPPED` line and `None` (before the daemon lands on main).
pub fn need_mlvpn(test: &str) -> Option<PathBuf> {
    let bin = mlvpn_bin();
    if bin.is_none() {
        loud(&format!("SKIPPED: {test}: no mlvpn binary (this branch has no src/main.rs yet)"));
    }
    bin
}

/// Full path of an external tool, or `None` when this machine has none.
fn find_tool(name: &str) -> Option<PathBuf> {
    // Debian's python3 first: a pyenv shim may not work under `ip netns exec`, and Debian's
    // python3-* packages (tests/tools.sh) install for it.
    let mut dirs: Vec<PathBuf> = vec!["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into(), "/bin".into()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Full path of an external tool. A missing one is installed first ([`need_tools`]); if that
/// failed, panics saying so, so that a missing tool never looks like a failing daemon.
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        need_tools();
        find_tool(name).unwrap_or_else(|| {
            panic!("MISSING TEST TOOL `{name}` (not an mlvpn failure): tests/tools.sh could not install it")
        })
    })
}

/// The tools the lab and its traffic generators use, installed once per test binary where
/// missing (`tests/tools.sh`: Debian packages, as root). Panics, naming what is missing, if
/// the installation fails: the tests cannot run, and must not look like a daemon failing.
pub fn need_tools() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools.sh");
        let check = Command::new("sh").arg(&script).arg("--check").output();
        if check.as_ref().is_ok_and(|o| o.status.success()) {
            return;
        }
        let what = check.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        loud(&format!("{what}: installing them with tests/tools.sh"));
        let ok = Command::new("sh").arg(&script).status().is_ok_and(|s| s.success());
        assert!(
            ok,
            "MISSING TEST TOOLS (not an mlvpn failure): {what}; tests/tools.sh could not install them"
        );
    });
}

/// The TCP congestion control our traffic generators ask for on their sockets: `cubic`
/// (Linux's default) unless `MLVPN_NETNS_TCP_CC` names another (e.g. `bbr`), so that figures do
/// not depend on the host's default (BBR on some machines, whose policer detection pins a flow
/// to its lossy-phase rate for 48 round trips after a burst of loss). Set per socket (as root
/// any available algorithm may be chosen; a namespace's default may only be an "allowed" one).
/// `None`, with a note, when the kernel does not have it: then the host's default applies.
pub fn tcp_congestion_control() -> Option<String> {
    let want = std::env::var("MLVPN_NETNS_TCP_CC").unwrap_or_else(|_| "cubic".into());
    let available =
        fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control").unwrap_or_default();
    if available.split_whitespace().any(|a| a == want) {
        Some(want)
    } else {
        static NOTE: Once = Once::new();
        NOTE.call_once(|| {
            loud(&format!(
                "note: TCP congestion control {want} unavailable ({available:?}); using the default"
            ))
        });
        None
    }
}

/// The `Udp:` counters of a namespace (from /proc/PID/net/snmp of a process in it).
pub fn udp_counters(pid: u32) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
    let mut out = BTreeMap::new();
    if let [names, values] = lines[..] {
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
            out.insert(n.to_string(), v.parse().unwrap_or(0));
        }
    }
    out
}

/// Root, the daemon binary, and our turn (scenarios run one at a time): `None`, after a loud
/// `SKIPPED` line, if root or the binary is missing.
pub fn daemon_scenario(test: &str) -> Option<MutexGuard<'static, ()>> {
    if !have_root(test) {
        return None;
    }
    need_mlvpn(test)?;
    let guard = serial();
    println!("=== {test}");
    Some(guard)
}

/// Scenarios share two cores: they run one at a time (tests of one binary run on threads).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Small process helpers
// ---------------------------------------------------------------------------------------------

/// Runs a short host command and returns its stdout; panics with its stderr on failure.
pub fn host(argv: &[&str]) -> String {
    let out = Command::new(tool(argv[0]))
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    if !out.status.success() {
        panic!("{argv:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like [`host`] but returns whether it worked, for best-effort teardown.
fn host_quiet(argv: &[&str]) -> bool {
    Command::new(tool(argv[0]))
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we started (or read from `ip netns pids`) has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns the time it took.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

/// The machine's CPU pressure stall counter (`some` line of /proc/pressure/cpu), in seconds:
/// time during which at least one runnable task waited for a CPU. `None` without PSI.
pub fn cpu_stall_seconds() -> Option<f64> {
    let text = fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some "))?;
    let total = some.split_whitespace().find_map(|f| f.strip_prefix("total="))?;
    total.parse::<f64>().ok().map(|us| us / 1e6)
}

/// Measures how busy the machine is over a stretch of time: the share of it during which some
/// task waited for a CPU (PSI "some"). It counts every process, ours included: a flow that
/// saturates both cores by itself shows 50-80 % here; other work on the machine adds to it.
#[derive(Debug, Clone, Copy)]
pub struct CpuPressure {
    start: Instant,
    stall: Option<f64>,
}

impl CpuPressure {
    pub fn start() -> CpuPressure {
        CpuPressure { start: Instant::now(), stall: cpu_stall_seconds() }
    }

    /// Percent of the time since `start` with a task waiting for a CPU.
    pub fn percent(&self) -> Option<f64> {
        let (a, b) = (self.stall?, cpu_stall_seconds()?);
        Some(100.0 * (b - a) / self.start.elapsed().as_secs_f64().max(1e-3))
    }
}

/// The machine, for a benchmark's header: `2 cores, kernel 6.1.0, load average 0.5 0.4 ...`.
pub fn machine() -> String {
    format!(
        "{} cores, kernel {}, load average {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        host(&["uname", "-r"]).trim(),
        fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    )
}

/// CPU time (user + system) of a process and all its live descendants, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut stats: Vec<(u32, u32, u64)> = Vec::new(); // pid, ppid, utime+stime ticks
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(text) = fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
            // The command name is in parentheses and may hold spaces: split after the last ')'.
            let Some(rest) = text.rfind(')').map(|i| &text[i + 2..]) else { continue };
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
            let (Some(ppid), Some(ut), Some(st)) = (f.get(1), f.get(11), f.get(12)) else { continue };
            let (Ok(ppid), Ok(ut), Ok(st)) = (ppid.parse(), ut.parse::<u64>(), st.parse::<u64>()) else {
                continue;
            };
            stats.push((p, ppid, ut + st));
        }
    }
    let mut tree = vec![pid];
    let mut total = 0u64;
    let mut i = 0;
    while i < tree.len() {
        let cur = tree[i];
        for &(p, pp, t) in &stats {
            if p == cur {
                total += t;
            }
            if pp == cur && !tree.contains(&p) {
                tree.push(p);
            }
        }
        i += 1;
    }
    total as f64 / hz
}

/// A process the lab started, with stdout and stderr in files. Dropping it stops it.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, || self.try_status().is_some());
        self.try_status()
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`. Returns the exit status and
    /// whether it needed the SIGKILL.
    pub fn terminate(&mut self, grace: Duration) -> (ExitStatus, bool) {
        self.stop_with(libc::SIGTERM, grace)
    }

    /// Sends `sig`, then SIGKILL if it has not exited after `grace`. Returns the exit status
    /// and whether it needed the SIGKILL.
    pub fn stop_with(&mut self, sig: libc::c_int, grace: Duration) -> (ExitStatus, bool) {
        if let Some(s) = self.try_status() {
            return (s, false);
        }
        signal(self.pid(), sig);
        if let Some(s) = self.wait_timeout(grace) {
            return (s, false);
        }
        let _ = self.child.kill();
        let s = self.child.wait().expect("wait after SIGKILL");
        self.status = Some(s);
        (s, true)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stdout_path).unwrap_or_default()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(3));
    }
}

/// What a finished command left.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

// ---------------------------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }

    /// This side's address inside the tunnel.
    pub fn tun_ip(self) -> &'static str {
        match self {
            Side::Client => TUN_CLIENT_IP,
            Side::Server => TUN_SERVER_IP,
        }
    }

    fn letter(self) -> char {
        match self {
            Side::Client => 'c',
            Side::Server => 's',
        }
    }
}

/// A `tbf` rate limit (see the module doc for burst and queue).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub rate_mbit: f64,
}

impl Shape {
    pub fn bytes_per_sec(&self) -> f64 {
        self.rate_mbit * 1e6 / 8.0
    }

    pub fn burst_bytes(&self) -> u64 {
        ((self.bytes_per_sec() * 0.004) as u64).max(8 * 1024)
    }

    pub fn limit_bytes(&self) -> u64 {
        ((self.bytes_per_sec() * 0.050) as u64).max(3 * self.burst_bytes())
    }

    pub fn tbf_args(&self) -> Vec<String> {
        let kbit = (self.rate_mbit * 1000.0).round() as u64;
        vec![
            "rate".into(),
            format!("{kbit}kbit"),
            "burst".into(),
            self.burst_bytes().to_string(),
            "limit".into(),
            self.limit_bytes().to_string(),
        ]
    }
}

/// One link of the lab.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpec {
    /// Rate limit of both directions; `None` is an unshaped veth.
    pub shape: Option<Shape>,
    /// `bandwidth_upload` in the configs (bytes/s); `None` leaves the key out.
    pub bandwidth_upload: Option<u64>,
}

impl LinkSpec {
    pub fn unshaped() -> LinkSpec {
        LinkSpec { shape: None, bandwidth_upload: None }
    }

    /// Shaped to `mbit` both ways, with `bandwidth_upload` set to match.
    pub fn shaped(mbit: f64) -> LinkSpec {
        let shape = Shape { rate_mbit: mbit };
        LinkSpec { shape: Some(shape), bandwidth_upload: Some(shape.bytes_per_sec() as u64) }
    }
}

/// Link `i`'s names and addresses.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: usize,
    pub spec: LinkSpec,
    /// Config section name: `link<i>`.
    pub name: String,
    pub client_if: String,
    pub server_if: String,
    pub client_ip: String,
    pub server_ip: String,
    pub port: u16,
}

impl Link {
    /// Link `i` of the lab's plan: names, addresses and port follow from its number.
    pub fn numbered(i: usize, spec: LinkSpec) -> Link {
        Link {
            index: i,
            spec,
            name: format!("link{i}"),
            client_if: format!("c-link{i}"),
            server_if: format!("s-link{i}"),
            client_ip: format!("10.77.{i}.1"),
            server_ip: format!("10.77.{i}.2"),
            port: 5080 + i as u16,
        }
    }
}

/// The `[general]` settings the lab writes into both configs.
#[derive(Debug, Clone)]
pub struct TunnelOpts {
    pub password: String,
    /// The client's password when it differs (wrong-password scenario).
    pub client_password: Option<String>,
    pub mtu: u32,
    /// `timeout` in seconds.
    pub timeout: u32,
    /// `reorder_buffer_size`; `None` leaves the key out.
    pub reorder_buffer_size: Option<u32>,
    /// Extra `key = value` lines for `[general]`, both sides.
    pub extra_general: Vec<(String, String)>,
}

impl Default for TunnelOpts {
    fn default() -> Self {
        TunnelOpts {
            password: DEFAULT_PASSWORD.into(),
            client_password: None,
            mtu: DEFAULT_MTU,
            timeout: 10,
            reorder_buffer_size: None,
            extra_general: Vec::new(),
        }
    }
}

/// One recorded call of the hook script.
#[derive(Debug, Clone, PartialEq)]
pub struct HookCall {
    /// Seconds since the epoch (from `date +%s.%N`).
    pub time: f64,
    /// The arguments after the script name: device, event, [link].
    pub args: Vec<String>,
    /// Each of the contract's variables: `Some(value)` when set (possibly empty), `None` when
    /// unset.
    pub env: BTreeMap<String, Option<String>>,
}

impl HookCall {
    pub fn event(&self) -> &str {
        self.args.get(1).map(String::as_str).unwrap_or("")
    }

    pub fn env(&self, key: &str) -> Option<&str> {
        self.env.get(key).and_then(|v| v.as_deref())
    }
}

static LAB_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh lab id (`<pid>-<n>`) and its private directory; removes what SIGKILLed runs left
/// first. Namespaces named `mlvpn-<id>-...` are cleaned up by later runs if this one dies.
pub fn new_lab_dir() -> (String, PathBuf) {
    static STALE: Once = Once::new();
    STALE.call_once(remove_stale);
    need_tools();
    let id = format!("{}-{}", std::process::id(), LAB_SEQ.fetch_add(1, Ordering::Relaxed));
    let dir = std::env::temp_dir().join(format!("{TMP_PREFIX}{id}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create lab directory");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod lab directory");
    (id, dir)
}

/// A namespace name for lab `id`.
pub fn ns_name(id: &str, suffix: &str) -> String {
    format!("{NS_PREFIX}{id}-{suffix}")
}

/// Starts `argv` in namespace `ns`, output to `<dir>/<name>.out` and `.err`.
pub fn spawn_in(ns: &str, dir: &Path, name: &str, argv: &[&str]) -> Proc {
    let stdout_path = dir.join(format!("{name}.out"));
    let stderr_path = dir.join(format!("{name}.err"));
    let program = if argv[0].contains('/') { PathBuf::from(argv[0]) } else { tool(argv[0]) };
    let child = Command::new(tool("ip"))
        .args(["netns", "exec", ns])
        .arg(program)
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("create stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
    Proc { name: name.into(), child, stdout_path, stderr_path, status: None }
}

/// Two namespaces joined by N veth links, and whatever runs in them. See the module doc.
#[derive(Debug)]
pub struct Lab {
    pub id: String,
    pub dir: PathBuf,
    pub links: Vec<Link>,
    namespaces: Vec<String>,
    client: Option<Proc>,
    server: Option<Proc>,
    /// A `sleep` in each namespace: its /proc/PID/net/* shows that namespace's counters.
    anchors: Vec<Proc>,
    pub bin: Option<PathBuf>,
    /// Extra environment of the daemons started from now on.
    pub daemon_env: Vec<(String, String)>,
}

impl Lab {
    /// Creates the namespaces and links. Panics (after cleaning up) if the kernel refuses.
    pub fn new(links: &[LinkSpec]) -> Lab {
        let (id, dir) = new_lab_dir();

        let mut lab = Lab {
            id: id.clone(),
            dir,
            links: Vec::new(),
            namespaces: Vec::new(),
            client: None,
            server: None,
            anchors: Vec::new(),
            bin: mlvpn_bin(),
            daemon_env: Vec::new(),
        };
        for side in [Side::Client, Side::Server] {
            let ns = lab.ns(side);
            host(&["ip", "netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            host(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        for (i, spec) in links.iter().enumerate() {
            lab.add_link(i, spec.clone());
        }
        for side in [Side::Client, Side::Server] {
            lab.setup_blackhole_table(side);
            let anchor = lab.spawn(side, &format!("anchor-{}", side.name()), &["sleep", "2147483647"]);
            lab.anchors.push(anchor);
        }
        lab.write_file("ping.py", include_str!("ping.py"), 0o700);
        lab.write_hook(Side::Client);
        lab.write_hook(Side::Server);
        lab
    }

    /// The namespace name of a side.
    pub fn ns(&self, side: Side) -> String {
        ns_name(&self.id, &side.letter().to_string())
    }

    fn add_link(&mut self, i: usize, spec: LinkSpec) {
        let link = Link::numbered(i, spec);
        let (c, s) = (self.ns(Side::Client), self.ns(Side::Server));
        host(&[
            "ip",
            "link",
            "add",
            &link.client_if,
            "netns",
            &c,
            "type",
            "veth",
            "peer",
            "name",
            &link.server_if,
            "netns",
            &s,
        ]);
        for (ns, ifname, ip) in
            [(&c, &link.client_if, &link.client_ip), (&s, &link.server_if, &link.server_ip)]
        {
            host(&["ip", "-n", ns, "addr", "add", &format!("{ip}/30"), "dev", ifname]);
            host(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            if let Some(shape) = link.spec.shape {
                let mut argv: Vec<String> =
                    ["tc", "-n", ns, "qdisc", "add", "dev", ifname, "root", "tbf"].map(String::from).to_vec();
                argv.extend(shape.tbf_args());
                host(&argv.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
        self.links.push(link);
    }

    fn setup_blackhole_table(&self, side: Side) {
        let rules = "table inet mlvpn_lab {\n\
                     \tset blackholed { type ifname; }\n\
                     \tchain input { type filter hook input priority 0; policy accept; iifname @blackholed drop; }\n\
                     }\n";
        let path = self.dir.join(format!("blackhole-{}.nft", side.name()));
        fs::write(&path, rules).expect("write nft rules");
        host(&["ip", "netns", "exec", &self.ns(side), "nft", "-f", path.to_str().unwrap()]);
    }

    /// Starts (`on`) or stops dropping every packet of link `i`, both directions.
    pub fn blackhole(&self, i: usize, on: bool) {
        let link = &self.links[i];
        for (side, ifname) in [(Side::Client, &link.client_if), (Side::Server, &link.server_if)] {
            let verb = if on { "add" } else { "delete" };
            let element = format!("{{ \"{ifname}\" }}");
            host(&[
                "ip",
                "netns",
                "exec",
                &self.ns(side),
                "nft",
                verb,
                "element",
                "inet",
                "mlvpn_lab",
                "blackholed",
                &element,
            ]);
        }
    }

    // ---- processes -------------------------------------------------------------------------

    /// Starts `argv` inside a side's namespace, output to `<dir>/<name>.out` and `.err`.
    pub fn spawn(&self, side: Side, name: &str, argv: &[&str]) -> Proc {
        spawn_in(&self.ns(side), &self.dir, name, argv)
    }

    /// Runs `argv` in a side's namespace to completion; kills it after `timeout`.
    pub fn run(&self, side: Side, name: &str, argv: &[&str], timeout: Duration) -> RunOutput {
        let mut p = self.spawn(side, name, argv);
        let status = match p.wait_timeout(timeout) {
            Some(s) => s,
            None => {
                p.terminate(Duration::from_secs(1));
                panic!("{argv:?} in {} did not finish within {timeout:?}", side.name());
            }
        };
        RunOutput { status, stdout: p.stdout(), stderr: p.stderr() }
    }

    /// Pings `ip` once from a side's namespace (1 s timeout), with `ping.py` (no iputils-ping
    /// needed).
    pub fn ping(&self, side: Side, ip: &str) -> bool {
        Command::new(tool("ip"))
            .args(["netns", "exec", &self.ns(side)])
            .arg(tool("python3"))
            .arg(self.dir.join("ping.py"))
            .args([ip, "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Interface byte counters of a side: name → (rx_bytes, tx_bytes).
    pub fn net_dev(&self, side: Side) -> BTreeMap<String, (u64, u64)> {
        self.net_dev_columns(side, 0, 8)
    }

    /// Interface packet counters of a side: name → (rx_packets, tx_packets). A super-packet
    /// (GSO, GRO) counts once.
    pub fn net_dev_packets(&self, side: Side) -> BTreeMap<String, (u64, u64)> {
        self.net_dev_columns(side, 1, 9)
    }

    /// Two columns of /proc/net/dev in a side's namespace, per interface.
    fn net_dev_columns(&self, side: Side, rx: usize, tx: usize) -> BTreeMap<String, (u64, u64)> {
        let anchor = &self.anchors[if side == Side::Client { 0 } else { 1 }];
        let text = fs::read_to_string(format!("/proc/{}/net/dev", anchor.pid())).unwrap_or_default();
        let mut out = BTreeMap::new();
        for line in text.lines().skip(2) {
            let Some((name, rest)) = line.split_once(':') else { continue };
            let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if f.len() > rx.max(tx) {
                out.insert(name.trim().to_string(), (f[rx], f[tx]));
            }
        }
        out
    }

    /// A side's TCP counters (`Tcp:` of /proc/net/snmp and `TcpExt:` of /proc/net/netstat),
    /// e.g. `RetransSegs`, `TCPTimeouts`, `TCPLossProbes`.
    pub fn tcp_counters(&self, side: Side) -> BTreeMap<String, u64> {
        let anchor = &self.anchors[if side == Side::Client { 0 } else { 1 }];
        let mut out = BTreeMap::new();
        for file in ["snmp", "netstat"] {
            let text = fs::read_to_string(format!("/proc/{}/net/{file}", anchor.pid())).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for pair in lines.chunks(2) {
                let [names, values] = pair else { continue };
                let (Some(("Tcp" | "TcpExt", names)), Some((_, values))) =
                    (names.split_once(": "), values.split_once(": "))
                else {
                    continue;
                };
                for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                    if let Ok(v) = v.parse() {
                        out.insert(n.to_string(), v);
                    }
                }
            }
        }
        out
    }

    /// Whether a TCP socket listens on `port` in a side's namespace.
    pub fn tcp_listening(&self, side: Side, port: u16) -> bool {
        let anchor = &self.anchors[if side == Side::Client { 0 } else { 1 }];
        let want = format!(":{port:04X}");
        ["tcp", "tcp6"].iter().any(|f| {
            fs::read_to_string(format!("/proc/{}/net/{f}", anchor.pid()))
                .unwrap_or_default()
                .lines()
                .skip(1)
                .any(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.len() > 3 && cols[1].ends_with(&want) && cols[3] == "0A"
                })
        })
    }

    /// With `MLVPN_NETNS_PCAP` set, captures the first 128 bytes of every packet on both TUN
    /// devices into `<dir>/tun-<side>.pcap` (needs tcpdump) until the returned processes drop.
    pub fn capture_tun_if_asked(&self) -> Vec<Proc> {
        if std::env::var_os("MLVPN_NETNS_PCAP").is_none() {
            return Vec::new();
        }
        let caps: Vec<Proc> = [Side::Client, Side::Server]
            .into_iter()
            .map(|side| {
                let file = self.dir.join(format!("tun-{}.pcap", side.name()));
                let argv = ["tcpdump", "-i", TUN_DEVICE, "-s", "128", "-w", file.to_str().unwrap()];
                self.spawn(side, &format!("tcpdump-{}", side.name()), &argv)
            })
            .collect();
        sleep(Duration::from_millis(300)); // tcpdump needs a moment before it captures
        caps
    }

    // ---- configs and hooks -----------------------------------------------------------------

    /// Writes `text` to `<dir>/<name>` with the given mode; returns the path.
    pub fn write_file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, text).expect("write lab file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod lab file");
        path
    }

    pub fn hook_path(&self, side: Side) -> PathBuf {
        self.dir.join(format!("hook-{}.sh", side.name()))
    }

    pub fn hook_record_path(&self, side: Side) -> PathBuf {
        self.dir.join(format!("hook-{}.rec", side.name()))
    }

    fn write_hook(&self, side: Side) {
        let rec = self.hook_record_path(side);
        let mut vars = String::new();
        for v in HOOK_ENV {
            let _ = write!(vars, "{v} ");
        }
        let script = format!(
            r#"#!/bin/sh
# mlvpn netns lab hook ({side}): records every call, then sets up the TUN on tuntap_up.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
line="t=$(date +%s.%N)	argc=$#"
i=0
for a in "$@"; do i=$((i + 1)); line="$line	arg$i=$a"; done
for v in {vars}; do
    eval "isset=\${{$v+x}}"
    if [ -n "$isset" ]; then eval "val=\$$v"; line="$line	env.$v=$val"; fi
done
printf '%s\n' "$line" >> '{rec}'
case "$2" in
tuntap_up)
    ip addr add "$IP4" dev "$DEVICE" || exit 1
    ip link set dev "$DEVICE" mtu "$MTU" up || exit 1
    ;;
esac
exit 0
"#,
            side = side.name(),
            rec = rec.display()
        );
        self.write_file(&format!("hook-{}.sh", side.name()), &script, 0o700);
    }

    /// The hook calls recorded so far on a side, in order.
    pub fn hook_calls(&self, side: Side) -> Vec<HookCall> {
        let text = fs::read_to_string(self.hook_record_path(side)).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut call = HookCall { time: 0.0, args: Vec::new(), env: BTreeMap::new() };
                for v in HOOK_ENV {
                    call.env.insert(v.into(), None);
                }
                for field in line.split('\t') {
                    let (k, v) = field.split_once('=').unwrap_or((field, ""));
                    if k == "t" {
                        call.time = v.parse().unwrap_or(0.0);
                    } else if let Some(var) = k.strip_prefix("env.") {
                        call.env.insert(var.into(), Some(v.into()));
                    } else if k.starts_with("arg") && k != "argc" {
                        call.args.push(v.into());
                    }
                }
                call
            })
            .collect()
    }

    /// The server's config text.
    pub fn server_config(&self, opts: &TunnelOpts) -> String {
        let mut s = self.general(Side::Server, opts, &opts.password);
        for l in &self.links {
            let _ = write!(s, "\n[{}]\nbindhost = {}\nbindport = {}\n", l.name, l.server_ip, l.port);
            if let Some(b) = l.spec.bandwidth_upload {
                let _ = writeln!(s, "bandwidth_upload = {b}");
            }
        }
        s
    }

    /// The client's config text.
    pub fn client_config(&self, opts: &TunnelOpts) -> String {
        let pw = opts.client_password.as_deref().unwrap_or(&opts.password);
        let mut s = self.general(Side::Client, opts, pw);
        for l in &self.links {
            let _ = write!(
                s,
                "\n[{}]\nbindhost = {}\nremotehost = {}\nremoteport = {}\n",
                l.name, l.client_ip, l.server_ip, l.port
            );
            if let Some(b) = l.spec.bandwidth_upload {
                let _ = writeln!(s, "bandwidth_upload = {b}");
            }
        }
        s
    }

    fn general(&self, side: Side, opts: &TunnelOpts, password: &str) -> String {
        let mut s = format!(
            "# mlvpn netns lab, {side}\n[general]\nmode = {side}\npassword = \"{password}\"\n\
             statuscommand = {hook}\ninterface_name = {TUN_DEVICE}\nmtu = {mtu}\ntimeout = {timeout}\n\
             ip4 = {ip}/{TUN_PREFIX}\nip4_gateway = {gw}\n",
            side = side.name(),
            hook = self.hook_path(side).display(),
            mtu = opts.mtu,
            timeout = opts.timeout,
            ip = side.tun_ip(),
            gw = side.other().tun_ip(),
        );
        if let Some(n) = opts.reorder_buffer_size {
            let _ = writeln!(s, "reorder_buffer_size = {n}");
        }
        let _ = writeln!(s, "control_unix_path = {}", self.control_path(side).display());
        for (k, v) in &opts.extra_general {
            let _ = writeln!(s, "{k} = {v}");
        }
        s
    }

    /// Writes both configs (mode 600) and returns their paths (client, server).
    pub fn write_configs(&self, opts: &TunnelOpts) -> (PathBuf, PathBuf) {
        (
            self.write_file("client.conf", &self.client_config(opts), 0o600),
            self.write_file("server.conf", &self.server_config(opts), 0o600),
        )
    }

    // ---- daemons ---------------------------------------------------------------------------

    fn bin(&self) -> PathBuf {
        self.bin.clone().expect("no mlvpn binary: call need_mlvpn() first")
    }

    /// Runs `mlvpn --config FILE --debug ARGS...` in a side's namespace (`-v` too when
    /// `MLVPN_NETNS_VERBOSE` is set), its stdout and stderr appended to `<dir>/<side>.log`.
    pub fn spawn_daemon(&self, side: Side, config: &Path, args: &[&str]) -> (Child, PathBuf) {
        let log = self.dir.join(format!("{}.log", side.name()));
        let file = fs::OpenOptions::new().create(true).append(true).open(&log).expect("open daemon log");
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &self.ns(side)]).arg(self.bin()).arg("--config").arg(config);
        cmd.arg("--debug").args(args).envs(self.daemon_env.iter().map(|(k, v)| (k, v)));
        // A backtrace reads files, which the network process's sandbox forbids: with it, a
        // panic there would end as a sandbox kill instead of showing its message.
        cmd.env_remove("RUST_BACKTRACE");
        if std::env::var_os("MLVPN_NETNS_VERBOSE").is_some() {
            cmd.arg("-v");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .expect("start mlvpn");
        (child, log)
    }

    /// Starts the daemon of a side with `config`: `mlvpn --config FILE --debug` (`-v` too when
    /// `MLVPN_NETNS_VERBOSE` is set), as root, so with privilege separation and the network
    /// process in its sandbox, as installed. Its stdout and stderr go to `<dir>/<side>.log`. A
    /// daemon already running on that side is stopped first.
    pub fn start_daemon(&mut self, side: Side, config: &Path) {
        self.stop_daemon(side);
        let (child, log) = self.spawn_daemon(side, config, &[]);
        let p = Proc {
            name: side.name().into(),
            child,
            stdout_path: log.clone(),
            stderr_path: log,
            status: None,
        };
        *self.daemon_slot(side) = Some(p);
    }

    /// Writes the default configs for `opts` and starts both daemons, server first.
    pub fn start_both(&mut self, opts: &TunnelOpts) {
        let (c, s) = self.write_configs(opts);
        self.start_daemon(Side::Server, &s);
        self.start_daemon(Side::Client, &c);
    }

    fn daemon_slot(&mut self, side: Side) -> &mut Option<Proc> {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    pub fn daemon(&mut self, side: Side) -> &mut Proc {
        self.daemon_slot(side).as_mut().unwrap_or_else(|| panic!("no {} daemon running", side.name()))
    }

    pub fn daemon_pid(&mut self, side: Side) -> u32 {
        self.daemon(side).pid()
    }

    /// SIGTERM (SIGKILL after 5 s); returns the exit status and whether SIGKILL was needed.
    pub fn stop_daemon(&mut self, side: Side) -> Option<(ExitStatus, bool)> {
        self.stop_daemon_with(side, libc::SIGTERM)
    }

    /// Like [`Lab::stop_daemon`] with another signal (SIGINT).
    /// A daemon whose network process the sandbox killed fails the test: no scenario expects it.
    pub fn stop_daemon_with(&mut self, side: Side, sig: libc::c_int) -> Option<(ExitStatus, bool)> {
        let stopped = self.daemon_slot(side).take().map(|mut p| p.stop_with(sig, Duration::from_secs(5)));
        if let Some((status, _)) = &stopped
            && status.code() == Some(128 + libc::SIGSYS)
            && !std::thread::panicking()
        {
            panic!(
                "{}: the sandbox killed the network process; log:\n{}",
                side.name(),
                tail(&self.log(side), 30)
            );
        }
        stopped
    }

    /// Takes a side's daemon out of the lab, which will no longer stop or check it.
    pub fn take_daemon(&mut self, side: Side) -> Option<Proc> {
        self.daemon_slot(side).take()
    }

    /// Panics with the log if a daemon that was started has exited.
    pub fn assert_running(&mut self, side: Side) {
        if let Some(p) = self.daemon_slot(side).as_mut()
            && let Some(status) = p.try_status()
        {
            panic!("{} daemon exited early ({status}); log:\n{}", side.name(), tail(&p.stdout(), 40));
        }
    }

    /// The daemon log of a side (stdout and stderr), as far as written.
    pub fn log(&self, side: Side) -> String {
        let path = self.dir.join(format!("{}.log", side.name()));
        String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
    }

    /// Lines of a side's log containing `pattern`, from byte `from` on.
    pub fn log_lines(&self, side: Side, from: usize, pattern: &str) -> Vec<String> {
        let log = self.log(side);
        log.get(from..).unwrap_or("").lines().filter(|l| l.contains(pattern)).map(String::from).collect()
    }

    /// Waits for a log line containing `pattern` after byte `from`; returns how long it took.
    pub fn wait_log(
        &mut self,
        side: Side,
        from: usize,
        pattern: &str,
        timeout: Duration,
    ) -> Option<Duration> {
        poll_until(timeout, || {
            self.assert_running(side);
            !self.log_lines(side, from, pattern).is_empty()
        })
    }

    /// The control socket of a side's daemon (`control_unix_path`).
    pub fn control_path(&self, side: Side) -> PathBuf {
        self.dir.join(format!("control-{}.sock", side.name()))
    }

    /// `mlvpn status` of a side's daemon (its links, counters and drops), or the error.
    pub fn status(&self, side: Side, json: bool) -> String {
        let Some(bin) = &self.bin else { return "no mlvpn binary".into() };
        let mut cmd = Command::new(bin);
        cmd.arg("status").arg("--socket").arg(self.control_path(side));
        if json {
            cmd.arg("--json");
        }
        match cmd.stdin(Stdio::null()).output() {
            Ok(o) => format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            Err(e) => format!("cannot run mlvpn status: {e}"),
        }
    }

    /// Whether the TUN device of a side exists, is up and carries its address.
    pub fn tun_up(&self, side: Side) -> bool {
        let ns = self.ns(side);
        let run = |args: &[&str]| {
            Command::new(tool("ip"))
                .args(["-n", &ns])
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let link = run(&["-o", "link", "show", "dev", TUN_DEVICE]);
        let flags = link.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(f, _)| f).unwrap_or("");
        let addr = run(&["-o", "-4", "addr", "show", "dev", TUN_DEVICE]);
        flags.split(',').any(|f| f == "UP") && addr.contains(&format!("inet {}/", side.tun_ip()))
    }

    /// Whether a side's namespace has a TUN device at all.
    pub fn tun_exists(&self, side: Side) -> bool {
        host_quiet(&["ip", "-n", &self.ns(side), "link", "show", "dev", TUN_DEVICE])
    }

    /// Waits until both TUN devices are up and a ping crosses the tunnel; returns the time.
    pub fn wait_tunnel(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        let up = poll_until(timeout, || {
            self.assert_running(Side::Server);
            self.assert_running(Side::Client);
            self.tun_up(Side::Client) && self.tun_up(Side::Server)
        });
        if up.is_none() {
            panic!(
                "TUN devices not up within {timeout:?} (client up: {}, server up: {})",
                self.tun_up(Side::Client),
                self.tun_up(Side::Server)
            );
        }
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_secs(2));
        let pinged = poll_until(left, || self.ping(Side::Client, TUN_SERVER_IP));
        if pinged.is_none() {
            panic!("TUN devices up, but no ping through the tunnel within {timeout:?}");
        }
        start.elapsed()
    }

    fn dump_diagnostics(&self) {
        eprintln!("==== netns lab {} diagnostics (dir {}) ====", self.id, self.dir.display());
        for side in [Side::Server, Side::Client] {
            eprintln!("---- {} log (last 60 lines) ----\n{}", side.name(), tail(&self.log(side), 60));
            if self.control_path(side).exists() {
                eprintln!("---- {} status ----\n{}", side.name(), self.status(side, false).trim_end());
            }
            let rec = fs::read_to_string(self.hook_record_path(side)).unwrap_or_default();
            eprintln!("---- {} hook calls ----\n{}", side.name(), rec.trim_end());
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_diagnostics();
        }
        self.stop_daemon(Side::Client);
        self.stop_daemon(Side::Server);
        self.anchors.clear();
        for ns in std::mem::take(&mut self.namespaces) {
            kill_namespace(&ns);
        }
        if std::env::var_os("MLVPN_NETNS_KEEP").is_some() {
            // Renamed so that the next run's clean-up of stale labs leaves it alone.
            let kept = self.dir.with_file_name(format!("{TMP_PREFIX}{}-kept", self.id));
            let _ = fs::remove_dir_all(&kept);
            match fs::rename(&self.dir, &kept) {
                Ok(()) => eprintln!("netns lab {}: kept {}", self.id, kept.display()),
                Err(e) => eprintln!("netns lab {}: kept {} ({e})", self.id, self.dir.display()),
            }
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Kills every process left in a namespace, then deletes it.
pub fn kill_namespace(ns: &str) {
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let pids = Command::new(tool("ip"))
            .args(["netns", "pids", ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<u32> = pids.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        if pids.is_empty() {
            break;
        }
        for p in &pids {
            signal(*p, sig);
        }
        poll_until(Duration::from_secs(2), || {
            pids.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists())
        });
    }
    if !host_quiet(&["ip", "netns", "del", ns]) {
        eprintln!("netns lab: could not delete namespace {ns}");
    }
}

/// The names of the existing namespaces.
pub fn namespaces() -> Vec<String> {
    host(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Removes namespaces and directories of labs whose process is gone (a SIGKILLed run).
fn remove_stale() {
    let dead = |pid: &str| pid.parse::<u32>().is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
    for ns in namespaces() {
        if let Some(pid) = ns.strip_prefix(NS_PREFIX).and_then(|r| r.split('-').next())
            && dead(pid)
        {
            eprintln!("netns lab: removing stale namespace {ns}");
            kill_namespace(&ns);
        }
    }
    if let Ok(dir) = fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(TMP_PREFIX).and_then(|r| r.split('-').next())
                && dead(pid)
                && !name.ends_with("-kept")
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}
