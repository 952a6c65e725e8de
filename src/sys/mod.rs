//! The system layer: every `unsafe` block of the crate, behind small safe types.
//!
//! The rest of the daemon sees file descriptors wrapped in owning types, `io::Result`s and plain
//! Rust values. Each submodule has one job:
//!
//! | module | job |
//! |---|---|
//! | [`tun`] | open a TUN/TAP device, set its MTU and IFF_UP, read/write packets (Linux; FreeBSD and OpenBSD) |
//! | [`udp`] | one non-blocking UDP socket per link; batched I/O with a preallocated [`udp::Batch`] |
//! | [`poll`] | a fixed `poll(2)` table |
//! | [`signals`] | SIGTERM/SIGINT/SIGHUP/SIGCHLD through an fd in the poll table: a `signalfd` (Linux), a self-pipe (BSDs) |
//! | [`process`] | spawn a hook script with a clean environment and signal state; check its permissions; reap and signal children |
//! | [`clock`] | the one place the daemon reads a clock (`CLOCK_MONOTONIC`) |
//! | [`random`] | bytes from `getrandom(2)` |
//! | [`syslog`] | lines to the syslog daemon's socket `/dev/log`, as `syslog(3)` sends them |
//! | [`netns`] | move a thread into a fresh network namespace (tests of the real kernel) |
//! | [`privsep`] | the parent–child channel (with fd passing), `fork`, `SO_BINDTODEVICE`, dropping privileges |
//! | [`proctitle`] | the process title `ps` shows |
//! | [`start`] | the C `main`: standard fds, SIGPIPE, arguments, in place of Rust's start-up |
//! | [`alloc`] | the global allocator: large blocks mapped, so they take memory only once used |
//! | [`sandbox`] | the network process's system-call sandbox: seccomp on Linux, pledge on OpenBSD |
//!
//! # Every unsafe operation, and why it is needed
//!
//! Each block carries a `// SAFETY:` note at the call site; this is the inventory. Most of them
//! are calls into `libc` (all `extern "C"` functions are `unsafe` to call) for things `std` does
//! not offer. Wherever `std` does offer it, we use `std` instead: TUN reads and writes go through
//! `std::fs::File`, single datagrams through `std::net::UdpSocket`, file permission checks
//! through `std::fs::Metadata`. (Not spawning: `std::process::Command` brings 30 KB of code
//! that a router's flash cannot spare, for what one `posix_spawn` call does.)
//!
//! * **Zeroed C structs** (`mem::zeroed` of `ifreq`, `sockaddr_storage`, `mmsghdr`, `sigset_t`,
//!   `timespec`): libc's structs have no constructor, differ per architecture and libc (musl pads
//!   `msghdr` on 64-bit; MIPS orders fields differently), and all-zero is a valid value of each
//!   (integers, arrays, null pointers). Zeroing then assigning named fields is the portable way.
//! * **Taking ownership of a new fd** (`OwnedFd::from_raw_fd` after `socket`, `signalfd`): the fd
//!   was just returned by the kernel, is open, and nothing else owns it.
//! * **`ioctl`** on the TUN fd (`TUNSETIFF`) and on an `AF_INET` socket (`SIOCGIFMTU`,
//!   `SIOCSIFMTU`, `SIOCGIFFLAGS`, `SIOCSIFFLAGS`): there is no other interface to create a TUN
//!   device or set an interface's MTU and flags without netlink. Each passes one live `ifreq`; the
//!   request numbers come from libc (they differ on MIPS, PowerPC and SPARC) and are cast to
//!   `libc::Ioctl`, which is `c_ulong` on glibc and `c_int` on musl. Reading a field of the
//!   `ifreq` union after the kernel filled it is also unsafe.
//! * **Socket calls `std` lacks** (`socket` + `setsockopt(IPV6_V6ONLY)` before `bind`;
//!   `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` and reading back `SO_RCVBUF`/`SO_SNDBUF`; `recvmmsg`,
//!   `sendmmsg`): they take raw pointers to option values, socket addresses, and arrays of
//!   message headers that point at the caller's buffers. Converting between `SocketAddr` and
//!   `sockaddr_in`/`sockaddr_in6` inside a `sockaddr_storage` is a pointer cast.
//! * **`poll`**: a pointer to our `pollfd` array and its length.
//! * **Signal state** (`sigemptyset`, `sigfillset`, `sigaddset`, `pthread_sigmask`, `signalfd`,
//!   `signal`).
//! * **Child processes** ([`process`]): `posix_spawn` with its attribute and file-action
//!   objects (initialised, then destroyed), and null-terminated arrays of pointers to C strings
//!   for the arguments and the environment; `kill`, `waitpid`.
//! * **`clock_gettime`**, **`getrandom`**, **`geteuid`**: plain calls with an out-pointer or none.
//! * **`localtime_r`**: the local time of a syslog line, into a zeroed `tm` ([`syslog`]).
//! * **`unshare(CLONE_NEWNET)`**: changes the calling thread's network namespace ([`netns`]).
//! * **Privilege separation** ([`privsep`]): `socketpair`, `sendmsg`/`recvmsg` with an
//!   `SCM_RIGHTS` control message (pointer arithmetic over the control buffer with the `CMSG_*`
//!   macros, and taking ownership of the received fd), `fork`,
//!   `setsockopt(SO_BINDTODEVICE)`, `getpwnam_r`, `chroot`, `chdir`, `setgroups`, `setresgid`,
//!   `setresuid`, `prctl(PR_SET_NO_NEW_PRIVS)`, `prctl(PR_CAPBSET_DROP)`.
//! * **The process title** ([`proctitle`]): writing into the argument area the kernel reports,
//!   and `prctl(PR_SET_NAME)`.
//! * **Start-up** ([`start`]): the C `main`'s `argv` read as C strings; `fcntl(F_GETFD)` and
//!   `open` for closed standard fds, `signal(SIGPIPE, SIG_IGN)`.
//! * **The allocator** ([`alloc`]): implementing `GlobalAlloc` is unsafe by definition; large
//!   blocks come from `mmap` and go back with `munmap`, small ones from the C library.
//! * **UDP offload control messages** ([`udp`]): `UDP_SEGMENT` written and `UDP_GRO` read with
//!   the `CMSG_*` macros over each message's control buffer.
//! * **The sandbox** ([`sandbox`]): `prctl(PR_SET_SECCOMP)` with a pointer to the static
//!   filter program (Linux); `pledge` with string literals (OpenBSD).
//! * **The BSDs**: `readv`/`writev` around the TUN's 4-byte family header (two iovecs over live
//!   buffers); the `SIOC*IF*`, `TUNSIFHEAD`, `TUNGIFNAME`, `SIOCSIFNAME` and `SIOCIFDESTROY`
//!   ioctls on `ifreq`s, whose union members are reached by raw pointer; the signal self-pipe
//!   (`pipe2`, `sigaction`, and a handler that calls only `write` and keeps `errno`);
//!   `arc4random_buf`; `setproctitle` with a `"%s"` format.
//! * Tests additionally use `fork`, `waitpid`, `_exit`, `raise` and `kill` to exercise signals
//!   in a process of their own.

pub mod alloc;
pub mod clock;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod poll;
pub mod privsep;
pub mod process;
pub mod proctitle;
pub mod random;
pub mod sandbox;
pub mod signals;
pub mod start;
pub mod syslog;
pub mod tun;
pub mod udp;

mod batch;
// The architectures whose system call numbers the filter knows (every one we ship).
#[cfg(all(
    target_os = "linux",
    any(
        all(target_arch = "x86_64", target_pointer_width = "64"),
        target_arch = "aarch64",
        all(target_arch = "arm", target_endian = "little"),
        target_arch = "mips"
    )
))]
mod seccomp;
mod sockaddr;
#[cfg(test)]
mod testutil;

use std::io;

/// Turns the C convention "`-1` and `errno`" into an `io::Result`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}
