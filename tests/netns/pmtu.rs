//! Issue 12's lab, shared by `tests/netns_pmtu.rs` (CI) and `cargo bench --bench pmtu`: 3 × 40
#![allow(dead_code)]
//! Mbit/s at one-way 10/20/30 ms through the link emulator, shaped by the kernel's `tbf` or by
//! the emulator's own queue, with link 2 behind a hop that carries only 1400-byte packets.
//!
//! **The hop.** The emulator's namespace sits between client and server on every link; for
//! link 2 its two interfaces get an MTU of 1400. A larger frame reaching them is dropped by the
//! kernel without a word (a veth drops what exceeds the receiving end's MTU; the emulator cannot
//! send one either), so larger packets vanish both ways and small ones pass: a router whose
//! ICMP is filtered, as on the paths of MLVPN#89 or glorytun#34. Nothing on that path can send
//! "fragmentation needed": only probing finds the size.

use super::emulated::{self, EmuLab, EmuLink, TimedSpawn};
use super::json::Json;
use super::lab::{self, Side, TunnelOpts};
use std::path::Path;
use std::time::Duration;

/// (Mbit/s, one-way ms) per link.
pub const LINKS: [(f64, f64); 3] = [(40.0, 10.0), (40.0, 20.0), (40.0, 30.0)];
/// The link behind the small hop.
pub const SMALL: usize = 2;
/// The hop's MTU.
pub const HOP_MTU: u32 = 1400;
/// IPv4 and UDP headers and mlvpn's 33 bytes: what the tunnel MTU loses to a path MTU.
pub const PATH_OVERHEAD: u32 = 20 + 8 + 33;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bottleneck {
    /// `tbf` on both veth ends of each link, the emulator adding only the delay.
    Tbf,
    /// The emulator's rate and queue.
    Emu,
}

impl Bottleneck {
    pub fn name(self) -> &'static str {
        match self {
            Bottleneck::Tbf => "tbf",
            Bottleneck::Emu => "emu",
        }
    }
}

/// Starts the lab, link `SMALL` behind a hop of `hop` bytes (`None`: 1500), both daemons up
/// (`bin` replaces the test's binary).
pub fn start_lab(bin: Option<&Path>, bottleneck: Bottleneck, hop: Option<u32>, opts: &TunnelOpts) -> EmuLab {
    let specs: Vec<EmuLink> = LINKS
        .iter()
        .map(|&(rate, delay)| {
            let mut link = EmuLink::new(rate, delay).no_bandwidth();
            if bottleneck == Bottleneck::Tbf {
                link.settings = format!("delay {}", emulated::duration(delay));
            }
            link
        })
        .collect();
    let mut lab = EmuLab::new(&specs);
    if let Some(bin) = bin {
        lab.bin = Some(bin.to_path_buf());
    }
    if bottleneck == Bottleneck::Tbf {
        for (i, &(rate, _)) in LINKS.iter().enumerate() {
            lab.shape_tbf(i, &emulated::rate(rate), "64kb", "50ms");
        }
    }
    if let Some(mtu) = hop {
        for argv in hop_mtu_commands(&lab, SMALL, mtu) {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            lab::host(&argv);
        }
    }
    lab.start_both(opts);
    lab.wait_tunnel(Duration::from_secs(20));
    lab
}

/// The commands that give link `link`'s hop an MTU of `mtu` (both of the emulator's interfaces).
pub fn hop_mtu_commands(lab: &EmuLab, link: usize, mtu: u32) -> Vec<Vec<String>> {
    let (c, s) = &lab.pairs[link];
    [c, s]
        .iter()
        .map(|dev| {
            ["ip", "-n", &lab.emu_ns, "link", "set", dev.as_str(), "mtu", &mtu.to_string()]
                .map(String::from)
                .to_vec()
        })
        .collect()
}

/// The same, as processes for a flow to start `at` seconds in (from the client's namespace:
/// `ip -n` reaches the emulator's).
pub fn hop_mtu_at(lab: &EmuLab, at: f64, link: usize, mtu: u32) -> Vec<TimedSpawn> {
    hop_mtu_commands(lab, link, mtu)
        .into_iter()
        .enumerate()
        .map(|(k, argv)| TimedSpawn { at, side: Side::Client, name: format!("hop-mtu-{mtu}-{k}"), argv })
        .collect()
}

/// What a daemon's status says of link `i`'s path: (path MTU, state, black holes).
pub fn path_of(lab: &lab::Lab, side: Side, i: usize) -> (u64, String, u64) {
    let text = lab.status(side, true);
    let json = Json::parse(text.trim()).unwrap_or_else(|e| panic!("status JSON: {e:?}\n{text}"));
    let t = &json.get("tunnels").and_then(Json::as_array).expect("tunnels")[i];
    let p = t.get("path_mtu").expect("path_mtu");
    (
        emulated::num(p, &["mtu"]) as u64,
        p.get("state").and_then(Json::as_str).unwrap_or("").to_string(),
        emulated::num(p, &["black_holes"]) as u64,
    )
}

/// The MTU of the TUN device on `side`, as the kernel has it.
pub fn device_mtu(lab: &lab::Lab, side: Side) -> u32 {
    let out = lab::host(&["ip", "-n", &lab.ns(side), "-o", "link", "show", lab::TUN_DEVICE]);
    let mut words = out.split_whitespace();
    words.find(|w| *w == "mtu").and_then(|_| words.next()).and_then(|m| m.parse().ok()).unwrap_or(0)
}

/// Waits until link `i`'s discovery on `side` is done, and returns how long it took and its
/// path MTU.
pub fn wait_done(lab: &lab::Lab, side: Side, i: usize, timeout: Duration) -> Option<(Duration, u64)> {
    let mut mtu = 0;
    let took = lab::poll_until(timeout, || {
        let (m, state, _) = path_of(lab, side, i);
        mtu = m;
        state == "done"
    })?;
    Some((took, mtu))
}

/// One TCP flow's goodput limit over the three links with tunnel MTU `mtu`, Mbit/s.
pub fn limit_mbit(mtu: u32) -> f64 {
    LINKS.iter().map(|l| l.0).sum::<f64>() * emulated::goodput_ratio(mtu)
}

/// The tunnel MTU a path of `path_mtu` bytes allows.
pub fn tunnel_mtu_for(path_mtu: u32) -> u32 {
    path_mtu - PATH_OVERHEAD
}
