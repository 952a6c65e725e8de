//! What can be wrong with a configuration file, and how we say it.
//!
//! Every error is the operator's to fix, so each one names the file, the line and (when there is
//! one) the key, in the `FILE:LINE: KEY: message` shape that editors and `grep -n` users know.
//! We collect every error we can find rather than stopping at the first, so one edit-and-retry
//! cycle fixes them all; [`ConfigErrors`] caps the list so a binary file fed by mistake does not
//! print a million lines.

use std::fmt;

/// At most this many errors are kept; the rest are only counted.
pub const MAX_ERRORS: usize = 20;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given by the caller (not canonicalised: the operator's spelling).
    pub file: String,
    /// 1-based line; 0 means the file as a whole (it cannot be read, it has no `[general]`...).
    pub line: usize,
    /// The key at fault, when the problem is about one key.
    pub key: Option<String>,
    pub kind: ErrorKind,
}

/// What is wrong. Kept small and structured so tests can match on it; [`fmt::Display`] turns it
/// into the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The line is not INI as we read it.
    Syntax(Syntax),
    /// The key means nothing in this section. `hint` says what was probably meant.
    UnknownKey { hint: Option<String> },
    /// The same key twice in one section.
    DuplicateKey { first_line: usize },
    /// The same `[section]` twice. The second one is skipped.
    DuplicateSection { name: String, first_line: usize },
    /// Not a plain decimal integer, or outside `min..=max`. `what` names the quantity ("seconds",
    /// "a port"); `got` is the value as written.
    BadNumber { what: &'static str, min: u64, max: u64, got: String },
    /// Not one of the accepted values; `expected` says which are. `got` is the value as
    /// written (never filled in for the password).
    BadValue { expected: &'static str, got: String },
    /// A required key is absent; the error's line is the section header. `why` says what the
    /// key is needed for.
    MissingKey { section: String, why: &'static str },
    /// No `[general]` section at all.
    MissingGeneral,
    /// No link section: nothing to carry traffic.
    NoLinks,
    /// Both the original's spelling (`*_tolerence`) and the correct one were given.
    BothSpellings { other: &'static str, other_line: usize },
    /// A key given without the key it only makes sense with.
    Needs { other: &'static str },
    /// Two links would bind the same local address and port.
    SameBind { other_link: String, other_line: usize },
    /// The file can be read or written by group or other; `mode` is its permission bits.
    Permissions { mode: u32 },
    /// The operating system could not give us the file.
    Io(String),
    /// A rule of servers with `[site:NAME]` sections; the text says which.
    Sites(&'static str),
    /// More `[site:NAME]` sections than `max_sites`.
    TooManySites { max: u16 },
    /// Two sites share what must be theirs alone: `what` is "password" or an address.
    SiteClash { what: String, other_site: String, other_line: usize },
}

/// Why a line is not INI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// A `key = value` line before any `[section]`.
    OutsideSection,
    /// Neither `[section]`, `key = value` nor a comment.
    NotKeyValue,
    /// `key =` with no key before the `=`.
    EmptyKey,
    /// The key has a character other than an ASCII letter, digit, `_`, `-` or `.`.
    BadKey,
    /// A `[` without its `]`, or text after the `]`.
    BadHeader,
    /// `[]`, or a section name with a character other than a letter, digit, `_`, `-` or `.`.
    BadSectionName,
    /// A value opened with a quote that the line does not close.
    UnterminatedQuote,
    /// Text after the closing quote of a value.
    AfterQuote,
    /// A control character other than tab.
    ControlChar,
    /// The file is not UTF-8.
    NotUtf8,
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Syntax::OutsideSection => "syntax error: `key = value` before any [section]",
            Syntax::NotKeyValue => "syntax error: expected `key = value`, `[section]` or a # comment",
            Syntax::EmptyKey => "syntax error: no key before `=`",
            Syntax::BadKey => "syntax error: a key is letters, digits, `_`, `-` and `.`, without spaces",
            Syntax::BadHeader => "syntax error: a section header is `[name]` alone on its line",
            Syntax::BadSectionName => {
                "syntax error: a section name is letters, digits, `_`, `-`, `.` and `:`"
            }
            Syntax::UnterminatedQuote => {
                "syntax error: the quote opening this value is not closed on this line"
            }
            Syntax::AfterQuote => {
                "syntax error: text after the closing quote (comments go on their own line)"
            }
            Syntax::ControlChar => "syntax error: control character (only tab is allowed)",
            Syntax::NotUtf8 => "syntax error: not UTF-8 text",
        })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Syntax(s) => write!(f, "{s}"),
            ErrorKind::UnknownKey { hint: None } => f.write_str("unknown key"),
            ErrorKind::UnknownKey { hint: Some(h) } => write!(f, "unknown key ({h})"),
            ErrorKind::DuplicateKey { first_line } => {
                write!(f, "duplicate key (first set on line {first_line})")
            }
            ErrorKind::DuplicateSection { name, first_line } => {
                write!(f, "duplicate section [{name}] (first on line {first_line}); this one is ignored")
            }
            ErrorKind::BadNumber { what, min, max, got } => {
                write!(f, "expected {what}, a whole number from {min} to {max}; got {}", Got(got))
            }
            ErrorKind::BadValue { expected, got } => write!(f, "expected {expected}; got {}", Got(got)),
            ErrorKind::MissingKey { section, why } => write!(f, "missing from [{section}]: {why}"),
            ErrorKind::MissingGeneral => {
                f.write_str("no [general] section (it must set at least mode and password)")
            }
            ErrorKind::NoLinks => {
                f.write_str("no link: add one section per WAN link, for example [dsl], after [general]")
            }
            ErrorKind::BothSpellings { other, other_line } => {
                write!(f, "also given as {other} on line {other_line}; keep only one spelling")
            }
            ErrorKind::Needs { other } => write!(f, "only makes sense with {other}, which is missing"),
            ErrorKind::SameBind { other_link, other_line } => write!(
                f,
                "same local address and port as link [{other_link}] (line {other_line}); \
                 each link needs its own socket"
            ),
            ErrorKind::Permissions { mode } => write!(
                f,
                "can be read or written by group or other users (mode {:03o}), but it holds the \
                 password",
                mode & 0o777
            ),
            ErrorKind::Io(e) => write!(f, "cannot read: {e}"),
            ErrorKind::Sites(why) => f.write_str(why),
            ErrorKind::TooManySites { max } => {
                write!(f, "more than max_sites = {max} sites; raise max_sites in [general] to serve more")
            }
            ErrorKind::SiteClash { what, other_site, other_line } => write!(
                f,
                "{what} is also site [site:{other_site}]'s (line {other_line}); each site needs its own"
            ),
        }
    }
}

