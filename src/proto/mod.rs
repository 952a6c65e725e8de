//! The sans-IO protocol core. No sockets, no files, no clock, no `unsafe`: see [`Tunnel`] for
//! the call order, and [`wire`] for the protocol.

pub mod capacity;
pub mod crypto;
pub mod delivered;
pub mod handshake;
pub mod kdf;
pub mod link;
pub mod loss;
pub mod owd;
pub mod pmtu;
pub mod reorder;
pub mod replay;
pub mod retransmit;
pub mod route;
pub mod rtt;
pub mod send;
pub mod session;
pub mod sites;
pub mod sorted;
pub mod sparse;
pub mod time;
pub mod timer;
pub mod tunnel;
pub mod wire;

pub use link::{DownReason, LinkConfig, LinkState};
// The sending side's modules keep their short paths (`proto::fq`, ...) for tests and tools.
pub use send::{arrival, duplicate, flow, fq, sched};
pub use time::{Duration, Instant};
pub use tunnel::{
    Config, DropReason, Event, Mode, Received, ReconfigureError, Reconfigured, SchedulerKind, Transmit,
    Tunnel,
};
