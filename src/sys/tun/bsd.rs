//! FreeBSD's and OpenBSD's TUN/TAP devices.
//!
//! * **FreeBSD** (`tun(4)`, `tap(4)`): opening `/dev/tun` (or `/dev/tap`) clones a new device
//!   `tunN`. `TUNSIFHEAD` puts each packet behind its address family, so that IPv6 travels too.
//!   `SIOCSIFNAME` then gives it the configured name (a `%d` in it becomes N); a name `tunN`
//!   opens that unit. Cloned devices outlive their fd: the process that outlives the device's
//!   holder destroys it at exit ([`destroy`]), and a name still held by a device that is down
//!   (a crashed run's) is taken back; one that is up is refused.
//! * **OpenBSD** (`tun(4)`, `tap(4)`): the first free `/dev/tunN` (or `/dev/tapN`); the device
//!   lives as long as the fd. Interfaces cannot be renamed: a name `tunN` opens that one, any
//!   other name takes the first free device, and hooks get its real name in `DEVICE`.
//!   Every packet carries its address family.
//!
//! The family header is read and written with `readv`/`writev`, around the caller's buffer:
//! no copy. Offloads are Linux's alone: [`Tun::open_offload`] says so.
//!
//! The ioctl numbers are `<sys/sockio.h>`'s and `<net/if_tun.h>`'s `_IOW`/`_IOWR` encodings
//! for a 32-byte `struct ifreq` (64-bit systems, which is what we build; checked below).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::family::{self, Families};
#[cfg(target_os = "freebsd")]
use super::name_of;
use super::{TunKind, control_socket, ifreq};
use crate::sys::cvt;

const _: () = assert!(std::mem::size_of::<libc::ifreq>() == 32, "ioctl numbers assume a 32-byte ifreq");

const SIOCSIFFLAGS: libc::c_ulong = 0x8020_6910;
const SIOCGIFFLAGS: libc::c_ulong = 0xC020_6911;
#[cfg(target_os = "freebsd")]
const SIOCSIFMTU: libc::c_ulong = 0x8020_6934;
#[cfg(target_os = "freebsd")]
const SIOCGIFMTU: libc::c_ulong = 0xC020_6933;
#[cfg(target_os = "openbsd")]
const SIOCSIFMTU: libc::c_ulong = 0x8020_697F;
#[cfg(target_os = "openbsd")]
const SIOCGIFMTU: libc::c_ulong = 0xC020_697E;
#[cfg(target_os = "freebsd")]
const SIOCSIFNAME: libc::c_ulong = 0x8020_6928;
#[cfg(target_os = "freebsd")]
const SIOCIFDESTROY: libc::c_ulong = 0x8020_6979;
/// `TUNSIFHEAD`, `_IOW('t', 96, int)`: packets behind their address family.
#[cfg(target_os = "freebsd")]
const TUNSIFHEAD: libc::c_ulong = 0x8004_7460;
/// `TUNGIFNAME` (and `TAPGIFNAME`), `_IOR('t', 93, struct ifreq)`: the clone's name.
#[cfg(target_os = "freebsd")]
const TUNGIFNAME: libc::c_ulong = 0x4020_745D;

const FAMILIES: Families = Families { inet: libc::AF_INET as u32, inet6: libc::AF_INET6 as u32 };

/// An open TUN/TAP device.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
    kind: TunKind,
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("{what} is Linux's alone"))
}

impl Tun {
    /// Opens a device and names it `name` where the system can (see the module documentation).
    /// Needs root. The fd is non-blocking and close-on-exec.
    pub fn open(name: &str, kind: TunKind) -> io::Result<Tun> {
        let base = match kind {
            TunKind::Tun => "tun",
            TunKind::Tap => "tap",
        };
        let (file, unit) = open_device(base, name)?;
        let tun = Tun { file, name: format!("{base}{unit}"), kind };
        #[cfg(target_os = "freebsd")]
        let tun = tun.freebsd_setup(name, unit)?;
        Ok(tun)
    }

    /// TUN offloads (`IFF_VNET_HDR`): Linux only.
    pub fn open_offload(_name: &str) -> io::Result<Tun> {
        Err(unsupported("TUN offload"))
    }

