//! Every `unsafe` of the emulator: `AF_PACKET` sockets with batched I/O, `ppoll(2)`, a
//! `signalfd(2)`, the monotonic clock, the timer slack and the scheduling policy.
//!
//! ## Frames on a packet socket
//!
//! A [`PacketSocket`] is bound to one interface and sees every frame arriving on it, whatever
//! its destination MAC (promiscuous). `PACKET_VNET_HDR` is on: each frame read or written is
//! preceded by a 10-byte `virtio_net_hdr`. Frames sent by a local stack over a veth often carry
//! a checksum the kernel has not computed yet (`CHECKSUM_PARTIAL`, the veth "offloads" it); the
//! header says so, and handing it back unchanged with the frame makes the kernel on the other
//! side treat the checksum as the sending stack meant it. Without it, forwarded UDP and TCP
//! would arrive with bad checksums. The header also flags GSO super-frames (up to 64 KiB), which
//! the emulator's fixed slots cannot hold: the interfaces facing the endpoints should have GSO
//! off (`ip link set DEV gso_max_segs 1`, see the harness); a frame longer than a slot is
//! reported truncated and dropped as `oversize`.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

/// Length of `struct virtio_net_hdr`, which precedes every frame (see the module doc).
pub const VNET_HDR_LEN: usize = 10;
/// Datagrams moved per `recvmmsg`/`sendmmsg` call at most.
pub const MAX_BATCH: usize = 64;
/// Socket buffers asked for (root may exceed `rmem_max`): a few ms at 1 Gbit/s.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the only clock the emulator reads.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sets this thread's timer slack, so that `ppoll` timeouts fire within `ns` of the deadline
/// rather than the default 50 us.
pub fn set_timer_slack(ns: u64) -> io::Result<()> {
    // SAFETY: plain prctl without pointers.
    cvt(unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// Moves this process to `SCHED_FIFO` at `priority` (1..=99): it then preempts every normal
/// task the moment a frame is due, so a busy machine does not delay its wakeups. The kernel's
/// real-time throttling (by default 95% of each second) still bounds what it can take.
pub fn set_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is this process.
    cvt(unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) })?;
    Ok(())
}

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a valid c_int that outlives the call; the length says so.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// What [`PacketSocket::recv_batch`] got in one slot.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecvMeta {
    /// Bytes written into the slot (virtio header included).
    pub len: usize,
    /// The frame was longer than the slot and lost its tail.
    pub truncated: bool,
    /// A frame this host sent out of the interface, not one that arrived.
    pub outgoing: bool,
}

