//! Preallocated datagram batches for `recvmmsg(2)`/`sendmmsg(2)`.
//!
//! A [`Batch`] is allocated once, at start, with a fixed number of slots of a fixed size; the
//! syscalls then move up to `capacity` datagrams per call without allocating. The kernel-facing
//! arrays (`mmsghdr`, `iovec`, `sockaddr_storage`) live inside the batch too, and their pointers
//! are rewritten from the slots just before each call, so no pointer outlives the borrow it was
//! taken from, and moving the batch is harmless.
//!
//! UDP segmentation offload (Linux 4.18, `UDP_SEGMENT`): when sending, a run of datagrams for
//! one peer, all of one size but the last, which may be shorter, goes as one message with a
//! control message giving that size; the kernel cuts it late (or the NIC does), so the stack is
//! crossed once per run instead of once per datagram. Receive offload (Linux 5.0, `UDP_GRO`) is
//! the mirror: one slot may hold several datagrams of [`Batch::segment_size`] bytes each (the
//! last may be shorter), so receive slots must then be 64 KiB. The same as wireguard-go and
//! quinn do.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::ptr;

use super::sockaddr;

/// The kernel processes at most `UIO_MAXIOV` messages per `recvmmsg`/`sendmmsg` call.
const MAX_CAPACITY: usize = 1024;

/// `UDP_SEGMENT` and `UDP_GRO` of `<linux/udp.h>` (the libc crate has them for uClibc only).
pub(super) const UDP_SEGMENT: libc::c_int = 103;
pub(super) const UDP_GRO: libc::c_int = 104;

/// Datagrams per offloaded send: the kernel's `UDP_MAX_SEGMENTS` (64; 128 since Linux 6.9).
const MAX_SEGMENTS: usize = 64;

/// Bytes per offloaded send: the largest UDP payload over IPv4.
const MAX_SEGMENTED_BYTES: usize = 65_507;

/// The largest datagram run `UDP_GRO` delivers in one piece: receive slots of this size.
pub const GRO_SLOT_SIZE: usize = 65_535;

/// Room for one control message carrying an int (aligned for `cmsghdr`).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; 32]);

/// Returned by [`Batch::push`] when every slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

struct Slot {
    buf: Box<[u8]>,
    len: usize,
    addr: SocketAddr,
    truncated: bool,
    /// Received with `UDP_GRO`: the size of each datagram the slot holds; 0 for one datagram.
    segment: usize,
}

/// A fixed set of datagram slots, each a buffer, a length and a peer address.
///
/// For receiving, [`UdpLink::recv_batch`](super::udp::UdpLink::recv_batch) fills slots
/// `0..len()`; read them with [`get`](Batch::get) or [`iter`](Batch::iter). For sending, fill
/// slots with [`push`](Batch::push) or [`push_with`](Batch::push_with), then call
/// [`UdpLink::send_batch`](super::udp::UdpLink::send_batch) until [`pending`](Batch::pending)
/// is zero or it says `WouldBlock`.
pub struct Batch {
    slots: Box<[Slot]>,
    /// Slots `0..len` hold datagrams.
    len: usize,
    /// When sending, slots `0..head` are already sent.
    head: usize,
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    names: Box<[libc::sockaddr_storage]>,
    controls: Box<[Control]>,
}

