//! Linux: the network process's system-call allow-list, a seccomp-bpf filter.
//!
//! The child of privilege separation reads packets from peers anyone can forge. After it drops
//! to `nobody` in an empty chroot it still could make any system call; this filter leaves it
//! the ones its poll loop makes (measured with `strace -f` over the netns suite): moving
//! packets and messages on the fds it already holds, the control socket, its own memory, the
//! clock, randomness, its process title, and a throwaway UDP socket for the route-MTU hint.
//! Every other call kills the process (`SECCOMP_RET_KILL_PROCESS`): the kernel logs the call
//! (audit record type 1326, `dmesg`), and the parent reports the death and exits, for the
//! init system to restart both.
//!
//! The program (seccomp(2), `Documentation/userspace-api/seccomp_filter.rst`) checks the
//! architecture first (a filter keyed on x86_64's numbers would let an i386 or x32 call through
//! under another number), then the number against the list, then the argument of the four
//! calls that are allowed only in part: `socket` (internet and local families: no raw or
//! netlink sockets), `ioctl` (`FIONBIO` only), `prctl` (`PR_SET_NAME` only), `mprotect`
//! (read and write only: never `PROT_EXEC`).

use std::io;

/// `AUDIT_ARCH_*` of `<linux/audit.h>`: the ELF machine, with 64-bit and little-endian bits.
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xC000_00B7;
#[cfg(all(target_arch = "arm", target_endian = "little"))]
const ARCH: u32 = 0x4000_0028;
#[cfg(all(target_arch = "mips", target_endian = "big"))]
const ARCH: u32 = 0x0000_0008;
#[cfg(all(target_arch = "mips", target_endian = "little"))]
const ARCH: u32 = 0x4000_0008;

/// Calls allowed whatever their arguments, on every architecture. The kernel compares a call
/// with each entry in turn, on every system call: the packet path's calls come first, in the
/// order of how often the child made them (read, then poll, recvmmsg, write, sendmmsg), after
/// [`WORD_SIZED`], which holds `poll` and the 32-bit `recvmmsg`.
const ALWAYS: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_ppoll,
    libc::SYS_recvmmsg,
    libc::SYS_write,
    libc::SYS_sendmmsg,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_shutdown,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_clock_gettime,
    libc::SYS_getrandom,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    // A panic's abort(3): block signals, raise SIGABRT at itself.
    libc::SYS_rt_sigprocmask,
    libc::SYS_tkill,
    libc::SYS_tgkill,
    libc::SYS_rt_sigreturn,
    libc::SYS_restart_syscall,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// The same on 64-bit architectures.
#[cfg(target_arch = "x86_64")]
const WORD_SIZED: &[libc::c_long] = &[libc::SYS_poll, libc::SYS_mmap, libc::SYS_fcntl];
#[cfg(target_arch = "aarch64")]
const WORD_SIZED: &[libc::c_long] = &[libc::SYS_mmap, libc::SYS_fcntl];

/// On 32-bit ones, musl 1.2's calls with 64-bit time (`recvmmsg_time64` 417, `clock_gettime64`
/// 403, `ppoll_time64` 414 in the shared numbering of Linux 5.1, offset by 4000 on MIPS
/// o32) and the 32-bit forms of `mmap` and `fcntl`.
#[cfg(target_pointer_width = "32")]
const WORD_SIZED: &[libc::c_long] = &[
    libc::SYS_poll,
    TIME64_BASE + 417,
    TIME64_BASE + 403,
    TIME64_BASE + 414,
    libc::SYS_mmap2,
    libc::SYS_fcntl64,
];
#[cfg(all(target_pointer_width = "32", target_arch = "mips"))]
const TIME64_BASE: libc::c_long = 4000;
#[cfg(all(target_pointer_width = "32", not(target_arch = "mips")))]
const TIME64_BASE: libc::c_long = 0;

/// Calls allowed only with one argument (its low 32 bits, all the kernel reads of these) among
/// the values given.
const ONLY_WITH: &[(libc::c_long, u32, &[u32])] = &[
    (libc::SYS_socket, 0, &[libc::AF_INET as u32, libc::AF_INET6 as u32, libc::AF_UNIX as u32]),
    (libc::SYS_ioctl, 1, &[libc::FIONBIO as u32]),
    (libc::SYS_prctl, 0, &[libc::PR_SET_NAME as u32]),
    // musl's malloc (mallocng) makes its metadata pages writable; never executable.
    (libc::SYS_mprotect, 2, &[(libc::PROT_READ | libc::PROT_WRITE) as u32]),
];

