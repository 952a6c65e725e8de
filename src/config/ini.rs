//! The INI tokenizer: text in, sections of `key = value` entries with their line numbers out.
//!
//! Our own rather than a crate because every entry must keep its line number (errors name
//! file, line and key), and because we want MLVPN's dialect exactly, no more:
//!
//! * `[name]` alone on its line opens a section; names are ASCII letters, digits, `_`, `-`, `.`
//!   (they end up as hook arguments and status labels, so nothing that needs quoting);
//! * `key = value`; the key has the same alphabet; whitespace around both is trimmed;
//! * a value may be quoted with `"..."` or `'...'`: the quotes go and the content is kept
//!   verbatim, `#`, `;`, `=` and spaces included. There are no escapes; to put a `"` in a value,
//!   quote it with `'` and vice versa. Unquoted values are kept verbatim after trimming (so
//!   `a # b` is the value `a # b`: there are no trailing comments);
//! * lines whose first non-blank character is `#` or `;` are comments; blank lines are skipped;
//! * `\n` or `\r\n` line ends, a final line without one, and a leading UTF-8 BOM are accepted.
//!
//! Anything else is a syntax error on its line. Control characters other than tab are refused
//! too: values end up in paths, argv and environment, where a NUL or an escape sequence is
//! never what the operator meant.
//!
//! The tokenizer does not know which keys or sections exist; the builder decides that.

use super::error::Syntax;

/// One `[section]` and the well-formed entries under it, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section<'a> {
    pub name: &'a str,
    /// Line of the `[name]` header.
    pub line: usize,
    pub entries: Vec<Entry<'a>>,
}

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub key: &'a str,
    /// Unquoted and trimmed; borrowed from the text.
    pub value: &'a str,
    pub line: usize,
}

/// Where entries go while reading.
enum Current {
    /// Before the first header: entries are errors.
    Nowhere,
    /// Into `sections[i]`.
    Section(usize),
    /// After a malformed header: entries are dropped silently, since the header's error
    /// already explains them and one error per line of a broken section would bury it.
    Broken,
}

/// Splits `text` into sections. Returns the well-formed sections and, separately, every syntax
/// error as `(line, what)`; the caller should not trust the sections if there are errors.
pub(crate) fn tokenize(text: &str) -> (Vec<Section<'_>>, Vec<(usize, Syntax)>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections: Vec<Section<'_>> = Vec::new();
    let mut errors = Vec::new();
    let mut current = Current::Nowhere;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let trimmed = raw.strip_suffix('\r').unwrap_or(raw).trim_ascii();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.chars().any(|c| c.is_control() && c != '\t') {
            errors.push((line, Syntax::ControlChar));
            continue;
        }
        if trimmed.starts_with('[') {
            match header(trimmed) {
                Ok(name) => {
                    sections.push(Section { name, line, entries: Vec::new() });
                    current = Current::Section(sections.len() - 1);
                }
                Err(e) => {
                    errors.push((line, e));
                    current = Current::Broken;
                }
            }
            continue;
        }
        match (key_value(trimmed), &current) {
            (Err(e), _) => errors.push((line, e)),
            (Ok(_), Current::Nowhere) => errors.push((line, Syntax::OutsideSection)),
            (Ok(_), Current::Broken) => {}
            (Ok((key, value)), Current::Section(s)) => {
                sections[*s].entries.push(Entry { key, value, line });
            }
        }
    }
    (sections, errors)
}

/// The characters of section names and keys.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// `[name]`, already trimmed; blanks inside the brackets are allowed (`[ dsl ]`). Section
/// names may also hold `:`, for `[site:NAME]`.
fn header(line: &str) -> Result<&str, Syntax> {
    let inner = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')).ok_or(Syntax::BadHeader)?;
    let name = inner.trim_ascii();
    if name.is_empty() || !name.chars().all(|c| is_name_char(c) || c == ':') {
        return Err(Syntax::BadSectionName);
    }
    Ok(name)
}

/// `key = value`, already trimmed.
fn key_value(line: &str) -> Result<(&str, &str), Syntax> {
    let (key, value) = line.split_once('=').ok_or(Syntax::NotKeyValue)?;
    let key = key.trim_ascii();
    if key.is_empty() {
        return Err(Syntax::EmptyKey);
    }
    if !key.chars().all(is_name_char) {
        return Err(Syntax::BadKey);
    }
    Ok((key, unquote(value.trim_ascii())?))
}

