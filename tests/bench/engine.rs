//! Per-packet cost of the engine, in memory (no sockets, no TUN): how much the protocol adds
//! beyond the crypto it cannot avoid.
//!
//! `cargo bench --bench engine` prints, for 64- and 1400-byte packets: the crypto alone
//! (seal + open, what any XSalsa20-Poly1305 tunnel pays), the whole engine path for one packet
//! (sender's `handle_tun` + receiver's `handle_datagram`, with timers and feedback drained), and
//! the difference. Then, when valgrind is installed, instruction counts per packet, which do
//! not depend on the machine's load: the benchmark runs itself under `valgrind --tool=callgrind`
//! for N and for N + 10 000 packets (`--callgrind crypto|engine N`) and divides the difference
//! by 10 000, so the setup (key derivation, handshake) cancels out.

use mlvpn::proto::crypto::{self, Key};
use mlvpn::proto::wire::DATA_OVERHEAD;
use mlvpn::proto::{Config, Duration, Instant, LinkConfig, Mode, Received, Tunnel, kdf};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant as Clock;

struct Pair {
    client: Tunnel,
    server: Tunnel,
    now: Instant,
    buf: Vec<u8>,
    out: Vec<u8>,
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 5000))
}

impl Pair {
    fn new() -> Pair {
        let links = vec![LinkConfig { bandwidth_upload: Some(1_250_000_000), ..LinkConfig::new("a") }];
        let psk = kdf::psk_from_password(b"bench");
        let config = |mode| Config {
            mode,
            scheduler: Default::default(),
            links: links.clone(),
            reorder_buffer_size: 256,
            mtu: 1400,
            retransmit_buffer_size: 512,
            ethernet: false,
            duplicate: Default::default(),
            duplicate_ports: Default::default(),
            duplicate_budget: Default::default(),
        };
        let mut p = Pair {
            client: Tunnel::new(config(Mode::Client), &psk, [1; 32], Instant::ZERO),
            server: Tunnel::new(config(Mode::Server), &psk, [2; 32], Instant::ZERO),
            now: Instant::ZERO,
            buf: vec![0; 2048],
            out: vec![0; 2048],
        };
        p.client.set_remote(0, addr(1));
        for _ in 0..100 {
            p.now += Duration::from_millis(10);
            p.settle();
        }
        assert_eq!(p.client.connected_links(), 1, "handshake");
        p
    }

    /// Timers and control traffic, both ways, until quiet.
    fn settle(&mut self) {
        for _ in 0..8 {
            let mut quiet = true;
            for to_server in [true, false] {
                let (from, to) = if to_server {
                    (&mut self.client, &mut self.server)
                } else {
                    (&mut self.server, &mut self.client)
                };
                if from.poll_timeout().is_some_and(|t| t <= self.now) {
                    from.handle_timeout(self.now);
                }
                while let Some(tx) = from.poll_transmit(self.now, &mut self.out) {
                    quiet = false;
                    // Follow replies (hello → challenge → confirm) back and forth.
                    let (mut a, mut b) = (&mut *to, &mut *from);
                    let mut len = tx.len;
                    let mut towards_server = to_server;
                    loop {
                        let src = if towards_server { addr(2) } else { addr(1) };
                        match a.handle_datagram(self.now, tx.link, src, &mut self.out[..len]) {
                            Received::Reply(n) => {
                                len = n;
                                towards_server = !towards_server;
                                std::mem::swap(&mut a, &mut b);
                            }
                            _ => break,
                        }
                    }
                }
                while to.poll_deliver(self.now, &mut self.out).is_some() {}
                while to.poll_event().is_some() {}
            }
            if quiet {
                return;
            }
        }
    }

    /// One packet of `len` bytes from client to server.
    fn packet(&mut self, len: usize) {
        let tx = self.client.handle_tun(self.now, &mut self.buf, len).expect("sent").expect("at once");
        match self.server.handle_datagram(self.now, 0, addr(2), &mut self.buf[..tx.len]) {
            Received::Deliver(r) => {
                black_box(&self.buf[r]);
            }
            other => panic!("{other:?}"),
        }
    }
}

