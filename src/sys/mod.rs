//! Every `unsafe` block of the crate, behind small safe types (inventory being written).

pub mod clock;
pub mod netns;
pub mod poll;
pub mod process;
pub mod random;
pub mod signals;
pub mod syslog;
pub mod tun;
pub mod udp;

mod batch;
mod sockaddr;
#[cfg(test)]
mod testutil;

use std::io;

/// Turns the C convention "`-1` and `errno`" into an `io::Result`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}
