//! `linkemu`: a userspace link emulator for the end-to-end tests of mlvpn.
//!
//! The kernel the tests run on has veth, TUN, tbf and nftables but no netem, so there is no
//! kernel way to add delay or jitter. `linkemu` is a transparent Ethernet forwarder between two
//! interfaces per link, in a namespace of its own between the client's and the server's:
//!
//! ```text
//!  client ns              emulator ns (linkemu)                 server ns
//!  c-link0 ==veth== e-c0 --[up pipe: queue, rate, loss, delay]--> e-s0 ==veth== s-link0
//!                        <-[down pipe: queue, rate, loss, delay]-
//! ```
//!
//! Each direction of each link is a [`pipe::Pipe`] (the impairment model, sans-IO); the
//! [`emu::Emulator`] holds them with a schedule of timed [`command`]s; [`sys`] has every
//! `unsafe` (packet sockets, `ppoll`, signals, the clock); `main.rs` is the poll loop and the
//! control socket. The README has the design, its justification and the measurements.
#![deny(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod command;
pub mod emu;
pub mod pipe;
pub mod rng;
#[allow(unsafe_code)]
pub mod sys;
