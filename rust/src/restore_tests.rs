//! Restoration in JSON answers and in streams split anywhere.

use super::*;
use crate::redact::{Action, Detector, Table};

fn table() -> Table {
    let d = Detector::new(
        &[("email".into(), Action::Placeholder)],
        &[(
            "name".into(),
            r#"Ann "Q" O\\Brien"#.into(),
            Action::Placeholder,
        )],
    )
    .unwrap();
    let mut t = Table::new();
    d.redact(r#"a@x.io b@y.io Ann "Q" O\Brien"#, &mut t)
        .unwrap();
    t
}

#[test]
fn json_answer_text_and_arguments() {
    let t = table();
    let body = br#"{"choices":[{"message":{"content":"to [EMAIL_1] and [NAME_1] [EMAIL_9]","tool_calls":[{"function":{"arguments":"{\"to\":\"[NAME_1]\"}"}}]}}]}"#;
    let out = restore_json(body, &t).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        r#"to a@x.io and Ann "Q" O\Brien [EMAIL_9]"#
    );
    let args = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    let args: serde_json::Value = serde_json::from_str(args).unwrap();
    assert_eq!(args["to"], r#"Ann "Q" O\Brien"#);
    assert_eq!(restore_json(br#"{"a":"[EMAIL_7]"}"#, &t), None);
    assert_eq!(restore_json(br#"{"a":[1,2]}"#, &t), None);
}

/// OpenAI chat chunks carrying `pieces` as content deltas, then a finish.
fn openai_stream(pieces: &[&str]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = pieces
        .iter()
        .map(|p| {
            format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}}}}]}}\n\n",
                serde_json::to_string(p).unwrap()
            )
            .into_bytes()
        })
        .collect();
    v.push(
        b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".to_vec(),
    );
    v.push(b"data: [DONE]\n\n".to_vec());
    v
}

fn run(events: &[Vec<u8>], t: &Table) -> Vec<u8> {
    let mut r = StreamRestorer::new(t.clone());
    let mut out = Vec::new();
    for e in events {
        match r.event(e) {
            Some(b) => out.extend_from_slice(&b),
            None => out.extend_from_slice(e),
        }
    }
    out.extend_from_slice(&r.flush());
    out
}

fn content_of(sse: &[u8]) -> String {
    let mut s = String::new();
    for line in sse.split(|&b| b == b'\n') {
        let Some(d) = line.strip_prefix(b"data: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(d) else {
            continue;
        };
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            s.push_str(c);
        }
    }
    s
}

#[test]
fn placeholder_split_at_every_point() {
    let t = table();
    let text = r#"Mail [EMAIL_1], cc [NAME_1]; not [EMAIL_3] nor [EMA."#;
    let want = r#"Mail a@x.io, cc Ann "Q" O\Brien; not [EMAIL_3] nor [EMA."#;
    for i in 0..=text.len() {
        for j in i..=text.len() {
            let out = run(&openai_stream(&[&text[..i], &text[i..j], &text[j..]]), &t);
            assert_eq!(content_of(&out), want, "split at {i}, {j}");
        }
    }
}

#[test]
fn nothing_held_without_a_possible_placeholder() {
    let t = table();
    let mut r = StreamRestorer::new(t.clone());
    let e = openai_stream(&["plain [x] text"]);
    assert!(r.event(&e[0]).is_none());
    let held = r.event(&openai_stream(&["see [EMA"])[0]).unwrap();
    assert_eq!(content_of(&held), "see ");
    assert!(!r.is_idle());
    let out = r.event(&openai_stream(&["IL_2] ok"])[0]).unwrap();
    assert_eq!(content_of(&out), "b@y.io ok");
    assert!(r.is_idle());
}

#[test]
fn anthropic_blocks_and_tool_json() {
    let t = table();
    let ev = |idx: u32, kind: &str, field: &str, s: &str| {
        format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{idx},\"delta\":{{\"type\":\"{kind}\",\"{field}\":{}}}}}\n\n",
            serde_json::to_string(s).unwrap()
        )
        .into_bytes()
    };
    let events = vec![
        ev(0, "text_delta", "text", "hi [EM"),
        ev(0, "text_delta", "text", "AIL_1]"),
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_vec(),
        ev(1, "input_json_delta", "partial_json", "{\"who\": \"[NA"),
        ev(1, "input_json_delta", "partial_json", "ME_1]\"}"),
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
            .to_vec(),
    ];
    let out = run(&events, &t);
    let mut text = String::new();
    let mut json = String::new();
    for line in out.split(|&b| b == b'\n') {
        let Some(d) = line.strip_prefix(b"data: ") else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(d).unwrap();
        if let Some(s) = v["delta"]["text"].as_str() {
            text.push_str(s);
        }
        if let Some(s) = v["delta"]["partial_json"].as_str() {
            json.push_str(s);
        }
    }
    assert_eq!(text, "hi a@x.io");
    let args: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(args["who"], r#"Ann "Q" O\Brien"#);
}

#[test]
fn tail_at_stream_end_is_sent() {
    let t = table();
    let events = vec![b"data: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"end [EMAIL_\"}\n\n".to_vec()];
    let out = run(&events, &t);
    let s = String::from_utf8(out).unwrap();
    assert!(s.contains("\"delta\":\"end \""), "{s}");
    assert!(s.contains("\"delta\":\"[EMAIL_\""), "{s}");
}

#[test]
fn openai_tool_call_arguments_split_across_chunks() {
    let t = table();
    let chunk = |args: &str| {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":1,\"function\":{{\"arguments\":{}}}}}]}}}}]}}\n\n",
            serde_json::to_string(args).unwrap()
        )
        .into_bytes()
    };
    let args = r#"{"to": "[NAME_1]", "cc": "[EMAIL_2]"}"#;
    for cut in 0..=args.len() {
        let events = vec![chunk(&args[..cut]), chunk(&args[cut..]), b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n".to_vec()];
        let out = run(&events, &t);
        let mut joined = String::new();
        for line in out.split(|&b| b == b'\n') {
            let Some(d) = line.strip_prefix(b"data: ") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_slice(d).unwrap();
            if let Some(s) =
                v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            {
                joined.push_str(s);
            }
        }
        let v: serde_json::Value =
            serde_json::from_str(&joined).unwrap_or_else(|e| panic!("cut {cut}: {joined}: {e}"));
        assert_eq!(v["to"], r#"Ann "Q" O\Brien"#, "cut {cut}");
        assert_eq!(v["cc"], "b@y.io", "cut {cut}");
    }
}
