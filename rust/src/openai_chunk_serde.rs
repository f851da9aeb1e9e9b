//! The serde_json reading of one event of an OpenAI-shaped stream, and the
//! types both readings share (the fast pass is `openai_chunk_fast.rs`; what
//! an event holds, its documented shape and the dispatch between the two are
//! in [`crate::openai_chunk`]). One pass over the event's data, borrowing
//! strings from it; members the gateway does not need are skipped without
//! being built.

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
    /// A choice carries content (see [`crate::openai_chunk::scan_chunk`]).
    pub content: bool,
    /// A well-formed, non-null `usage`.
    pub usage: Option<Usage>,
    /// `usage` is set and `choices` is absent, null or `[]`.
    pub usage_only: bool,
    /// The raw JSON of a non-null top-level `error`; nothing else is read then.
    pub error: Option<&'a RawValue>,
}

/// [`crate::openai_chunk::scan_chunk`] by serde_json alone: what it falls
/// back to when the fast pass gives up.
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

/// Absent (or null), of the documented shape, or odd: how both readings hold
/// a member (the fast pass's too).
#[derive(Clone, Copy)]
pub(crate) enum Val<T> {
    Absent,
    Ok(T),
    Odd,
}

impl<T> Val<T> {
    pub(crate) fn is_odd(&self) -> bool {
        matches!(self, Val::Odd)
    }

    pub(crate) fn ok(self) -> Option<T> {
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
            delta: delta.ok(),
            message: message.ok(),
            text: text.ok(),
            finish_reason: finish_reason.ok(),
        }))
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
        for call in tool_calls.ok().unwrap_or_default() {
            match call {
                // A call without a function (never seen in practice) adds no text.
                Val::Ok(ToolCall(f)) => calls.push(f.unwrap_or_default()),
                Val::Absent | Val::Odd => return Ok(None),
            }
        }
        Ok(Some(Msg {
            content: content.ok(),
            refusal: refusal.ok(),
            tool_calls: calls,
            function_call: function_call.ok(),
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
        Ok((!function.is_odd()).then(|| ToolCall(function.ok())))
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
            name: name.ok(),
            arguments: arguments.ok(),
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
            prompt_tokens: prompt.ok().unwrap_or(0),
            completion_tokens: completion.ok().unwrap_or(0),
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
        Ok(Some(Details(cached.ok().unwrap_or(0))))
    }
}
