//! The command language, shared by `--set` on the command line, script files and the control
//! socket. One command a line; `#` starts a comment. Words are separated by blanks.
//!
//! ```text
//! link <N|all> [up|down] <setting>...   change link N (0-based), one direction or both
//!     delay <duration>                  one-way propagation delay          e.g. 20ms, 1.5ms, 0
//!     jitter <duration>                 uniform +-jitter around the delay  e.g. 2ms
//!     loss <probability>                random loss                        e.g. 1%, 0.5%, 0.01
//!     rate <rate>                       bottleneck rate                    e.g. 40mbit, 512kbit, unlimited
//!     queue <size>|default              bottleneck queue in bytes          e.g. 64kb, 100000, 1mib
//!     blackhole on|off                  drop everything (an outage)
//!     reset                             back to a perfect link (all of the above cleared)
//! show                                  one line per link and direction: settings and counters
//! at <duration> <command>               run <command> that long after the emulator started
//! after <duration> <command>            run <command> that long from now
//! ```
//!
//! `up` is client to server (frames arriving on the link's first interface), `down` the other
//! way. Settings apply left to right, so `link 0 reset delay 10ms` is a clean 10 ms link.
//! Units: durations `ns us ms s`; rates `bit kbit mbit gbit` (powers of 1000, as tc's); sizes
//! `b`, `k`/`kb` and `m`/`mb` (powers of 1000), `kib`/`mib` (powers of 1024); a bare `0` is
//! allowed for all three. `default` as a queue size means 50 ms of the rate (at least
//! 15,000 bytes).

use std::fmt;

use crate::pipe::{LOSS_SCALE, Params};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    All,
    Link(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Up,
    Down,
    Both,
}

impl Dir {
    /// Whether this selects pipe `d` (0 = up, 1 = down).
    pub fn has(self, d: usize) -> bool {
        matches!((self, d), (Dir::Both, _) | (Dir::Up, 0) | (Dir::Down, 1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Reset,
    Delay(u64),
    Jitter(u64),
    Loss(u32),
    Rate(u64),
    Queue(Option<u64>),
    Blackhole(bool),
}

impl Setting {
    pub fn apply(self, p: &mut Params) {
        match self {
            Setting::Reset => *p = Params::default(),
            Setting::Delay(ns) => p.delay_ns = ns,
            Setting::Jitter(ns) => p.jitter_ns = ns,
            Setting::Loss(ppb) => p.loss_ppb = ppb,
            Setting::Rate(bps) => p.rate_bps = bps,
            Setting::Queue(q) => p.queue_bytes = q,
            Setting::Blackhole(on) => p.blackhole = on,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Link {
        target: Target,
        dir: Dir,
        settings: Vec<Setting>,
    },
    Show,
    /// Runs `then` at `ns` after the start (`from_start`) or after now.
    At {
        ns: u64,
        from_start: bool,
        then: Box<Command>,
    },
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Setting::Reset => f.write_str("reset"),
            Setting::Delay(ns) => write!(f, "delay {}", fmt_duration(ns)),
            Setting::Jitter(ns) => write!(f, "jitter {}", fmt_duration(ns)),
            Setting::Loss(ppb) => write!(f, "loss {}", fmt_loss(ppb)),
            Setting::Rate(bps) => write!(f, "rate {}", fmt_rate(bps)),
            Setting::Queue(None) => f.write_str("queue default"),
            Setting::Queue(Some(b)) => write!(f, "queue {b}"),
            Setting::Blackhole(on) => write!(f, "blackhole {}", if on { "on" } else { "off" }),
        }
    }
}

/// The canonical spelling, which parses back to the same command.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Show => f.write_str("show"),
            Command::At { ns, from_start, then } => {
                write!(f, "{} {} {then}", if *from_start { "at" } else { "after" }, fmt_duration(*ns))
            }
            Command::Link { target, dir, settings } => {
                match target {
                    Target::All => f.write_str("link all")?,
                    Target::Link(l) => write!(f, "link {l}")?,
                }
                match dir {
                    Dir::Up => f.write_str(" up")?,
                    Dir::Down => f.write_str(" down")?,
                    Dir::Both => {}
                }
                settings.iter().try_for_each(|s| write!(f, " {s}"))
            }
        }
    }
}

