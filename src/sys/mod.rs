//! Every `unsafe` block of the crate, behind small safe types (inventory being written).

pub mod clock;
pub mod process;
pub mod random;
pub mod syslog;

#[cfg(test)]
mod testutil;
