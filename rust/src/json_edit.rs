//! Read and replace top-level members of a JSON object without decoding and
//! re-encoding it: everything not edited stays byte for byte (whitespace,
//! member order, escapes, number spellings).
//!
//! Keys are compared after unescaping (`"mod\u0065l"` is `model`).
//!
//! The body is not parsed: a structural scanner walks the top-level object
//! only, reading each key and skipping each value without building it. The
//! callers hand it bodies that were already validated (the gateway's
//! decoder), so it checks the structure it walks and no more:
//!
//! * the whole body: optional whitespace, one object, optional whitespace;
//!   members separated by `,`, each a key, `:` and a value; no trailing comma;
//! * keys: fully (terminated, no raw control character, valid escapes,
//!   `\uXXXX` with surrogate pairs decoded, valid UTF-8);
//! * top-level values that are numbers or `true`/`false`/`null`: fully
//!   (JSON's number grammar, exact literals);
//! * top-level values that are strings: terminated, valid escapes, valid
//!   UTF-8 (raw control characters are not looked for);
//! * top-level values that are arrays or objects: the brackets balance and
//!   match in kind (`[` closed by `]`, `{` by `}`), brackets inside strings
//!   ignored, every string inside terminated (a `"` after an odd number of
//!   backslashes is escaped). Nothing else inside them is looked at: escapes,
//!   commas, colons, numbers, literals, control characters, UTF-8 and what
//!   stands where a key should may be wrong there and go unnoticed.
//!
//! Whatever it accepts, its answers are those of a JSON parser whenever the
//! body is valid JSON. It never panics, reads only inside `body`, and keeps
//! no recursion: its memory is one byte per open bracket.
//!
//! A key that holds an unpaired surrogate escape (`"\ud800"`) is not an
//! error (JSON's grammar allows it); no `str` can name it, so it matches no
//! edit and is left as it is.

use std::borrow::Cow;
use std::ops::Range;

use memchr::{memchr, memchr2};

use crate::json::{syntax_error, JsonError};

/// The raw bytes of the value of top-level member `key` (the last one if the
/// key is duplicated), `None` if absent. Fails if `body` is not a JSON object
/// (as far as the scanner checks, see the module documentation).
pub fn top_level_value<'a>(body: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, JsonError> {
    let mut found = None;
    scan_object(body, |k, value| {
        if k.is(key) {
            found = Some(value);
        }
    })?;
    Ok(found.map(|r| &body[r]))
}

/// Apply `edits` (key, raw JSON value): the value of every top-level member
/// named `key` is replaced; a key the object lacks is inserted as a member
/// right after `{` (inserted members in the order of `edits`, then a comma
/// if the object had members). When `edits` names a key twice, the last
/// value wins. Each value must be one JSON value (surrounding whitespace is
/// kept; values are fully validated). Fails if `body` is not a JSON object
/// (as far as the scanner checks, see the module documentation) or a value
/// is not JSON.
pub fn splice_top_level(body: &[u8], edits: &[(&str, &[u8])]) -> Result<Vec<u8>, JsonError> {
    for (key, value) in edits {
        serde_json::from_slice::<serde::de::IgnoredAny>(value).map_err(|e| {
            let mut err = syntax_error(value, &e);
            err.message = format!("the new value of {key:?} is not JSON: {}", err.message);
            err
        })?;
    }
    // Which edit applies to a key: the last one naming it.
    let edit_for = |key: &Key<'_>| edits.iter().rposition(|(k, _)| key.is(k));
    let mut present = vec![false; edits.len()];
    // (value range, edit index) of each member to replace, in body order.
    let mut replaced: Vec<(Range<usize>, usize)> = Vec::new();
    let mut any_member = false;
    let brace = scan_object(body, |k, value| {
        any_member = true;
        if let Some(i) = edit_for(&k) {
            present[i] = true;
            replaced.push((value, i));
        }
    })?;

    let inserted: Vec<usize> = (0..edits.len())
        .filter(|&i| !present[i] && edits[i + 1..].iter().all(|(k, _)| *k != edits[i].0))
        .collect();
    let extra: usize = edits.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    out.extend_from_slice(&body[..=brace]);
    for (n, &i) in inserted.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let (key, value) = edits[i];
        let key = serde_json::to_string(key).expect("a str always serializes");
        out.extend_from_slice(key.as_bytes());
        out.push(b':');
        out.extend_from_slice(value);
    }
    if !inserted.is_empty() && any_member {
        out.push(b',');
    }
    let mut pos = brace + 1;
    for (value, i) in replaced {
        out.extend_from_slice(&body[pos..value.start]);
        out.extend_from_slice(edits[i].1);
        pos = value.end;
    }
    out.extend_from_slice(&body[pos..]);
    Ok(out)
}

