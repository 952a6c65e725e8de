//! `linkemu`: the command line, the poll loop and the control socket. See the README.
#![deny(unsafe_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;

use linkemu::command::{Command, parse_line, parse_script};
use linkemu::emu::Emulator;
use linkemu::sys::{self, MAX_BATCH, PacketSocket, RecvMeta, SignalFd, VNET_HDR_LEN};

const USAGE: &str = "\
usage:
  linkemu run --link CLIENT_IF:SERVER_IF [--link ...] [--control PATH] [--script FILE]
              [--set COMMAND]... [--slots N] [--seed N] [--realtime PRIORITY]
      Forward frames between each pair of interfaces (of the current network namespace),
      impaired as the commands say. Link numbers follow the order of --link, from 0.
      --control PATH  UNIX stream socket taking commands at run time (see 'linkemu ctl')
      --script FILE   commands to run at start, one a line ('at 5s ...' for timed ones)
      --set COMMAND   one command to run at start (after the script), e.g. 'link 0 delay 10ms'
      --slots N       frames each direction of each link holds at most (power of two; 4096)
      --seed N        seed of the loss and jitter draws (default 24301)
      --realtime P    run as SCHED_FIFO priority P (1-99), so that a busy machine does not
                      delay frames (needs root; the kernel still keeps 5% for other tasks)
  linkemu ctl PATH COMMAND...
      Send one command to a running emulator and print its answer ('show' for counters).
  linkemu check FILE
      Parse a script and report the first error.

commands (see the README):
  link <N|all> [up|down] [delay D] [jitter D] [loss P] [rate R] [queue S|default]
                         [blackhole on|off] [reset]
  show
  at <time since start> <command>
  after <time from now> <command>
";

/// Bytes per frame slot: the virtio header and an Ethernet frame of a 1500-byte MTU fit with
/// room for a VLAN tag or a slightly larger MTU.
const SLOT_SIZE: usize = 2048;
const DEFAULT_SLOTS: usize = 4096;
const DEFAULT_SEED: u64 = 24301;
const MAX_LINKS: usize = 64;
const MAX_CLIENTS: usize = 16;
const MAX_COMMAND_LINE: usize = 4096;
/// Timer slack asked of the kernel: ppoll wakes up within this of the deadline.
const TIMER_SLACK_NS: u64 = 1_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("ctl") if args.len() >= 3 => ctl(&args[1], &args[2..].join(" ")),
        Some("check") if args.len() == 2 => check(&args[1]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("bad usage\n{USAGE}")),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("linkemu: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(path: &str) -> Result<ExitCode, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let n = parse_script(&text).map_err(|e| format!("{path}: {e}"))?.len();
    println!("{path}: {n} commands");
    Ok(ExitCode::SUCCESS)
}

