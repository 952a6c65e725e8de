//! The shell around the engine: sockets, the TUN device, the poll loop, hooks and logs.

pub mod gro;
pub mod hooks;
pub mod log;
pub mod net;
pub mod offload;
pub mod parent;
pub mod privsep;
mod runner;

pub use runner::{Daemon, Identity, StartError, make_hooks};