/// What is wrong with a command: always the operator's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// Durations are at most a day; rates at most 1000 gbit; sizes at most 1 GiB.
const MAX_DURATION_NS: u64 = 86_400 * 1_000_000_000;
const MAX_RATE_BPS: u64 = 1_000_000_000_000;
const MAX_SIZE: u64 = 1 << 30;
/// Link numbers are at most this (the command line limits the real count far lower).
const MAX_LINK: usize = 1 << 16;

/// Parses one line. `Ok(None)` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.split('#').next().unwrap_or("");
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() {
        return Ok(None);
    }
    parse_words(&words, true).map(Some)
}

fn parse_words(words: &[&str], allow_at: bool) -> Result<Command, ParseError> {
    match words {
        ["show"] => Ok(Command::Show),
        ["show", ..] => err("'show' takes no arguments"),
        [kw @ ("at" | "after"), dur, rest @ ..] => {
            if !allow_at {
                return err(format!("'{kw}' cannot be nested"));
            }
            if rest.is_empty() {
                return err(format!("'{kw} {dur}' needs a command to run"));
            }
            let ns = parse_duration(dur)?;
            let then = Box::new(parse_words(rest, false)?);
            Ok(Command::At { ns, from_start: *kw == "at", then })
        }
        [kw @ ("at" | "after")] => err(format!("'{kw}' needs a time and a command")),
        ["link", target, rest @ ..] => {
            let target = match *target {
                "all" => Target::All,
                t => match t.parse::<usize>() {
                    Ok(n) if n < MAX_LINK => Target::Link(n),
                    _ => return err(format!("bad link '{t}': a link number from 0, or 'all'")),
                },
            };
            let (dir, mut rest) = match rest {
                ["up", r @ ..] => (Dir::Up, r),
                ["down", r @ ..] => (Dir::Down, r),
                r => (Dir::Both, r),
            };
            let mut settings = Vec::new();
            while let [key, r @ ..] = rest {
                let (s, r) = match (*key, r) {
                    ("reset", r) => (Setting::Reset, r),
                    ("delay", [v, r @ ..]) => (Setting::Delay(parse_duration(v)?), r),
                    ("jitter", [v, r @ ..]) => (Setting::Jitter(parse_duration(v)?), r),
                    ("loss", [v, r @ ..]) => (Setting::Loss(parse_loss(v)?), r),
                    ("rate", [v, r @ ..]) => (Setting::Rate(parse_rate(v)?), r),
                    ("queue", ["default", r @ ..]) => (Setting::Queue(None), r),
                    ("queue", [v, r @ ..]) => (Setting::Queue(Some(parse_size(v)?)), r),
                    ("blackhole", ["on", r @ ..]) => (Setting::Blackhole(true), r),
                    ("blackhole", ["off", r @ ..]) => (Setting::Blackhole(false), r),
                    ("blackhole", [v, ..]) => return err(format!("blackhole takes on or off, not '{v}'")),
                    ("delay" | "jitter" | "loss" | "rate" | "queue" | "blackhole", []) => {
                        return err(format!("'{key}' needs a value"));
                    }
                    (k, _) => {
                        return err(format!(
                            "unknown setting '{k}' (delay, jitter, loss, rate, queue, blackhole, reset)"
                        ));
                    }
                };
                settings.push(s);
                rest = r;
            }
            if settings.is_empty() {
                return err("'link' needs at least one setting");
            }
            Ok(Command::Link { target, dir, settings })
        }
        ["link"] => err("'link' needs a link number or 'all'"),
        [w, ..] => err(format!("unknown command '{w}' (link, show, at, after)")),
        [] => err("empty command"),
    }
}

/// Parses a whole script; errors name the line.
pub fn parse_script(text: &str) -> Result<Vec<Command>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(c)) => out.push(c),
            Ok(None) => {}
            Err(e) => return err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

/// Splits `"1.5ms"` into `("1.5", "ms")`.
fn split_unit(s: &str) -> (&str, &str) {
    let i = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    (&s[..i], &s[i..])
}

