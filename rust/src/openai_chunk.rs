//! What one event of an OpenAI-shaped stream holds: whether it carries
//! content, the text it adds, its `usage`, a provider `error`. One pass of
//! serde_json over the event's data, borrowing strings from it; members the
//! gateway does not need are skipped without being built.
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
//! which answers only when it is sure to give this serde reading's result
//! ([`scan_chunk_serde`]), and otherwise leaves the event to it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Token counts of a `usage` object; absent or null counts are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: u64,
}

/// One event's data, scanned.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// A choice carries content (see [`scan_chunk`]).
    pub content: bool,
    /// A well-formed, non-null `usage`.
    pub usage: Option<Usage>,
    /// `usage` is set and `choices` is absent, null or `[]`.
    pub usage_only: bool,
    /// The raw JSON of a non-null top-level `error`; nothing else is read then.
    pub error: Option<&'a RawValue>,
}

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

/// [`scan_chunk`] by serde_json alone: what it falls back to when the fast
/// pass gives up (public for tests and measurements).
pub fn scan_chunk_serde<'a>(
    data: &'a str,
    text: &mut String,
) -> Result<Chunk<'a>, serde_json::Error> {
    let top = match serde_json::from_str::<Val<Top<'a>>>(data)? {
        Val::Ok(top) => top,
        // Not an object: relayed as is, as content.
        Val::Absent | Val::Odd => {
            return Ok(Chunk {
                content: true,
                usage: None,
                usage_only: false,
                error: None,
            })
        }
    };
    if let Some(error) = top.error {
        return Ok(Chunk {
            content: false,
            usage: None,
            usage_only: false,
            error: Some(error),
        });
    }
    let usage = match top.usage {
        Val::Ok(u) => Some(u),
        Val::Absent | Val::Odd => None,
    };
    let (content, no_choices) = match &top.choices {
        Val::Absent => (false, true),
        Val::Odd => (true, false),
        Val::Ok(choices) => {
            let mut content = false;
            for choice in choices {
                match choice {
                    Val::Ok(c) => {
                        content |= c.has_content();
                        c.push_text(text);
                    }
                    Val::Absent | Val::Odd => content = true,
                }
            }
            (content, choices.is_empty())
        }
    };
    Ok(Chunk {
        content,
        usage,
        usage_only: usage.is_some() && no_choices,
        error: None,
    })
}

// ---------------------------------------------------------------------------
// Lenient typed reading: a member is absent/null, of the documented shape, or
// odd. Reading never fails on shape, only on syntax.
// ---------------------------------------------------------------------------

enum Val<T> {
    Absent,
    Ok(T),
    Odd,
}

impl<T> Val<T> {
    fn is_odd(&self) -> bool {
        matches!(self, Val::Odd)
    }

    fn ok(&self) -> Option<&T> {
        match self {
            Val::Ok(t) => Some(t),
            Val::Absent | Val::Odd => None,
        }
    }
}

impl<T> From<Option<T>> for Val<T> {
    fn from(o: Option<T>) -> Self {
        o.map_or(Val::Odd, Val::Ok)
    }
}

/// How a type is read from the JSON kinds it accepts; `None` means odd.
/// The default `map`/`seq` skip the value (which must be consumed).
trait Shape<'de>: Sized {
    fn string(_s: Cow<'de, str>) -> Option<Self> {
        None
    }
    fn uint(_v: u64) -> Option<Self> {
        None
    }
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de, T: Shape<'de>> Deserialize<'de> for Val<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor(PhantomData))
    }
}

struct ValVisitor<T>(PhantomData<T>);

