//! Round-trip time estimator with the arithmetic of RFC 6298, section 2, in integer
//! microseconds.
//!
//! `SRTT` and `RTTVAR` use the RFC's gains (alpha = 1/8, beta = 1/4). The RFC's 1-second floor
//! on the RTO is a TCP retransmission rule and does not apply to a link monitor; callers choose
//! their own floors (see [`super::link`]).

use super::time::Duration;

/// Clock granularity `G` of RFC 6298: our timestamps are microseconds, we say 1 ms to stay clear
/// of scheduling noise in the shells that feed us.
const GRANULARITY: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy, Default)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    latest: Duration,
    min: Option<Duration>,
}

impl RttEstimator {
    /// Feeds one measured round trip.
    pub fn on_sample(&mut self, r: Duration) {
        self.latest = r;
        self.min = Some(self.min.map_or(r, |m| m.min(r)));
        match self.srtt {
            None => {
                // RFC 6298 (2.2): SRTT <- R, RTTVAR <- R/2.
                self.srtt = Some(r);
                self.rttvar = r.div(2);
            }
            Some(srtt) => {
                // RFC 6298 (2.3): RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R|, then
                // SRTT <- 7/8 SRTT + 1/8 R.
                let err = if srtt > r { srtt - r } else { r - srtt };
                self.rttvar = Duration::from_micros((3 * self.rttvar.as_micros() + err.as_micros()) / 4);
                self.srtt = Some(Duration::from_micros((7 * srtt.as_micros() + r.as_micros()) / 8));
            }
        }
    }

    /// Whether any sample has been seen.
    pub fn has_samples(&self) -> bool {
        self.srtt.is_some()
    }

    /// Smoothed RTT, or `default` before the first sample.
    pub fn srtt_or(&self, default: Duration) -> Duration {
        self.srtt.unwrap_or(default)
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    pub fn latest(&self) -> Duration {
        self.latest
    }

    pub fn min(&self) -> Option<Duration> {
        self.min
    }

    /// `SRTT + max(G, 4 * RTTVAR)` (RFC 6298 (2.3)), or `default` before the first sample.
    pub fn rto_or(&self, default: Duration) -> Duration {
        match self.srtt {
            Some(s) => s + self.rttvar.saturating_mul(4).max(GRANULARITY),
            None => default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut e = RttEstimator::default();
        assert_eq!(e.rto_or(ms(999)), ms(999));
        e.on_sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.rto_or(ms(0)), ms(300));
    }

    #[test]
    fn follows_rfc6298_gains() {
        let mut e = RttEstimator::default();
        e.on_sample(ms(100));
        e.on_sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*100 = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.min(), Some(ms(100)));
        assert_eq!(e.latest(), ms(200));
    }

    #[test]
    fn converges_and_variance_decays_on_a_steady_path() {
        let mut e = RttEstimator::default();
        e.on_sample(ms(500));
        for _ in 0..100 {
            e.on_sample(ms(40));
        }
        let srtt = e.srtt().unwrap();
        assert!(srtt >= ms(40) && srtt < ms(41), "{srtt:?}");
        assert!(e.rttvar() < ms(1));
        assert_eq!(e.rto_or(ms(0)), srtt + ms(1), "granularity floor");
    }
}
