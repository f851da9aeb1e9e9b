//! JSON parsing shared by `tokens`, `cache_key` and `json_edit`: one error
//! type that says where the input is bad (line/column like serde_json, plus
//! the byte offset), and the members of a top-level object as raw slices.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON syntax error (with position) or a shape error (with a JSON path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub message: String,
    /// 1-based line and column of a syntax error (serde_json's convention).
    pub line: usize,
    pub column: usize,
    /// 0-based byte offset of a syntax error, `None` for shape errors.
    pub offset: Option<usize>,
}

impl JsonError {
    /// A well-formed document of the wrong shape; `path` is like `messages[2].content`.
    pub fn shape(path: &str, expected: &str) -> Self {
        JsonError {
            message: format!("invalid request JSON: {path}: expected {expected}"),
            line: 0,
            column: 0,
            offset: None,
        }
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JsonError {}

/// Parse `body` into a [`Value`]. Duplicate object keys: the last one wins.
pub fn parse(body: &[u8]) -> Result<Value, JsonError> {
    serde_json::from_slice(body).map_err(|e| syntax_error(body, &e))
}

/// One member of a top-level object: the unescaped key and the raw value
/// (a slice of the body, without surrounding whitespace).
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub key: Cow<'a, str>,
    pub value: &'a RawValue,
}

/// A top-level object: the offset of its `{` and its members, in order
/// (duplicates included). Values are validated but not built, and nesting
/// depth is not limited (serde_json skips values without recursion).
pub fn object_members(body: &[u8]) -> Result<(usize, Vec<Member<'_>>), JsonError> {
    let brace = body
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let Some(brace) = brace.filter(|&i| body[i] == b'{') else {
        // Valid JSON of another kind is a shape error, anything else a syntax error.
        serde_json::from_slice::<IgnoredAny>(body).map_err(|e| syntax_error(body, &e))?;
        return Err(JsonError::shape("$", "an object"));
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let members = de
        .deserialize_map(MembersVisitor)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| syntax_error(body, &e))?;
    Ok((brace, members))
}

/// Byte offset of `raw` (which must borrow from `body`) in `body`.
pub fn offset_in(body: &[u8], raw: &RawValue) -> usize {
    raw.get().as_ptr() as usize - body.as_ptr() as usize
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<Member<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(KeyCow(key)) = map.next_key()? {
            members.push(Member {
                key,
                value: map.next_value()?,
            });
        }
        Ok(members)
    }
}

/// A key, borrowed from the input unless it had escapes.
struct KeyCow<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for KeyCow<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyCow<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyCow(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyCow(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A serde_json error on `body` with its byte offset.
pub fn syntax_error(body: &[u8], e: &serde_json::Error) -> JsonError {
    let (line, column) = (e.line(), e.column());
    // serde_json's column counts bytes since the last '\n' on `line`.
    let line_start = if line <= 1 {
        0
    } else {
        memchr::memchr_iter(b'\n', body)
            .nth(line - 2)
            .map_or(body.len(), |i| i + 1)
    };
    let offset = (line_start + column.saturating_sub(1)).min(body.len());
    JsonError {
        message: format!("invalid JSON: {e} (byte offset {offset})"),
        line,
        column,
        offset: Some(offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok() {
        assert_eq!(parse(b" {\"a\": [1]} ").unwrap()["a"][0], 1);
    }

    #[test]
    fn position_first_line() {
        let e = parse(b"{\"a\": x}").unwrap_err();
        assert_eq!((e.line, e.column, e.offset), (1, 7, Some(6)));
        assert!(e.message.contains("line 1 column 7"), "{}", e.message);
        assert!(e.message.ends_with("(byte offset 6)"), "{}", e.message);
    }

    #[test]
    fn position_later_line() {
        let body = b"{\n  \"a\": 1,\n  \"b\": ?\n}";
        let e = parse(body).unwrap_err();
        assert_eq!((e.line, e.column), (3, 8));
        assert_eq!(body[e.offset.unwrap()], b'?');
    }

    #[test]
    fn eof_and_empty() {
        let e = parse(b"").unwrap_err();
        assert_eq!(e.offset, Some(0));
        let e = parse(b"[1, 2").unwrap_err();
        assert!(e.message.contains("EOF"), "{}", e.message);
        assert!(e.offset.unwrap() <= 5);
    }

    #[test]
    fn trailing_garbage_and_bad_utf8() {
        assert!(parse(b"{} x").is_err());
        assert!(parse(b"\"\xff\"").is_err());
    }

    #[test]
    fn members() {
        let body = b" {\"a\" : [1, {}] ,\"b\\u0063\":\"x\",\"a\":null}\n";
        let (brace, m) = object_members(body).unwrap();
        assert_eq!(brace, 1);
        let got: Vec<_> = m.iter().map(|m| (&*m.key, m.value.get())).collect();
        assert_eq!(got, [("a", "[1, {}]"), ("bc", "\"x\""), ("a", "null")]);
        assert_eq!(offset_in(body, m[0].value), 8);
        assert!(object_members(b" {} ").unwrap().1.is_empty());
        let e = object_members(b"[1]").unwrap_err();
        assert!(e.message.contains("expected an object"), "{}", e.message);
        for bad in [
            &b"[1"[..],
            b"{\"a\":1",
            b"{\"a\":1} x",
            b"",
            b"{\"a\":\"\xff\"}",
        ] {
            assert!(object_members(bad).unwrap_err().offset.is_some());
        }
        let deep = format!("{{\"d\":{}{}}}", "[".repeat(10000), "]".repeat(10000));
        assert_eq!(object_members(deep.as_bytes()).unwrap().1.len(), 1);
    }

    #[test]
    fn shape_message() {
        let e = JsonError::shape("messages[1]", "an object");
        assert_eq!(
            e.to_string(),
            "invalid request JSON: messages[1]: expected an object"
        );
    }
}