/// A top-level key as the scanner read it.
#[derive(Debug, PartialEq, Eq)]
enum Key<'a> {
    /// Unescaped UTF-8 (borrowed when the key had no escapes).
    Text(Cow<'a, [u8]>),
    /// Holds an unpaired surrogate escape: equal to no `str`.
    Unmatchable,
}

impl Key<'_> {
    fn is(&self, key: &str) -> bool {
        matches!(self, Key::Text(k) if **k == *key.as_bytes())
    }
}

/// Scan `body` as one JSON object, calling `member` with each top-level key
/// and the byte range of its value (without surrounding whitespace), in
/// order, duplicates included. Returns the offset of the `{`.
fn scan_object<'a>(
    body: &'a [u8],
    mut member: impl FnMut(Key<'a>, Range<usize>),
) -> Result<usize, JsonError> {
    let mut s = Scanner { body, pos: 0 };
    s.skip_ws();
    let brace = s.pos;
    match s.peek() {
        Some(b'{') => s.pos += 1,
        _ => return Err(s.unexpected("`{` (the body must be a JSON object)")),
    }
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            if s.peek() != Some(b'"') {
                return Err(s.unexpected("a key (a string)"));
            }
            let key = s.key()?;
            s.skip_ws();
            if s.peek() != Some(b':') {
                return Err(s.unexpected("`:` after the key"));
            }
            s.pos += 1;
            s.skip_ws();
            let start = s.pos;
            s.skip_value()?;
            member(key, start..s.pos);
            s.skip_ws();
            match s.peek() {
                Some(b',') => {
                    s.pos += 1;
                    s.skip_ws();
                }
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                _ => return Err(s.unexpected("`,` or `}` after a member")),
            }
        }
    }
    s.skip_ws();
    if s.pos < body.len() {
        return Err(s.unexpected("the end of the body after the object"));
    }
    Ok(brace)
}

