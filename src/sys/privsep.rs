//! What privilege separation needs from the kernel: a socketpair that carries messages and
//! file descriptors between the privileged parent and the network child, `fork`, binding a
//! socket to a network device, and dropping privileges for good.
//!
//! The drop follows OpenBSD's daemons (`ntpd`'s `ntp_main`): look the user up while the
//! user database is still reachable, `chroot` into an empty directory, `chdir("/")`, set the
//! supplementary groups, then the group ids, then the user ids (all three of each, so none can
//! be taken back), then `PR_SET_NO_NEW_PRIVS`; and finally check that root cannot be regained.
//! Moving from uid 0 to another uid clears every capability (there is no `SECBIT_KEEP_CAPS`
//! here), which the check confirms.

use super::cvt;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// One end of the parent–child channel: a `SOCK_SEQPACKET` socket, so each message arrives
/// whole or not at all, and file descriptors can ride along.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A connected pair of channels (close-on-exec, so hook scripts inherit neither).
pub fn channel_pair() -> io::Result<(Channel, Channel)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair(2) writes.
    cvt(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    })?;
    // SAFETY: both fds were just created by socketpair(2) and have no other owner.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Makes receives return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        // SAFETY: F_GETFL/F_SETFL on our own fd, no pointers.
        unsafe {
            let flags = cvt(libc::fcntl(self.fd.as_raw_fd(), libc::F_GETFL))?;
            let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
            cvt(libc::fcntl(self.fd.as_raw_fd(), libc::F_SETFL, flags))?;
        }
        Ok(())
    }

    /// Sends one message, with at most one file descriptor.
    pub fn send(&self, message: &[u8], fd: Option<RawFd>) -> io::Result<()> {
        let mut iov = libc::iovec { iov_base: message.as_ptr() as *mut libc::c_void, iov_len: message.len() };
        // Room for one fd's control message, aligned as cmsghdr requires.
        let mut control = [0u64; 4];
        // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(fd) = fd {
            // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic; `control` is 32 bytes, more than
            // CMSG_SPACE(4) on every architecture, and suitably aligned (u64). CMSG_FIRSTHDR
            // returns a pointer into it, which we fill before sendmsg reads it.
            unsafe {
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
            }
        }
        // SAFETY: `msg` points at `iov` (our message) and `control`, both alive for the call.
        let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != message.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short message"));
        }
        Ok(())
    }

    /// Receives one message into `buf`: its length (0 = the other end closed) and the file
    /// descriptor it carried, if any. A message longer than `buf` is an error (it is cut).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 4];
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` points at `buf` and `control`, alive and writable for the call;
        // MSG_CMSG_CLOEXEC marks any received fd close-on-exec.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut received = None;
        // SAFETY: the kernel filled `control` and `msg.msg_controllen`; CMSG_FIRSTHDR /
        // CMSG_NXTHDR walk within it. An SCM_RIGHTS message holds fds the kernel just installed
        // in our table, which we now own.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                    let owned = OwnedFd::from_raw_fd(fd);
                    if received.is_none() {
                        received = Some(owned);
                    } // a second fd is closed at once by dropping `owned`
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "message too long"));
        }
        Ok((n as usize, received))
    }
}

/// `fork(2)`: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
///
/// Only call it while the process has one thread: the child gets a copy of the calling thread
/// only, and locks other threads held would stay locked forever.
pub fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: the daemon is single-threaded when it forks (documented above); the child then
    // goes on with ordinary Rust code.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 { None } else { Some(pid) })
}

/// Binds socket `fd` to network device `name` (`SO_BINDTODEVICE`, needs `CAP_NET_RAW`): it then
/// sends and receives only through that interface, whatever the routing table says — what a
/// multi-WAN router needs so that each link leaves by its own WAN.
#[cfg(target_os = "linux")]
pub fn bind_to_device(fd: RawFd, name: &str) -> io::Result<()> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    let bytes = c.as_bytes_with_nul();
    // SAFETY: the option value is `bytes`, alive for the call, with its length.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The BSDs have no such option (and the configuration refuses `bindinterface` there).
#[cfg(not(target_os = "linux"))]
pub fn bind_to_device(_fd: RawFd, _name: &str) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// An account to drop to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub home: PathBuf,
}

/// Looks `name` up in the user database (`getpwnam_r`).
pub fn lookup_user(name: &str) -> io::Result<User> {
    let c =
        CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in user name"))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids), filled by getpwnam_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `pwd` and `result` out-parameters, `buf`
    // with its length for the strings.
    let err =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    if result.is_null() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no user {name}")));
    }
    // SAFETY: on success pw_dir points at a NUL-terminated string inside `buf`, alive here.
    let home = unsafe { CStr::from_ptr(pwd.pw_dir) }.to_string_lossy().into_owned();
    Ok(User { name: name.to_string(), uid: pwd.pw_uid, gid: pwd.pw_gid, home: PathBuf::from(home) })
}

/// Drops to `user` for good, first locking the process into `root` (a directory it cannot
/// write, ideally empty) unless `root` is `None`. Returns an error if anything failed — the
/// caller must then exit, never carry on with privileges.
pub fn drop_privileges(user: &User, root: Option<&Path>) -> io::Result<()> {
    if let Some(dir) = root {
        let c = CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: valid NUL-terminated paths.
        cvt(unsafe { libc::chroot(c.as_ptr()) })?;
        cvt(unsafe { libc::chdir(c"/".as_ptr()) })?;
    }
    // Empty the capability bounding set while we may: nothing this process runs later can
    // gain a capability back, even through a file's capabilities (no_new_privs below says the
    // same). Cap numbers run from 0 to the kernel's last; past it the kernel says EINVAL.
    // Without CAP_SETPCAP (a service manager that already bounded our capabilities, as our
    // systemd unit does) it says EPERM: the manager's bound stays.
    #[cfg(target_os = "linux")]
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_DROP takes a capability number; no pointers.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) {
                break;
            }
            return Err(e);
        }
    }
    let groups = [user.gid];
    // SAFETY: `groups` holds one gid, as the length says; the id calls take plain integers.
    unsafe {
        cvt(libc::setgroups(groups.len() as _, groups.as_ptr()))?;
        cvt(libc::setresgid(user.gid, user.gid, user.gid))?;
        cvt(libc::setresuid(user.uid, user.uid, user.uid))?;
        // Linux: no set-id program run later may gain privileges (the seccomp filter needs it
        // too). OpenBSD's pledge forbids exec; on FreeBSD only the empty chroot stands in the
        // way (procctl's PROC_NO_NEW_PRIVS_CTL, FreeBSD 14, would be the equivalent).
        #[cfg(target_os = "linux")]
        cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
    }
    // Root must be gone for good.
    // SAFETY: plain syscalls; setuid(0) is expected to fail.
    if user.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "root could be regained after dropping it",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fds_cross_the_channel() {
        let (a, b) = channel_pair().unwrap();
        a.send(b"hello", None).unwrap();
        let mut buf = [0u8; 64];
        let (n, fd) = b.recv(&mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_none()), (&b"hello"[..], true));

        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        a.send(b"sock", Some(sock.as_raw_fd())).unwrap();
        let (n, fd) = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"sock");
        let received = std::net::UdpSocket::from(fd.expect("an fd"));
        assert_eq!(received.local_addr().unwrap(), addr, "the same socket");

        b.set_nonblocking(true).unwrap();
        assert_eq!(b.recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(b.recv(&mut buf).unwrap().0, 0, "closed");
    }

    #[test]
    fn too_long_a_message_is_an_error() {
        let (a, b) = channel_pair().unwrap();
        a.send(&[7u8; 100], None).unwrap();
        let mut small = [0u8; 10];
        assert!(b.recv(&mut small).is_err());
    }

    #[test]
    fn users_are_found() {
        let root = lookup_user("root").unwrap();
        assert_eq!(root.uid, 0);
        assert!(lookup_user("no-such-user-mlvpn").is_err());
    }
}