fn ctl(path: &str, command: &str) -> Result<ExitCode, String> {
    let answer = (|| {
        let mut s = UnixStream::connect(path)?;
        s.write_all(command.as_bytes())?;
        s.write_all(b"\n")?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok::<_, io::Error>(answer)
    })()
    .map_err(|e| format!("{path}: {e}"))?;
    print!("{answer}");
    Ok(if answer.lines().last().is_some_and(|l| l == "ok") { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

struct Options {
    links: Vec<(String, String)>,
    control: Option<PathBuf>,
    commands: Vec<Command>,
    slots: usize,
    seed: u64,
    realtime: Option<i32>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        links: Vec::new(),
        control: None,
        commands: Vec::new(),
        slots: DEFAULT_SLOTS,
        seed: DEFAULT_SEED,
        realtime: None,
    };
    let mut sets = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--link" => {
                let v = value()?;
                let (c, s) = v
                    .split_once(':')
                    .filter(|(c, s)| !c.is_empty() && !s.is_empty() && c != s)
                    .ok_or_else(|| format!("--link {v}: expected CLIENT_IF:SERVER_IF, two interfaces"))?;
                o.links.push((c.to_string(), s.to_string()));
            }
            "--control" => o.control = Some(PathBuf::from(value()?)),
            "--script" => {
                let path = value()?;
                let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
                o.commands.extend(parse_script(&text).map_err(|e| format!("{path}: {e}"))?);
            }
            "--set" => {
                let v = value()?;
                match parse_line(v) {
                    Ok(Some(c)) => sets.push(c),
                    Ok(None) => {}
                    Err(e) => return Err(format!("--set '{v}': {e}")),
                }
            }
            "--slots" => {
                let v = value()?;
                o.slots = v
                    .parse()
                    .ok()
                    .filter(|n: &usize| n.is_power_of_two() && (16..=1 << 20).contains(n))
                    .ok_or_else(|| format!("--slots {v}: a power of two from 16 to 1048576"))?;
            }
            "--seed" => {
                let v = value()?;
                o.seed = v.parse().map_err(|_| format!("--seed {v}: a number"))?;
            }
            "--realtime" => {
                let v = value()?;
                let p = v.parse().ok().filter(|p: &i32| (1..=99).contains(p));
                o.realtime = Some(p.ok_or_else(|| format!("--realtime {v}: a priority from 1 to 99"))?);
            }
            f => return Err(format!("unknown option {f}\n{USAGE}")),
        }
    }
    if o.links.is_empty() {
        return Err(format!("no --link given\n{USAGE}"));
    }
    if o.links.len() > MAX_LINKS {
        return Err(format!("at most {MAX_LINKS} links"));
    }
    let mut names: Vec<&String> = o.links.iter().flat_map(|(c, s)| [c, s]).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("interface {} is given twice", w[0]));
    }
    o.commands.extend(sets);
    Ok(o)
}

/// Stderr lines stamped with the time since start, in seconds.
fn log(start: u64, msg: &str) {
    let t = sys::now_ns().saturating_sub(start);
    eprintln!("[{:4}.{:06}] {msg}", t / 1_000_000_000, t % 1_000_000_000 / 1_000);
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
}

/// Everything the loop owns besides the emulator.
struct Shell {
    emu: Emulator,
    /// Per link: the client-side socket (0) and the server-side one (1). Pipe `d` of a link
    /// receives on socket `d` and sends on socket `1 - d`.
    socks: Vec<[PacketSocket; 2]>,
    /// Per link and pipe: `slots * SLOT_SIZE` bytes, slot `i` at `i * SLOT_SIZE`.
    bufs: Vec<[Vec<u8>; 2]>,
    rx: Vec<u8>,
    meta: [RecvMeta; MAX_BATCH],
    listener: Option<(UnixListener, PathBuf)>,
    clients: Vec<Client>,
    signals: SignalFd,
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let o = parse_options(args)?;
    let signals = SignalFd::termination().map_err(|e| format!("signalfd: {e}"))?;
    if let Err(e) = sys::set_timer_slack(TIMER_SLACK_NS) {
        eprintln!("linkemu: timer slack not set ({e}); timing may be coarser");
    }
    if let Some(p) = o.realtime {
        sys::set_realtime(p).map_err(|e| format!("--realtime {p}: {e}"))?;
    }
    let mut socks = Vec::new();
    for (c, s) in &o.links {
        let open = |name: &str| PacketSocket::open(name).map_err(|e| format!("packet socket on {name}: {e}"));
        socks.push([open(c)?, open(s)?]);
    }
    let start = sys::now_ns();
    let mut emu = Emulator::new(o.links.len(), o.slots, o.seed, start);
    let mut out = String::new();
    for c in &o.commands {
        emu.handle_command(start, c, &mut out)?;
    }
    let listener = match &o.control {
        None => None,
        Some(path) => {
            // A stale socket from a killed run is ours to replace; anything else is not.
            if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = fs::remove_file(path);
            }
            let l =
                UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
            l.set_nonblocking(true).map_err(|e| format!("control socket: {e}"))?;
            Some((l, path.clone()))
        }
    };
    let bufs = (0..o.links.len())
        .map(|_| [vec![0u8; o.slots * SLOT_SIZE], vec![0u8; o.slots * SLOT_SIZE]])
        .collect();
    let mut shell = Shell {
        emu,
        socks,
        bufs,
        rx: vec![0u8; MAX_BATCH * SLOT_SIZE],
        meta: [RecvMeta::default(); MAX_BATCH],
        listener,
        clients: Vec::new(),
        signals,
    };
    for (i, (c, s)) in o.links.iter().enumerate() {
        log(start, &format!("link {i}: {c} <-> {s}"));
    }
    if !out.is_empty() {
        eprint!("{out}");
    }
    log(start, "ready");
    let result = shell.run_loop();
    match &result {
        Ok(signo) => log(start, &format!("stopping on signal {signo}")),
        Err(e) => log(start, &format!("stopping on an error: {e}")),
    }
    let mut out = String::new();
    let _ = shell.emu.handle_command(sys::now_ns(), &Command::Show, &mut out);
    eprint!("{out}");
    if let Some((_, path)) = &shell.listener {
        let _ = fs::remove_file(path);
    }
    result.map(|_| ExitCode::SUCCESS).map_err(|e| format!("poll loop: {e}"))
}