struct Scanner<'a> {
    body: &'a [u8],
    /// The next byte to read; never more than `body.len()`.
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.body.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The error for the byte at `self.pos` when `expected` should be there.
    fn unexpected(&self, expected: &str) -> JsonError {
        let found = match self.peek() {
            None => "the end of the body".to_owned(),
            Some(b) if b.is_ascii_graphic() => format!("`{}`", b as char),
            Some(b) => format!("byte 0x{b:02x}"),
        };
        error_at(
            self.body,
            self.pos,
            &format!("expected {expected}, found {found}"),
        )
    }

    /// A key: `self.pos` is at its opening quote; ends after the closing one.
    fn key(&mut self) -> Result<Key<'a>, JsonError> {
        let body = self.body;
        let open = self.pos;
        let mut i = open + 1;
        // Bytes up to `seg` are in `owned` once an escape was seen.
        let mut owned: Option<Vec<u8>> = None;
        let mut seg = i;
        let mut matchable = true;
        loop {
            let Some(&b) = body.get(i) else {
                return Err(error_at(
                    body,
                    open,
                    "unterminated string (the key starting here)",
                ));
            };
            match b {
                b'"' => break,
                b'\\' => {
                    let buf = owned.get_or_insert_with(Vec::new);
                    buf.extend_from_slice(&body[seg..i]);
                    let (unit, len) = escape(body, i)?;
                    i += len;
                    match unit {
                        Escaped::Byte(c) => buf.push(c),
                        Escaped::Unit(u @ 0xD800..=0xDBFF) => {
                            // A high surrogate: paired only with a `\u` low one next.
                            let next = (body.get(i) == Some(&b'\\')).then(|| escape(body, i));
                            match next {
                                Some(Ok((Escaped::Unit(lo @ 0xDC00..=0xDFFF), len2))) => {
                                    i += len2;
                                    let c = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                                    push_char(buf, c);
                                }
                                _ => matchable = false,
                            }
                        }
                        Escaped::Unit(0xDC00..=0xDFFF) => matchable = false,
                        Escaped::Unit(u) => push_char(buf, u),
                    }
                    seg = i;
                }
                0..=0x1F => {
                    return Err(error_at(
                        body,
                        i,
                        "control character in a key (must be escaped)",
                    ))
                }
                _ => i += 1,
            }
        }
        let raw = &body[open + 1..i];
        if let Err(e) = std::str::from_utf8(raw) {
            let at = open + 1 + e.valid_up_to();
            return Err(error_at(body, at, "invalid UTF-8 in a key"));
        }
        self.pos = i + 1;
        if !matchable {
            return Ok(Key::Unmatchable);
        }
        Ok(Key::Text(match owned {
            None => Cow::Borrowed(raw),
            Some(mut buf) => {
                buf.extend_from_slice(&body[seg..i]);
                Cow::Owned(buf)
            }
        }))
    }

    /// Any value, starting at `self.pos`; ends right after it.
    fn skip_value(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'"') => {
                let start = self.pos;
                self.skip_string()?;
                // Validated as UTF-8 (top-level strings only: see the module doc).
                if let Err(e) = std::str::from_utf8(&self.body[start + 1..self.pos - 1]) {
                    let at = start + 1 + e.valid_up_to();
                    return Err(error_at(self.body, at, "invalid UTF-8 in a string"));
                }
                Ok(())
            }
            Some(b'{' | b'[') => self.skip_nested(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected("a value")),
        }
    }

    /// A string: `self.pos` is at its opening quote; ends after the closing
    /// one. Escapes are checked; raw bytes are not.
    fn skip_string(&mut self) -> Result<(), JsonError> {
        let body = self.body;
        let open = self.pos;
        let mut i = open + 1;
        loop {
            // `i <= body.len()`: an escape spans bytes that exist.
            let Some(n) = memchr2(b'"', b'\\', &body[i..]) else {
                return Err(unterminated(body, open));
            };
            i += n;
            match body.get(i + 1) {
                _ if body[i] == b'"' => {
                    self.pos = i + 1;
                    return Ok(());
                }
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                _ => i += escape(body, i)?.1,
            }
        }
    }

    /// An array or object: brackets are matched (in kind), strings skipped
    /// (without looking at their escapes), nothing else checked.
    fn skip_nested(&mut self) -> Result<(), JsonError> {
        let body = self.body;
        let open = self.pos;
        // The closing bracket each open one expects, innermost last.
        let mut stack: Vec<u8> = Vec::new();
        let mut i = open;
        loop {
            let Some(&b) = body.get(i) else {
                let what = if body[open] == b'{' {
                    "object"
                } else {
                    "array"
                };
                let msg = format!("unbalanced brackets: the body ends inside the {what} starting here ({} still open)", stack.len());
                return Err(error_at(body, open, &msg));
            };
            match b {
                b'"' => {
                    i = skip_string_unchecked(body, i)?;
                    continue;
                }
                b'{' => stack.push(b'}'),
                b'[' => stack.push(b']'),
                b'}' | b']' => {
                    if stack.pop() != Some(b) {
                        let msg = format!("unbalanced brackets: unexpected `{}`", b as char);
                        return Err(error_at(body, i, &msg));
                    }
                    if stack.is_empty() {
                        self.pos = i + 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        if self.body[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.unexpected("a value"))
        }
    }

    /// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.unexpected("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), JsonError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.unexpected("a digit"));
        }
        self.digits();
        Ok(())
    }
}

/// The end (after the closing quote) of the string whose opening quote is
/// `body[open]`, looking only for its closing quote: a `"` preceded by an odd
/// number of backslashes is escaped. Escapes are not validated. Jumping from
/// quote to quote (rather than stopping at every backslash too) skips the
/// `\n`s and `\\`s of text at no cost; the backslashes counted back before a
/// quote are never counted again, so this stays linear.
fn skip_string_unchecked(body: &[u8], open: usize) -> Result<usize, JsonError> {
    let mut i = open + 1;
    loop {
        // `i <= body.len()`: `body[i - 1]` exists.
        let Some(n) = find_quote(&body[i..]) else {
            return Err(unterminated(body, open));
        };
        i += n;
        let backslashes = body[open + 1..i]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        i += 1;
        if backslashes % 2 == 0 {
            return Ok(i);
        }
    }
}