impl Batch {
    /// Allocates `capacity` slots of `slot_size` bytes.
    ///
    /// # Panics
    /// If `capacity` is not in `1..=1024` (the kernel's `UIO_MAXIOV`) or `slot_size` is zero:
    /// both come from our own constants, so either is our bug.
    pub fn new(capacity: usize, slot_size: usize) -> Batch {
        assert!((1..=MAX_CAPACITY).contains(&capacity), "batch capacity {capacity}");
        assert!(slot_size > 0, "batch slot size 0");
        let slots = (0..capacity)
            .map(|_| Slot {
                buf: vec![0; slot_size].into_boxed_slice(),
                len: 0,
                addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                truncated: false,
                segment: 0,
            })
            .collect();
        // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths and flags).
        let hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let iov = libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 };
        Batch {
            slots,
            len: 0,
            head: 0,
            hdrs: vec![hdr; capacity].into_boxed_slice(),
            iovs: vec![iov; capacity].into_boxed_slice(),
            names: vec![sockaddr::zeroed_storage(); capacity].into_boxed_slice(),
            controls: vec![Control([0; 32]); capacity].into_boxed_slice(),
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The size of each slot: the longest datagram it holds whole.
    pub fn slot_size(&self) -> usize {
        self.slots[0].buf.len()
    }

    /// The number of slots holding a datagram (received, or pushed and not yet sent).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of pushed datagrams not yet sent.
    pub fn pending(&self) -> usize {
        self.len - self.head
    }

    /// Empties the batch (no memory is released).
    pub fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
    }

    /// Datagram `i` and its peer (the source after a receive, the destination after a push).
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let slot = self.slots[..self.len].get(i)?;
        Some((&slot.buf[..slot.len], slot.addr))
    }

    /// Datagram `i`, writable (to be decrypted in place), and its peer.
    pub fn get_mut(&mut self, i: usize) -> Option<(&mut [u8], SocketAddr)> {
        let slot = self.slots[..self.len].get_mut(i)?;
        Some((&mut slot.buf[..slot.len], slot.addr))
    }

    /// For slot `i` received with `UDP_GRO` holding several datagrams: the size of each (the
    /// last may be shorter). `None` when the slot holds one datagram.
    pub fn segment_size(&self, i: usize) -> Option<usize> {
        self.slots[..self.len].get(i).map(|s| s.segment).filter(|&n| n > 0 && n < self.slots[i].len)
    }

    /// Whether received datagram `i` was longer than the slot and lost its tail.
    pub fn is_truncated(&self, i: usize) -> bool {
        self.slots[..self.len].get(i).is_some_and(|s| s.truncated)
    }

    /// The datagrams held, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> + '_ {
        self.slots[..self.len].iter().map(|s| (&s.buf[..s.len], s.addr))
    }

    /// Queues a copy of `data` for `to`.
    ///
    /// # Panics
    /// If `data` is longer than [`slot_size`](Batch::slot_size): slots are sized for the longest
    /// datagram we build, so a longer one is our bug.
    pub fn push(&mut self, data: &[u8], to: SocketAddr) -> Result<(), Full> {
        check_fits(data.len(), self.slot_size());
        self.push_with(to, |buf| {
            buf[..data.len()].copy_from_slice(data);
            data.len()
        })
    }

    /// Queues a datagram for `to` built in place: `fill` gets the whole slot and returns the
    /// length it wrote (at most the slot's size).
    pub fn push_with(&mut self, to: SocketAddr, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<(), Full> {
        let slot = self.slots.get_mut(self.len).ok_or(Full)?;
        let len = fill(&mut slot.buf);
        check_fits(len, slot.buf.len());
        slot.len = len;
        slot.addr = to;
        slot.truncated = false;
        slot.segment = 0;
        self.len += 1;
        Ok(())
    }
}

fn check_fits(len: usize, slot_size: usize) {
    assert!(len <= slot_size, "datagram of {len} bytes in a slot of {slot_size}");
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("capacity", &self.capacity())
            .field("slot_size", &self.slot_size())
            .field("len", &self.len)
            .field("head", &self.head)
            .finish()
    }
}