impl Shell {
    /// Runs until SIGINT or SIGTERM; returns the signal.
    fn run_loop(&mut self) -> io::Result<i32> {
        let links = self.socks.len();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut busy = false;
        loop {
            let now = sys::now_ns();
            while let Some(cmd) = self.emu.poll_scheduled(now) {
                self.run_command(now, &cmd, "at");
            }
            for l in 0..links {
                for d in 0..2 {
                    self.transmit(l, d, now);
                }
            }

            fds.clear();
            let pollin = |fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            fds.push(pollin(self.signals.raw_fd()));
            fds.push(pollin(self.listener.as_ref().map_or(-1, |(l, _)| l.as_raw_fd())));
            for pair in &self.socks {
                fds.extend(pair.iter().map(|s| pollin(s.raw_fd())));
            }
            fds.extend(self.clients.iter().map(|c| pollin(c.stream.as_raw_fd())));
            // A batch that came back full means more is waiting: look again without sleeping.
            let timeout =
                if busy { Some(0) } else { self.emu.poll_timeout().map(|t| t.saturating_sub(sys::now_ns())) };
            sys::ppoll(&mut fds, timeout)?;
            let now = sys::now_ns();

            if fds[0].revents != 0 {
                if let Some(signo) = self.signals.read() {
                    return Ok(signo);
                }
            }
            busy = false;
            for l in 0..links {
                for side in 0..2 {
                    if fds[2 + 2 * l + side].revents != 0 {
                        busy |= self.receive(l, side, now)?;
                    }
                }
            }
            let clients = &fds[2 + 2 * links..];
            if clients.iter().any(|f| f.revents != 0) {
                let ready: Vec<bool> = clients.iter().map(|f| f.revents != 0).collect();
                self.serve_clients(now, &ready);
            }
            if fds[1].revents != 0 {
                self.accept();
            }
        }
    }

    /// Reads one batch from socket `side` of link `l` into the pipe that side feeds. Returns
    /// whether the batch was full.
    fn receive(&mut self, l: usize, side: usize, now: u64) -> io::Result<bool> {
        let n = match self.socks[l][side].recv_batch(&mut self.rx, SLOT_SIZE, &mut self.meta) {
            Ok(n) => n,
            // The interface went down or away: the test is tearing down; nothing to read.
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => return Ok(false),
            Err(e) => return Err(e),
        };
        let pipe = self.emu.pipe_mut(l, side);
        let buf = &mut self.bufs[l][side];
        for (i, m) in self.meta[..n].iter().enumerate() {
            if m.outgoing {
                continue;
            }
            if m.truncated || m.len <= VNET_HDR_LEN {
                pipe.counters_mut().oversize += 1;
                continue;
            }
            if let Ok(slot) = pipe.handle_frame(now, m.len - VNET_HDR_LEN) {
                let src = &self.rx[i * SLOT_SIZE..i * SLOT_SIZE + m.len];
                buf[slot * SLOT_SIZE..slot * SLOT_SIZE + m.len].copy_from_slice(src);
            }
        }
        Ok(n == MAX_BATCH)
    }

