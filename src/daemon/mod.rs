//! The shell around the engine: sockets, the TUN device, the poll loop, hooks and logs.

pub mod gro;
pub mod hooks;
pub mod net;
pub mod offload;
pub mod parent;
pub mod privsep;
mod runner;

pub use runner::{Daemon, Identity, StartError, make_hooks};

/// The engine's time: the system's monotonic clock in the core's unit. The seam where `sys`
/// (which reads clocks) meets `proto` (which takes time only as an argument).
pub fn now() -> crate::proto::Instant {
    crate::proto::Instant::from_micros(crate::sys::clock::monotonic_micros())
}
