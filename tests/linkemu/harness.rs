//! Test-side helpers to build, wire, start, control and stop `linkemu` in network namespaces.
//!
//! Include it from any test crate with
//!
//! ```ignore
//! #[path = "linkemu/harness.rs"] // in tests/netns.rs; from tests/netns/lab.rs: "../linkemu/harness.rs"
//! mod linkemu;
//! ```
//!
//! It needs only `std`, and the `ip` and `kill` commands.
//!
//! ## How the netns tests use it
//!
//! 1. Create the client and server namespaces as usual, plus one more for the emulator, and call
//!    [`prepare_namespace`] on it (loopback up, IPv6 off so its kernel stays quiet).
//! 2. For each link, instead of one veth pair between client and server, call [`splice_link`]:
//!    it creates `client_if` in the client namespace and `server_if` in the server namespace,
//!    each paired with an interface in the emulator's namespace, turns GSO off on the two
//!    endpoint sides (see below) and brings all four up. Put the addresses on `client_if` and
//!    `server_if` exactly as for a direct veth pair: they share one subnet, the emulator forwards
//!    Ethernet frames (ARP included), so client and server see each other as neighbours and
//!    nothing else changes — mlvpn's configuration, nftables blackholes, `tbf` shaping.
//! 3. [`Emulator::start`] the emulator in its namespace with the pairs `splice_link` returned
//!    (link `i` is the `i`-th pair), and setup commands (`"link 0 delay 20ms rate 40mbit"`).
//! 4. Change links at run time with [`Emulator::cmd`] (`"link 1 up rate 10mbit"`,
//!    `"link 2 blackhole on"`, `"after 3s link 2 blackhole off"`); read counters with
//!    [`Emulator::show`].
//! 5. Drop the [`Emulator`] (or call [`Emulator::stop`] for its log) before deleting the
//!    namespaces; deleting a namespace removes its veths.
//!
//! GSO: a local TCP stack sends "super-frames" of up to 64 KiB over a veth and lets the kernel
//! cut them later; the emulator holds frames of at most 2 KiB and would drop those (counted as
//! `oversize`), and serialising 64 KiB as one unit would distort the rate. `gso_max_segs 1` on the
//! endpoint interfaces makes every stack hand over MTU-sized frames. The checksums the veth leaves
//! to "hardware" are carried through by the emulator (see its `sys` module).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The emulator runs as `SCHED_FIFO` at this priority, so that daemons, iperf3 and whatever
/// else shares the machine's two cores cannot delay its wakeups (see the README: without it,
/// 0.7% of frames left more than 1 ms late on a loaded machine, with it 0.02%).
/// `LINKEMU_REALTIME=0` in the environment turns it off.
pub const REALTIME_PRIORITY: u32 = 10;

/// How long [`Emulator::start`] waits for the control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Emulator`]'s drop waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Runs `ip` with `args`; an error carries the command line and its stderr.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The package directory (`…/tests/linkemu`), found from the including crate's manifest
/// directory: the repository root (for the main crate's tests) or the package itself.
pub fn package_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let nested = dir.join("tests/linkemu");
    if nested.join("Cargo.toml").is_file() { nested } else { dir.to_path_buf() }
}