/// Receives into every slot of `batch` with one `recvmmsg(2)`; with `gro`, reads each slot's
/// `UDP_GRO` segment size too.
pub(super) fn recv(fd: RawFd, batch: &mut Batch, gro: bool) -> io::Result<usize> {
    batch.clear();
    let Batch { slots, hdrs, iovs, names, controls, .. } = batch;
    for ((((slot, hdr), iov), name), control) in slots
        .iter_mut()
        .zip(hdrs.iter_mut())
        .zip(iovs.iter_mut())
        .zip(names.iter_mut())
        .zip(controls.iter_mut())
    {
        *iov = libc::iovec { iov_base: slot.buf.as_mut_ptr().cast(), iov_len: slot.buf.len() };
        point(hdr, iov, 1, name, std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t);
        if gro {
            hdr.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = control.0.len() as _;
        }
    }
    // SAFETY: `hdrs` holds `capacity` headers, each pointing at one iovec (a live slot buffer
    // of `iov_len` bytes), at a sockaddr_storage whose size is in `msg_namelen`, and (with
    // `gro`) at a control buffer of `msg_controllen` bytes; all are owned by `batch`,
    // exclusively borrowed here, and outlive the call. A null timeout is allowed (the socket
    // is non-blocking, so the call never waits).
    let n = unsafe { libc::recvmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as _, 0, ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for ((slot, hdr), name) in slots.iter_mut().zip(hdrs.iter()).zip(names.iter()).take(n) {
        slot.len = (hdr.msg_len as usize).min(slot.buf.len());
        slot.truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        slot.addr = sockaddr::read(name, hdr.msg_hdr.msg_namelen)
            .map(sockaddr::canonical)
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        slot.segment = if gro { gro_segment_size(&hdr.msg_hdr) } else { 0 };
    }
    batch.len = n;
    Ok(n)
}

/// The `UDP_GRO` control message's segment size in a received message header, or 0.
fn gro_segment_size(msg: &libc::msghdr) -> usize {
    if msg.msg_control.is_null() {
        return 0;
    }
    // SAFETY: `msg` is a header recvmmsg just filled: `msg_control` points at our control
    // buffer and `msg_controllen` says how much of it the kernel wrote, which the CMSG
    // macros stay within. The data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_UDP && (*c).cmsg_type == UDP_GRO {
                let size = ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return size.max(0) as usize;
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    0
}

/// Sends the pending slots of `batch` with one `sendmmsg(2)`; with `gso`, runs of datagrams
/// that may go as one offloaded message do. Returns the number of datagrams sent.
///
/// When the kernel refuses an offloaded message with `EIO` (the route's device cannot
/// checksum UDP: the kernel then cannot segment late), `gso` is turned off and nothing is
/// dropped: call again.
pub(super) fn send(fd: RawFd, batch: &mut Batch, v6_socket: bool, gso: &Cell<bool>) -> io::Result<usize> {
    if batch.pending() == 0 {
        return Ok(0);
    }
    let Batch { slots, head, len, hdrs, iovs, names, controls } = batch;
    let mut messages = 0;
    let mut i = *head;
    while i < *len {
        let first = &slots[i];
        let mut end = i + 1;
        if gso.get() {
            let mut bytes = first.len;
            while end < *len
                && end - i < MAX_SEGMENTS
                && slots[end].addr == first.addr
                && slots[end].len <= first.len
                && bytes + slots[end].len <= MAX_SEGMENTED_BYTES
            {
                bytes += slots[end].len;
                end += 1;
                if slots[end - 1].len < first.len {
                    break; // a shorter one can only be last
                }
            }
        }
        for (iov, slot) in iovs[i..end].iter_mut().zip(&mut slots[i..end]) {
            *iov = libc::iovec { iov_base: slot.buf.as_mut_ptr().cast(), iov_len: slot.len };
        }
        let name = &mut names[messages];
        let namelen = sockaddr::write(&sockaddr::for_family(slots[i].addr, v6_socket), name);
        let hdr = &mut hdrs[messages];
        point(hdr, iovs[i..end].as_mut_ptr(), end - i, name, namelen);
        if end - i > 1 {
            set_segment_size(hdr, &mut controls[messages], slots[i].len);
        }
        messages += 1;
        i = end;
    }
    // SAFETY: the first `messages` headers each point at `msg_iovlen` consecutive iovecs (live
    // slot buffers holding `iov_len` bytes each), at a sockaddr_storage holding a
    // `msg_namelen`-byte address, and at a control message of `msg_controllen` bytes or none;
    // all are owned by `batch`, exclusively borrowed here, and outlive the call.
    let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), messages as _, 0) };
    if n < 0 {
        let err = io::Error::last_os_error();
        let first = iovlen(&hdrs[0]);
        if err.raw_os_error() == Some(libc::EIO) && first > 1 {
            gso.set(false);
            return Ok(0);
        }
        if !matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
            *head += first;
        }
        finish_send(head, len);
        return Err(err);
    }
    let sent: usize = hdrs[..n as usize].iter().map(iovlen).sum();
    *head += sent;
    finish_send(head, len);
    Ok(sent)
}

