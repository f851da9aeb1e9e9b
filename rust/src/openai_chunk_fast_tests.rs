//! The fast path against serde_json: on realistic chunks (it must answer),
//! and on many generated chunks and mutations of them (it must bail or agree).

use super::check::both;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `p` percent.
    fn pct(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

const HEAD: &str = r#""id":"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012","object":"chat.completion.chunk","created":1732950000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1""#;

fn chunk(choice: &str) -> String {
    format!(r#"{{{HEAD},"choices":[{choice}],"usage":null}}"#)
}

fn delta(delta: &str, finish: &str) -> String {
    chunk(&format!(
        r#"{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}"#
    ))
}

/// The shapes of real streams: the fast path answers them all.
fn ordinary() -> Vec<String> {
    vec![
        delta(r#"{"role":"assistant","content":"","refusal":null}"#, "null"),
        delta(r#"{"content":" quick"}"#, "null"),
        delta(r#"{"content":"He said \"hi\".\n\nThen:\n\t- one\\two / three"}"#, "null"),
        delta(r#"{"content":"caf\u00e9"}"#.replace(r"\u00e9", "é").as_str(), "null"),
        delta(r#"{"content":"中文 😀 ok"}"#, "null"),
        // As Python's `json.dumps` writes them by default.
        delta(r#"{"content":"caf\u00e9 \u4e2d\u6587 \ud83d\ude00\n"}"#, "null"),
        delta(r#"{"content":"\u0000\uFFFF\uD83D\uDE00"}"#, "null"),
        delta("{}", r#""stop""#),
        delta("{}", r#""length""#),
        delta(r#"{"refusal":"I can't help with that."}"#, "null"),
        delta(
            r#"{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null}"#,
            "null",
        ),
        delta(
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\": \"Par"}}]}"#,
            "null",
        ),
        delta(
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"is\"}"}},{"index":1,"id":"call_2","type":"function","function":{"name":"f","arguments":""}}]}"#,
            "null",
        ),
        delta(r#"{"function_call":{"name":"f","arguments":"{}"}}"#, "null"),
        delta("{}", r#""tool_calls""#),
        format!(
            r#"{{{HEAD},"choices":[],"usage":{{"prompt_tokens":25,"completion_tokens":17,"total_tokens":42,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}}}"#
        ),
        format!(
            r#"{{{HEAD},"choices":[],"usage":{{"prompt_tokens":1200,"completion_tokens":3,"total_tokens":1203,"prompt_tokens_details":{{"cached_tokens":1024}}}}}}"#
        ),
        // Other vendors' and older shapes.
        r#"{"id":"cmpl-1","object":"text_completion","created":1,"choices":[{"text":"legacy","index":0,"logprobs":null,"finish_reason":null}],"model":"m"}"#.into(),
        r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"whole","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#.into(),
        r#"{"choices":[{"delta":{"content":"a"},"index":0}],"created":1,"id":"x","model":"m","object":"chat.completion.chunk","service_tier":"default","obfuscation":"k3Jd"}"#.into(),
        r#"{"id":"x","choices":[{"index":0,"delta":{"content":"t"},"logprobs":{"content":[{"token":"t","logprob":-0.0012,"bytes":[116],"top_logprobs":[]}]}}]}"#.into(),
        r#"{"error":null,"choices":[{"delta":{"content":"x"}}]}"#.into(),
        " {\"choices\" : [ {\"delta\" : {\"content\" : \"spaced\"} } ] }\n".into(),
    ]
}

#[test]
fn the_fast_path_answers_ordinary_chunks() {
    for d in ordinary() {
        let (slow, fast) = both(&d);
        assert!(slow.is_some(), "JSON: {d}");
        assert!(fast, "the fast path bailed on an ordinary chunk: {d}");
    }
    // Generated ones too: random text with the escapes real content carries.
    let mut rng = Rng(0x5eed_0fc0_ffee);
    for _ in 0..2000 {
        let mut content = String::new();
        for _ in 0..rng.below(6) {
            content.push_str(rng.pick(&[
                " the",
                "Hello",
                "\\n",
                "\\\"",
                "\\\\",
                "\\t",
                "\\/",
                "é",
                "中",
                "😀",
                "{",
                "}",
                ",",
                ":",
                "[",
                "'",
                " ",
                "\\u00e9",
                "\\ud83d\\ude00",
            ]));
        }
        let n = rng.below(100_000);
        let d = match rng.below(5) {
            0 => delta(&format!(r#"{{"content":"{content}"}}"#), "null"),
            1 => delta(
                &format!(r#"{{"role":"assistant","content":"{content}","refusal":null}}"#),
                "null",
            ),
            2 => delta(
                &format!(
                    r#"{{"tool_calls":[{{"index":{n},"function":{{"arguments":"{content}"}}}}]}}"#
                ),
                "null",
            ),
            3 => delta("{}", &format!(r#""{content}""#)),
            _ => format!(
                r#"{{{HEAD},"choices":[],"usage":{{"prompt_tokens":{n},"completion_tokens":{},"total_tokens":0,"prompt_tokens_details":{{"cached_tokens":{}}}}}}}"#,
                n / 3,
                n / 7
            ),
        };
        let (slow, fast) = both(&d);
        assert!(slow.is_some() && fast, "{d}");
    }
}

/// Makes a member's value.
type Make = fn(&mut Gen) -> String;

/// Generates chunk-like JSON texts, valid or nearly so.
struct Gen {
    rng: Rng,
    /// Also what the fast path leaves to serde (`\u` escapes in strings and
    /// member names, numbers other than plain `u64`s where they are read,
    /// deep nesting, an `error`); without it, mostly what it answers.
    fancy: bool,
}

impl Gen {
    fn ws(&mut self) -> &'static str {
        if self.rng.pct(85) {
            return "";
        }
        if self.rng.pct(1) {
            // Not JSON whitespace.
            return self.rng.pick(&["\u{c}", "\u{a0}", "\u{b}"]);
        }
        self.rng.pick(&[" ", "  ", "\t", "\n", "\r\n", " \n\t "])
    }

    fn string(&mut self) -> String {
        let mut s = String::from("\"");
        for _ in 0..self.rng.below(5) {
            let bad = if self.rng.pct(1) { 0 } else { 2 };
            let piece = match self.rng.below(12 - bad) {
                0..=3 => self
                    .rng
                    .pick(&["a", "tok", " word", "x-y_z.0", ""])
                    .to_owned(),
                4 => self
                    .rng
                    .pick(&["é", "中文", "😀", "\u{7f}", "\u{80}"])
                    .to_owned(),
                5 | 6 => self
                    .rng
                    .pick(&["\\n", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\t"])
                    .to_owned(),
                7 => self
                    .rng
                    .pick(&[
                        "\\u0041",
                        "\\u00e9",
                        "\\u4e2d",
                        "\\ud83d\\ude00",
                        "\\u0000",
                        "\\uFFFF",
                        "\\uD83D\\uDE00",
                    ])
                    .to_owned(),
                // A long run: several words of the SWAR loop.
                8 => "abcdefghijklmnopqrstuvwxyz0123456789".repeat(1 + self.rng.below(3)),
                9 => self
                    .rng
                    .pick(&["{", "}", "[", "]", ",", ":", "'"])
                    .to_owned(),
                // Not JSON.
                10 => self
                    .rng
                    .pick(&[
                        "\\x", "\\u12", "\\u12g4", "\\", "\\U0041", "\\'", "\\ud800", "\\udc00",
                        "\\ud83dx",
                    ])
                    .to_owned(),
                _ => self.rng.pick(&["\n", "\t", "\u{0}", "\u{1f}"]).to_owned(),
            };
            s.push_str(&piece);
        }
        s.push('"');
        s
    }

    fn number(&mut self) -> String {
        let n = self.rng.below(1_000_000);
        let kinds = match (self.rng.pct(1), self.fancy) {
            (true, _) => 24,
            (false, true) => 18,
            (false, false) => 9,
        };
        match self.rng.below(kinds) {
            0..=7 => n.to_string(),
            8 => "0".into(),
            9 => format!("-{n}"),
            10 => "-0".into(),
            11 => format!("{n}.{}", self.rng.below(1000)),
            12 => format!("{n}e{}", self.rng.below(30)),
            13 => format!("{n}.5E-{}", self.rng.below(30)),
            14 => format!("{n}e+2"),
            15 => "18446744073709551615".into(),
            16 => "18446744073709551616".into(),
            17 => "0.0".into(),
            18 => "99999999999999999999999999".into(),
            // JSON, but out of an f64's range (serde fails where it reads it).
            19 => "1e400".into(),
            20 => "-1e400".into(),
            // Not JSON.
            _ => self
                .rng
                .pick(&[
                    "01", "1.", ".5", "-", "1e", "1e+", "+1", "0x10", "1.5.2", "--1", "NaN",
                ])
                .into(),
        }
    }

    fn scalar(&mut self) -> String {
        let kinds = if self.rng.pct(1) { 7 } else { 6 };
        match self.rng.below(kinds) {
            0 => "null".into(),
            1 => "true".into(),
            2 => "false".into(),
            3 | 4 => self.number(),
            5 => self.string(),
            _ => self
                .rng
                .pick(&["nul", "tru", "nulll", "True", "None", "undefined"])
                .into(),
        }
    }

    /// Any JSON value, nested up to `depth` more levels.
    fn value(&mut self, depth: usize) -> String {
        if depth == 0 || self.rng.pct(45) {
            return self.scalar();
        }
        if self.fancy && self.rng.pct(3) {
            return self.deep();
        }
        let n = self.rng.below(4);
        if self.rng.pct(50) {
            let items: Vec<String> = (0..n).map(|_| self.value(depth - 1)).collect();
            format!("[{}{}]", items.join(","), self.ws())
        } else {
            let members: Vec<(String, String)> = (0..n)
                .map(|_| (self.key_for(&[]), self.value(depth - 1)))
                .collect();
            self.object(&members)
        }
    }

    /// Nesting around the fast path's limit (64) and serde's (128).
    fn deep(&mut self) -> String {
        let n = *self
            .rng
            .pick(&[&10, &63, &64, &65, &100, &127, &128, &129, &300]);
        let (open, close) = match self.rng.below(3) {
            0 => ("[", "]"),
            1 => ("{\"k\":", "}"),
            _ => ("[{\"a\":", "}]"),
        };
        let inner = self.scalar();
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    fn key_for(&mut self, known: &[&str]) -> String {
        if !known.is_empty() && self.rng.pct(75) {
            return format!("\"{}\"", self.rng.pick(known));
        }
        if !self.fancy {
            return format!(
                "\"{}\"",
                self.rng.pick(&["index", "id", "role", "x", "", "a b"])
            );
        }
        let k = self.rng.pick(&[
            "\"index\"",
            "\"id\"",
            "\"role\"",
            "\"type\"",
            "\"logprobs\"",
            "\"x\"",
            "\"\"",
            "\"cont\\u0065nt\"",
            "\"te\\u0078t\"",
            "\"choic\\u0065s\"",
            "\"us\\u0061ge\"",
            "\"err\\u006fr\"",
            "\"a\\nb\"",
            "\"content \"",
            "\"Content\"",
            "\"choices\"",
            "\"delta\"",
            "\"text\"",
            "\"name\"",
            "\"usage\"",
            "\"error\"",
            "\"function\"",
            "\"prompt_tokens\"",
        ]);
        k.to_owned()
    }

    fn object(&mut self, members: &[(String, String)]) -> String {
        let mut s = format!("{{{}", self.ws());
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                s.push(',');
                s.push_str(self.ws());
            }
            s.push_str(k);
            s.push_str(self.ws());
            s.push(':');
            s.push_str(self.ws());
            s.push_str(v);
            s.push_str(self.ws());
        }
        s.push('}');
        s
    }

    /// A member's value at a typed position: mostly of its shape.
    fn typed(&mut self, good: impl FnOnce(&mut Self) -> String) -> String {
        match self.rng.below(10) {
            0 => "null".into(),
            1 => self.value(3),
            _ => good(self),
        }
    }

    /// An object of the given members (name, value maker), each present or
    /// not, sometimes twice, with unknown members mixed in, shuffled.
    fn shaped(&mut self, fields: &[(&str, Make)]) -> String {
        let mut members = Vec::new();
        for (name, make) in fields {
            for _ in 0..[0, 1, 1, 1, 1, 2][self.rng.below(6)] {
                let v = self.typed(make);
                members.push((format!("\"{name}\""), v));
            }
        }
        for _ in 0..self.rng.below(3) {
            let k = self.key_for(&[]);
            let v = self.value(3);
            members.push((k, v));
        }
        for i in (1..members.len()).rev() {
            if self.rng.pct(30) {
                let j = self.rng.below(i + 1);
                members.swap(i, j);
            }
        }
        self.object(&members)
    }

    fn array(&mut self, item: fn(&mut Self) -> String) -> String {
        let items: Vec<String> = (0..self.rng.below(6))
            .map(|_| match self.rng.below(12) {
                0 => "null".into(),
                1 => self.value(2),
                _ => item(self),
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    fn func(&mut self) -> String {
        self.shaped(&[("name", Self::string), ("arguments", Self::string)])
    }

    fn call(&mut self) -> String {
        self.shaped(&[
            ("index", Self::number),
            ("id", Self::string),
            ("type", Self::string),
            ("function", Self::func),
        ])
    }

    fn msg(&mut self) -> String {
        self.shaped(&[
            ("role", Self::string),
            ("content", Self::string),
            ("refusal", Self::string),
            ("tool_calls", |g| g.array(Self::call)),
            ("function_call", Self::func),
        ])
    }

    fn choice(&mut self) -> String {
        self.shaped(&[
            ("index", Self::number),
            ("delta", Self::msg),
            ("message", Self::msg),
            ("text", Self::string),
            ("logprobs", |g| g.value(3)),
            ("finish_reason", Self::string),
        ])
    }

    fn usage(&mut self) -> String {
        self.shaped(&[
            ("prompt_tokens", Self::number),
            ("completion_tokens", Self::number),
            ("total_tokens", Self::number),
            ("prompt_tokens_details", |g| {
                g.shaped(&[
                    ("cached_tokens", Self::number),
                    ("audio_tokens", Self::number),
                ])
            }),
        ])
    }

    fn top(&mut self) -> String {
        let doc = match self.rng.below(40) {
            0 => self.value(4),
            1 => self.deep(),
            _ => self.shaped(&[
                ("id", Self::string),
                ("object", Self::string),
                ("created", Self::number),
                ("model", Self::string),
                ("choices", |g| g.array(Self::choice)),
                ("usage", Self::usage),
                ("error", |g| {
                    if !g.fancy || g.rng.pct(80) {
                        "null".into()
                    } else {
                        g.value(2)
                    }
                }),
            ]),
        };
        format!("{}{doc}{}", self.ws(), self.ws())
    }

    /// `data` slightly broken (or not).
    fn mutate(&mut self, data: &str) -> String {
        let mut cut = self.rng.below(data.len() + 1);
        while !data.is_char_boundary(cut) {
            cut -= 1;
        }
        let (a, b) = data.split_at(cut);
        let skip = b.chars().next().map_or(0, char::len_utf8);
        match self.rng.below(7) {
            0 => a.to_owned(),
            1 => format!("{a}{}", &b[skip..]),
            2 | 3 => {
                let junk = self.rng.pick(&[
                    "\"", "\\", "{", "}", "[", "]", ",", ":", "0", "-", "e", ".", "n", " ", "\n",
                    "\u{0}", "\u{1}", "é", "x", "null", "1,", "\"a\":",
                ]);
                format!("{a}{junk}{b}")
            }
            4 => format!(
                "{a}{}{}",
                self.rng.pick(&["!", "'", "\u{7f}", "😀"]),
                &b[skip..]
            ),
            5 => format!("{a}{a}{b}"),
            _ => format!(
                "{data}{}",
                self.rng.pick(&["x", ",", "}", " ", "\n", "\u{0}", "{}"])
            ),
        }
    }
}

#[test]
fn the_fast_path_agrees_with_serde_or_bails() {
    let mut g = Gen {
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        fancy: false,
    };
    // [cases, JSON, answered by the fast path], for generated texts and
    // for their mutations.
    let (mut generated, mut mutated) = ([0usize; 3], [0usize; 3]);
    let check = |d: &str, n: &mut [usize; 3]| {
        let (slow, fast) = both(d);
        n[0] += 1;
        n[1] += usize::from(slow.is_some());
        n[2] += usize::from(fast);
    };
    for i in 0..30_000 {
        g.fancy = i % 2 == 1;
        let d = g.top();
        check(&d, &mut generated);
        for _ in 0..3 {
            let m = g.mutate(&d);
            check(&m, &mut mutated);
        }
    }
    g.fancy = true;
    for d in ordinary() {
        for _ in 0..500 {
            let m = g.mutate(&d);
            check(&m, &mut mutated);
        }
        for cut in 0..d.len() {
            if d.is_char_boundary(cut) {
                check(&d[..cut], &mut mutated);
            }
        }
    }
    eprintln!("[cases, JSON, answered]: generated {generated:?}, mutated {mutated:?}");
    // Both outcomes are reached often, not just bails.
    assert!(generated[1] > generated[0] / 2, "{generated:?}");
    assert!(generated[2] > generated[1] / 4, "{generated:?}");
    assert!(mutated[2] > mutated[1] / 4, "{mutated:?}");
}