// Classic BPF (`<linux/filter.h>`) and `struct seccomp_data`'s layout.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
const NR: u32 = 0;
const ARCH_OFFSET: u32 = 4;
/// The low half of 64-bit argument `n`.
const fn arg_low(n: u32) -> u32 {
    16 + 8 * n + if cfg!(target_endian = "big") { 4 } else { 0 }
}
/// x32 calls reach the kernel as x86_64 ones with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const fn op(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Instructions in the program (checked when it is built).
const LEN: usize = {
    let mut n = 4 + (cfg!(target_arch = "x86_64") as usize) * 2 + ALWAYS.len() + WORD_SIZED.len() + 2;
    let mut i = 0;
    while i < ONLY_WITH.len() {
        n += ONLY_WITH[i].2.len() + 3;
        i += 1;
    }
    n
};

/// The filter program, built by the compiler: the binary holds the instructions, not the code
/// that makes them. Its last instruction allows; every "allowed" comparison jumps there.
pub static PROGRAM: [libc::sock_filter; LEN] = program();

const fn program() -> [libc::sock_filter; LEN] {
    let kill = op(RET_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0);
    let mut p = [kill; LEN];
    let allow = LEN - 1;
    p[allow] = op(RET_K, libc::SECCOMP_RET_ALLOW, 0, 0);
    p[0] = op(LD_W_ABS, ARCH_OFFSET, 0, 0);
    p[1] = op(JEQ_K, ARCH, 1, 0);
    // p[2] kills another architecture's calls.
    p[3] = op(LD_W_ABS, NR, 0, 0);
    let mut at = 4;
    if cfg!(target_arch = "x86_64") {
        p[4] = op(JGE_K, X32_SYSCALL_BIT, 0, 1);
        at = 6; // p[5] kills
    }
    // A comparison that jumps to "allow" when equal.
    const fn to_allow(at: usize, k: u32) -> libc::sock_filter {
        let jump = LEN - 1 - at - 1;
        assert!(jump <= 255, "filter jumps fit 8 bits");
        op(JEQ_K, k, jump as u8, 0)
    }
    let mut i = 0;
    while i < WORD_SIZED.len() + ALWAYS.len() {
        let nr = if i < WORD_SIZED.len() { WORD_SIZED[i] } else { ALWAYS[i - WORD_SIZED.len()] };
        p[at] = to_allow(at, nr as u32);
        at += 1;
        i += 1;
    }
    let mut r = 0;
    while r < ONLY_WITH.len() {
        let (nr, arg, values) = ONLY_WITH[r];
        // Not this call: skip the load, the comparisons and the kill.
        p[at] = op(JEQ_K, nr as u32, 0, values.len() as u8 + 2);
        p[at + 1] = op(LD_W_ABS, arg_low(arg), 0, 0);
        at += 2;
        let mut v = 0;
        while v < values.len() {
            p[at] = to_allow(at, values[v]);
            at += 1;
            v += 1;
        }
        at += 1; // a kill
        r += 1;
    }
    assert!(at + 2 == LEN, "LEN counts every instruction");
    p
}

/// Why the filter is not in place.
#[derive(Debug)]
pub enum FilterError {
    /// The kernel refused the filter with `EINVAL`: it has no seccomp filters
    /// (`CONFIG_SECCOMP_FILTER` off), or is qemu-user, which refuses them; a program the
    /// kernel found malformed would say the same (the unit tests run it through an
    /// interpreter on every architecture we ship). The process goes on without.
    Unsupported,
    Os(io::Error),
}

