//! What one event of an OpenAI-shaped stream holds: whether it carries
//! content, the text it adds, its `usage`, a provider `error`.
//!
//! The documented shape (anything else is "odd"):
//!
//! ```text
//! top      {choices: [choice] | null, usage: usage | null, error: any | null, ...}
//! choice   {delta: msg | null, message: msg | null, text: str | null,
//!           finish_reason: str | null, ...}
//! msg      {content: str | null, refusal: str | null,
//!           tool_calls: [call] | null, function_call: func | null, ...}
//! call     {function: func | null, ...}
//! func     {name: str | null, arguments: str | null, ...}
//! usage    {prompt_tokens: u64 | null, completion_tokens: u64 | null,
//!           prompt_tokens_details: {cached_tokens: u64 | null, ...} | null, ...}
//! ```
//!
//! An odd choice (or `choices` that is not an array, or data that is not an
//! object) counts as content and adds no text: vendors extend the shapes, and
//! the relay must pass what it does not understand. An odd `usage` is ignored.
//! A duplicated member: the last one wins, as in most JSON readers.
//!
//! [`scan_chunk`] first tries a hand-written pass, `openai_chunk_fast.rs`
//! (1.9 to 2.6 times fewer instructions on the usual chunks, numbers there),
//! which answers only when it is sure to give the serde reading's result
//! ([`scan_chunk_serde`], `openai_chunk_serde.rs`), and otherwise leaves the
//! event to it. The two readings and their shared types sit below this
//! module; it only dispatches.

pub use crate::openai_chunk_serde::{scan_chunk_serde, Chunk, Usage};

/// Scan one event's data (a JSON text). The text the event adds (content,
/// refusal, tool call names and arguments, legacy `text`) is appended to
/// `text`, unless the event has an `error`.
///
/// A choice carries content if it has a non-empty `finish_reason` or `text`,
/// or its `delta` or `message` has a non-empty `content` or `refusal`, a
/// non-empty `tool_calls` array or a non-empty `function_call` object, or if
/// its shape is odd. Fails only when `data` is not JSON.
pub fn scan_chunk<'a>(data: &'a str, text: &mut String) -> Result<Chunk<'a>, serde_json::Error> {
    if let Some(chunk) = crate::openai_chunk_fast::scan(data, text) {
        return Ok(chunk);
    }
    scan_chunk_serde(data, text)
}

/// Both readings of one data, checked against each other (for this module's
/// tests and the fast pass's, `openai_chunk_fast_tests.rs`).
#[cfg(test)]
pub(crate) mod check {
    use super::{scan_chunk, scan_chunk_serde, Chunk, Usage};

    /// What a scan gives: (content, usage, usage_only, error's raw JSON, text).
    pub(crate) type Seen = (bool, Option<Usage>, bool, Option<String>, String);

    /// Text already in the buffer: a scan appends after it.
    const BEFORE: &str = "before·";

    fn seen(c: &Chunk<'_>, text: &str) -> Seen {
        let text = text.strip_prefix(BEFORE).expect("the text before is kept");
        let error = c.error.map(|e| e.get().to_owned());
        (c.content, c.usage, c.usage_only, error, text.to_owned())
    }

    /// Scan `data` by serde alone, by the fast path and by `scan_chunk`;
    /// assert that the fast path bails (leaving the text as it was) or gives
    /// exactly serde's result, and that `scan_chunk` gives serde's result.
    /// Returns serde's result (`None`: not JSON) and whether the fast path
    /// answered.
    pub(crate) fn both(data: &str) -> (Option<Seen>, bool) {
        let mut text = String::from(BEFORE);
        let slow = scan_chunk_serde(data, &mut text)
            .ok()
            .map(|c| seen(&c, &text));
        let mut text = String::from(BEFORE);
        let fast = crate::openai_chunk_fast::scan(data, &mut text);
        match &fast {
            Some(c) => assert_eq!(Some(seen(c, &text)), slow, "fast path on {data:?}"),
            None => assert_eq!(text, BEFORE, "a bail leaves the text: {data:?}"),
        }
        let mut text = String::from(BEFORE);
        let got = scan_chunk(data, &mut text).ok().map(|c| seen(&c, &text));
        assert_eq!(got, slow, "scan_chunk on {data:?}");
        (slow, fast.is_some())
    }
}

/// The fast pass against the serde reading, on generated and mutated events.
#[cfg(test)]
#[path = "openai_chunk_fast_tests.rs"]
mod fast_tests;

#[cfg(test)]
mod tests {
    use super::check::{both, Seen};
    use super::*;

    /// (content, usage, usage_only, error, text), by serde and by the fast
    /// path (which must give the same, or leave the data to serde).
    fn scan(data: &str) -> Seen {
        both(data).0.expect("JSON")
    }

