//! Logging: one line per event that matters, to stderr (`--debug`) or syslog.
//!
//! MLVPN's verbosity: info and above by default, `-v` adds debug messages, `-q` keeps errors
//! only, and `-D AREA` adds debug messages of one area. Nothing here runs per packet; repeated
//! failures (a dead WAN refusing every send) go through a [`Throttle`].

use crate::cli::Verbosity;
use crate::proto::{Duration, Instant};
use crate::sys::syslog;
use std::fmt;
use std::io::Write as _;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    fn priority(self) -> syslog::Priority {
        match self {
            Level::Error => syslog::Priority::Err,
            Level::Warn => syslog::Priority::Warning,
            Level::Info => syslog::Priority::Info,
            Level::Debug => syslog::Priority::Debug,
        }
    }
}

#[derive(Debug)]
struct Logger {
    to_stderr: bool,
    verbosity: Verbosity,
    areas: Vec<String>,
    name: String,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets up logging once, at start. Before this (and in tests), messages go to stderr.
pub fn init(name: &str, to_stderr: bool, verbosity: Verbosity, areas: &[String]) {
    if !to_stderr && syslog::open(name).is_err() {
        eprintln!("{name}: cannot open syslog; logging to stderr");
    }
    let syslog_ok = !to_stderr;
    let _ = LOGGER.set(Logger {
        to_stderr: to_stderr || !syslog_ok,
        verbosity,
        areas: areas.to_vec(),
        name: name.to_string(),
    });
}

/// Whether a message of `level` (in debug `area`) would be written.
pub fn enabled(level: Level, area: &str) -> bool {
    let Some(l) = LOGGER.get() else { return level <= Level::Info };
    match l.verbosity {
        Verbosity::Quiet => level == Level::Error,
        Verbosity::Normal => level <= Level::Info || l.areas.iter().any(|a| a == area),
        Verbosity::Verbose => true,
    }
}

/// Writes one message. Use the macros.
pub fn write(level: Level, area: &str, args: fmt::Arguments<'_>) {
    if !enabled(level, area) {
        return;
    }
    match LOGGER.get() {
        Some(l) if !l.to_stderr => syslog::log(level.priority(), &args.to_string()),
        l => {
            let name = l.map_or("mlvpn", |l| l.name.as_str());
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{} {name}[{}]: {}: {args}", utc_now(), std::process::id(), level.label());
        }
    }
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, "", format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, "", format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, "", format_args!($($t)*)) } }
/// `log_debug!("area", "format", args...)`
#[macro_export]
macro_rules! log_debug { ($area:expr, $($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, $area, format_args!($($t)*)) } }

/// Wall-clock time as `2026-11-26T03:52:32.123Z`, for stderr lines.
fn utc_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (the
/// well-known algorithm of Howard Hinnant's "chrono-compatible low-level date algorithms").
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Lets a repeated message through at most once per `period`, and says how many were held
/// back in between.
#[derive(Debug, Clone)]
pub struct Throttle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(period: Duration) -> Self {
        Throttle { period, last: None, suppressed: 0 }
    }

    /// `Some(n)` if the message may be written now, `n` being how many were held back since
    /// the last one; `None` to stay quiet.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now - t < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn throttle_lets_one_through_per_period_and_counts_the_rest() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let s = |v: u64| Instant::from_micros(v * 1_000_000);
        assert_eq!(t.allow(s(0)), Some(0));
        assert_eq!(t.allow(s(1)), None);
        assert_eq!(t.allow(s(9)), None);
        assert_eq!(t.allow(s(10)), Some(2));
        assert_eq!(t.allow(s(11)), None);
    }
}
