//! Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` once per family, then its
//! samples, label values escaped.

use super::decimal::Ratio;
use std::fmt::Write as _;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Appends a label value: backslash, double quote and newline escaped (the only escapes the
/// format has); other bytes are UTF-8 as they are.
pub fn write_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes families into a caller's `String`.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut String,
    /// The current family's name (samples of a counter get `_total`).
    name: &'static str,
    kind: Kind,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut String) -> Self {
        Writer { out, name: "", kind: Kind::Gauge }
    }

    /// Starts a family. `name` is without `_total`; `help` must be a single line without
    /// backslashes (they are our own constant strings).
    // Called from some 60 places: not inlined, to keep a router's binary small.
    #[inline(never)]
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) {
        debug_assert!(!help.contains(['\\', '\n']));
        self.name = name;
        self.kind = kind;
        let (suffix, ty) = match kind {
            Kind::Counter => ("_total", "counter"),
            Kind::Gauge => ("", "gauge"),
        };
        let _ = writeln!(self.out, "# HELP {name}{suffix} {help}");
        let _ = writeln!(self.out, "# TYPE {name}{suffix} {ty}");
    }

    /// One sample of the current family with `labels` (name, value) and an integer value.
    #[inline(never)]
    pub fn int(&mut self, labels: &[(&str, &str)], v: u64) {
        self.labels(labels);
        let _ = writeln!(self.out, "{v}");
    }

    /// One sample with a value that may have decimals (at most 6: microseconds in seconds).
    #[inline(never)]
    pub fn ratio(&mut self, labels: &[(&str, &str)], v: Ratio) {
        self.labels(labels);
        v.write_short(self.out, 6);
        self.out.push('\n');
    }

    fn labels(&mut self, labels: &[(&str, &str)]) {
        self.out.push_str(self.name);
        if self.kind == Kind::Counter {
            self.out.push_str("_total");
        }
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                write_label_value(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut o = String::new();
        write_label_value(&mut o, "a\\b\"c\nd é\t");
        assert_eq!(o, "a\\\\b\\\"c\\nd é\t");
    }

    #[test]
    fn values_have_at_most_six_decimals() {
        let v = |x: Ratio| {
            let mut o = String::new();
            let mut w = Writer::new(&mut o);
            w.ratio(&[], x);
            o
        };
        assert_eq!(v(Ratio::new(123_456_789, 10_000_000_000)), " 0.012346\n");
        assert_eq!(v(Ratio::int(2)), " 2\n");
    }

    #[test]
    fn families_have_help_type_and_total() {
        let mut o = String::new();
        let mut w = Writer::new(&mut o);
        w.family("mlvpn_x", Kind::Counter, "Xs.");
        w.int(&[("tunnel", "a\"b"), ("dir", "in")], 3);
        w.family("mlvpn_y_seconds", Kind::Gauge, "Y.");
        w.ratio(&[], Ratio::new(1, 2));
        assert_eq!(
            o,
            "# HELP mlvpn_x_total Xs.\n# TYPE mlvpn_x_total counter\n\
             mlvpn_x_total{tunnel=\"a\\\"b\",dir=\"in\"} 3\n\
             # HELP mlvpn_y_seconds Y.\n# TYPE mlvpn_y_seconds gauge\nmlvpn_y_seconds 0.5\n"
        );
    }
}