/// A value echoed back in a message: in backticks, cut short if long.
struct Got<'a>(&'a str);

impl fmt::Display for Got<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 40;
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        match self.0.char_indices().nth(SHOWN) {
            Some((cut, _)) => write!(f, "`{}`...", &self.0[..cut]),
            None => write!(f, "`{}`", self.0),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.kind)?;
        if let ErrorKind::Permissions { .. } = self.kind {
            // The fix, spelled out, with the operator's own path so it can be pasted.
            write!(f, "; run: chmod 600 {}", self.file)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in one file, in line order of discovery, at most [`MAX_ERRORS`] of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
    /// Errors found beyond the cap.
    omitted: usize,
}

impl ConfigErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error, or only counts it once [`MAX_ERRORS`] are kept.
    pub fn push(&mut self, e: ConfigError) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e);
        } else {
            self.omitted += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Errors kept (not counting omitted ones).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Errors found beyond the cap, not kept.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// Sorts by line so the output reads top to bottom whatever pass found each error. Stable,
    /// so errors on one line keep the order they were found in.
    pub(crate) fn sort(&mut self) {
        self.errors.sort_by_key(|e| e.line);
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        let mut all = ConfigErrors::new();
        all.push(e);
        all
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// One error per line; a last line says how many more were found past the cap.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.omitted > 0 {
            let file = self.errors.first().map_or("", |e| e.file.as_str());
            write!(f, "\n{file}: {} more errors not shown", self.omitted)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: usize, key: Option<&str>, kind: ErrorKind) -> ConfigError {
        ConfigError { file: "m.conf".into(), line, key: key.map(String::from), kind }
    }

    #[test]
    fn display_with_and_without_key_and_line() {
        let kind = ErrorKind::BadNumber { what: "seconds", min: 2, max: 86400, got: "60s".into() };
        let e = err(3, Some("timeout"), kind);
        assert_eq!(
            e.to_string(),
            "m.conf:3: timeout: expected seconds, a whole number from 2 to 86400; got `60s`"
        );
        let e = err(7, None, ErrorKind::Syntax(Syntax::NotKeyValue));
        assert_eq!(
            e.to_string(),
            "m.conf:7: syntax error: expected `key = value`, `[section]` or a # comment"
        );
        let e = err(0, None, ErrorKind::MissingGeneral);
        assert!(e.to_string().starts_with("m.conf: no [general]"));
    }

    #[test]
    fn long_or_empty_values_are_echoed_readably() {
        let long = "x".repeat(100);
        let e = err(1, Some("mode"), ErrorKind::BadValue { expected: "client or server", got: long });
        assert!(e.to_string().ends_with(&format!("got `{}`...", "x".repeat(40))));
        let e =
            err(1, Some("mode"), ErrorKind::BadValue { expected: "client or server", got: String::new() });
        assert!(e.to_string().ends_with("got nothing"));
    }

    #[test]
    fn permissions_message_says_how_to_fix() {
        let e = err(0, None, ErrorKind::Permissions { mode: 0o100644 });
        let s = e.to_string();
        assert!(s.contains("mode 644"), "{s}");
        assert!(s.ends_with("run: chmod 600 m.conf"), "{s}");
    }

    #[test]
    fn capped_and_counted() {
        let mut all = ConfigErrors::new();
        for line in 1..=MAX_ERRORS + 5 {
            all.push(err(line, None, ErrorKind::Syntax(Syntax::NotKeyValue)));
        }
        assert_eq!(all.len(), MAX_ERRORS);
        assert_eq!(all.omitted(), 5);
        let text = all.to_string();
        assert_eq!(text.lines().count(), MAX_ERRORS + 1);
        assert!(text.ends_with("m.conf: 5 more errors not shown"));
    }
}
