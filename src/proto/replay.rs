//! Sliding-window anti-replay filter, in the shape of RFC 6479 ("IPsec Anti-Replay Algorithm
//! without Bit Shifting").
//!
//! The window is a ring of 64-bit blocks. Advancing it clears whole blocks instead of shifting
//! a bitmap, so the cost per packet is constant. The newest [`WINDOW`] packet numbers are
//! tracked exactly; anything older is refused.
//!
//! Use: [`ReplayWindow::check`] before spending work on a packet (optional, it changes
//! nothing), then [`ReplayWindow::accept`] only *after* the packet authenticated, so a forger
//! cannot move the window.

const BLOCK_BITS: u64 = 64;
/// Blocks in the ring of a session's window; a power of two.
const BLOCKS: usize = 32;
/// Packet numbers behind the newest one that a session's window can still accept. One block
/// is kept spare so that advancing never clears bits still inside the window (RFC 6479,
/// section 2).
pub const WINDOW: u64 = ReplayWindow::<BLOCKS>::WINDOW;

/// A window over `(BLOCKS - 1) * 64` numbers; `BLOCKS` a power of two.
#[derive(Debug, Clone)]
pub struct ReplayWindow<const BLOCKS: usize = 32> {
    /// Highest accepted packet number (meaningless while `empty`).
    top: u64,
    empty: bool,
    ring: [u64; BLOCKS],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Seen before.
    Duplicate,
    /// Older than the window.
    TooOld,
}

impl<const BLOCKS: usize> Default for ReplayWindow<BLOCKS> {
    fn default() -> Self {
        ReplayWindow { top: 0, empty: true, ring: [0; BLOCKS] }
    }
}

impl<const BLOCKS: usize> ReplayWindow<BLOCKS> {
    /// Numbers behind the newest one that can still be accepted.
    pub const WINDOW: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;

    fn slot(pn: u64) -> (usize, u64) {
        (((pn / BLOCK_BITS) as usize) & (BLOCKS - 1), 1u64 << (pn % BLOCK_BITS))
    }

    /// Would `pn` be accepted? Changes nothing.
    pub fn check(&self, pn: u64) -> Result<(), Replay> {
        if self.empty || pn > self.top {
            return Ok(());
        }
        if self.top - pn >= Self::WINDOW {
            return Err(Replay::TooOld);
        }
        let (block, bit) = Self::slot(pn);
        if self.ring[block] & bit != 0 { Err(Replay::Duplicate) } else { Ok(()) }
    }

    /// Records `pn` as received, if it is new. Call only for authenticated packets.
    pub fn accept(&mut self, pn: u64) -> Result<(), Replay> {
        self.check(pn)?;
        if self.empty || pn > self.top {
            let old_block = if self.empty { None } else { Some(self.top / BLOCK_BITS) };
            let new_block = pn / BLOCK_BITS;
            match old_block {
                Some(old) if new_block - old < BLOCKS as u64 => {
                    for b in old + 1..=new_block {
                        self.ring[(b as usize) & (BLOCKS - 1)] = 0;
                    }
                }
                _ => self.ring = [0; BLOCKS],
            }
            self.top = pn;
            self.empty = false;
        }
        let (block, bit) = Self::slot(pn);
        self.ring[block] |= bit;
        Ok(())
    }

    /// The highest packet number accepted so far.
    pub fn highest(&self) -> Option<u64> {
        (!self.empty).then_some(self.top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_number_once() {
        let mut w: ReplayWindow = ReplayWindow::default();
        assert_eq!(w.accept(0), Ok(()));
        assert_eq!(w.accept(0), Err(Replay::Duplicate));
        assert_eq!(w.accept(2), Ok(()));
        assert_eq!(w.accept(1), Ok(()));
        assert_eq!(w.accept(1), Err(Replay::Duplicate));
        assert_eq!(w.highest(), Some(2));
    }

    #[test]
    fn refuses_numbers_older_than_the_window() {
        let mut w: ReplayWindow = ReplayWindow::default();
        w.accept(10_000).unwrap();
        assert_eq!(w.check(10_000 - WINDOW), Err(Replay::TooOld));
        assert_eq!(w.accept(10_000 - WINDOW + 1), Ok(()));
    }

    #[test]
    fn large_jumps_clear_stale_bits() {
        let mut w: ReplayWindow = ReplayWindow::default();
        for pn in 0..200 {
            w.accept(pn).unwrap();
        }
        w.accept(1_000_000).unwrap();
        // Numbers inside the new window that were never seen must be accepted even though
        // their ring slots once held old bits.
        for pn in 1_000_000 - WINDOW + 1..1_000_000 {
            assert_eq!(w.check(pn), Ok(()), "pn {pn}");
        }
    }

    #[test]
    fn matches_a_reference_set_under_random_reordering() {
        // A simple model: a set of everything accepted and the window rule.
        let mut w: ReplayWindow = ReplayWindow::default();
        let mut seen = std::collections::HashSet::new();
        let mut top = 0u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pn = (i + (x % 3000)).saturating_sub(1500);
            let expected = if !seen.is_empty() && pn <= top && top - pn >= WINDOW {
                Err(Replay::TooOld)
            } else if seen.contains(&pn) {
                Err(Replay::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(w.accept(pn), expected, "pn {pn} top {top}");
            if expected.is_ok() {
                seen.insert(pn);
                top = top.max(pn);
            }
        }
    }
}