/// A raw `AF_PACKET` socket bound to one interface. See the module doc.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a non-blocking packet socket on interface `name` (of the current namespace).
    pub fn open(name: &str) -> io::Result<PacketSocket> {
        let cname = CString::new(name).map_err(|_| io::Error::other("interface name has a NUL"))?;
        // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("interface {name}: {e}")));
        }
        // Protocol 0: the socket receives nothing until `bind` names the protocol and the
        // interface, so no frame of another interface slips in between.
        let kind = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain syscall without pointers.
        let raw = cvt(unsafe { libc::socket(libc::AF_PACKET, kind, 0) })?;
        // SAFETY: `raw` was just returned by socket(2), is open, and has no other owner.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        set_int(s, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
        // Since Linux 4.20; older kernels get the `outgoing` filter in `recv_batch` only.
        let _ = set_int(s, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
        for (force, plain) in
            [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)]
        {
            if set_int(s, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
                set_int(s, libc::SOL_SOCKET, plain, SOCKET_BUFFER)?;
            }
        }
        // SAFETY: all-zero is a valid sockaddr_ll; the fields that matter are set below.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a valid sockaddr_ll of the given length and outlives the call.
        cvt(unsafe {
            libc::bind(
                s,
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        // SAFETY: all-zero is a valid packet_mreq.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = ifindex as libc::c_int;
        mreq.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
        // SAFETY: `mreq` is a valid packet_mreq of the given length and outlives the call.
        cvt(unsafe {
            libc::setsockopt(
                s,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives up to `meta.len()` (at most [`MAX_BATCH`]) frames without blocking, frame `i`
    /// into `buf[i * slot..(i + 1) * slot]`. `Ok(0)` when nothing is waiting.
    pub fn recv_batch(&self, buf: &mut [u8], slot: usize, meta: &mut [RecvMeta]) -> io::Result<usize> {
        let n = meta.len().min(MAX_BATCH).min(buf.len() / slot.max(1));
        if n == 0 {
            return Ok(0);
        }
        // SAFETY (for the three zeroed arrays): all-zero is valid for iovec, mmsghdr and
        // sockaddr_ll (null pointers, zero lengths).
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
        let mut names: [libc::sockaddr_ll; MAX_BATCH] = unsafe { mem::zeroed() };
        for (i, chunk) in buf.chunks_exact_mut(slot).take(n).enumerate() {
            iovs[i] = libc::iovec { iov_base: chunk.as_mut_ptr().cast(), iov_len: slot };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut names[i] as *mut libc::sockaddr_ll).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: `hdrs[..n]` point at `n` valid iovecs (each a distinct, writable `slot`-byte
        // chunk of `buf`) and sockaddr_ll buffers, all of which outlive the call; no timeout.
        let r = unsafe {
            libc::recvmmsg(
                self.raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(e) };
        }
        let r = r as usize;
        for i in 0..r {
            meta[i] = RecvMeta {
                len: hdrs[i].msg_len as usize,
                truncated: hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                outgoing: names[i].sll_pkttype == libc::PACKET_OUTGOING,
            };
        }
        Ok(r)
    }

    /// Sends up to [`MAX_BATCH`] frames (each with its virtio header) without blocking. Returns
    /// how many went; an error is about `frames[0]`, and the caller decides whether to retry the
    /// rest.
    pub fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let n = frames.len().min(MAX_BATCH);
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: all-zero is valid for iovec and mmsghdr.
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
        for (i, f) in frames[..n].iter().enumerate() {
            // The kernel only reads through iov_base on send.
            iovs[i] = libc::iovec { iov_base: f.as_ptr() as *mut libc::c_void, iov_len: f.len() };
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs[..n]` point at valid iovecs over `frames`, which outlive the call; no
        // address: the socket sends on the interface it is bound to.
        let r = unsafe {
            libc::sendmmsg(self.raw_fd(), hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT)
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
    }
}

/// `ppoll(2)` with a nanosecond timeout (`None` waits forever). EINTR counts as a timeout.
pub fn ppoll(fds: &mut [libc::pollfd], timeout_ns: Option<u64>) -> io::Result<usize> {
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    });
    let tsp = ts.as_ref().map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfds; `tsp` is null or points
    // at `ts`, which outlives the call; no signal mask change.
    let r = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tsp, ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
    }
    Ok(r as usize)
}

/// SIGINT and SIGTERM, blocked and readable from a file descriptor.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks SIGINT and SIGTERM for the (single-threaded) process and opens a non-blocking
    /// signalfd for them.
    pub fn termination() -> io::Result<SignalFd> {
        // SAFETY: `set` is a valid sigset_t, initialised by sigemptyset before use; the calls
        // take pointers to it only for their duration. Blocking signals in a process with one
        // thread is sound.
        unsafe {
            let mut set: libc::sigset_t = mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            cvt(libc::sigprocmask(libc::SIG_BLOCK, &set, ptr::null_mut()))?;
            let raw = cvt(libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
            Ok(SignalFd { fd: OwnedFd::from_raw_fd(raw) })
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The pending signal's number, if one is pending.
    pub fn read(&self) -> Option<i32> {
        // SAFETY: all-zero is a valid signalfd_siginfo.
        let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
        let size = mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of `size` bytes that outlives the call.
        let r = unsafe { libc::read(self.raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        (r == size as isize).then_some(info.ssi_signo as i32)
    }
}
