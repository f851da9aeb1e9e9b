//! Token counting with the BPE ranks embedded by `tiktoken-rs` (compiled into
//! the binary: nothing is downloaded). Each encoding is built lazily, once per
//! process, and shared by every caller.
//!
//! `count` is the "ordinary" encoding: special tokens such as
//! `<|endoftext|>` are counted as plain text.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::value::RawValue;
use serde_json::Value;
use tiktoken_rs::CoreBPE;

use crate::json::{self, JsonError};

/// Longest whitespace run (in characters) handed to the regex engine at once.
pub const MAX_WHITESPACE_RUN: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

/// Texts up to this many bytes are remembered with their count (see [`Encoding::count`]).
pub const SHORT_TEXT_BYTES: usize = 256;
/// Short texts remembered per thread and encoding; past it, the memory starts again.
const SHORT_TEXTS: usize = 8192;

thread_local! {
    // Roles, names, system prompts and tool names come back request after request, and
    // each call into the BPE costs some thousands of instructions however short its text
    // (the pre-tokenizer's regex is set up per call): a look-up is a fraction of that.
    static SHORT_COUNTS: RefCell<[HashMap<Box<str>, u32>; 2]> =
        RefCell::new([HashMap::new(), HashMap::new()]);
}

static O200K: OnceLock<CoreBPE> = OnceLock::new();
static CL100K: OnceLock<CoreBPE> = OnceLock::new();

