//! Data packets waiting for room on the links: the tunnel's own buffer.
//!
//! The arrival scheduler keeps each link's queue short ([`super::arrival`]): a link's bottleneck
//! buffer is someone else's and may be small, and what overflows it is lost. But a TCP flow
//! through the tunnel sends in bursts — a window's worth at once when the reorder buffer
//! releases what waited for a slow link, and TCP's acknowledgements of it all arrive together —
//! and a router that drops every burst beyond a few milliseconds of its links makes the flow
//! back off long before the links are full. So a packet that finds every link at its limit
//! waits here, in order, and goes out as soon as a link has room; only when the wait would
//! exceed [`SEND_QUEUE_LIMIT`] is it refused. A burst is absorbed; a standing overload is still
//! answered with drops, so the sender learns the tunnel's capacity as from any router with a
//! buffer of that size (a quarter to a half of the path's bandwidth-delay product is what a
//! single CUBIC flow needs to keep the path full after its 30% back-off: RFC 9438, §4.6, and
//! Appenzeller et al., "Sizing router buffers", SIGCOMM 2004).
//!
//! Small packets (acknowledgements, pings) and resent ones never wait here: they go at once to
//! whichever link delivers them first, so the latency of interactive traffic does not include
//! this queue.
//!
//! Storage is a pool of `capacity` buffers allocated once; free buffers are reused last in,
//! first out, so only the buffers in use at the peak are ever resident.

use super::time::{Duration, Instant};
use std::collections::VecDeque;

/// Longest a packet may be expected to wait here for room on the links (at their estimated
/// rates); beyond it, it is refused. With the links' own [`super::arrival::QUEUE_LIMIT`], a
/// buffer of 50 ms of the tunnel's rate: half the bandwidth-delay product of a 100 ms path.
/// Measured in the simulator with a CUBIC flow (`tests/sim/unequal.rs`): 20 ms left 5% loss on
/// a slow link at 90% of the loss-free rate (each hole that waits for its resent packet releases
/// a burst); 40 ms, 93%.
pub const SEND_QUEUE_LIMIT: Duration = Duration::from_millis(40);
/// A packet that waited this long (the links got slower while it waited) is dropped rather
/// than sent late.
pub const SEND_QUEUE_MAX_WAIT: Duration = Duration::from_millis(100);
/// Buffers of the queue: at 100 Mbit/s of full-size packets, 57 ms — more than
/// [`SEND_QUEUE_LIMIT`] lets in; at 500 Mbit/s, 11 ms.
pub const SEND_QUEUE_SLOTS: usize = 512;

#[derive(Debug, Clone, Copy)]
struct Entry {
    buffer: u16,
    len: u16,
    since: Instant,
}

#[derive(Debug)]
pub struct SendQueue {
    slot_len: usize,
    storage: Vec<u8>,
    free: Vec<u16>,
    queue: VecDeque<Entry>,
    bytes: u64,
    /// The most buffers in use at once.
    peak: usize,
}

impl SendQueue {
    /// A queue of `capacity` packets of up to `slot_len` bytes, allocated now and never again.
    pub fn new(capacity: usize, slot_len: usize) -> Self {
        assert!((1..=u16::MAX as usize).contains(&capacity) && slot_len <= u16::MAX as usize);
        SendQueue {
            slot_len,
            storage: vec![0; capacity * slot_len],
            free: (0..capacity as u16).rev().collect(),
            queue: VecDeque::with_capacity(capacity),
            bytes: 0,
            peak: 0,
        }
    }

    /// Appends `packet`; a full queue (or a packet longer than a slot) hands it back.
    pub fn push<'a>(&mut self, now: Instant, packet: &'a [u8]) -> Result<(), &'a [u8]> {
        if packet.len() > self.slot_len {
            return Err(packet);
        }
        let Some(buffer) = self.free.pop() else { return Err(packet) };
        let start = buffer as usize * self.slot_len;
        self.storage[start..start + packet.len()].copy_from_slice(packet);
        self.queue.push_back(Entry { buffer, len: packet.len() as u16, since: now });
        self.bytes += packet.len() as u64;
        self.peak = self.peak.max(self.queue.len());
        Ok(())
    }

    /// The oldest packet and when it was queued.
    pub fn front(&self) -> Option<(&[u8], Instant)> {
        let e = self.queue.front()?;
        let start = e.buffer as usize * self.slot_len;
        Some((&self.storage[start..start + e.len as usize], e.since))
    }

    /// Removes the oldest packet.
    pub fn pop_front(&mut self) {
        if let Some(e) = self.queue.pop_front() {
            self.bytes -= u64::from(e.len);
            self.free.push(e.buffer);
        }
    }

    /// Drops everything; returns how many packets that was.
    pub fn clear(&mut self) -> usize {
        let n = self.queue.len();
        while !self.queue.is_empty() {
            self.pop_front();
        }
        n
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// The most packets ever queued at once: the pool's memory is touched only that far.
    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn capacity(&self) -> usize {
        self.free.len() + self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_and_full_hands_the_packet_back() {
        let mut q = SendQueue::new(2, 10);
        let t = Instant::from_micros(5);
        assert!(q.push(t, b"one").is_ok());
        assert!(q.push(t, b"two!").is_ok());
        assert_eq!(q.push(t, b"three"), Err(&b"three"[..]));
        assert_eq!(q.bytes(), 7);
        assert_eq!(q.front(), Some((&b"one"[..], t)));
        q.pop_front();
        assert_eq!(q.front().unwrap().0, b"two!");
        assert!(q.push(t, b"three").is_ok());
        assert_eq!(q.peak(), 2);
        assert_eq!(q.clear(), 2);
        assert!(q.is_empty() && q.bytes() == 0);
        assert_eq!(q.push(t, &[0; 11]), Err(&[0u8; 11][..]), "longer than a slot");
    }
}
