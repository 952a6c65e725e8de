//! Exactly once: the tunnel sequence numbers already handed to the TUN device.
//!
//! A data packet can reach the receiver twice without any attacker: it is resent over another
//! link when the peer reports it lost ([`super::retransmit`]) and the original was only late,
//! not lost. The per-link replay windows ([`super::replay`]) cannot see this: the two copies
//! travel in different sessions with different packet numbers. And once the reorder buffer has
//! given up on a hole, a packet that fills it late is better delivered (out of order: TCP's
//! SACK handles that) than dropped (a loss TCP must repair, and halve its window for) — but
//! only if it was not delivered already. So every data packet passes this window first, with
//! or without a reorder buffer: a number seen before is a duplicate and dropped; a number too
//! old for the window is dropped as late, since it can no longer be told apart.
//!
//! Tunnel sequence numbers are 32 bits and wrap; they are extended to 64 bits around the
//! newest one seen (as QUIC decodes packet numbers, RFC 9000 appendix A.3) and kept in an
//! RFC 6479 window ([`ReplayWindow`]) of [`WINDOW`] numbers: 8,128, more than 0.8 s of a
//! 100 Mbit/s tunnel of full-size packets, longer than a resent packet can take.

use super::replay::{Replay, ReplayWindow};

/// Blocks of 64 numbers: 1 KiB.
const BLOCKS: usize = 128;
/// Numbers behind the newest one still recognised.
pub const WINDOW: u64 = ReplayWindow::<BLOCKS>::WINDOW;
/// Where the extended numbers start, so that those before the first one seen stay positive.
const ORIGIN: u64 = 1 << 32;

#[derive(Debug, Clone, Default)]
pub struct DeliveredWindow {
    window: ReplayWindow<BLOCKS>,
}

impl DeliveredWindow {
    /// The 64-bit number nearest the newest one seen whose low 32 bits are `seq`.
    fn extend(&self, seq: u32) -> u64 {
        match self.window.highest() {
            None => ORIGIN + u64::from(seq),
            Some(top) => top.wrapping_add_signed(i64::from(seq.wrapping_sub(top as u32) as i32)),
        }
    }

    /// Records `seq` as delivered, or says why it must not be: seen before, or too old to tell.
    pub fn accept(&mut self, seq: u32) -> Result<(), Replay> {
        let n = self.extend(seq);
        self.window.accept(n)
    }

    /// The peer restarted: its numbers start again.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_number_once_across_the_wrap() {
        let mut w = DeliveredWindow::default();
        let start = u32::MAX - 100;
        for k in 0..300u32 {
            assert_eq!(w.accept(start.wrapping_add(k)), Ok(()), "{k}");
        }
        for k in 0..300u32 {
            assert_eq!(w.accept(start.wrapping_add(k)), Err(Replay::Duplicate), "{k}");
        }
    }

    #[test]
    fn late_and_reordered_numbers_are_new_until_too_old() {
        let mut w = DeliveredWindow::default();
        w.accept(10).unwrap();
        w.accept(5).unwrap();
        assert_eq!(w.accept(5), Err(Replay::Duplicate));
        w.accept(10 + WINDOW as u32).unwrap();
        assert_eq!(w.accept(10), Err(Replay::TooOld));
        assert_eq!(w.accept(11), Ok(()));
    }

    #[test]
    fn numbers_before_the_first_one_are_accepted() {
        let mut w = DeliveredWindow::default();
        w.accept(3).unwrap();
        assert_eq!(w.accept(u32::MAX), Ok(()), "one before 0: just behind the first");
        assert_eq!(w.accept(u32::MAX), Err(Replay::Duplicate));
        w.reset();
        assert_eq!(w.accept(u32::MAX), Ok(()));
    }
}