/// `num * scale`, `num` a non-negative decimal; digits beyond the unit's resolution are dropped.
fn scaled(num: &str, scale: u64, what: &str, orig: &str) -> Result<u64, ParseError> {
    let bad = || ParseError(format!("bad {what} '{orig}'"));
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
    let mut v = int.checked_mul(u128::from(scale)).ok_or_else(bad)?;
    let mut unit = u128::from(scale);
    for d in frac.bytes() {
        unit /= 10;
        v += u128::from(d - b'0') * unit;
    }
    u64::try_from(v).map_err(|_| bad())
}

pub fn parse_duration(s: &str) -> Result<u64, ParseError> {
    let (num, unit) = split_unit(s);
    let scale = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "" if num == "0" => 1,
        _ => return err(format!("bad duration '{s}': use ns, us, ms or s, e.g. 20ms")),
    };
    let v = scaled(num, scale, "duration", s)?;
    if v > MAX_DURATION_NS {
        return err(format!("duration '{s}' is over a day"));
    }
    Ok(v)
}

/// Bit/s; 0 is unlimited.
pub fn parse_rate(s: &str) -> Result<u64, ParseError> {
    if s == "unlimited" {
        return Ok(0);
    }
    let (num, unit) = split_unit(s);
    let scale = match unit {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        "" if num == "0" => 1,
        _ => return err(format!("bad rate '{s}': use bit, kbit, mbit or gbit, e.g. 40mbit, or unlimited")),
    };
    let v = scaled(num, scale, "rate", s)?;
    if v > MAX_RATE_BPS {
        return err(format!("rate '{s}' is over 1000gbit"));
    }
    Ok(v)
}

/// Bytes.
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    let (num, unit) = split_unit(s);
    let scale = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        _ => return err(format!("bad size '{s}': bytes, or with b, kb, mb, kib or mib")),
    };
    let v = scaled(num, scale, "size", s)?;
    if v > MAX_SIZE {
        return err(format!("size '{s}' is over 1 GiB"));
    }
    Ok(v)
}

/// Parts per billion, from `"1%"` or `"0.01"`.
pub fn parse_loss(s: &str) -> Result<u32, ParseError> {
    let v = match s.strip_suffix('%') {
        Some(pct) => scaled(pct, u64::from(LOSS_SCALE) / 100, "loss", s)?,
        None => scaled(s, u64::from(LOSS_SCALE), "loss", s)?,
    };
    if v > u64::from(LOSS_SCALE) {
        return err(format!("loss '{s}' is over 100%"));
    }
    Ok(v as u32)
}

/// The shortest exact spelling in the largest unit: `20ms`, `1500us`, `0`.
pub fn fmt_duration(ns: u64) -> String {
    match ns {
        0 => "0".into(),
        _ if ns % 1_000_000_000 == 0 => format!("{}s", ns / 1_000_000_000),
        _ if ns % 1_000_000 == 0 => format!("{}ms", ns / 1_000_000),
        _ if ns % 1_000 == 0 => format!("{}us", ns / 1_000),
        _ => format!("{ns}ns"),
    }
}

pub fn fmt_rate(bps: u64) -> String {
    match bps {
        0 => "unlimited".into(),
        _ if bps % 1_000_000_000 == 0 => format!("{}gbit", bps / 1_000_000_000),
        _ if bps % 1_000_000 == 0 => format!("{}mbit", bps / 1_000_000),
        _ if bps % 1_000 == 0 => format!("{}kbit", bps / 1_000),
        _ => format!("{bps}bit"),
    }
}

