//! Instructions per event of [`scan_chunk`] on representative chunks, counted
//! with callgrind (the same count on every run, whatever else the machine does):
//!
//! ```text
//! cargo build --release --example chunk_instructions
//! for n in 0 10000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/chunk_instructions content $n 2>&1 | grep Collected; done
//! ```
//!
//! Per event: (count at 10000 - count at 0) / 10000. `serde-KIND` runs the
//! serde_json reading alone (`scan_chunk_serde`), `KIND` the whole `scan_chunk`
//! (its fast path first). Measured (rustc 1.95, x86_64):
//!
//! ```text
//! kind      bytes  serde  scan_chunk
//! brief       220   5799        2269   the chunk of the fast path's task
//! role        302   6871        2826
//! content     274   6171        2512
//! escaped     306   8258        3613   `\"` and `\n` in the content
//! unicode     277   6775        2870   `\u00e9` in the content
//! tool        330   9685        3763   a tool call's arguments
//! finish      258   5822        2368
//! usage       383   6180        3304
//! ```

use std::hint::black_box;

use _native::openai_chunk::{scan_chunk, scan_chunk_serde, Chunk};

type Scan = for<'a> fn(&'a str, &mut String) -> Result<Chunk<'a>, serde_json::Error>;

const HEAD: &str = r#""id":"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012","object":"chat.completion.chunk","created":1732950000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1""#;

fn data(kind: &str) -> String {
    let choice = |delta: &str, finish: &str| {
        format!(
            r#"{{{HEAD},"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
        )
    };
    match kind {
        // The chunk of the task's brief, as is.
        "brief" => r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":"tok3 "},"logprobs":null,"finish_reason":null}]}"#.to_owned(),
        "role" => choice(r#"{"role":"assistant","content":"","refusal":null}"#, "null"),
        "content" => choice(r#"{"content":" quick"}"#, "null"),
        "escaped" => choice(r#"{"content":"He said \"hi\".\n\nThen:\n- one\n- two"}"#, "null"),
        "tool" => choice(
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\": \"Par"}}]}"#,
            "null",
        ),
        "finish" => choice("{}", r#""stop""#),
        "usage" => format!(
            r#"{{{HEAD},"choices":[],"usage":{{"prompt_tokens":25,"completion_tokens":17,"total_tokens":42,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0}}}}}}"#
        ),
        // Non-ASCII as Python's `json.dumps` writes it by default.
        "unicode" => choice(r#"{"content":"caf\u00e9"}"#, "null"),
        "min" => r#"{"choices":[{"delta":{"content":" quick"}}]}"#.to_owned(),
        _ => panic!("kind: brief, role, content, escaped, tool, finish, usage, unicode or min"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = args.get(1).map_or("content", String::as_str);
    let (kind, scan): (&str, Scan) = match arg.strip_prefix("serde-") {
        Some(kind) => (kind, scan_chunk_serde),
        None => (arg, scan_chunk),
    };
    let n: usize = args.get(2).map_or(1, |n| n.parse().expect("a count"));
    let d = data(kind);
    let mut text = String::with_capacity(1 << 12);
    let mut content = 0usize;
    for _ in 0..n {
        text.clear();
        let c = scan(black_box(&d), &mut text).expect("JSON");
        content += usize::from(c.content);
    }
    black_box((content, &text));
    if n > 0 {
        eprintln!("{arg}: {} bytes, text {:?}", d.len(), text);
    }
}
