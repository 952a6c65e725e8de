//! The process title `ps` shows: link states at a glance, like MLVPN's (`mlvpn: @dsl !lte`).
//!
//! `ps` reads `/proc/PID/cmdline`, which is the memory between the kernel's `arg_start` and
//! `arg_end`: the original argument strings. We overwrite that memory in place — the classic
//! `setproctitle` technique — within its original length (longer titles are cut), and leave the
//! environment strings after it untouched, so nothing that reads the environment later breaks.
//! The short name in `/proc/PID/comm` (what `top` shows) is set with `prctl(PR_SET_NAME)`.
//!
//! Call [`ProcTitle::init`] after the command line has been parsed: the arguments are gone
//! afterwards.

use std::io;

#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct ProcTitle {
    start: usize,
    len: usize,
}

/// `arg_start` and `arg_end` from `/proc/self/stat` (fields 48 and 49, Linux 3.5 and later).
#[cfg(target_os = "linux")]
fn arg_area() -> io::Result<(usize, usize)> {
    let stat = std::fs::read("/proc/self/stat")?;
    // The command name (field 2) is in parentheses and may contain anything: count from
    // the last ')', which ends field 2. Then each space starts the next field: after the k-th,
    // field k + 2. Digits are summed by hand (a parse through `str` costs a kilobyte on MIPS).
    let after = stat.iter().rposition(|&b| b == b')').map_or(&[][..], |i| &stat[i + 1..]);
    let (mut field, mut area) = (2, [0usize; 2]);
    for &b in after {
        match (b, field) {
            (b' ', _) => field += 1,
            (b'0'..=b'9', 48 | 49) => {
                let n = &mut area[field - 48];
                *n = n.wrapping_mul(10).wrapping_add(usize::from(b - b'0'));
            }
            _ => {}
        }
    }
    if field < 49 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no argument area in /proc/self/stat"));
    }
    Ok((area[0], area[1]))
}

#[cfg(target_os = "linux")]
impl ProcTitle {
    pub fn init() -> io::Result<ProcTitle> {
        let (start, end) = arg_area()?;
        if end <= start {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "empty argument area"));
        }
        Ok(ProcTitle { start, len: end - start })
    }

    /// Shows `title` (cut to fit), and its first 15 bytes as the command name.
    pub fn set(&self, title: &str) {
        let bytes = title.as_bytes();
        let n = bytes.len().min(self.len - 1);
        // SAFETY: [start, start + len) is this process's argument area, as the kernel reports
        // it: mapped, writable (it is on our initial stack) and owned by no Rust object — std
        // copied what it needed when the arguments were read at start (the caller parses the
        // command line before `init`). We write within it and end with NULs.
        unsafe {
            let area = std::slice::from_raw_parts_mut(self.start as *mut u8, self.len);
            area[..n].copy_from_slice(&bytes[..n]);
            area[n..].fill(0);
        }
        let mut comm = [0u8; 16];
        let k = bytes.len().min(15);
        comm[..k].copy_from_slice(&bytes[..k]);
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the
        // pointer, which `comm` provides.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0);
        }
    }
}

/// The BSDs: `setproctitle(3)` does it all ("-" leaves the program's name out, as the title
/// starts with it already).
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub struct ProcTitle;

#[cfg(not(target_os = "linux"))]
impl ProcTitle {
    pub fn init() -> io::Result<ProcTitle> {
        Ok(ProcTitle)
    }

    pub fn set(&self, title: &str) {
        let Ok(title) = std::ffi::CString::new(title) else { return };
        // SAFETY: a "%s" format with its one NUL-terminated string argument, alive for the call.
        unsafe { libc::setproctitle(c"-%s".as_ptr(), title.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_area_is_found() {
        let area = arg_area();
        if !matches!(area, Ok((start, end)) if end > start) && !cfg!(target_arch = "x86_64") {
            // qemu-user's /proc/self/stat has no argument area (the cross tests); a kernel's
            // always has. The daemon then goes without a title (`init` refuses).
            eprintln!("SKIPPED: no argument area in /proc/self/stat ({area:?}: an emulator?)");
            assert!(ProcTitle::init().is_err());
            return;
        }
        let (start, end) = area.unwrap();
        assert!(end > start);
        // It holds our own command line.
        let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
        assert!(cmdline.len() <= end - start + 1);
    }
}
