//! A fixed `poll(2)` table.
//!
//! The daemon has a handful of fds (the TUN device, one socket per link, the signalfd, the
//! control socket), known at start. They are registered once into slots; the daemon keeps the
//! slot index next to each fd and asks [`Poller::readable`] etc. after [`Poller::wait`].
//!
//! # Hazards (as in mio's documentation)
//!
//! * **Level-triggered.** A slot reports readable for as long as data is queued. After a wakeup,
//!   read until `WouldBlock` (bounded per round so one busy fd cannot starve the others: the
//!   next `wait` will report it again), or the next `wait` returns at once.
//! * **Errors and hang-ups are always reported**, even when not asked for. [`readable`] and
//!   [`writable`] include them, because the read or write that follows is what returns (and, for
//!   a UDP socket's pending ICMP error, clears) the error. An fd that stays in error (a TUN device
//!   that was deleted) must be taken out with [`Poller::disable`], or the loop spins.
//! * **Spurious wakeups.** A readable slot may still give `WouldBlock` (another reader got
//!   there first, or a datagram with a bad checksum was dropped): treat it as "nothing".
//! * **Stale fds.** The table holds raw fd numbers and does not own them. Close an fd only after
//!   replacing or disabling its slot, or a new fd reusing the number would be polled instead.
//!
//! [`readable`]: Poller::readable
//! [`writable`]: Poller::writable

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// What a slot waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    /// Read, and write: ask for this only while a send has returned `WouldBlock`, since a UDP
    /// socket is writable nearly always and would wake the loop on every round.
    ReadWrite,
}

impl Interest {
    fn events(self) -> libc::c_short {
        match self {
            Interest::Read => libc::POLLIN,
            Interest::ReadWrite => libc::POLLIN | libc::POLLOUT,
        }
    }
}

