//! Preallocated datagram batches for `recvmmsg(2)`/`sendmmsg(2)`.
//!
//! A [`Batch`] is allocated once, at start, with a fixed number of slots of a fixed size; the
//! syscalls then move up to `capacity` datagrams per call without allocating. The kernel-facing
//! arrays (`mmsghdr`, `iovec`, `sockaddr_storage`) live inside the batch too, and their pointers
//! are rewritten from the slots just before each call, so no pointer outlives the borrow it was
//! taken from, and moving the batch is harmless.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::ptr;

use super::sockaddr;

/// The kernel processes at most `UIO_MAXIOV` messages per `recvmmsg`/`sendmmsg` call.
const MAX_CAPACITY: usize = 1024;

/// Returned by [`Batch::push`] when every slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

struct Slot {
    buf: Box<[u8]>,
    len: usize,
    addr: SocketAddr,
    truncated: bool,
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

/// Receives into every slot of `batch` with one `recvmmsg(2)`.
pub(super) fn recv(fd: RawFd, batch: &mut Batch) -> io::Result<usize> {
    batch.clear();
    let Batch { slots, hdrs, iovs, names, .. } = batch;
    for (((slot, hdr), iov), name) in
        slots.iter_mut().zip(hdrs.iter_mut()).zip(iovs.iter_mut()).zip(names.iter_mut())
    {
        *iov = libc::iovec { iov_base: slot.buf.as_mut_ptr().cast(), iov_len: slot.buf.len() };
        point(hdr, iov, name, std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t);
    }
    // SAFETY: `hdrs` holds `capacity` headers, each pointing at one iovec (a live slot buffer
    // of `iov_len` bytes) and at a sockaddr_storage whose size is in `msg_namelen`; all are
    // owned by `batch`, exclusively borrowed here, and outlive the call. A null timeout is
    // allowed (the socket is non-blocking, so the call never waits).
    let n = unsafe { libc::recvmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, 0, ptr::null_mut()) };
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
    }
    batch.len = n;
    Ok(n)
}

/// Sends the pending slots of `batch` with one `sendmmsg(2)`.
pub(super) fn send(fd: RawFd, batch: &mut Batch, v6_socket: bool) -> io::Result<usize> {
    let pending = batch.pending();
    if pending == 0 {
        return Ok(0);
    }
    let Batch { slots, head, len, hdrs, iovs, names } = batch;
    for (((slot, hdr), iov), name) in
        slots[*head..*len].iter_mut().zip(hdrs.iter_mut()).zip(iovs.iter_mut()).zip(names.iter_mut())
    {
        *iov = libc::iovec { iov_base: slot.buf.as_mut_ptr().cast(), iov_len: slot.len };
        let namelen = sockaddr::write(&sockaddr::for_family(slot.addr, v6_socket), name);
        point(hdr, iov, name, namelen);
    }
    // SAFETY: the first `pending` headers each point at one iovec (a live slot buffer holding
    // `iov_len` bytes) and at a sockaddr_storage holding a `msg_namelen`-byte address; all are
    // owned by `batch`, exclusively borrowed here, and outlive the call.
    let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), pending as libc::c_uint, 0) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if !matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
            *head += 1;
        }
        finish_send(head, len);
        return Err(err);
    }
    *head += n as usize;
    finish_send(head, len);
    Ok(n as usize)
}

/// Once everything is sent, the batch starts over from slot 0.
fn finish_send(head: &mut usize, len: &mut usize) {
    if *head == *len {
        *head = 0;
        *len = 0;
    }
}

/// Points one message header at its iovec and address buffer.
fn point(
    hdr: &mut libc::mmsghdr,
    iov: &mut libc::iovec,
    name: &mut libc::sockaddr_storage,
    namelen: libc::socklen_t,
) {
    hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
    hdr.msg_hdr.msg_namelen = namelen;
    hdr.msg_hdr.msg_iov = iov;
    // `size_t` with glibc, `c_int` with musl: the literal fits either.
    hdr.msg_hdr.msg_iovlen = 1;
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
        assert_eq!(send(-1, &mut b, false).unwrap(), 0);
    }
}
