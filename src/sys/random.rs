//! Random bytes for keys, nonces' random parts and handshake cookies.

use std::io;
#[cfg(target_os = "linux")]
use std::{fs::File, io::Read};

/// Fills `buf` from the kernel's CSPRNG with `getrandom(2)`.
///
/// Blocks only early in boot, until the kernel's pool is first seeded (the right thing for
/// keys; routers seed within seconds). Interrupted and short reads are retried. Falls back to
/// `/dev/urandom` only when the kernel lacks the syscall (`ENOSYS`, before Linux 3.17), never
/// for other errors.
#[cfg(target_os = "linux")]
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the pointer and length describe `rest`, which is live and exclusively ours.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOSYS) => return File::open("/dev/urandom")?.read_exact(rest),
                _ => return Err(err),
            }
        }
        done += n as usize;
    }
    Ok(())
}

/// The BSDs: `arc4random_buf(3)`, the kernel-seeded generator of their C library, which
/// neither fails nor blocks (and needs no fd, so it works in any sandbox).
#[cfg(not(target_os = "linux"))]
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `buf`, which is live and exclusively ours.
    unsafe { libc::arc4random_buf(buf.as_mut_ptr().cast(), buf.len()) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_fills_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a).unwrap();
        fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn empty_and_large_buffers() {
        fill(&mut []).unwrap();
        let mut big = vec![0u8; 1 << 20];
        fill(&mut big).unwrap();
        // Every byte value should appear in a MiB of random data.
        let mut seen = [false; 256];
        big.iter().for_each(|&b| seen[usize::from(b)] = true);
        assert!(seen.iter().all(|&s| s));
    }
}
