//! The control socket: status and metrics for operators and their dashboards.
//!
//! MLVPN's interface, kept so that existing scripts and monitoring keep working: a UNIX socket
//! (`control_unix_path`) taking one-word commands, and an HTTP listener
//! (`control_bind_host`/`control_bind_port`) answering `GET /status` and `GET /metrics`. Either
//! socket understands both protocols (told apart by the request line, as [`request`] describes).
//!
//! | command | HTTP | answer |
//! |---|---|---|
//! | `status` | `GET /status` | JSON, MLVPN's field names plus ours ([`Status::write_json`]) |
//! | `metrics` | `GET /metrics` | Prometheus text format 0.0.4 ([`Status::write_prometheus`]) |
//! | `table` | `GET /table` | the table `mlvpn status` prints ([`Status::write_table`]) |
//!
//! Errors are JSON too: `{"error": "unknown command"}`.
//!
//! The daemon owns a [`ControlServer`] in its poll table and hands it a [`Status`] snapshot
//! when a client asks; [`query`] is the client side.
//!
//! * [`status`]: the snapshot and its renderings;
//! * [`snapshot`]: a [`Status`] from the engine and the shell's figures;
//! * [`server`]: listeners, clients, bounds;
//! * [`request`]: the request parser (sans-IO, never panics);
//! * [`client`]: `mlvpn status`'s side;
//! * `json`, `prom`: the two small writers;
//! * [`decimal`]: figures with decimals, in integers.

pub mod client;
pub mod decimal;
mod json;
mod prom;
pub mod request;
pub mod server;
pub mod snapshot;
pub mod status;

pub use client::{query, query_http};
pub use decimal::Ratio;
pub use json::error_message;
pub use server::{CLIENT_TIMEOUT, ControlServer, MAX_CLIENTS};
pub use snapshot::{ShellInfo, snapshot, tunnel_snapshot};
pub use status::{
    DuplicationStatus, LinkStatus, PathMtuStatus, PoolStatus, QueueStatus, ReorderStatus, Status,
};
