//! Linux's TUN/TAP device.
//!
//! [`Tun::open`] asks `/dev/net/tun` for a device with `TUNSETIFF`. The device is not
//! persistent: it exists as long as the fd is open, so a crashed daemon leaves nothing behind.
//! `IFF_NO_PI` is always set, so each read or write is exactly one IP packet (TUN) or Ethernet
//! frame (TAP), without the 4-byte protocol header. Reads and writes are non-blocking and go
//! through `std::fs::File`; only the ioctls need `unsafe`.
//!
//! The MTU and IFF_UP are set with the classic `SIOC*IF*` ioctls on an `AF_INET` datagram
//! socket, which address the device by name in the caller's network namespace; addresses and
//! routes are left to the hook script, as in the original MLVPN.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::{TunKind, control_socket, ifreq, name_of};
use crate::sys::cvt;

/// An open TUN/TAP device.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
    kind: TunKind,
    /// Every read and write starts with a `virtio_net_hdr` (offloads on).
    vnet: bool,
    /// The kernel takes (and may give) UDP super-packets too (Linux 6.2).
    uso: bool,
}

impl Tun {
    /// Creates the device `name` (which may hold a `%d` for the kernel to number, as in
    /// `mlvpn%d`; empty lets the kernel choose `tun%d`/`tap%d`). Needs `CAP_NET_ADMIN`.
    ///
    /// The fd is non-blocking and close-on-exec (std opens every file with `O_CLOEXEC`), so hook
    /// scripts do not inherit it and keep the device alive.
    pub fn open(name: &str, kind: TunKind) -> io::Result<Tun> {
        Self::open_with(name, kind, false)
    }

    /// Opens a TUN device with offloads: `IFF_VNET_HDR`, then `TUNSETOFFLOAD` with checksum
    /// and TCP segmentation offload for IPv4 and IPv6, and UDP segmentation offload where the
    /// kernel has it (Linux 6.2; [`Tun::has_udp_offload`]). Reads then start with a 10-byte
    /// `virtio_net_hdr` and may hold TCP (UDP) super-packets of up to 64 KiB; writes must start
    /// with such a header too. Fails where the kernel (or an emulator) lacks them.
    pub fn open_offload(name: &str) -> io::Result<Tun> {
        let mut tun = Self::open_with(name, TunKind::Tun, true)?;
        let size: libc::c_int = 10;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, alive for the call.
        cvt(unsafe {
            libc::ioctl(tun.file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size as *const libc::c_int)
        })?;
        // The header's fields little-endian whatever the kernel's byte order (virtio 1.0), so
        // that a big-endian build under qemu-user on a little-endian kernel reads them right.
        let le: libc::c_int = 1;
        // SAFETY: TUNSETVNETLE reads one int through the pointer, alive for the call.
        cvt(unsafe { libc::ioctl(tun.file.as_raw_fd(), libc::TUNSETVNETLE, &le as *const libc::c_int) })?;
        let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        let with_udp = offloads | libc::TUN_F_USO4 | libc::TUN_F_USO6;
        let set = |flags: libc::c_uint| {
            // SAFETY: TUNSETOFFLOAD takes the flags as the integer argument itself.
            cvt(unsafe { libc::ioctl(tun.file.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) })
        };
        // Older kernels refuse flags they do not know (EINVAL): then TCP only.
        tun.uso = set(with_udp).is_ok();
        if !tun.uso {
            set(offloads)?;
        }
        Ok(tun)
    }

    /// Whether the kernel takes UDP super-packets (`VIRTIO_NET_HDR_GSO_UDP_L4`) on this device.
    pub fn has_udp_offload(&self) -> bool {
        self.uso
    }

    /// Whether reads and writes carry a `virtio_net_hdr`.
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet
    }

    fn open_with(name: &str, kind: TunKind, vnet: bool) -> io::Result<Tun> {
        let mut req = ifreq(name)?;
        let file =
            OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open("/dev/net/tun")?;
        let mode = match kind {
            TunKind::Tun => libc::IFF_TUN,
            TunKind::Tap => libc::IFF_TAP,
        };
        let vnet_flag = if vnet { libc::IFF_VNET_HDR } else { 0 };
        req.ifr_ifru.ifru_flags = (mode | libc::IFF_NO_PI | vnet_flag) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is initialised and lives
        // across the call. TUNSETIFF is already of type `libc::Ioctl`.
        cvt(unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut libc::ifreq) })?;
        Ok(Tun { file, name: name_of(&req), kind, vnet, uso: false })
    }

    /// The name the kernel gave the device (with any `%d` filled in).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> TunKind {
        self.kind
    }

    /// Reads one packet (or frame); `WouldBlock` when none is queued. A buffer shorter than the
    /// packet gets its head and the rest is lost, so size it for the MTU plus headers.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one packet (or frame) to the kernel; `WouldBlock` when its queue is full.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }

    /// Sets the device's MTU.
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        set_mtu_of(&self.name, mtu)
    }

    /// The device's MTU.
    pub fn mtu(&self) -> io::Result<u32> {
        let mut req = ifreq(&self.name)?;
        if_ioctl(&control_socket()?, libc::SIOCGIFMTU, &mut req)?;
        // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        Ok(mtu.max(0) as u32)
    }

    /// Brings the device up or down (the `IFF_UP` flag), leaving its other flags alone.
    pub fn set_up(&self, up: bool) -> io::Result<()> {
        let sock = control_socket()?;
        let mut req = ifreq(&self.name)?;
        if_ioctl(&sock, libc::SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        let iff_up = libc::IFF_UP as libc::c_short;
        req.ifr_ifru.ifru_flags = if up { flags | iff_up } else { flags & !iff_up };
        if_ioctl(&sock, libc::SIOCSIFFLAGS, &mut req)
    }

    /// Whether the device is up (`IFF_UP`).
    pub fn is_up(&self) -> io::Result<bool> {
        let mut req = ifreq(&self.name)?;
        if_ioctl(&control_socket()?, libc::SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        Ok(flags & libc::IFF_UP as libc::c_short != 0)
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

/// Sets the MTU of interface `name` (the privileged parent does this on reload: the device is
/// held by the child).
pub fn set_mtu_of(name: &str, mtu: u32) -> io::Result<()> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
    if_ioctl(&control_socket()?, libc::SIOCSIFMTU, &mut req)
}

/// One `SIOC*IF*` ioctl. The request numbers are `c_ulong` in libc, while `ioctl` takes
/// `libc::Ioctl`: `c_ulong` with glibc, `c_int` with musl; they all fit 16 bits.
fn if_ioctl(sock: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: these requests read and/or write one `struct ifreq`, which `req` is, borrowed
    // exclusively across the call.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), request as libc::Ioctl, req as *mut libc::ifreq) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_fit_ifnamsiz() {
        assert!(ifreq("fifteen-bytes-x").is_ok());
        let err = ifreq("sixteen-bytes-xx").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(ifreq("nul\0").is_err());
    }

    #[test]
    fn name_round_trips_through_ifreq() {
        let req = ifreq("mlvpn%d").unwrap();
        assert_eq!(name_of(&req), "mlvpn%d");
        assert_eq!(req.ifr_name[7], 0);
    }

    // Opening devices needs root: see tests/sys_tun.rs.
}