    /// Sends every frame of pipe `d` of link `l` due at `now`.
    fn transmit(&mut self, l: usize, d: usize, now: u64) {
        let pipe = self.emu.pipe_mut(l, d);
        let buf = &self.bufs[l][d];
        let sock = &self.socks[l][1 - d];
        loop {
            let mut due: [(usize, usize); MAX_BATCH] = [(0, 0); MAX_BATCH];
            let mut n = 0;
            while n < MAX_BATCH {
                match pipe.poll_transmit(now) {
                    Some((slot, len)) => {
                        due[n] = (slot * SLOT_SIZE, len + VNET_HDR_LEN);
                        n += 1;
                    }
                    None => break,
                }
            }
            if n == 0 {
                return;
            }
            let mut frames: [&[u8]; MAX_BATCH] = [&[]; MAX_BATCH];
            for (f, &(off, len)) in frames.iter_mut().zip(&due[..n]) {
                *f = &buf[off..off + len];
            }
            let mut i = 0;
            while i < n {
                match sock.send_batch(&frames[i..n]) {
                    Ok(k) => i += k.max(1),
                    Err(_) => {
                        // The model counted it sent; move it to tx_error.
                        let c = pipe.counters_mut();
                        let len = (due[i].1 - VNET_HDR_LEN) as u64;
                        c.tx -= 1;
                        c.tx_bytes -= len;
                        c.tx_error += 1;
                        i += 1;
                    }
                }
            }
            if n < MAX_BATCH {
                return;
            }
        }
    }

    fn accept(&mut self) {
        let Some((listener, _)) = &self.listener else { return };
        while let Ok((stream, _)) = listener.accept() {
            if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                continue; // dropped: the client sees EOF
            }
            self.clients.push(Client { stream, input: Vec::new() });
        }
    }

    /// Reads what ready clients sent and answers each complete line. A client is closed at EOF
    /// (after its last line is answered), on an error, or when a line is too long.
    fn serve_clients(&mut self, now: u64, ready: &[bool]) {
        let mut keep = Vec::with_capacity(self.clients.len());
        for (i, mut c) in std::mem::take(&mut self.clients).into_iter().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                keep.push(c);
                continue;
            }
            let mut chunk = [0u8; 1024];
            let (eof, failed) = match c.stream.read(&mut chunk) {
                Ok(0) => (true, false),
                Ok(k) => {
                    c.input.extend_from_slice(&chunk[..k]);
                    (false, false)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (false, false),
                Err(_) => (true, true),
            };
            if failed {
                continue;
            }
            let mut lines: Vec<Vec<u8>> = Vec::new();
            while let Some(pos) = c.input.iter().position(|&b| b == b'\n') {
                lines.push(c.input.drain(..=pos).collect());
            }
            if eof && !c.input.is_empty() {
                lines.push(std::mem::take(&mut c.input));
            }
            let mut ok = c.input.len() <= MAX_COMMAND_LINE;
            for line in lines {
                let answer = self.answer(now, &String::from_utf8_lossy(&line));
                if ok && c.stream.write_all(answer.as_bytes()).is_err() {
                    ok = false;
                }
            }
            if ok && !eof {
                keep.push(c);
            }
        }
        self.clients = keep;
    }

    /// Runs one control line; the answer ends with a line `ok` or `err: ...`.
    fn answer(&mut self, now: u64, line: &str) -> String {
        let line = line.trim();
        match parse_line(line) {
            Ok(None) => "ok\n".into(),
            Ok(Some(cmd)) => {
                let mut out = String::new();
                match self.emu.handle_command(now, &cmd, &mut out) {
                    Ok(()) => {
                        if !matches!(cmd, Command::Show) {
                            log(self.emu.start(), &format!("control: {line}"));
                        }
                        out.push_str("ok\n");
                        out
                    }
                    Err(e) => format!("err: {e}\n"),
                }
            }
            Err(e) => format!("err: {e}\n"),
        }
    }

    /// Runs a command from the schedule; its output (if any) goes to the log.
    fn run_command(&mut self, now: u64, cmd: &Command, why: &str) {
        let mut out = String::new();
        match self.emu.handle_command(now, cmd, &mut out) {
            Ok(()) => log(self.emu.start(), &format!("{why}: {cmd}")),
            Err(e) => log(self.emu.start(), &format!("{why}: {cmd} failed: {e}")),
        }
        eprint!("{out}");
    }
}