/// A `poll(2)` table of fixed slots.
#[derive(Debug, Default)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    /// An empty table with room for `capacity` slots (so that registering them at start
    /// allocates once).
    pub fn with_capacity(capacity: usize) -> Poller {
        Poller { fds: Vec::with_capacity(capacity) }
    }

    /// Adds a slot for `fd` and returns its index. Done at start, not per packet.
    pub fn register(&mut self, fd: &impl AsRawFd, interest: Interest) -> usize {
        self.fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: interest.events(), revents: 0 });
        self.fds.len() - 1
    }

    /// Points slot `i` at another fd (a link's socket bound anew), keeping its interest.
    pub fn set_fd(&mut self, i: usize, fd: &impl AsRawFd) {
        self.set_raw(i, fd.as_raw_fd());
    }

    /// Makes `wait` ignore slot `i` (`poll` skips negative fds) until [`set_fd`](Poller::set_fd).
    pub fn disable(&mut self, i: usize) {
        self.set_raw(i, -1);
    }

    /// Changes what slot `i` waits for.
    pub fn set_interest(&mut self, i: usize, interest: Interest) {
        self.fds[i].events = interest.events();
    }

    /// The number of slots.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Waits until a slot is ready or `timeout` passes (`None`: forever) and returns the number
    /// of ready slots; `Ok(0)` on timeout or when a signal interrupted the wait.
    ///
    /// Timeouts are rounded up to whole milliseconds, so the loop never wakes just before a
    /// deadline and spins with a zero timeout until it arrives.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let timeout_ms = match timeout {
            None => -1,
            Some(d) => {
                // Not `as_micros`: it is a u128, whose division the 32-bit routers do not have.
                let ms = d
                    .as_secs()
                    .saturating_mul(1_000)
                    .saturating_add(u64::from(d.subsec_micros().div_ceil(1_000)));
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: the pointer and length describe our own initialised pollfd array, which
        // stays borrowed for the call; the kernel writes only the `revents` fields.
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                self.fds.iter_mut().for_each(|p| p.revents = 0);
                return Ok(0);
            }
            return Err(err);
        }
        Ok(n as usize)
    }

    /// After `wait`: a read on slot `i` will not block (data, an error or end of file).
    pub fn readable(&self, i: usize) -> bool {
        self.revents(i) & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0
    }

    /// After `wait`: a write on slot `i` will not block (room, or an error). Only reported for
    /// slots registered with [`Interest::ReadWrite`], errors aside.
    pub fn writable(&self, i: usize) -> bool {
        self.revents(i) & libc::POLLOUT != 0
            || (self.fds[i].events & libc::POLLOUT != 0
                && self.revents(i) & (libc::POLLERR | libc::POLLHUP) != 0)
    }

    /// After `wait`: slot `i` reported an error, a hang-up, or an fd that is not open
    /// (`POLLNVAL`, our bug: an fd closed while still registered).
    pub fn error(&self, i: usize) -> bool {
        self.revents(i) & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
    }

    fn revents(&self, i: usize) -> libc::c_short {
        self.fds[i].revents
    }

    fn set_raw(&mut self, i: usize, fd: RawFd) {
        let slot = &mut self.fds[i];
        slot.fd = fd;
        slot.revents = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::udp::UdpLink;
    use std::time::Instant;

    fn link() -> UdpLink {
        UdpLink::bind("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    #[test]
    fn timeout_is_honoured_when_nothing_is_ready() {
        let a = link();
        let mut p = Poller::with_capacity(1);
        let slot = p.register(&a, Interest::Read);
        let start = Instant::now();
        assert_eq!(p.wait(Some(Duration::from_millis(50))).unwrap(), 0);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(!p.readable(slot) && !p.writable(slot) && !p.error(slot));
    }

    #[test]
    fn sub_millisecond_timeout_still_waits() {
        let a = link();
        let mut p = Poller::with_capacity(1);
        p.register(&a, Interest::Read);
        let start = Instant::now();
        assert_eq!(p.wait(Some(Duration::from_micros(10))).unwrap(), 0);
        assert!(start.elapsed() >= Duration::from_micros(10));
    }

    #[test]
    fn readable_after_a_datagram_arrives() {
        let (a, b) = (link(), link());
        let mut p = Poller::with_capacity(2);
        let sa = p.register(&a, Interest::Read);
        let sb = p.register(&b, Interest::Read);
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        assert_eq!(p.wait(Some(Duration::from_secs(5))).unwrap(), 1);
        assert!(p.readable(sb));
        assert!(!p.readable(sa));
        // Level-triggered: still readable until drained.
        assert_eq!(p.wait(Some(Duration::ZERO)).unwrap(), 1);
        assert!(p.readable(sb));
        b.recv_from(&mut [0; 8]).unwrap();
        assert_eq!(p.wait(Some(Duration::ZERO)).unwrap(), 0);
    }

    #[test]
    fn writable_only_when_asked() {
        let a = link();
        let mut p = Poller::with_capacity(1);
        let s = p.register(&a, Interest::Read);
        assert_eq!(p.wait(Some(Duration::ZERO)).unwrap(), 0);
        p.set_interest(s, Interest::ReadWrite);
        assert_eq!(p.wait(Some(Duration::ZERO)).unwrap(), 1);
        assert!(p.writable(s) && !p.readable(s));
    }

    #[test]
    fn replaced_and_disabled_slots() {
        let (a, b, c) = (link(), link(), link());
        let mut p = Poller::with_capacity(1);
        let s = p.register(&a, Interest::Read);
        p.set_fd(s, &b);
        c.send_to(b"x", a.local_addr().unwrap()).unwrap();
        assert_eq!(p.wait(Some(Duration::from_millis(20))).unwrap(), 0);
        c.send_to(b"y", b.local_addr().unwrap()).unwrap();
        assert_eq!(p.wait(Some(Duration::from_secs(5))).unwrap(), 1);
        assert!(p.readable(s));
        p.disable(s);
        assert!(!p.readable(s));
        assert_eq!(p.wait(Some(Duration::ZERO)).unwrap(), 0);
    }
}