/// Strips one pair of matching quotes; the content is kept exactly.
fn unquote(value: &str) -> Result<&str, Syntax> {
    let Some(q) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(value);
    };
    let rest = &value[1..];
    let end = rest.find(q).ok_or(Syntax::UnterminatedQuote)?;
    if end + 1 != rest.len() {
        return Err(Syntax::AfterQuote);
    }
    Ok(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<Section<'_>> {
        let (sections, errors) = tokenize(text);
        assert!(errors.is_empty(), "{errors:?}");
        sections
    }

    fn errors(text: &str) -> Vec<(usize, Syntax)> {
        tokenize(text).1
    }

    fn entries<'a>(s: &'a Section<'a>) -> Vec<(&'a str, &'a str, usize)> {
        s.entries.iter().map(|e| (e.key, e.value, e.line)).collect()
    }

    #[test]
    fn sections_entries_and_lines() {
        let s = ok("# top\n\n[general]\nmode = client\n; note\n  password=  x y  \n[dsl]\nbindport=0\n");
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].name, s[0].line), ("general", 3));
        assert_eq!(entries(&s[0]), vec![("mode", "client", 4), ("password", "x y", 6)]);
        assert_eq!((s[1].name, s[1].line), ("dsl", 7));
        assert_eq!(entries(&s[1]), vec![("bindport", "0", 8)]);
    }

    #[test]
    fn quotes_keep_content_verbatim() {
        let s = ok("[a]\nk = \" a # b = c \"\nl='say \"hi\"; ok'\nm = \"\"\nn = a # not a comment\n");
        assert_eq!(
            entries(&s[0]),
            vec![
                ("k", " a # b = c ", 2),
                ("l", "say \"hi\"; ok", 3),
                ("m", "", 4),
                ("n", "a # not a comment", 5)
            ]
        );
    }

    #[test]
    fn value_may_be_empty_and_contain_equals() {
        let s = ok("[a]\nk =\nl = x=y\n");
        assert_eq!(entries(&s[0]), vec![("k", "", 2), ("l", "x=y", 3)]);
    }

    #[test]
    fn crlf_bom_and_no_final_newline() {
        let s = ok("\u{feff}[general]\r\nmode = server\r\n\r\n[x]\r\nbindport = 5080");
        assert_eq!(entries(&s[0]), vec![("mode", "server", 2)]);
        assert_eq!(entries(&s[1]), vec![("bindport", "5080", 5)]);
    }

    #[test]
    fn blanks_inside_header() {
        assert_eq!(ok("[ dsl ]\n")[0].name, "dsl");
    }

    #[test]
    fn syntax_errors_have_their_line() {
        assert_eq!(errors("mode = client\n"), vec![(1, Syntax::OutsideSection)]);
        assert_eq!(errors("[a]\njust words\n"), vec![(2, Syntax::NotKeyValue)]);
        assert_eq!(errors("[a]\n= v\n"), vec![(2, Syntax::EmptyKey)]);
        assert_eq!(errors("[a]\nbind port = 1\n"), vec![(2, Syntax::BadKey)]);
        assert_eq!(errors("[a\n"), vec![(1, Syntax::BadHeader)]);
        assert_eq!(errors("[a] # c\n"), vec![(1, Syntax::BadHeader)]);
        assert_eq!(errors("[]\n"), vec![(1, Syntax::BadSectionName)]);
        assert_eq!(errors("[a b]\n"), vec![(1, Syntax::BadSectionName)]);
        assert_eq!(errors("[a]\nk = \"open\n"), vec![(2, Syntax::UnterminatedQuote)]);
        assert_eq!(errors("[a]\nk = 'x' # c\n"), vec![(2, Syntax::AfterQuote)]);
        assert_eq!(errors("[a]\nk = x\u{0}y\n"), vec![(2, Syntax::ControlChar)]);
    }

    #[test]
    fn tab_is_not_a_control_character_here() {
        let s = ok("[a]\nk =\tx\ty\t\n");
        assert_eq!(entries(&s[0]), vec![("k", "x\ty", 2)]);
    }

    #[test]
    fn every_error_is_reported_and_broken_sections_stay_quiet() {
        let e = errors("[a\nk = 1\nl = 2\n[b]\nnope\n[c]\nk = 'x\n");
        assert_eq!(e, vec![(1, Syntax::BadHeader), (5, Syntax::NotKeyValue), (7, Syntax::UnterminatedQuote)]);
    }

    #[test]
    fn only_leading_and_trailing_quotes_count() {
        let s = ok("[a]\nk = a\"b\"\n");
        assert_eq!(entries(&s[0]), vec![("k", "a\"b\"", 2)]);
    }
}