impl Encoding {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "o200k_base" => Some(Encoding::O200kBase),
            "cl100k_base" => Some(Encoding::Cl100kBase),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// The shared BPE, built on first use (see the crate README for timings).
    pub fn bpe(self) -> &'static CoreBPE {
        match self {
            Encoding::O200kBase => O200K.get_or_init(|| {
                tiktoken_rs::o200k_base().expect("embedded o200k_base ranks are valid")
            }),
            Encoding::Cl100kBase => CL100K.get_or_init(|| {
                tiktoken_rs::cl100k_base().expect("embedded cl100k_base ranks are valid")
            }),
        }
    }

    /// Whether the BPE for this encoding is already built.
    pub fn is_loaded(self) -> bool {
        match self {
            Encoding::O200kBase => O200K.get().is_some(),
            Encoding::Cl100kBase => CL100K.get().is_some(),
        }
    }

    /// Number of tokens of `text`, special tokens treated as text.
    ///
    /// The tokenizer's regex engine (fancy-regex) fails on whitespace runs of
    /// about a million characters (o200k_base: "StackOverflow"), so runs longer
    /// than [`MAX_WHITESPACE_RUN`] characters are cut into pieces counted
    /// separately. Only such texts may differ from tiktoken, by a few tokens.
    pub fn count(self, text: &str) -> usize {
        self.count_with_max_run(text, MAX_WHITESPACE_RUN)
    }

    fn count_with_max_run(self, text: &str, max_run: usize) -> usize {
        if text.len() <= SHORT_TEXT_BYTES.min(max_run) {
            return self.count_short(text);
        }
        let bpe = self.bpe();
        if text.len() <= max_run {
            return bpe.encode_ordinary(text).len(); // cannot hold a longer run
        }
        let mut total = 0;
        let mut start = 0;
        let mut run = 0;
        for (i, ch) in text.char_indices() {
            if !ch.is_whitespace() {
                run = 0;
                continue;
            }
            run += 1;
            if run > max_run {
                total += bpe.encode_ordinary(&text[start..i]).len();
                start = i;
                run = 1;
            }
        }
        total + bpe.encode_ordinary(&text[start..]).len()
    }

    /// [`Encoding::count`] of a text of at most [`SHORT_TEXT_BYTES`], remembered by this
    /// thread (the same count, from a look-up when the text came before).
    fn count_short(self, text: &str) -> usize {
        let slot = match self {
            Encoding::O200kBase => 0,
            Encoding::Cl100kBase => 1,
        };
        SHORT_COUNTS.with(|cell| {
            let mut maps = cell.borrow_mut();
            let map = &mut maps[slot];
            if let Some(&n) = map.get(text) {
                return n as usize;
            }
            let n = self.bpe().encode_ordinary(text).len();
            if map.len() >= SHORT_TEXTS {
                map.clear();
            }
            map.insert(text.into(), n as u32);
            n
        })
    }

    /// Prompt tokens of an OpenAI chat request body, the OpenAI-cookbook way:
    ///
    /// * 3 tokens per message, plus the tokens of every string value of the
    ///   message (`role`, `content`, `name`, `refusal`, `tool_call_id`, ...);
    ///   `name` adds 1 more;
    /// * `content` given as an array of parts: the `text` of parts of type
    ///   `"text"` (images, audio and files are not counted);
    /// * `tool_calls` (and the legacy `function_call`): the function `name`
    ///   and `arguments` strings;
    /// * 3 tokens priming the reply;
    /// * `tools`, if present: the tokens of its compact JSON text. This is an
    ///   approximation: OpenAI renders tool definitions into its own internal
    ///   format, whose exact token cost is not published, so expect an error
    ///   of some tens of percent on the tools part only.
    ///
    /// Valid JSON nested deeper than serde_json's recursion limit (128) never
    /// fails: a message (or the `tools` value) that is too deep to build is
    /// counted as 3 + the tokens of its raw JSON text, an over-estimate that
    /// is never 0.
    pub fn count_chat(self, body: &[u8]) -> Result<usize, JsonError> {
        let (_, members) = json::object_members(body)?;
        let member = |name: &str| members.iter().rev().find(|m| m.key == name);
        let messages = member("messages")
            .and_then(|m| serde_json::from_str::<Vec<&RawValue>>(m.value.get()).ok())
            .ok_or_else(|| JsonError::shape("messages", "an array"))?;
        let mut n = 3; // every reply is primed with <|start|>assistant<|message|>
        for (i, raw) in messages.iter().enumerate() {
            n += 3;
            let msg = match serde_json::from_str::<Value>(raw.get()) {
                Ok(msg) => msg,
                // The JSON is valid (checked above): it is too deep to build.
                Err(_) => {
                    n += self.count(raw.get());
                    continue;
                }
            };
            let msg = msg
                .as_object()
                .ok_or_else(|| JsonError::shape(&format!("messages[{i}]"), "an object"))?;
            for (key, value) in msg {
                match (key.as_str(), value) {
                    (_, Value::String(s)) => {
                        n += self.count(s);
                        if key == "name" {
                            n += 1;
                        }
                    }
                    ("content", Value::Array(parts)) => {
                        for part in parts {
                            if part.get("type").and_then(Value::as_str) == Some("text") {
                                if let Some(text) = part.get("text").and_then(Value::as_str) {
                                    n += self.count(text);
                                }
                            }
                        }
                    }
                    ("tool_calls", Value::Array(calls)) => {
                        for call in calls {
                            if let Some(f) = call.get("function") {
                                n += self.count_function(f);
                            }
                        }
                    }
                    ("function_call", f @ Value::Object(_)) => n += self.count_function(f),
                    _ => {}
                }
            }
        }
        if let Some(tools) = member("tools").filter(|t| t.value.get() != "null") {
            n += match serde_json::from_str::<Value>(tools.value.get()) {
                Ok(v) => self.count(&compact(&v)),
                Err(_) => self.count(tools.value.get()), // too deep: its raw text
            };
        }
        Ok(n)
    }

    /// Prompt tokens of an Anthropic Messages request body, on the same
    /// conventions as [`Encoding::count_chat`] (Anthropic publishes no
    /// tokenizer; this is the model's encoding applied to the same text):
    ///
    /// * 3 tokens priming the reply;
    /// * `system`, a string or an array of blocks: 3 + the tokens of
    ///   `"system"` + its text, as a chat request's system message;
    /// * 3 tokens per message, plus the tokens of its `role` and content: a
    ///   string, or blocks counted by type: `text` (its text), `thinking`
    ///   (its thinking), `tool_use` and `server_tool_use` (its `name` and the
    ///   compact JSON of its `input`), `tool_result` (its `content`, a string
    ///   or blocks counted the same way), a `document` whose source is text
    ///   (its data); images and other sources are not counted;
    /// * `tools`, if present: the tokens of its compact JSON text (the same
    ///   approximation as for chat tools).
    ///
    /// As for chat, JSON too deep to build is counted as its raw text (3 +
    /// the raw message, the raw `system` or `tools`), never as 0.
    pub fn count_messages(self, body: &[u8]) -> Result<usize, JsonError> {
        let (_, members) = json::object_members(body)?;
        let member = |name: &str| members.iter().rev().find(|m| m.key == name);
        let messages = member("messages")
            .and_then(|m| serde_json::from_str::<Vec<&RawValue>>(m.value.get()).ok())
            .ok_or_else(|| JsonError::shape("messages", "an array"))?;
        let mut n = 3; // the reply's priming, as for chat
        if let Some(system) = member("system").filter(|s| s.value.get() != "null") {
            n += 3 + self.count("system");
            n += match serde_json::from_str::<Value>(system.value.get()) {
                Ok(v) => self.count_content(&v),
                Err(_) => self.count(system.value.get()), // too deep: its raw text
            };
        }
        for (i, raw) in messages.iter().enumerate() {
            n += 3;
            let msg = match serde_json::from_str::<Value>(raw.get()) {
                Ok(msg) => msg,
                Err(_) => {
                    n += self.count(raw.get()); // valid but too deep to build
                    continue;
                }
            };
            let msg = msg
                .as_object()
                .ok_or_else(|| JsonError::shape(&format!("messages[{i}]"), "an object"))?;
            if let Some(role) = msg.get("role").and_then(Value::as_str) {
                n += self.count(role);
            }
            if let Some(content) = msg.get("content") {
                n += self.count_content(content);
            }
        }
        if let Some(tools) = member("tools").filter(|t| t.value.get() != "null") {
            n += match serde_json::from_str::<Value>(tools.value.get()) {
                Ok(v) => self.count(&compact(&v)),
                Err(_) => self.count(tools.value.get()),
            };
        }
        Ok(n)
    }

    /// A Messages `content` (or `system`, or a `tool_result`'s content): a
    /// string, or an array of blocks.
    fn count_content(self, content: &Value) -> usize {
        match content {
            Value::String(s) => self.count(s),
            Value::Array(blocks) => blocks.iter().map(|b| self.count_block(b)).sum(),
            _ => 0,
        }
    }

    fn count_block(self, block: &Value) -> usize {
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .map_or(0, |s| self.count(s))
        };
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text("text"),
            Some("thinking") => text("thinking"),
            Some("tool_use" | "server_tool_use") => {
                text("name") + block.get("input").map_or(0, |v| self.count(&compact(v)))
            }
            Some("tool_result") => block.get("content").map_or(0, |c| self.count_content(c)),
            Some("document") => match block.get("source") {
                Some(source) if source.get("type").and_then(Value::as_str) == Some("text") => {
                    source
                        .get("data")
                        .and_then(Value::as_str)
                        .map_or(0, |s| self.count(s))
                }
                _ => 0,
            },
            _ => 0,
        }
    }

    fn count_function(self, f: &Value) -> usize {
        ["name", "arguments"]
            .iter()
            .filter_map(|k| f.get(k).and_then(Value::as_str))
            .map(|s| self.count(s))
            .sum()
    }
}