    fn usage(p: u64, c: u64, cached: u64) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: p,
            completion_tokens: c,
            cached_tokens: cached,
        })
    }

    #[test]
    fn role_chunk_is_not_content() {
        let d = r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;
        assert_eq!(scan(d), (false, None, false, None, String::new()));
    }

    #[test]
    fn content_refusal_tool_calls_and_text() {
        let d = r#"{"choices":[{"delta":{"content":"Hi \"you\"\n\u00e9"}}]}"#;
        assert_eq!(scan(d).4, "Hi \"you\"\né");
        assert!(scan(d).0);
        let d = r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"get","arguments":"{\"a\":"}}]}}]}"#;
        assert_eq!(scan(d).4, "get{\"a\":");
        assert!(scan(d).0);
        let d = r#"{"choices":[{"delta":{"refusal":"no"},"finish_reason":null}]}"#;
        assert_eq!((scan(d).0, scan(d).4.as_str()), (true, "no"));
        let d = r#"{"choices":[{"text":"legacy","index":0}]}"#;
        assert_eq!((scan(d).0, scan(d).4.as_str()), (true, "legacy"));
        let d = r#"{"choices":[{"message":{"role":"assistant","content":"whole","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}"#;
        assert_eq!((scan(d).0, scan(d).4.as_str()), (true, "wholef{}"));
        let d = r#"{"choices":[{"delta":{"function_call":{"arguments":"x"}}}]}"#;
        assert_eq!((scan(d).0, scan(d).4.as_str()), (true, "x"));
        let d = r#"{"choices":[{"delta":{"function_call":{}}}]}"#;
        assert!(!scan(d).0);
    }

    #[test]
    fn finish_reason_is_content() {
        let d = r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(scan(d), (true, None, false, None, String::new()));
    }

    #[test]
    fn usage_chunk() {
        let d = r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0}}}"#;
        assert_eq!(scan(d), (false, usage(9, 12, 4), true, None, String::new()));
        let d = r#"{"usage":{"prompt_tokens":9,"prompt_tokens_details":null}}"#;
        assert_eq!(scan(d).1, usage(9, 0, 0));
        assert!(scan(d).2);
        let d = r#"{"choices":[{"delta":{"content":"a"}}],"usage":{"completion_tokens":1}}"#;
        assert_eq!(scan(d), (true, usage(0, 1, 0), false, None, "a".into()));
        // Odd usage is ignored; null usage is absent.
        for d in [
            r#"{"usage":{"prompt_tokens":-1}}"#,
            r#"{"usage":{"prompt_tokens":1.5}}"#,
            r#"{"usage":{"prompt_tokens":"1"}}"#,
            r#"{"usage":{"prompt_tokens_details":{"cached_tokens":true}}}"#,
            r#"{"usage":[1]}"#,
            r#"{"usage":null}"#,
        ] {
            assert_eq!(scan(d), (false, None, false, None, String::new()), "{d}");
        }
    }

    #[test]
    fn error_member() {
        let d = r#"{"choices":[{"delta":{"content":"x"}}],"error":{"message":"overloaded","code":"x"}}"#;
        let got = scan(d);
        assert_eq!(
            got.3.as_deref(),
            Some(r#"{"message":"overloaded","code":"x"}"#)
        );
        assert_eq!((got.0, got.4.as_str()), (false, ""));
        assert_eq!(scan(r#"{"error":null,"choices":[]}"#).3, None);
        assert_eq!(scan(r#"{"error":"boom"}"#).3.as_deref(), Some("\"boom\""));
    }

    #[test]
    fn odd_shapes_are_content_without_text() {
        for d in [
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":"x"}]}}]}"#,
            r#"{"choices":[{"delta":"x"}]}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[1]}"#,
            r#"{"choices":{"0":{}}}"#,
            r#"{"choices":[{"finish_reason":1,"text":"t"}]}"#,
            r#"{"choices":[{"delta":{"content":"a","tool_calls":[null]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":1}}]}}]}"#,
            r#"[1,2]"#,
            r#""text""#,
            "null",
        ] {
            assert_eq!(scan(d), (true, None, false, None, String::new()), "{d}");
        }
        // One odd choice does not hide a well-formed one.
        let d = r#"{"choices":[{"delta":"x"},{"delta":{"content":"ok"}}]}"#;
        assert_eq!(scan(d).4, "ok");
    }

    #[test]
    fn escaped_names_and_duplicates() {
        let d = r#"{"choices":[{"delta":{"cont\u0065nt":"a"}}]}"#;
        assert_eq!(scan(d).4, "a");
        let d = r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#;
        assert_eq!(scan(d).4, "b");
        let d = r#"{"choices":[{"delta":{"content":[1],"content":"b"}}]}"#;
        assert_eq!(scan(d).4, "b");
    }

    #[test]
    fn unknown_members_may_nest_deeply() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let d = format!(r#"{{"x":{deep},"choices":[{{"delta":{{"content":"a","y":{deep}}}}}]}}"#);
        assert_eq!(scan(&d).4, "a");
    }

    #[test]
    fn not_json() {
        let mut s = String::new();
        for d in ["", "{", "{\"a\":1}x", "{'a':1}", "NaN"] {
            assert!(scan_chunk(d, &mut s).is_err(), "{d}");
            assert_eq!(both(d), (None, false), "{d}");
        }
        assert!(s.is_empty());
    }
}