/// The offset of the first `"` in `hay`. A quote is found every few dozen
/// bytes in chat text (`\"quoted\"`, the members of messages): memchr's SSE2
/// searcher, called directly, costs less per call on such short runs than
/// `memchr::memchr`'s dispatch to AVX2 (about 20% of the whole scan of the
/// benchmark's body); both are safe calls.
fn find_quote(hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(one) = memchr::arch::x86_64::sse2::memchr::One::new(b'"') {
            return one.find(hay);
        }
    }
    memchr(b'"', hay)
}

#[cold]
fn unterminated(body: &[u8], open: usize) -> JsonError {
    error_at(body, open, "unterminated string (starting here)")
}

enum Escaped {
    /// A one-byte escape (`\n`, `\"`, ...): the byte it stands for.
    Byte(u8),
    /// `\uXXXX`: the UTF-16 code unit.
    Unit(u32),
}

/// The escape at `body[at]` (a backslash) and its length in bytes.
fn escape(body: &[u8], at: usize) -> Result<(Escaped, usize), JsonError> {
    let byte = match body.get(at + 1) {
        Some(b'"') => b'"',
        Some(b'\\') => b'\\',
        Some(b'/') => b'/',
        Some(b'b') => 0x08,
        Some(b'f') => 0x0C,
        Some(b'n') => b'\n',
        Some(b'r') => b'\r',
        Some(b't') => b'\t',
        Some(b'u') => {
            let hex = body.get(at + 2..at + 6).unwrap_or_default();
            let mut unit = 0;
            for &h in hex {
                let digit = match h {
                    b'0'..=b'9' => h - b'0',
                    b'a'..=b'f' => h - b'a' + 10,
                    b'A'..=b'F' => h - b'A' + 10,
                    _ => return Err(error_at(body, at, "invalid `\\u` escape")),
                };
                unit = unit * 16 + u32::from(digit);
            }
            if hex.len() < 4 {
                return Err(error_at(body, at, "invalid `\\u` escape"));
            }
            return Ok((Escaped::Unit(unit), 6));
        }
        None => {
            return Err(error_at(
                body,
                at,
                "unterminated string (ends in a backslash)",
            ))
        }
        Some(_) => return Err(error_at(body, at, "invalid escape")),
    };
    Ok((Escaped::Byte(byte), 2))
}

/// Append code point `c` (not a surrogate, at most 0x10FFFF) as UTF-8.
fn push_char(buf: &mut Vec<u8>, c: u32) {
    let c = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
    buf.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
}

