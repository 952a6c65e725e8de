//! Proves that the engine allocates nothing per packet: a counting global allocator watches
//! two engines exchange data, keepalives and reordered packets after warm-up, then packets that
//! wait in the send queue of an overloaded tunnel.
//!
//! This file holds one test, so nothing else runs in this process while it counts.

use mlvpn::proto::wire::DATA_OVERHEAD;
use mlvpn::proto::{Config, DropReason, Duration, Instant, LinkConfig, Mode, Received, Tunnel, kdf};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LINKS: usize = 2;

struct Pair {
    client: Tunnel,
    server: Tunnel,
    now: Instant,
    a: Vec<u8>,
    b: Vec<u8>,
    delivered: u64,
}

fn client_addr(link: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, link as u8, 2], 4000))
}

impl Pair {
    /// Hands `buf[..len]` from one engine to the other and follows replies to the end.
    fn carry(&mut self, to_server: bool, link: usize, len: usize) {
        let (to, from) = if to_server {
            (&mut self.server, client_addr(link))
        } else {
            (&mut self.client, SocketAddr::from(([10, 0, link as u8, 1], 5000)))
        };
        match to.handle_datagram(self.now, link, from, &mut self.a[..len]) {
            Received::Deliver(range) => {
                assert!(range.len() > 16);
                self.delivered += 1;
            }
            Received::Reply(n) => {
                self.b[..n].copy_from_slice(&self.a[..n]);
                std::mem::swap(&mut self.a, &mut self.b);
                self.carry(!to_server, link, n);
            }
            Received::Consumed => {}
            // The held-back packets below look lost to the receiver, which asks for them; the
            // copy that comes second is dropped. That is the design, not a fault.
            Received::Dropped(DropReason::Late | DropReason::Duplicate) => {}
            Received::Dropped(d) => panic!("dropped {d:?}"),
        }
    }

    /// Runs timers and drains both engines until quiet.
    fn settle(&mut self) {
        for _ in 0..16 {
            let mut quiet = true;
            for to_server in [true, false] {
                let engine = if to_server { &mut self.client } else { &mut self.server };
                if engine.poll_timeout().is_some_and(|t| t <= self.now) {
                    engine.handle_timeout(self.now);
                }
                if let Some(tx) = engine.poll_transmit(self.now, &mut self.a) {
                    quiet = false;
                    self.carry(to_server, tx.link, tx.len);
                }
                let engine = if to_server { &mut self.server } else { &mut self.client };
                while engine.poll_deliver(self.now, &mut self.b).is_some() {
                    self.delivered += 1;
                }
                while engine.poll_event().is_some() {}
            }
            if quiet {
                return;
            }
        }
    }

    /// One data packet from `client` (or the server) with tunnel payload `seq`.
    fn send(&mut self, from_client: bool, seq: u64) -> (usize, usize) {
        let engine = if from_client { &mut self.client } else { &mut self.server };
        self.a[DATA_OVERHEAD..DATA_OVERHEAD + 8].copy_from_slice(&seq.to_be_bytes());
        let tx = engine.handle_tun(self.now, &mut self.a, 1200).expect("a link is up").expect("sent at once");
        (tx.link, tx.len)
    }
}