/// How many datagrams a message header carries (`msg_iovlen` is `size_t` with glibc, `c_int`
/// with musl: the cast is needed on one and idle on the other).
#[allow(clippy::unnecessary_cast)]
fn iovlen(hdr: &libc::mmsghdr) -> usize {
    hdr.msg_hdr.msg_iovlen as usize
}

/// Adds a `UDP_SEGMENT` control message saying `size` to a message header.
fn set_segment_size(hdr: &mut libc::mmsghdr, control: &mut Control, size: usize) {
    let msg = &mut hdr.msg_hdr;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic. `control` is 32 bytes aligned for
    // cmsghdr, more than CMSG_SPACE(2) on every target, so CMSG_FIRSTHDR returns its start
    // and the header and the u16 after it stay inside; the data is written unaligned.
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as _;
        let c = libc::CMSG_FIRSTHDR(msg);
        (*c).cmsg_level = libc::IPPROTO_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size as u16);
    }
}

/// Once everything is sent, the batch starts over from slot 0.
fn finish_send(head: &mut usize, len: &mut usize) {
    if *head == *len {
        *head = 0;
        *len = 0;
    }
}

/// Points one message header at its `iovlen` iovecs (from `iov` on) and address buffer.
fn point(
    hdr: &mut libc::mmsghdr,
    iov: *mut libc::iovec,
    iovlen: usize,
    name: &mut libc::sockaddr_storage,
    namelen: libc::socklen_t,
) {
    hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
    hdr.msg_hdr.msg_namelen = namelen;
    hdr.msg_hdr.msg_iov = iov;
    // `size_t` with glibc, `c_int` with musl: at most 1024 fits either.
    hdr.msg_hdr.msg_iovlen = iovlen as _;
    hdr.msg_hdr.msg_control = ptr::null_mut();
    hdr.msg_hdr.msg_controllen = 0;
    hdr.msg_hdr.msg_flags = 0;
    hdr.msg_len = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_fills_slots_until_full() {
        let to: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let mut b = Batch::new(2, 8);
        assert_eq!((b.capacity(), b.slot_size(), b.len()), (2, 8, 0));
        b.push(b"abc", to).unwrap();
        b.push_with(to, |buf| {
            buf[..2].copy_from_slice(b"xy");
            2
        })
        .unwrap();
        assert_eq!(b.push(b"z", to), Err(Full));
        assert_eq!(b.get(0), Some((&b"abc"[..], to)));
        assert_eq!(b.get(1), Some((&b"xy"[..], to)));
        assert_eq!(b.get(2), None);
        assert_eq!(b.iter().count(), 2);
        assert_eq!(b.pending(), 2);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.get(0), None);
    }

    #[test]
    #[should_panic(expected = "datagram of 9 bytes")]
    fn oversized_push_is_a_bug() {
        let mut b = Batch::new(1, 8);
        let _ = b.push(&[0; 9], "192.0.2.1:9".parse().unwrap());
    }

    #[test]
    fn sending_an_empty_batch_is_a_no_op() {
        let mut b = Batch::new(1, 8);
        assert_eq!(send(-1, &mut b, false, &Cell::new(true)).unwrap(), 0);
    }
}
