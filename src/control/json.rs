//! Just enough JSON: a pretty-printing writer (RFC 8259 strings, numbers from integers) and a
//! reader for the one document a client must understand, `{"error": "..."}`.

use super::decimal::Ratio;
use std::fmt::Write as _;

/// Appends `s` as a JSON string literal: quotes, backslashes and control characters escaped,
/// everything else (non-ASCII included) passed through as UTF-8. U+2028 and U+2029 are escaped
/// too, so the document is also valid JavaScript.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A pretty-printing JSON writer that places commas, newlines and indentation. Keys and values
/// are written in order; `open_*`/`close_*` nest.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut String,
    depth: usize,
    /// Nothing written yet at the current depth (no comma needed).
    empty: bool,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut String) -> Self {
        Writer { out, depth: 0, empty: true }
    }

    fn separate(&mut self) {
        if self.depth == 0 {
            return;
        }
        if !self.empty {
            self.out.push(',');
        }
        self.out.push('\n');
        self.indent();
        self.empty = false;
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, c: char) {
        self.out.push(c);
        self.depth += 1;
        self.empty = true;
    }

    fn close(&mut self, c: char) {
        self.depth -= 1;
        if !self.empty {
            self.out.push('\n');
            self.indent();
        }
        self.out.push(c);
        self.empty = false;
    }

    /// Starts the next member of an object (or element of an array, with `None`).
    // The methods below that write one value are called from some 60 places: one copy of
    // each rather than one per call keeps 1 KB off a router's binary.
    #[inline(never)]
    fn member(&mut self, key: Option<&str>) {
        self.separate();
        if let Some(k) = key {
            write_string(self.out, k);
            self.out.push_str(": ");
        }
    }

    pub fn open_object(&mut self, key: Option<&str>) {
        self.member(key);
        self.open('{');
    }

    pub fn close_object(&mut self) {
        self.close('}');
    }

    pub fn open_array(&mut self, key: Option<&str>) {
        self.member(key);
        self.open('[');
    }

    pub fn close_array(&mut self) {
        self.close(']');
    }

    #[inline(never)]
    pub fn string(&mut self, key: &str, v: &str) {
        self.member(Some(key));
        write_string(self.out, v);
    }

    #[inline(never)]
    pub fn u64(&mut self, key: &str, v: u64) {
        self.member(Some(key));
        let _ = write!(self.out, "{v}");
    }

    pub fn opt_u64(&mut self, key: &str, v: Option<u64>) {
        match v {
            Some(v) => self.u64(key, v),
            None => self.null(key),
        }
    }

    /// A number with at most `decimals` places, trailing zeros left out.
    #[inline(never)]
    pub fn ratio(&mut self, key: &str, v: Ratio, decimals: u32) {
        self.member(Some(key));
        v.write_short(self.out, decimals);
    }

    pub fn opt_ratio(&mut self, key: &str, v: Option<Ratio>, decimals: u32) {
        match v {
            Some(v) => self.ratio(key, v, decimals),
            None => self.null(key),
        }
    }

    pub fn null(&mut self, key: &str) {
        self.member(Some(key));
        self.out.push_str("null");
    }

    /// Ends the document with a newline.
    pub fn finish(self) {
        self.out.push('\n');
    }
}

/// The document `{"error": MESSAGE}` and a newline.
pub fn error_document(out: &mut String, message: &str) {
    let mut w = Writer::new(out);
    w.open_object(None);
    w.string("error", message);
    w.close_object();
    w.finish();
}

/// If `doc` is an error document `{"error": "..."}` (as the server sends), its message.
/// Anything else, including garbage, is `None`; never panics.
pub fn error_message(doc: &str) -> Option<String> {
    let mut p = Reader { s: doc.as_bytes(), i: 0 };
    p.ws();
    p.eat(b'{')?;
    p.ws();
    if p.string()? != "error" {
        return None;
    }
    p.ws();
    p.eat(b':')?;
    p.ws();
    let message = p.string()?;
    p.ws();
    p.eat(b'}')?;
    p.ws();
    (p.i == p.s.len()).then_some(message)
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.s.get(self.i) == Some(&b)).then(|| self.i += 1)
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let h = std::str::from_utf8(h).ok()?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    /// A string literal, unescaped. Lone surrogates are rejected.
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.i)?;
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                self.eat(b'\\')?;
                                self.eat(b'u')?;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..0x20 => return None,
                _ => out.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        let mut o = String::new();
        write_string(&mut o, v);
        o
    }

    #[test]
    fn strings_are_escaped_per_rfc_8259() {
        assert_eq!(s("plain"), r#""plain""#);
        assert_eq!(s(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(s("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(s("\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}"), "\"\\u0000\\u0001\\b\\f\\u001f\u{7f}\"");
        assert_eq!(s("é ü 4G/5G 📶"), "\"é ü 4G/5G 📶\"");
        assert_eq!(s("a\u{2028}b\u{2029}"), r#""a\u2028b\u2029""#);
        assert_eq!(s("/"), r#""/""#);
        assert_eq!(s(""), r#""""#);
    }

    #[test]
    fn writer_places_commas_and_indentation() {
        let mut o = String::new();
        let mut w = Writer::new(&mut o);
        w.open_object(None);
        w.string("a", "x");
        w.open_array(Some("list"));
        w.open_object(None);
        w.u64("n", 1);
        w.ratio("r", Ratio::new(5, 2), 3);
        w.opt_ratio("o", None, 3);
        w.close_object();
        w.open_object(None);
        w.close_object();
        w.close_array();
        w.open_array(Some("empty"));
        w.close_array();
        w.null("z");
        w.close_object();
        w.finish();
        assert_eq!(
            o,
            "{\n  \"a\": \"x\",\n  \"list\": [\n    {\n      \"n\": 1,\n      \"r\": 2.5,\n      \"o\": null\n    },\n    {}\n  ],\n  \"empty\": [],\n  \"z\": null\n}\n"
        );
    }

    #[test]
    fn error_documents_round_trip() {
        for m in ["unknown command", "", "quote \" backslash \\ nl \n ctl \u{1} é 📶 \u{2028}"] {
            let mut o = String::new();
            error_document(&mut o, m);
            assert_eq!(error_message(&o).as_deref(), Some(m), "{o}");
        }
        assert_eq!(error_message(r#"{"error":"a\/b\u00e9\ud83d\udcf6"}"#).as_deref(), Some("a/bé📶"));
    }

    #[test]
    fn error_reader_never_panics_on_garbage() {
        for doc in [
            "",
            "{",
            "{\"error\"",
            "{\"error\":",
            "{\"error\": \"x",
            "{\"error\": \"x\\",
            "{\"error\": \"x\\u12\"}",
            "{\"error\": \"\\ud800\"}",
            "{\"error\": \"\\ud800\\u0041\"}",
            "{\"error\": \"a\nb\"}",
            "{\"error\": 3}",
            "{\"name\": \"x\"}",
            "{\"error\": \"x\"} trailing",
            "\u{0}\u{ff}",
        ] {
            assert_eq!(error_message(doc), None, "{doc:?}");
        }
        // Every prefix and a byte-flip of a valid document.
        let mut o = String::new();
        error_document(&mut o, "é \" \\ \u{1}");
        let b = o.as_bytes();
        for i in 0..b.len() {
            let _ = error_message(&String::from_utf8_lossy(&b[..i]));
            let mut c = b.to_vec();
            c[i] ^= 0x55;
            let _ = error_message(&String::from_utf8_lossy(&c));
        }
    }
}