/// `1%`, `0.5%`, `0%`.
pub fn fmt_loss(ppb: u32) -> String {
    let per = LOSS_SCALE / 100;
    let (int, frac) = (ppb / per, ppb % per);
    if frac == 0 {
        format!("{int}%")
    } else {
        let f = format!("{frac:07}");
        format!("{int}.{}%", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Command {
        parse_line(s).unwrap().unwrap()
    }

    fn parse_err(s: &str) -> String {
        parse_line(s).unwrap_err().0
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("20ms"), Ok(20_000_000));
        assert_eq!(parse_duration("1.5ms"), Ok(1_500_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("250us"), Ok(250_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("20").is_err());
        assert!(parse_duration("1.2.3ms").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1ms").is_err());
        assert!(parse_duration("2days").is_err());
        assert!(parse_duration("99999999999999999999999s").is_err());
        assert_eq!(parse_rate("40mbit"), Ok(40_000_000));
        assert_eq!(parse_rate("1.5gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("512kbit"), Ok(512_000));
        assert_eq!(parse_rate("unlimited"), Ok(0));
        assert!(parse_rate("40mbps").is_err());
        assert_eq!(parse_size("64kb"), Ok(64_000));
        assert_eq!(parse_size("64kib"), Ok(65_536));
        assert_eq!(parse_size("1500"), Ok(1_500));
        assert_eq!(parse_size("1mib"), Ok(1 << 20));
        assert!(parse_size("2gib").is_err());
        assert_eq!(parse_loss("1%"), Ok(10_000_000));
        assert_eq!(parse_loss("0.5%"), Ok(5_000_000));
        assert_eq!(parse_loss("0.01"), Ok(10_000_000));
        assert_eq!(parse_loss("100%"), Ok(LOSS_SCALE));
        assert!(parse_loss("101%").is_err());
        assert!(parse_loss("1.5").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for s in ["0", "20ms", "1500us", "3s", "7ns"] {
            assert_eq!(fmt_duration(parse_duration(s).unwrap()), s);
        }
        for s in ["unlimited", "40mbit", "512kbit", "1gbit", "1500bit"] {
            assert_eq!(fmt_rate(parse_rate(s).unwrap()), s);
        }
        for s in ["0%", "1%", "0.5%", "12.3456789%", "100%"] {
            assert_eq!(fmt_loss(parse_loss(s).unwrap()), s);
        }
    }

    #[test]
    fn link_commands() {
        assert_eq!(
            parse("link 1 up rate 10mbit"),
            Command::Link {
                target: Target::Link(1),
                dir: Dir::Up,
                settings: vec![Setting::Rate(10_000_000)]
            }
        );
        assert_eq!(
            parse("  link all reset delay 5ms queue default blackhole off  # comment"),
            Command::Link {
                target: Target::All,
                dir: Dir::Both,
                settings: vec![
                    Setting::Reset,
                    Setting::Delay(5_000_000),
                    Setting::Queue(None),
                    Setting::Blackhole(false)
                ]
            }
        );
        assert_eq!(
            parse("link 0 down loss 2% jitter 1ms"),
            Command::Link {
                target: Target::Link(0),
                dir: Dir::Down,
                settings: vec![Setting::Loss(20_000_000), Setting::Jitter(1_000_000)]
            }
        );
    }

    #[test]
    fn timed_commands() {
        assert_eq!(
            parse("at 5s link 1 blackhole on"),
            Command::At {
                ns: 5_000_000_000,
                from_start: true,
                then: Box::new(Command::Link {
                    target: Target::Link(1),
                    dir: Dir::Both,
                    settings: vec![Setting::Blackhole(true)]
                })
            }
        );
        assert_eq!(
            parse("after 250ms show"),
            Command::At { ns: 250_000_000, from_start: false, then: Box::new(Command::Show) }
        );
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for s in [
            "show",
            "link all reset delay 5ms queue default blackhole off",
            "link 2 up rate 10mbit loss 0.5% jitter 1500us queue 64000",
            "at 5s link 1 down blackhole on",
            "after 250ms show",
        ] {
            let c = parse(s);
            assert_eq!(c.to_string(), s);
            assert_eq!(parse(&c.to_string()), c);
        }
        assert_eq!(parse("at 1.5s link 0 delay 0.5ms").to_string(), "at 1500ms link 0 delay 500us");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(parse_line("   # nothing"), Ok(None));
        assert!(parse_err("link").contains("link number"));
        assert!(parse_err("link x delay 1ms").contains("bad link"));
        assert!(parse_err("link 0").contains("at least one setting"));
        assert!(parse_err("link 0 up").contains("at least one setting"));
        assert!(parse_err("link 0 delay").contains("needs a value"));
        assert!(parse_err("link 0 speed 1mbit").contains("unknown setting 'speed'"));
        assert!(parse_err("link 0 blackhole yes").contains("on or off"));
        assert!(parse_err("at 1s").contains("needs a command"));
        assert!(parse_err("at 1s after 2s show").contains("cannot be nested"));
        assert!(parse_err("show me").contains("no arguments"));
        assert!(parse_err("frobnicate").contains("unknown command"));
        let e = parse_script("show\n\nlink 0 delay 5\n").unwrap_err().0;
        assert!(e.starts_with("line 3: bad duration '5'"), "{e}");
    }
}