    pub fn has_udp_offload(&self) -> bool {
        false
    }

    pub fn has_vnet_hdr(&self) -> bool {
        false
    }

    #[cfg(target_os = "freebsd")]
    fn freebsd_setup(mut self, wanted: &str, unit: u32) -> io::Result<Tun> {
        let fd = self.file.as_raw_fd();
        if self.kind == TunKind::Tun {
            let on: libc::c_int = 1;
            // SAFETY: TUNSIFHEAD reads one int through the pointer, alive for the call.
            cvt(unsafe { libc::ioctl(fd, TUNSIFHEAD, &on as *const libc::c_int) })?;
        }
        let mut req = ifreq("")?;
        // SAFETY: TUNGIFNAME writes one `struct ifreq`, which `req` is.
        cvt(unsafe { libc::ioctl(fd, TUNGIFNAME, &mut req as *mut libc::ifreq) })?;
        self.name = name_of(&req);
        // The clone's unit, from its name (`tun7`): what a `%d` in the wanted name becomes.
        let unit = self.name.trim_start_matches(|c: char| c.is_ascii_alphabetic()).parse().unwrap_or(unit);
        let wanted = wanted.replace("%d", &unit.to_string());
        if !wanted.is_empty() && wanted != self.name {
            match rename(&self.name, &wanted) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    // Cloned devices outlive their fd here, and closing one brings it down: a
                    // device of that name that is down is taken to be a previous run's, whose
                    // parent did not live to destroy it. One that is up is someone else's.
                    let mut req = ifreq(&wanted)?;
                    let sock = control_socket()?;
                    if_ioctl(&sock, SIOCGIFFLAGS, &mut req)?;
                    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
                    if unsafe { *flags_ptr(&mut req) } & libc::IFF_UP as libc::c_short != 0 {
                        let what = format!("interface {wanted} exists and is up: another mlvpn's?");
                        return Err(io::Error::new(io::ErrorKind::AddrInUse, what));
                    }
                    if_ioctl(&sock, SIOCIFDESTROY, &mut ifreq(&wanted)?)?;
                    rename(&self.name, &wanted)?;
                }
                r => r?,
            }
            self.name = wanted;
        }
        Ok(self)
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> TunKind {
        self.kind
    }

    /// Reads one packet (or frame); `WouldBlock` when none is queued. Packets of families
    /// other than IPv4 and IPv6 are skipped.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.kind == TunKind::Tap {
            return io::Read::read(&mut &self.file, buf);
        }
        loop {
            let mut header = [0u8; 4];
            let mut iov = [
                libc::iovec { iov_base: header.as_mut_ptr().cast(), iov_len: 4 },
                libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() },
            ];
            // SAFETY: both iovecs point at live, writable buffers of the lengths given.
            let n = unsafe { libc::readv(self.file.as_raw_fd(), iov.as_mut_ptr(), 2) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            if n >= 4 && family::carries(header, FAMILIES) {
                return Ok(n - 4);
            }
        }
    }

    /// Writes one packet (or frame) to the kernel; `WouldBlock` when its queue is full.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        if self.kind == TunKind::Tap {
            return io::Write::write(&mut &self.file, packet);
        }
        let header = family::header_for(packet, FAMILIES)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "neither IPv4 nor IPv6"))?;
        let iov = [
            libc::iovec { iov_base: header.as_ptr().cast_mut().cast(), iov_len: 4 },
            libc::iovec { iov_base: packet.as_ptr().cast_mut().cast(), iov_len: packet.len() },
        ];
        // SAFETY: both iovecs point at live buffers of the lengths given; writev only reads.
        let n = unsafe { libc::writev(self.file.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize).saturating_sub(4))
    }

    /// Sets the device's MTU.
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        set_mtu_of(&self.name, mtu)
    }

    /// The device's MTU.
    pub fn mtu(&self) -> io::Result<u32> {
        let mut req = ifreq(&self.name)?;
        if_ioctl(&control_socket()?, SIOCGIFMTU, &mut req)?;
        // SAFETY: SIOCGIFMTU filled the MTU member of the union.
        Ok(unsafe { *mtu_ptr(&mut req) }.max(0) as u32)
    }

    /// Brings the device up or down (`IFF_UP`), leaving its other flags alone.
    pub fn set_up(&self, up: bool) -> io::Result<()> {
        let sock = control_socket()?;
        let mut req = ifreq(&self.name)?;
        if_ioctl(&sock, SIOCGIFFLAGS, &mut req)?;
        let flags = flags_ptr(&mut req);
        let iff_up = libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCGIFFLAGS filled the flags member, a live integer inside `req`.
        unsafe { *flags = if up { *flags | iff_up } else { *flags & !iff_up } };
        if_ioctl(&sock, SIOCSIFFLAGS, &mut req)
    }

    /// Whether the device is up (`IFF_UP`).
    pub fn is_up(&self) -> io::Result<bool> {
        let mut req = ifreq(&self.name)?;
        if_ioctl(&control_socket()?, SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        Ok(unsafe { *flags_ptr(&mut req) } & libc::IFF_UP as libc::c_short != 0)
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Opens the device: the clone on FreeBSD, else the first free unit (or the one named).
fn open_device(base: &str, name: &str) -> io::Result<(File, u32)> {
    let open =
        |path: &str| OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(path);
    // A name `tunN` opens that unit (FreeBSD creates it if need be: renaming a clone to it
    // would leave the unit free for the next clone).
    if let Some(unit) = name.strip_prefix(base).and_then(|n| n.parse::<u32>().ok()) {
        return Ok((open(&format!("/dev/{base}{unit}"))?, unit));
    }
    if cfg!(target_os = "freebsd") {
        // The unit is read back with TUNGIFNAME.
        return Ok((open(&format!("/dev/{base}"))?, 0));
    }
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for unit in 0..256 {
        match open(&format!("/dev/{base}{unit}")) {
            Ok(f) => return Ok((f, unit)),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(target_os = "freebsd")]
fn rename(from: &str, to: &str) -> io::Result<()> {
    let mut req = ifreq(from)?;
    let mut new_name = [0 as libc::c_char; libc::IFNAMSIZ];
    ifreq(to)?; // checks the length
    for (d, &s) in new_name.iter_mut().zip(to.as_bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = new_name.as_mut_ptr();
    if_ioctl(&control_socket()?, SIOCSIFNAME, &mut req)
}

/// Destroys interface `name`: FreeBSD keeps cloned devices after their fd closes, so the
/// process that outlives the device's holder (the privileged parent, or the one process)
/// removes it at exit. OpenBSD destroys them on close by itself.
pub fn destroy(name: &str) -> io::Result<()> {
    #[cfg(target_os = "freebsd")]
    if_ioctl(&control_socket()?, SIOCIFDESTROY, &mut ifreq(name)?)?;
    let _ = name;
    Ok(())
}

/// Sets the MTU of interface `name` (the privileged parent does this for the child).
pub fn set_mtu_of(name: &str, mtu: u32) -> io::Result<()> {
    let mut req = ifreq(name)?;
    let mtu = libc::c_int::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
    // SAFETY: writes an integer member inside the live, zeroed `req`.
    unsafe { *mtu_ptr(&mut req) = mtu };
    if_ioctl(&control_socket()?, SIOCSIFMTU, &mut req)
}

/// The MTU member: `ifru_mtu` on FreeBSD, `ifru_metric` (what `ifr_mtu` stands for) on
/// OpenBSD. Taking a union member's address reads nothing, so it is safe.
fn mtu_ptr(req: &mut libc::ifreq) -> *mut libc::c_int {
    #[cfg(target_os = "freebsd")]
    return &raw mut req.ifr_ifru.ifru_mtu;
    #[cfg(target_os = "openbsd")]
    return &raw mut req.ifr_ifru.ifru_metric;
}

/// The flags member (FreeBSD splits it in two shorts: the low half holds the classic flags).
fn flags_ptr(req: &mut libc::ifreq) -> *mut libc::c_short {
    #[cfg(target_os = "freebsd")]
    return (&raw mut req.ifr_ifru.ifru_flags).cast();
    #[cfg(target_os = "openbsd")]
    return &raw mut req.ifr_ifru.ifru_flags;
}

fn if_ioctl(sock: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: these requests read and/or write one `struct ifreq`, which `req` is, borrowed
    // exclusively across the call.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) })?;
    Ok(())
}