impl<'de, T: Shape<'de>> Visitor<'de> for ValVisitor<T> {
    type Value = Val<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Val<T>, E> {
        Ok(Val::Absent)
    }
    fn visit_none<E>(self) -> Result<Val<T>, E> {
        Ok(Val::Absent)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Val<T>, E> {
        Ok(Val::Odd)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Val<T>, E> {
        Ok(Val::Odd)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Val<T>, E> {
        Ok(Val::Odd)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<T>, E> {
        Ok(T::uint(v).into())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<T>, E> {
        Ok(T::string(Cow::Borrowed(v)).into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<T>, E> {
        Ok(T::string(Cow::Owned(v.to_owned())).into())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Val<T>, A::Error> {
        Ok(T::map(map)?.into())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Val<T>, A::Error> {
        Ok(T::seq(seq)?.into())
    }
}

impl<'de> Shape<'de> for Cow<'de, str> {
    fn string(s: Cow<'de, str>) -> Option<Self> {
        Some(s)
    }
}

impl<'de> Shape<'de> for u64 {
    fn uint(v: u64) -> Option<Self> {
        Some(v)
    }
}

impl<'de, T: Shape<'de>> Shape<'de> for Vec<Val<T>> {
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Val<T>>()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

/// The member names the gateway reads; everything else is skipped (or, in a
/// `function` object of the fast pass, skipped but counted: `Other`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Choices,
    Usage,
    Error,
    Delta,
    Message,
    Text,
    FinishReason,
    Content,
    Refusal,
    ToolCalls,
    FunctionCall,
    Function,
    Name,
    Arguments,
    PromptTokens,
    CompletionTokens,
    PromptTokensDetails,
    CachedTokens,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    // Escaped names arrive here unescaped: `"te\u0078t"` is `text`.
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "choices" => Key::Choices,
            "usage" => Key::Usage,
            "error" => Key::Error,
            "delta" => Key::Delta,
            "message" => Key::Message,
            "text" => Key::Text,
            "finish_reason" => Key::FinishReason,
            "content" => Key::Content,
            "refusal" => Key::Refusal,
            "tool_calls" => Key::ToolCalls,
            "function_call" => Key::FunctionCall,
            "function" => Key::Function,
            "name" => Key::Name,
            "arguments" => Key::Arguments,
            "prompt_tokens" => Key::PromptTokens,
            "completion_tokens" => Key::CompletionTokens,
            "prompt_tokens_details" => Key::PromptTokensDetails,
            "cached_tokens" => Key::CachedTokens,
            _ => Key::Other,
        })
    }
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(drop)
}

struct Top<'a> {
    choices: Val<Vec<Val<Choice<'a>>>>,
    usage: Val<Usage>,
    error: Option<&'a RawValue>,
}

impl<'de> Shape<'de> for Top<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut top = Top {
            choices: Val::Absent,
            usage: Val::Absent,
            error: None,
        };
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Choices => top.choices = map.next_value()?,
                Key::Usage => top.usage = map.next_value()?,
                Key::Error => {
                    let raw: &'de RawValue = map.next_value()?;
                    top.error = (raw.get() != "null").then_some(raw);
                }
                _ => skip(&mut map)?,
            }
        }
        Ok(Some(top))
    }
}

struct Choice<'a> {
    delta: Option<Msg<'a>>,
    message: Option<Msg<'a>>,
    text: Option<Cow<'a, str>>,
    finish_reason: Option<Cow<'a, str>>,
}

impl Choice<'_> {
    fn has_content(&self) -> bool {
        let nonempty = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
        nonempty(&self.finish_reason)
            || nonempty(&self.text)
            || self.delta.as_ref().is_some_and(Msg::has_content)
            || self.message.as_ref().is_some_and(Msg::has_content)
    }

    fn push_text(&self, out: &mut String) {
        for msg in [&self.delta, &self.message].into_iter().flatten() {
            msg.push_text(out);
        }
        out.push_str(self.text.as_deref().unwrap_or_default());
    }
}

impl<'de> Shape<'de> for Choice<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let (mut delta, mut message) = (Val::Absent, Val::Absent);
        let (mut text, mut finish_reason) = (Val::Absent, Val::Absent);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Delta => delta = map.next_value()?,
                Key::Message => message = map.next_value()?,
                Key::Text => text = map.next_value()?,
                Key::FinishReason => finish_reason = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        if delta.is_odd() || message.is_odd() || text.is_odd() || finish_reason.is_odd() {
            return Ok(None);
        }
        Ok(Some(Choice {
            delta: into_opt(delta),
            message: into_opt(message),
            text: into_opt(text),
            finish_reason: into_opt(finish_reason),
        }))
    }
}

fn into_opt<T>(v: Val<T>) -> Option<T> {
    match v {
        Val::Ok(t) => Some(t),
        Val::Absent | Val::Odd => None,
    }
}

