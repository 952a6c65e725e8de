//! # mlvpn — a multi-link VPN
//!
//! mlvpn bonds several WAN links (DSL, fibre, 4G/5G, satellite) into one encrypted tunnel. A
//! client (usually an OpenWrt router) reads IP packets from a TUN device and spreads them over one
//! UDP "link" per WAN to an aggregation server, which puts them back in order and forwards them.
//!
//! ## Architecture
//!
//! * [`proto`] is a *sans-IO* protocol core: wire format, crypto, link monitoring, scheduling,
//!   reordering and timers. It never touches a socket, a file or a clock. Time is passed in;
//!   `handle_*` methods feed it; `poll_*` methods drain what it wants sent, delivered or
//!   reported; `poll_timeout` says when to call it again. See [`proto::Tunnel`] for the call
//!   order. Because it is deterministic, a network simulator (`tests/sim`) drives two engines
//!   through lossy, jittery, rate-limited links in plain `cargo test`.
//! * Everything with side effects — sockets, the TUN device, `poll(2)`, the clock, randomness,
//!   signals, child processes — lives in a thin shell around it, and every `unsafe` block of the
//!   crate lives in `sys`. [`log`] is the one home of logging, for the shell and the control
//!   socket alike.
#![deny(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod log;
pub mod proto;
#[allow(unsafe_code)]
pub mod sys;
