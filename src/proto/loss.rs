//! Packet loss over a sliding window of receiver reports.
//!
//! The receiver of a link reports, in every keepalive, the highest packet number it has seen
//! and how many packets it has received in total. Between two reports the sender therefore
//! knows how many packet numbers the peer's view advanced (`sent`) and how many of those arrived
//! (`received`); loss is `1 - sum(received) / sum(sent)` over the last [`REPORTS`] reports.
//! Counting from the receiver's highest packet number rather than from our own send counter
//! keeps packets still in flight out of the figure. (The C original counted keepalives that
//! merely had not come back yet, and its loss figure was wrong as a result: MLVPN#61, PR#123.)

/// Reports in the window: enough that a lossy link probed once per report gathers the packets
/// it is judged on ([`super::link::LOSSY_EXIT_PACKETS`]).
pub const REPORTS: usize = 32;
/// Below this many packets in the window the figure says nothing.
pub const MIN_PACKETS: u32 = 8;

#[derive(Debug, Clone, Default)]
pub struct LossWindow {
    /// (highest packet number, cumulative packets received) of the previous report.
    last: Option<(u64, u32)>,
    /// (sent, received) per report.
    ring: [(u32, u32); REPORTS],
    next: usize,
}

impl LossWindow {
    /// Feeds one report. Reports that do not advance (reordered or repeated) are ignored.
    pub fn on_report(&mut self, highest: u64, received_total: u32) {
        if let Some((h, r)) = self.last {
            if highest <= h {
                return;
            }
            let sent = (highest - h).min(u32::MAX as u64) as u32;
            let received = received_total.wrapping_sub(r).min(sent);
            self.ring[self.next] = (sent, received);
            self.next = (self.next + 1) % REPORTS;
        }
        self.last = Some((highest, received_total));
    }

    /// The highest packet number the peer has reported receiving (reports only advance it).
    pub fn highest(&self) -> Option<u64> {
        self.last.map(|(h, _)| h)
    }

    /// Forgets the window (not the last report): a fresh measurement starts.
    pub fn clear(&mut self) {
        self.ring = Default::default();
    }

    /// Forgets everything, for a new session whose counters restart.
    pub fn reset(&mut self) {
        *self = LossWindow::default();
    }

    /// Packets the window covers.
    pub fn packets(&self) -> u32 {
        self.ring.iter().map(|&(s, _)| s).fold(0u32, u32::saturating_add)
    }

    /// Loss in percent, or `None` while the window covers fewer than [`MIN_PACKETS`].
    pub fn percent(&self) -> Option<u8> {
        let sent: u64 = self.ring.iter().map(|&(s, _)| s as u64).sum();
        let received: u64 = self.ring.iter().map(|&(_, r)| r as u64).sum();
        if sent < MIN_PACKETS as u64 {
            return None;
        }
        Some(((sent - received) * 100 / sent) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_figure_until_enough_packets() {
        let mut w = LossWindow::default();
        w.on_report(10, 10);
        assert_eq!(w.percent(), None);
        w.on_report(13, 13);
        assert_eq!(w.percent(), None);
        w.on_report(30, 30);
        assert_eq!(w.percent(), Some(0));
    }

    #[test]
    fn counts_loss_between_reports() {
        let mut w = LossWindow::default();
        w.on_report(0, 1);
        w.on_report(100, 91); // 100 sent, 90 arrived
        assert_eq!(w.percent(), Some(10));
        w.on_report(200, 191); // 100 more, all arrived
        assert_eq!(w.percent(), Some(5));
    }

    #[test]
    fn old_reports_leave_the_window() {
        let mut w = LossWindow::default();
        w.on_report(0, 0);
        w.on_report(100, 50);
        for k in 1..=REPORTS as u64 {
            w.on_report(100 + k * 10, 50 + k as u32 * 10);
        }
        assert_eq!(w.percent(), Some(0));
    }

    #[test]
    fn stale_reports_and_counter_wrap_are_harmless() {
        let mut w = LossWindow::default();
        w.on_report(50, u32::MAX - 5);
        w.on_report(40, 0); // reordered: ignored
        w.on_report(70, 14); // 20 sent, 20 received across the wrap
        assert_eq!(w.percent(), Some(0));
        assert_eq!(w.packets(), 20);
    }
}