/// A `delta` (stream chunk) or a `message` (whole response): same members.
struct Msg<'a> {
    content: Option<Cow<'a, str>>,
    refusal: Option<Cow<'a, str>>,
    tool_calls: Vec<Func<'a>>,
    function_call: Option<Func<'a>>,
}

impl Msg<'_> {
    fn has_content(&self) -> bool {
        let nonempty = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
        nonempty(&self.content)
            || nonempty(&self.refusal)
            || !self.tool_calls.is_empty()
            || self.function_call.as_ref().is_some_and(|f| f.nonempty)
    }

    fn push_text(&self, out: &mut String) {
        out.push_str(self.content.as_deref().unwrap_or_default());
        out.push_str(self.refusal.as_deref().unwrap_or_default());
        for f in self.tool_calls.iter().chain(&self.function_call) {
            out.push_str(f.name.as_deref().unwrap_or_default());
            out.push_str(f.arguments.as_deref().unwrap_or_default());
        }
    }
}

impl<'de> Shape<'de> for Msg<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let (mut content, mut refusal) = (Val::Absent, Val::Absent);
        let mut tool_calls: Val<Vec<Val<ToolCall<'de>>>> = Val::Absent;
        let mut function_call = Val::Absent;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Content => content = map.next_value()?,
                Key::Refusal => refusal = map.next_value()?,
                Key::ToolCalls => tool_calls = map.next_value()?,
                Key::FunctionCall => function_call = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        if content.is_odd() || refusal.is_odd() || tool_calls.is_odd() || function_call.is_odd() {
            return Ok(None);
        }
        let mut calls = Vec::new();
        for call in into_opt(tool_calls).unwrap_or_default() {
            match call {
                // A call without a function (never seen in practice) adds no text.
                Val::Ok(ToolCall(f)) => calls.push(f.unwrap_or_default()),
                Val::Absent | Val::Odd => return Ok(None),
            }
        }
        Ok(Some(Msg {
            content: into_opt(content),
            refusal: into_opt(refusal),
            tool_calls: calls,
            function_call: into_opt(function_call),
        }))
    }
}

struct ToolCall<'a>(Option<Func<'a>>);

impl<'de> Shape<'de> for ToolCall<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut function = Val::Absent;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Function => function = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        Ok((!function.is_odd()).then(|| ToolCall(into_opt(function))))
    }
}

#[derive(Default)]
struct Func<'a> {
    name: Option<Cow<'a, str>>,
    arguments: Option<Cow<'a, str>>,
    /// The object had at least one member.
    nonempty: bool,
}

impl<'de> Shape<'de> for Func<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let (mut name, mut arguments) = (Val::Absent, Val::Absent);
        let mut nonempty = false;
        while let Some(key) = map.next_key::<Key>()? {
            nonempty = true;
            match key {
                Key::Name => name = map.next_value()?,
                Key::Arguments => arguments = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        if name.is_odd() || arguments.is_odd() {
            return Ok(None);
        }
        Ok(Some(Func {
            name: into_opt(name),
            arguments: into_opt(arguments),
            nonempty,
        }))
    }
}

impl<'de> Shape<'de> for Usage {
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let (mut prompt, mut completion) = (Val::Absent, Val::Absent);
        let mut details: Val<Details> = Val::Absent;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::PromptTokens => prompt = map.next_value()?,
                Key::CompletionTokens => completion = map.next_value()?,
                Key::PromptTokensDetails => details = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        if prompt.is_odd() || completion.is_odd() || details.is_odd() {
            return Ok(None);
        }
        Ok(Some(Usage {
            prompt_tokens: prompt.ok().copied().unwrap_or(0),
            completion_tokens: completion.ok().copied().unwrap_or(0),
            cached_tokens: details.ok().map_or(0, |d| d.0),
        }))
    }
}

struct Details(u64);

impl<'de> Shape<'de> for Details {
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut cached = Val::Absent;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::CachedTokens => cached = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        if cached.is_odd() {
            return Ok(None);
        }
        Ok(Some(Details(cached.ok().copied().unwrap_or(0))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai_chunk_fast::check::{both, Seen};

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
