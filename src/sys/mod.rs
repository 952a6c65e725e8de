//! Every `unsafe` block of the crate, behind small safe types (inventory being written).

pub mod clock;
pub mod random;
pub mod syslog;