/// Installs the filter on this process for good (it needs `no_new_privs`, which
/// [`super::privsep::drop_privileges`] sets). Call it single-threaded: it covers this thread
/// and the threads it later makes, not existing ones.
pub fn install() -> Result<(), FilterError> {
    let prog = libc::sock_fprog { len: LEN as u16, filter: PROGRAM.as_ptr().cast_mut() };
    // SAFETY: PR_SET_SECCOMP reads `prog` and the instructions it points at (a static) during
    // the call, and copies the program; it writes nothing through the pointer.
    let r = unsafe {
        libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog)
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    Err(if e.raw_os_error() == Some(libc::EINVAL) { FilterError::Unsupported } else { FilterError::Os(e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one call the way the kernel does: 32-bit loads from
    /// `struct seccomp_data` in the machine's byte order.
    fn verdict(prog: &[libc::sock_filter], arch: u32, nr: libc::c_long, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                LD_W_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                JEQ_K | JGE_K => {
                    let hit = if ins.code == JEQ_K { acc == ins.k } else { acc >= ins.k };
                    pc += usize::from(if hit { ins.jt } else { ins.jf });
                }
                RET_K => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    #[test]
    fn the_loop_s_calls_pass_and_others_kill() {
        let p = &PROGRAM[..];
        let call = |nr, args| verdict(p, ARCH, nr, args);
        for &nr in ALWAYS.iter().chain(WORD_SIZED) {
            assert_eq!(call(nr, [0; 6]), ALLOW, "call {nr}");
        }
        for nr in [libc::SYS_execve, libc::SYS_openat, libc::SYS_bind, libc::SYS_kill, libc::SYS_ptrace] {
            assert_eq!(call(nr, [0; 6]), KILL, "call {nr}");
        }
        assert_eq!(call(libc::SYS_read, [0; 6]), ALLOW);
        assert_eq!(verdict(p, ARCH ^ 0x4000_0000, libc::SYS_read, [0; 6]), KILL, "another ABI");
    }

    #[test]
    #[allow(clippy::unnecessary_cast)] // ioctl numbers are u64 with glibc, i32 with musl
    fn arguments_narrow_socket_ioctl_prctl_and_mprotect() {
        let p = &PROGRAM[..];
        let call = |nr, a0: u64, a1: u64| verdict(p, ARCH, nr, [a0, a1, 0, 0, 0, 0]);
        for af in [libc::AF_INET, libc::AF_INET6, libc::AF_UNIX] {
            assert_eq!(call(libc::SYS_socket, af as u64, libc::SOCK_DGRAM as u64), ALLOW);
        }
        assert_eq!(call(libc::SYS_socket, libc::AF_PACKET as u64, 0), KILL);
        assert_eq!(call(libc::SYS_socket, libc::AF_NETLINK as u64, 0), KILL);
        assert_eq!(call(libc::SYS_ioctl, 5, libc::FIONBIO as u64), ALLOW);
        assert_eq!(call(libc::SYS_ioctl, 5, libc::TUNSETIFF as u64), KILL);
        assert_eq!(call(libc::SYS_ioctl, libc::FIONBIO as u64, 0), KILL, "the request is arg 1");
        assert_eq!(call(libc::SYS_prctl, libc::PR_SET_NAME as u64, 0), ALLOW);
        assert_eq!(call(libc::SYS_prctl, libc::PR_SET_SECCOMP as u64, 0), KILL);
        let protect =
            |prot: libc::c_int| verdict(p, ARCH, libc::SYS_mprotect, [0, 4096, prot as u64, 0, 0, 0]);
        assert_eq!(protect(libc::PROT_READ | libc::PROT_WRITE), ALLOW);
        assert_eq!(protect(libc::PROT_READ | libc::PROT_EXEC), KILL);
        assert_eq!(protect(libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC), KILL);
        // The high half of a register is not what the kernel reads for an int argument.
        assert_eq!(call(libc::SYS_prctl, (1 << 32) | libc::PR_SET_NAME as u64, 0), ALLOW);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_calls_are_killed() {
        let p = &PROGRAM[..];
        let nr = (X32_SYSCALL_BIT as libc::c_long) | libc::SYS_read;
        assert_eq!(verdict(p, ARCH, nr, [0; 6]), KILL);
    }

    /// The real kernel: a forked child installs the filter and makes the calls of the poll
    /// loop and exits; another makes one call outside the list and dies of SIGSYS. qemu-user
    /// cannot install filters (the cross tests of MIPS and ARM run under it), so there the
    /// test is ignored, not passed.
    #[cfg_attr(any(target_arch = "mips", target_arch = "arm"), ignore = "qemu-user refuses seccomp filters")]
    #[test]
    fn the_kernel_kills_a_forbidden_call() {
        fn sandboxed(forbidden: bool) -> i32 {
            // SAFETY: plain prctl without pointers; install() needs no_new_privs.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return 10;
            }
            if install().is_err() {
                return 11;
            }
            let _ = super::super::clock::monotonic_micros();
            // SAFETY: plain calls without pointers: the route-MTU hint's throwaway socket.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                if fd < 0 || libc::close(fd) != 0 {
                    return 12;
                }
            }
            if forbidden {
                // SAFETY: umask takes and returns a mode; outside the list, so this kills.
                unsafe { libc::umask(0o077) };
            }
            0
        }
        use super::super::testutil::in_forked_child;
        assert_eq!(in_forked_child(|| sandboxed(false)), 0);
        assert_eq!(in_forked_child(|| sandboxed(true)), 128 + libc::SIGSYS);
    }
}
