//! The sending side: what a packet from the TUN device is ([`flow`]), which link carries it
//! ([`sched`], [`arrival`]), where it waits when every link is full ([`fq`]), and when it goes
//! twice ([`duplicate`]). [`super::tunnel`] ties them to the rest.

pub mod arrival;
pub mod duplicate;
pub mod flow;
pub mod fq;
pub mod sched;
