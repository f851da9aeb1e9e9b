//! JSON parsing shared by `tokens` and `cache_key`: one error type that says
//! where the input is bad (line/column like serde_json, plus the byte offset).

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

fn syntax_error(body: &[u8], e: &serde_json::Error) -> JsonError {
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
    fn shape_message() {
        let e = JsonError::shape("messages[1]", "an object");
        assert_eq!(
            e.to_string(),
            "invalid request JSON: messages[1]: expected an object"
        );
    }
}