/// The emulator binary, built once per process with `cargo build --release` in its own target
/// directory (`tests/linkemu/target`). `LINKEMU_BIN` names a prebuilt binary instead.
pub fn binary() -> io::Result<PathBuf> {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    if let Some(p) = std::env::var_os("LINKEMU_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = &*built {
        return Ok(p.clone());
    }
    let dir = package_dir();
    let target = dir.join("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "linkemu", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "building linkemu failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let bin = target.join("release/linkemu");
    *built = Some(bin.clone());
    Ok(bin)
}

/// Readies a fresh namespace for the emulator: loopback up, IPv6 off (no router solicitations or
/// duplicate address probes of its own on the links).
pub fn prepare_namespace(emu_ns: &str) -> io::Result<()> {
    ip(&["-n", emu_ns, "link", "set", "lo", "up"])?;
    // Fails only without IPv6 in the kernel, where there is nothing to silence.
    let _ = Command::new("ip")
        .args(["netns", "exec", emu_ns, "sysctl", "-qw"])
        .args(["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
        .stdin(Stdio::null())
        .output()?;
    Ok(())
}

/// Wires link `index`: `client_if` (in `client_ns`) ↔ `e-c<index>` and `e-s<index>` ↔
/// `server_if` (in `server_ns`), the `e-` ends in `emu_ns`. Turns GSO off on the endpoint ends
/// and brings all four up; addresses are the caller's. Returns the emulator's pair, for
/// [`Emulator::start`].
pub fn splice_link(
    emu_ns: &str,
    index: usize,
    client_ns: &str,
    client_if: &str,
    server_ns: &str,
    server_if: &str,
) -> io::Result<(String, String)> {
    let ec = format!("e-c{index}");
    let es = format!("e-s{index}");
    for (ns, end, emu_end) in [(client_ns, client_if, &ec), (server_ns, server_if, &es)] {
        ip(&["link", "add", end, "netns", ns, "type", "veth", "peer", "name", emu_end, "netns", emu_ns])?;
        ip(&["-n", ns, "link", "set", end, "gso_max_segs", "1"])?;
        ip(&["-n", ns, "link", "set", end, "up"])?;
        ip(&["-n", emu_ns, "link", "set", emu_end, "up"])?;
    }
    Ok((ec, es))
}

/// One line of `show`: a link, a direction (`up` or `down`) and its `key=value` fields.
#[derive(Debug, Clone)]
pub struct PipeStats {
    pub link: usize,
    pub dir: String,
    pub fields: BTreeMap<String, String>,
}

impl PipeStats {
    /// A counter (`rx`, `tx`, `lost`, `tail_drop`, `blackholed`, `oversize`, …); 0 if absent.
    pub fn get(&self, key: &str) -> u64 {
        self.fields.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    fn parse(line: &str) -> Option<PipeStats> {
        let mut words = line.split_whitespace();
        if words.next() != Some("link") {
            return None;
        }
        let link = words.next()?.parse().ok()?;
        let dir = words.next()?.to_string();
        let fields =
            words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Some(PipeStats { link, dir, fields })
    }
}

/// A running emulator. Dropping it stops it (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct Emulator {
    child: Option<Child>,
    control: PathBuf,
    log: PathBuf,
}

impl Emulator {
    /// Starts the emulator in `emu_ns` over `links` (pairs of its interfaces, client side first),
    /// runs `setup` commands, and waits until its control socket (`control`, a path) answers. It
    /// runs at real-time priority (see [`REALTIME_PRIORITY`]).
    /// Its stderr (the log: start, commands, final counters) goes to `log`.
    pub fn start(
        emu_ns: &str,
        links: &[(String, String)],
        setup: &[&str],
        control: &Path,
        log: &Path,
    ) -> io::Result<Emulator> {
        let bin = binary()?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", emu_ns]).arg(&bin).arg("run").arg("--control").arg(control);
        for (c, s) in links {
            cmd.arg("--link").arg(format!("{c}:{s}"));
        }
        for s in setup {
            cmd.arg("--set").arg(s);
        }
        if std::env::var_os("LINKEMU_REALTIME").is_none_or(|v| v != "0") {
            cmd.arg("--realtime").arg(REALTIME_PRIORITY.to_string());
        }
        let _ = fs::remove_file(control);
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(fs::File::create(log)?).spawn()?;
        let mut emu = Emulator { child: Some(child), control: control.to_path_buf(), log: log.to_path_buf() };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if emu.cmd("show").is_ok() {
                return Ok(emu);
            }
            if let Some(status) = emu.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = fs::read_to_string(&emu.log).unwrap_or_default();
                return Err(io::Error::other(format!("linkemu exited at start ({status}):\n{log}")));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("linkemu did not open its control socket in time"));
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The emulator's process id (for CPU accounting in /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs one command; returns its output (without the final `ok`), or the emulator's error.
    pub fn cmd(&self, command: &str) -> io::Result<String> {
        let mut s = UnixStream::connect(&self.control)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(command.as_bytes())?;
        s.write_all(b"\n")?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        match answer.strip_suffix("ok\n") {
            Some(out) => Ok(out.to_string()),
            None => Err(io::Error::other(format!("linkemu: {command}: {}", answer.trim()))),
        }
    }

    /// Counters and settings of every link and direction.
    pub fn show(&self) -> io::Result<Vec<PipeStats>> {
        Ok(self.cmd("show")?.lines().filter_map(PipeStats::parse).collect())
    }

    /// Stops the emulator and returns its log (which ends with the final counters).
    pub fn stop(mut self) -> String {
        self.terminate();
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SIGTERM (the emulator logs its counters and removes its socket); the pid is still
        // ours, as the child is not reaped yet. `kill(1)` keeps this file free of `unsafe`.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.terminate();
    }
}