fn crypto_only(len: usize, n: u64) -> f64 {
    let key = Key([7; 32]);
    let mut nonce = [0u8; 24];
    let mut buf = vec![0u8; 16 + len];
    let start = Clock::now();
    for i in 0..n {
        nonce[..8].copy_from_slice(&i.to_be_bytes());
        crypto::seal(&key, &nonce, &mut buf);
        crypto::open(&key, &nonce, &mut buf).unwrap();
    }
    black_box(&buf);
    start.elapsed().as_nanos() as f64 / n as f64
}

fn engine(len: usize, n: u64) -> f64 {
    let mut p = Pair::new();
    p.buf[DATA_OVERHEAD..DATA_OVERHEAD + len].fill(0x45);
    let start = Clock::now();
    for i in 0..n {
        p.now += Duration::from_micros(2); // 5.6 Gbit/s of 1400-byte packets: below the link's 10
        p.packet(len);
        if i % 64 == 0 {
            p.settle();
        }
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// `--callgrind crypto|engine LEN N`: a fixed amount of work for instruction counting.
fn callgrind_work(args: &[String]) {
    let len: usize = args[1].parse().expect("LEN");
    let n: u64 = args[2].parse().expect("N");
    match args[0].as_str() {
        "crypto" => {
            black_box(crypto_only(len, n));
        }
        _ => {
            let mut p = Pair::new();
            for _ in 0..n {
                p.now += Duration::from_micros(2);
                p.packet(len);
            }
        }
    }
}

/// Instructions per packet of `what` ("crypto" or "engine") for `len`-byte packets, from two
/// callgrind runs of this binary; None without valgrind.
fn instructions_per_packet(what: &str, len: usize) -> Option<f64> {
    const BASE: u64 = 1_000;
    const EXTRA: u64 = 10_000;
    let exe = std::env::current_exe().ok()?;
    let mut totals = Vec::new();
    for n in [BASE, BASE + EXTRA] {
        let out =
            std::env::temp_dir().join(format!("mlvpn-callgrind-{}-{what}-{len}-{n}", std::process::id()));
        let status = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--quiet"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .args(["--callgrind", what, &len.to_string(), &n.to_string()])
            .status()
            .ok()?;
        let text = std::fs::read_to_string(&out).ok();
        let _ = std::fs::remove_file(&out);
        if !status.success() {
            return None;
        }
        // The file's "summary: N" (or "totals: N") line holds the instruction count.
        let total: f64 = text?
            .lines()
            .find_map(|l| l.strip_prefix("summary: ").or_else(|| l.strip_prefix("totals: ")))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        totals.push(total);
    }
    Some((totals[1] - totals[0]) / EXTRA as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        callgrind_work(&args[i + 1..]);
        return;
    }
    if args.iter().any(|a| a == "--bench") || std::env::var("MLVPN_BENCH_QUICK").is_err() {
        println!(
            "per packet, one core, in memory (seal+open for the crypto; sender+receiver for the engine)"
        );
        println!("{:>8} {:>14} {:>14} {:>16}", "bytes", "crypto ns", "engine ns", "beyond crypto");
        for len in [64, 1400] {
            let n = 200_000;
            let c = crypto_only(len, n);
            let e = engine(len, n);
            println!("{len:>8} {c:>14.0} {e:>14.0} {:>13.0} ns", e - c);
        }
    }
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    println!("\ninstructions per packet (valgrind --tool=callgrind; seal+open, sender+receiver)");
    println!("{:>8} {:>14} {:>14} {:>16}", "bytes", "crypto", "engine", "beyond crypto");
    for len in [64, 1400] {
        match (instructions_per_packet("crypto", len), instructions_per_packet("engine", len)) {
            (Some(c), Some(e)) => println!("{len:>8} {c:>14.0} {e:>14.0} {:>16.0}", e - c),
            _ => println!("SKIPPED: instruction counts need valgrind (apt install valgrind)"),
        }
    }
}
