//! Figures with decimals, in integers: the control documents show milliseconds, seconds,
//! shares and rates with decimals, but a router's CPU has no floating point, and software
//! floats with their formatting would cost some 20 KB of its flash. A [`Ratio`] stays exact
//! until it is printed, rounded half to even (the way Rust formats a float that lies exactly
//! halfway).

use std::fmt::Write as _;

/// The non-negative number `num / den`; a zero `den` counts as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub num: u64,
    pub den: u64,
}

impl Default for Ratio {
    fn default() -> Self {
        Ratio::int(0)
    }
}

impl Ratio {
    pub const fn new(num: u64, den: u64) -> Self {
        Ratio { num, den }
    }

    pub const fn int(v: u64) -> Self {
        Ratio { num: v, den: 1 }
    }

    /// Rounded to `decimals` places (at most 18): the integer part, and the fraction as an
    /// integer of `decimals` digits (`12.05` at 2 places is `(12, 5)`).
    pub fn round(self, decimals: u32) -> (u64, u64) {
        let (mut num, mut den) = (self.num, self.den);
        if den == 0 {
            return (0, 0);
        }
        // Long division, one digit at a time: `rem * 10` and `rem * 2` stay below 2^64 while
        // `den` is below 2^64 / 20. A larger `den` (no figure of ours) loses its lowest bits.
        while den > u64::MAX / 20 {
            num >>= 1;
            den >>= 1;
        }
        let int = num / den;
        let mut rem = num % den;
        let mut frac = 0;
        for _ in 0..decimals {
            rem *= 10;
            frac = frac * 10 + rem / den;
            rem %= den;
        }
        let odd = if decimals == 0 { int % 2 == 1 } else { frac % 2 == 1 };
        if 2 * rem > den || (2 * rem == den && odd) {
            frac += 1;
            if frac == 10u64.pow(decimals) {
                return (int.saturating_add(1), 0);
            }
        }
        (int, frac)
    }

    /// Appends the value with at most `decimals` places and no trailing zeros: `12.5`, `3`,
    /// `0.001`.
    pub fn write_short(self, out: &mut String, decimals: u32) {
        let (int, mut frac) = self.round(decimals);
        let mut places = decimals as usize;
        while places > 0 && frac % 10 == 0 {
            frac /= 10;
            places -= 1;
        }
        let _ = if places == 0 { write!(out, "{int}") } else { write!(out, "{int}.{frac:0places$}") };
    }

    /// The value with exactly `decimals` places: `12.50`.
    pub fn fixed(self, decimals: u32) -> String {
        let (int, frac) = self.round(decimals);
        let places = decimals as usize;
        if places == 0 { int.to_string() } else { format!("{int}.{frac:0places$}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(num: u64, den: u64, decimals: u32) -> String {
        let mut o = String::new();
        Ratio::new(num, den).write_short(&mut o, decimals);
        o
    }

    #[test]
    fn short_form_drops_trailing_zeros() {
        assert_eq!(short(25, 2, 3), "12.5");
        assert_eq!(short(3, 1, 3), "3");
        assert_eq!(short(0, 1, 3), "0");
        assert_eq!(short(123_456, 10_000, 3), "12.346");
        assert_eq!(short(1, 10_000, 3), "0");
        assert_eq!(short(12, 10_000, 3), "0.001");
        assert_eq!(short(5, 8, 4), "0.625");
        assert_eq!(short(2, 3, 6), "0.666667");
        assert_eq!(short(u64::MAX, 1, 6), "18446744073709551615");
        assert_eq!(short(u64::MAX, 1_000, 3), "18446744073709551.615");
        assert_eq!(short(7, 0, 3), "0");
    }

    #[test]
    fn fixed_form_keeps_its_places() {
        assert_eq!(Ratio::new(80_000, 1_000).fixed(1), "80.0");
        assert_eq!(Ratio::new(12_346, 1_000).fixed(1), "12.3");
        assert_eq!(Ratio::new(99_996, 100).fixed(1), "1000.0");
        assert_eq!(Ratio::new(5, 2).fixed(0), "2");
        assert_eq!(Ratio::new(7, 2).fixed(0), "4");
    }

    #[test]
    fn exact_halves_round_to_even_like_float_formatting() {
        for (num, den, decimals) in
            [(12_250, 1_000, 1), (12_750, 1_000, 1), (1, 8, 2), (3, 8, 2), (5, 2, 0), (1, 32, 4)]
        {
            let float = format!("{:.*}", decimals as usize, num as f64 / den as f64);
            assert_eq!(Ratio::new(num, den).fixed(decimals), float, "{num}/{den}");
        }
    }

    #[test]
    fn matches_float_formatting_away_from_halves() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (num, den) = (x % 10_000_000, x % 9_973 + 1);
            for decimals in [0, 1, 3, 4, 6] {
                let f = num as f64 / den as f64;
                let scaled = f * 10f64.powi(decimals as i32);
                if (scaled - scaled.floor() - 0.5).abs() < 1e-6 {
                    continue; // too close to a half for the float to be trusted
                }
                assert_eq!(Ratio::new(num, den).fixed(decimals), format!("{f:.*}", decimals as usize));
            }
        }
    }

    #[test]
    fn huge_denominators_do_not_overflow() {
        assert_eq!(Ratio::new(u64::MAX, u64::MAX).fixed(3), "1.000");
        assert_eq!(Ratio::new(u64::MAX / 2, u64::MAX).fixed(2), "0.50");
    }
}