/// Two engines with `LINKS` links of `bandwidth` bytes/s each, connected and warmed up.
fn pair(bandwidth: u64) -> Pair {
    let links: Vec<LinkConfig> = (0..LINKS)
        .map(|i| LinkConfig { bandwidth_upload: Some(bandwidth), ..LinkConfig::new(&format!("l{i}")) })
        .collect();
    let psk = kdf::psk_from_password(b"pw");
    let config = |mode| Config {
        mode,
        scheduler: Default::default(),
        links: links.clone(),
        reorder_buffer_size: 64,
        mtu: 1400,
        retransmit_buffer_size: 64,
        ethernet: false,
        duplicate: Default::default(),
        duplicate_ports: Default::default(),
        duplicate_budget: Default::default(),
    };
    let mut p = Pair {
        client: Tunnel::new(config(Mode::Client), &psk, [1; 32], Instant::ZERO),
        server: Tunnel::new(config(Mode::Server), &psk, [2; 32], Instant::ZERO),
        now: Instant::ZERO,
        a: vec![0; 2048],
        b: vec![0; 2048],
        delivered: 0,
    };
    for i in 0..LINKS {
        p.client.set_remote(i, SocketAddr::from(([10, 0, i as u8, 1], 5000)));
    }
    // Warm up: handshakes, first keepalives, a few packets each way.
    for _ in 0..50 {
        p.now += Duration::from_millis(20);
        p.settle();
    }
    assert_eq!(p.client.connected_links(), LINKS);
    assert_eq!(p.server.connected_links(), LINKS);
    // And a few data packets each way: the resend store and the reorder buffer are allocated
    // once, with a tunnel's first data (an idle site of a server keeps none).
    for k in 0..8u64 {
        for from_client in [true, false] {
            p.a[DATA_OVERHEAD..DATA_OVERHEAD + 8].copy_from_slice(&(900_000 + k).to_be_bytes());
            let engine = if from_client { &mut p.client } else { &mut p.server };
            if let Ok(Some(tx)) = engine.handle_tun(p.now, &mut p.a, 100) {
                p.carry(from_client, tx.link, tx.len);
            }
            p.settle();
        }
    }
    // A burst, which the send queue takes where the links are slow: its buffers too come
    // with their first use.
    for k in 0..32u64 {
        p.a[DATA_OVERHEAD..DATA_OVERHEAD + 8].copy_from_slice(&(950_000 + k).to_be_bytes());
        if let Ok(Some(tx)) = p.client.handle_tun(p.now, &mut p.a, 1200) {
            p.carry(true, tx.link, tx.len);
        }
    }
    for _ in 0..50 {
        p.now += Duration::from_millis(20);
        p.settle();
    }
    p
}

#[test]
fn no_allocation_per_packet() {
    // Links of 1 Gbit/s: the packets below must not be refused as congestion.
    let mut p = pair(125_000_000);
    let mut stash = vec![0u8; 2048];
    COUNTING.store(true, Relaxed);
    for k in 0..20_000u64 {
        p.now += Duration::from_micros(250);
        if k % 4 == 1 {
            // Hold this one back and deliver it after the next: the reorder buffer copies.
            let (link, len) = p.send(true, k);
            stash[..len].copy_from_slice(&p.a[..len]);
            let (link2, len2) = p.send(true, k + 1_000_000);
            p.carry(true, link2, len2);
            p.a[..len].copy_from_slice(&stash[..len]);
            p.carry(true, link, len);
        } else {
            let (link, len) = p.send(k % 3 != 0, k);
            p.carry(k % 3 != 0, link, len);
        }
        p.settle();
    }
    COUNTING.store(false, Relaxed);
    let allocations = ALLOCATIONS.load(Relaxed);
    println!("{} packets delivered, {allocations} allocations", p.delivered);
    assert!(p.delivered >= 24_000);
    let reordered = p.server.reorder_stats().unwrap().reordered;
    assert!(reordered >= 4_000, "the reorder buffer's copy path ran: {reordered}");
    assert_eq!(allocations, 0, "the engine allocated on the packet path");

    // Links of 1 Mbit/s, offered 38: packets wait in the send queue, go out of poll_transmit
    // as the links drain, and the rest are refused.
    let mut p = pair(125_000);
    COUNTING.store(true, Relaxed);
    let (mut queued, mut sent) = (0, 0);
    for k in 0..4_000u64 {
        p.now += Duration::from_micros(250);
        p.a[DATA_OVERHEAD..DATA_OVERHEAD + 8].copy_from_slice(&k.to_be_bytes());
        match p.client.handle_tun(p.now, &mut p.a, 1200) {
            Ok(Some(tx)) => {
                sent += 1;
                p.carry(true, tx.link, tx.len);
            }
            Ok(None) => queued += 1,
            Err(_) => {}
        }
        p.settle();
    }
    COUNTING.store(false, Relaxed);
    let allocations = ALLOCATIONS.load(Relaxed);
    let congested = p.client.drops().congested;
    println!(
        "overloaded: {sent} sent at once, {queued} queued, {congested} refused; {allocations} allocations"
    );
    assert!(queued > 50 && congested > 1_000, "the send queue's path ran");
    assert_eq!(allocations, 0, "the engine allocated on the send queue's path");
}