/// An `InvalidJson` error at byte `offset` of `body`, with serde_json's
/// line/column convention (1-based; the column counts bytes).
#[cold]
#[inline(never)]
fn error_at(body: &[u8], offset: usize, what: &str) -> JsonError {
    let offset = offset.min(body.len());
    let before = &body[..offset];
    let line = 1 + memchr::memchr_iter(b'\n', before).count();
    let column = 1 + offset - memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    JsonError {
        message: format!(
            "invalid JSON: {what} at line {line} column {column} (byte offset {offset})"
        ),
        line,
        column,
        offset: Some(offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splice(body: &str, edits: &[(&str, &str)]) -> String {
        let edits: Vec<(&str, &[u8])> = edits.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        String::from_utf8(splice_top_level(body.as_bytes(), &edits).unwrap()).unwrap()
    }

    #[test]
    fn replaces_in_place_keeping_everything_else() {
        let body = "{ \"model\" : \"gpt-4o\",\n  \"messages\":[ {\"a\" :1} ],\"x\":1.50 }";
        assert_eq!(
            splice(body, &[("model", "\"real-model\"")]),
            "{ \"model\" : \"real-model\",\n  \"messages\":[ {\"a\" :1} ],\"x\":1.50 }"
        );
        // Escaped keys match; every duplicate is replaced.
        let body = r#"{"mod\u0065l":"a","model":"b","y":{"model":"c"}}"#;
        assert_eq!(
            splice(body, &[("model", "1")]),
            r#"{"mod\u0065l":1,"model":1,"y":{"model":"c"}}"#
        );
    }

    #[test]
    fn inserts_first() {
        assert_eq!(splice(" {}", &[("a", "1")]), " {\"a\":1}");
        assert_eq!(
            splice("{ }", &[("a", "1"), ("b", "2")]),
            "{\"a\":1,\"b\":2 }"
        );
        assert_eq!(
            splice(
                "{\"m\":0}",
                &[("stream_options", "{\"include_usage\":true}")]
            ),
            "{\"stream_options\":{\"include_usage\":true},\"m\":0}"
        );
        assert_eq!(
            splice("{\"m\":0}", &[("q\"\n", "1")]),
            "{\"q\\\"\\n\":1,\"m\":0}"
        );
        // The last edit of a key wins, inserted or replaced.
        assert_eq!(
            splice("{\"m\":0}", &[("a", "1"), ("a", "2")]),
            "{\"a\":2,\"m\":0}"
        );
        assert_eq!(splice("{\"a\":0}", &[("a", "1"), ("a", "2")]), "{\"a\":2}");
        assert_eq!(splice("{\"a\":0}", &[]), "{\"a\":0}");
    }

    #[test]
    fn top_level_values() {
        let body = br#" {"a": [1, 2] , "b":{"a":3}, "a" : "last" } "#;
        assert_eq!(top_level_value(body, "a").unwrap(), Some(&b"\"last\""[..]));
        assert_eq!(
            top_level_value(body, "b").unwrap(),
            Some(&br#"{"a":3}"#[..])
        );
        assert_eq!(top_level_value(body, "c").unwrap(), None);
        assert!(top_level_value(b"[]", "a").is_err());
    }

    #[test]
    fn errors() {
        let bad: [(&[u8], &[u8]); 5] = [
            (b"[1]", b"1"),
            (b"{", b"1"),
            (b"{\"a\":1}}", b"1"),
            (b"{}", b"nope"),
            (b"{}", b"1 2"),
        ];
        for (body, value) in bad {
            assert!(splice_top_level(body, &[("a", value)]).is_err());
        }
        let e = splice_top_level(b"{}", &[("model", b"x")]).unwrap_err();
        assert!(e
            .message
            .starts_with("the new value of \"model\" is not JSON"));
    }

    fn keys(body: &[u8]) -> Vec<Key<'_>> {
        let mut keys = Vec::new();
        scan_object(body, |k, _| keys.push(k)).unwrap();
        keys
    }

    fn text(s: &str) -> Key<'_> {
        Key::Text(Cow::Borrowed(s.as_bytes()))
    }

    #[test]
    fn key_escapes() {
        let body = br#"{"a\"\\\/\b\f\n\r\t":0, "\u00e9\u65E5":0, "\ud83d\ude00x":0, "\u0000":0}"#;
        assert_eq!(
            keys(body),
            [
                text("a\"\\/\u{8}\u{c}\n\r\t"),
                text("é日"),
                text("😀x"),
                text("\0")
            ]
        );
        // Unpaired surrogates: legal JSON, but no str names them.
        let body = br#"{"\ud800":0, "\udc00":1, "\ud83d\u0041":2, "\ud83dA":3, "ok":4}"#;
        let got = keys(body);
        assert!(got[..4].iter().all(|k| *k == Key::Unmatchable));
        assert_eq!(got[4], text("ok"));
        assert_eq!(top_level_value(body, "\u{fffd}").unwrap(), None);
        assert_eq!(top_level_value(body, "A").unwrap(), None);
        assert_eq!(top_level_value(body, "ok").unwrap(), Some(&b"4"[..]));
        // Raw UTF-8 compares as is.
        let body = "{\"é\" : \"日本\" }".as_bytes();
        assert_eq!(
            top_level_value(body, "é").unwrap(),
            Some("\"日本\"".as_bytes())
        );
    }

    #[test]
    fn values_are_skipped_not_built() {
        let body = br#"{"a":"x\"}]{[\\","b":[{"c":"]}\""}, [], {}],"c":-0.5e+3,"d":true,"e":null,"f":false,"g":{}}"#;
        let want: [(&str, &[u8]); 7] = [
            ("a", br#""x\"}]{[\\""#),
            ("b", br#"[{"c":"]}\""}, [], {}]"#),
            ("c", b"-0.5e+3"),
            ("d", b"true"),
            ("e", b"null"),
            ("f", b"false"),
            ("g", b"{}"),
        ];
        for (k, v) in want {
            assert_eq!(top_level_value(body, k).unwrap(), Some(v), "{k}");
        }
        let deep = format!(
            "{{\"d\":{}{}}}",
            "[{\"x\":".repeat(100_000),
            "}]".repeat(100_000)
        );
        assert!(top_level_value(deep.as_bytes(), "d").unwrap().is_some());
    }

    #[test]
    fn structural_errors_say_where() {
        let cases: [(&[u8], usize, &str); 24] = [
            (b"", 0, "expected `{`"),
            (b" [1]", 1, "expected `{`"),
            (b"{", 1, "expected a key"),
            (b"{\"a\"", 4, "expected `:`"),
            (b"{\"a\" 1}", 5, "expected `:`"),
            (b"{\"a\":}", 5, "expected a value"),
            (b"{\"a\":1 \"b\":2}", 7, "expected `,` or `}`"),
            (b"{\"a\":1,}", 7, "expected a key"),
            (b"{\"a\":1} x", 8, "expected the end"),
            (b"{\"a\":1}}", 7, "expected the end"),
            (b"{'a':1}", 1, "expected a key"),
            (b"{\"a", 1, "unterminated string"),
            (b"{\"a\":\"x", 5, "unterminated string"),
            (b"{\"a\":\"x\\", 7, "ends in a backslash"),
            (b"{\"a\":\"\\x\"}", 6, "invalid escape"),
            (b"{\"a\":\"\\u12G4\"}", 6, "invalid `\\u` escape"),
            (b"{\"a\\u12\"}", 3, "invalid `\\u` escape"),
            (b"{\"a\":[1,{]}", 9, "unbalanced brackets: unexpected `]`"),
            (b"{\"a\":[[\"]\"]", 5, "the body ends inside the array"),
            (b"{\"a\":\"\xff\"}", 6, "invalid UTF-8"),
            (b"{\"\xc3\":1}", 2, "invalid UTF-8 in a key"),
            (b"{\"a\nb\":1}", 3, "control character"),
            (b"{\"a\":01}", 6, "expected `,` or `}`"),
            (b"{\"a\":tru}", 5, "expected a value"),
        ];
        for (body, offset, what) in cases {
            let e = top_level_value(body, "a").unwrap_err();
            assert_eq!(
                e.offset,
                Some(offset),
                "{:?}: {}",
                body.escape_ascii().to_string(),
                e.message
            );
            assert!(e.message.contains(what), "{}", e.message);
            assert!(
                e.message.ends_with(&format!("(byte offset {offset})")),
                "{}",
                e.message
            );
            assert!(splice_top_level(body, &[("a", b"1")]).is_err());
        }
        let e = top_level_value(b"{\n \"a\":\n  x}", "a").unwrap_err();
        assert_eq!((e.line, e.column, e.offset), (3, 3, Some(10)));
        for bad in ["-", "1.", "1e", "1.e3", "-a", "+1", ".5"] {
            let body = format!("{{\"a\":{bad}}}");
            assert!(top_level_value(body.as_bytes(), "a").is_err(), "{bad}");
        }
    }

    #[test]
    fn nested_values_are_not_validated() {
        // Documented leniency: inside arrays and objects only brackets and
        // string ends are looked at.
        let body = br#"{"a":[1,,"\x",tru,{"k" 1 "\\"}], "b":2}"#;
        assert_eq!(
            top_level_value(body, "a").unwrap(),
            Some(&br#"[1,,"\x",tru,{"k" 1 "\\"}]"#[..])
        );
        assert_eq!(top_level_value(body, "b").unwrap(), Some(&b"2"[..]));
        // Escaped quotes: an odd number of backslashes before a quote.
        let body = br#"{"a":["\\",  "\\\"]", "]"], "b":1}"#;
        assert_eq!(
            top_level_value(body, "a").unwrap(),
            Some(&br#"["\\",  "\\\"]", "]"]"#[..])
        );
        assert!(top_level_value(br#"{"a":["\"]}"#, "a").is_err());
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let body =
            br#" {"a\u00e9\ud83d\ude00" : [1, {"x":"]\"\\"}, -1.5e3], "b":"\u0041" , "c":null} "#;
        for end in 0..=body.len() {
            for start in 0..=end {
                let slice = &body[start..end];
                let _ = top_level_value(slice, "b");
                let _ = splice_top_level(slice, &[("b", b"1"), ("z", b"2")]);
            }
        }
        assert!(top_level_value(body, "b").unwrap().is_some());
    }
}