/// Compact JSON text of a value (keys sorted, as serde_json's map keeps them).
fn compact(v: &Value) -> String {
    serde_json::to_string(v).expect("a Value always serializes")
}

/// The encoding a model uses; unknown models get `o200k_base`.
///
/// Besides the listed families, a fine-tune prefix `ft:` is stripped first
/// and Azure's `gpt-35-*` spelling maps like `gpt-3.5-*`.
pub fn encoding_for_model(model: &str) -> Encoding {
    let model = model.strip_prefix("ft:").unwrap_or(model);
    const O200K_PREFIXES: [&str; 7] =
        ["gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o"];
    const CL100K_PREFIXES: [&str; 4] = ["gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3"];
    if O200K_PREFIXES.iter().any(|p| model.starts_with(p)) {
        Encoding::O200kBase
    } else if CL100K_PREFIXES.iter().any(|p| model.starts_with(p))
        || model == "text-embedding-ada-002"
    {
        Encoding::Cl100kBase
    } else {
        Encoding::O200kBase
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    #[test]
    fn short_texts_remembered_give_the_bpe_count() {
        for enc in [O200kBase, Cl100kBase] {
            for text in [
                "user",
                "system",
                "be brief",
                "The quick brown fox ",
                "",
                "<|endoftext|>",
            ] {
                let direct = enc.bpe().encode_ordinary(text).len();
                assert_eq!(enc.count(text), direct, "{text:?} first");
                assert_eq!(enc.count(text), direct, "{text:?} remembered");
            }
        }
        // The same text remembered by one encoding is counted anew by the other.
        let text = "ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ";
        let (o, c) = (O200kBase.count(text), Cl100kBase.count(text));
        assert_eq!(o, O200kBase.bpe().encode_ordinary(text).len());
        assert_eq!(c, Cl100kBase.bpe().encode_ordinary(text).len());
        assert_ne!(o, c);
    }

    #[test]
    fn names() {
        assert_eq!(Encoding::from_name("o200k_base"), Some(O200kBase));
        assert_eq!(Encoding::from_name("cl100k_base"), Some(Cl100kBase));
        assert_eq!(Encoding::from_name("p50k_base"), None);
        assert_eq!(Cl100kBase.name(), "cl100k_base");
    }

    #[test]
    fn known_counts() {
        assert_eq!(O200kBase.count("hello world"), 2);
        assert_eq!(Cl100kBase.count("hello world"), 2);
        assert_eq!(Cl100kBase.count("tiktoken is great!"), 6);
        // The OpenAI cookbook's "How to count tokens with tiktoken" examples.
        for (text, cl100k, o200k) in [
            ("antidisestablishmentarianism", 6, 6),
            ("2 + 2 = 4", 7, 7),
            ("お誕生日おめでとう", 9, 8),
        ] {
            assert_eq!(Cl100kBase.count(text), cl100k, "{text}");
            assert_eq!(O200kBase.count(text), o200k, "{text}");
        }
        assert_eq!(Cl100kBase.count(""), 0);
        // Special tokens are text: "<|endoftext|>" is several ordinary tokens.
        assert!(Cl100kBase.count("<|endoftext|>") > 1);
    }

    #[test]
    fn agrees_with_other_crate_paths() {
        let texts = [
            "The quick brown fox jumps over the lazy dog.",
            "Ünïcödé — 日本語のテキスト, emoji 🦀🚀 and   multiple   spaces\n\n\ttabs",
            "fn main() { println!(\"{}\", 1 + 2); } // code 1234567890",
        ];
        for enc in [O200kBase, Cl100kBase] {
            let singleton = match enc {
                O200kBase => tiktoken_rs::o200k_base_singleton(),
                Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
            };
            for t in texts {
                assert_eq!(enc.count(t), singleton.count_ordinary(t));
                let (toks, _) = singleton.encode(t, &Default::default()).unwrap();
                assert_eq!(enc.count(t), toks.len());
                // Round trip: the tokens decode back to the text.
                assert_eq!(singleton.decode(&toks).unwrap(), t);
            }
        }
    }

    #[test]
    fn pathological_inputs_do_not_panic() {
        for s in [
            " ".repeat(100_000),
            "\n".repeat(50_000),
            "a".repeat(100_000),
            "1".repeat(100_000),
            " \n".repeat(30_000),
            "!".repeat(100_000),
        ] {
            for enc in [O200kBase, Cl100kBase] {
                let n = enc.count(&s);
                assert!(n > 0 && n <= s.len());
            }
        }
    }

    #[test]
    fn long_whitespace_runs_are_cut() {
        // Same code path as a >64k-character run, at a size a debug build likes.
        for enc in [O200kBase, Cl100kBase] {
            for text in [
                format!("a{}b", " ".repeat(5000)),
                format!(
                    "x\t{}\u{3000}y {}",
                    "\u{3000}".repeat(3000),
                    "\t".repeat(2500)
                ),
                " ".repeat(4000),
            ] {
                let exact = enc.count_with_max_run(&text, usize::MAX);
                let cut = enc.count_with_max_run(&text, 1000);
                assert!(exact.abs_diff(cut) <= 8, "{exact} vs {cut}");
            }
            // Short runs are untouched: exact counts.
            let text = "word   ".repeat(2000);
            assert_eq!(
                enc.count_with_max_run(&text, 1000),
                enc.count_with_max_run(&text, usize::MAX)
            );
        }
    }

    fn cookbook_body() -> String {
        let msgs = [
            ("system", None, "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."),
            ("system", Some("example_user"), "New synergies will help drive top-line growth."),
            ("system", Some("example_assistant"), "Things working well together will increase revenue."),
            ("system", Some("example_user"), "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."),
            ("system", Some("example_assistant"), "Let's talk later when we're less busy about how to do better."),
            ("user", None, "This late pivot means we don't have time to boil the ocean for the client deliverable."),
        ];
        let msgs: Vec<Value> = msgs
            .iter()
            .map(|(role, name, content)| {
                let mut m = serde_json::json!({"role": role, "content": content});
                if let Some(name) = name {
                    m["name"] = (*name).into();
                }
                m
            })
            .collect();
        serde_json::json!({"model": "gpt-4-0613", "messages": msgs}).to_string()
    }

    #[test]
    fn cookbook_example_is_129() {
        assert_eq!(
            Cl100kBase.count_chat(cookbook_body().as_bytes()).unwrap(),
            129
        );
    }

    #[test]
    fn count_chat_matches_crate_helper() {
        use tiktoken_rs::ChatCompletionRequestMessage as M;
        let body: Value = serde_json::from_str(&cookbook_body()).unwrap();
        let msgs: Vec<M> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| M {
                role: m["role"].as_str().unwrap().into(),
                content: m["content"].as_str().map(Into::into),
                name: m.get("name").and_then(Value::as_str).map(Into::into),
                ..Default::default()
            })
            .collect();
        for (model, enc) in [("gpt-4-0613", Cl100kBase), ("gpt-4o", O200kBase)] {
            let want = tiktoken_rs::num_tokens_from_messages(model, &msgs).unwrap();
            assert_eq!(enc.count_chat(body.to_string().as_bytes()).unwrap(), want);
        }
    }

    #[test]
    fn count_chat_parts_tools_and_tool_calls() {
        let enc = O200kBase;
        let c = |s: &str| enc.count(s);
        let body = br#"{"messages":[
            {"role":"user","content":[{"type":"text","text":"describe"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
                {"type":"text","text":"this image"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"}
        ]}"#;
        let want = 3
            + (3 + c("user") + c("describe") + c("this image"))
            + (3 + c("assistant") + c("get_weather") + c("{\"city\":\"Paris\"}"))
            + (3 + c("tool") + c("call_1") + c("sunny"));
        assert_eq!(enc.count_chat(body).unwrap(), want);

        let tools =
            r#"[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#;
        let with_tools = format!(r#"{{"messages":[],"tools":{tools}}}"#);
        let v: Value = serde_json::from_str(tools).unwrap();
        assert_eq!(
            enc.count_chat(with_tools.as_bytes()).unwrap(),
            3 + c(&v.to_string())
        );
        assert_eq!(
            enc.count_chat(br#"{"messages":[],"tools":null}"#).unwrap(),
            3
        );
    }

    #[test]
    fn count_chat_refusal_and_tool_calls() {
        let enc = O200kBase;
        let c = |s: &str| enc.count(s);
        let body = br#"{"messages":[{"role":"assistant","refusal":"I can't help with that",
            "tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"q\":1}"}}]}]}"#;
        let want =
            3 + 3 + c("assistant") + c("I can't help with that") + c("lookup") + c("{\"q\":1}");
        assert_eq!(enc.count_chat(body).unwrap(), want);
    }

    #[test]
    fn count_chat_deep_json_is_approximated_not_an_error() {
        let enc = O200kBase;
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep_msg = format!(r#"{{"role":"user","content":"hello there","x":{deep}}}"#);
        let body = format!(r#"{{"messages":[{{"role":"user","content":"hi"}},{deep_msg}]}}"#);
        let shallow = enc
            .count_chat(br#"{"messages":[{"role":"user","content":"hi"}]}"#)
            .unwrap();
        let n = enc.count_chat(body.as_bytes()).unwrap();
        assert_eq!(n, shallow + 3 + enc.count(&deep_msg));
        let body = format!(r#"{{"messages":[],"tools":[{{"x":{deep}}}]}}"#);
        assert_eq!(
            enc.count_chat(body.as_bytes()).unwrap(),
            3 + enc.count(&format!(r#"[{{"x":{deep}}}]"#))
        );
        // Deep but within the limit: counted exactly as before.
        let ok = format!(
            r#"{{"messages":[{{"role":"user","content":"hi","x":{}{}}}]}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(enc.count_chat(ok.as_bytes()).unwrap(), shallow);
    }

    #[test]
    fn count_messages_system_blocks_tools_by_hand() {
        let enc = O200kBase;
        let c = |s: &str| enc.count(s);
        let body = br#"{"model":"claude","max_tokens":10,
            "system":[{"type":"text","text":"You are terse."},{"type":"text","text":"Answer in French."}],
            "messages":[
              {"role":"user","content":"What is the weather in Paris?"},
              {"role":"assistant","content":[{"type":"thinking","thinking":"Use the tool.","signature":"x"},
                {"type":"text","text":"Let me look."},
                {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"unit":"c","city":"Paris"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1",
                  "content":[{"type":"text","text":"sunny, 21 degrees"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]},
                {"type":"tool_result","tool_use_id":"toolu_2","content":"no rain","is_error":false},
                {"type":"document","source":{"type":"text","media_type":"text/plain","data":"a memo"}},
                {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}],
            "tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}"#;
        let want = 3
            + (3 + c("system") + c("You are terse.") + c("Answer in French."))
            + (3 + c("user") + c("What is the weather in Paris?"))
            + (3 + c("assistant")
                + c("Use the tool.")
                + c("Let me look.")
                + c("get_weather")
                + c(r#"{"city":"Paris","unit":"c"}"#))
            + (3 + c("user") + c("sunny, 21 degrees") + c("no rain") + c("a memo"))
            + c(r#"[{"input_schema":{"type":"object"},"name":"get_weather"}]"#);
        assert_eq!(enc.count_messages(body).unwrap(), want);
        // A string system prompt; no tools; null members are absent.
        let body =
            br#"{"system":"be brief","messages":[{"role":"user","content":"hi"}],"tools":null}"#;
        assert_eq!(
            enc.count_messages(body).unwrap(),
            3 + (3 + c("system") + c("be brief")) + (3 + c("user") + c("hi"))
        );
    }

    #[test]
    fn count_messages_errors_and_deep_json() {
        let enc = O200kBase;
        assert!(enc
            .count_messages(b"{}")
            .unwrap_err()
            .message
            .contains("messages"));
        let e = enc.count_messages(br#"{"messages":[1]}"#).unwrap_err();
        assert!(e.message.contains("messages[0]"), "{}", e.message);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let msg = format!(r#"{{"role":"user","content":"hi","x":{deep}}}"#);
        let body = format!(r#"{{"messages":[{msg}]}}"#);
        assert_eq!(
            enc.count_messages(body.as_bytes()).unwrap(),
            3 + 3 + enc.count(&msg)
        );
    }

    #[test]
    fn count_chat_errors() {
        let e = O200kBase.count_chat(b"{\"messages\": [").unwrap_err();
        assert!(e.offset.is_some());
        let e = O200kBase.count_chat(b"{}").unwrap_err();
        assert!(e.message.contains("messages"), "{}", e.message);
        let e = O200kBase.count_chat(b"{\"messages\": [1]}").unwrap_err();
        assert!(e.message.contains("messages[0]"), "{}", e.message);
        assert!(O200kBase.count_chat(b"[]").is_err());
    }

    #[test]
    fn model_mapping() {
        for m in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1-nano",
            "gpt-5",
            "o1-preview",
            "o3-mini",
            "o4-mini",
            "chatgpt-4o-latest",
            "ft:gpt-4o-mini:org::abc",
            "llama-3",
            "",
        ] {
            assert_eq!(encoding_for_model(m), O200kBase, "{m}");
        }
        for m in [
            "gpt-4",
            "gpt-4-0613",
            "gpt-4-turbo",
            "gpt-3.5-turbo",
            "gpt-35-turbo",
            "text-embedding-3-small",
            "text-embedding-ada-002",
            "ft:gpt-3.5-turbo:org::x",
        ] {
            assert_eq!(encoding_for_model(m), Cl100kBase, "{m}");
        }
    }
}
