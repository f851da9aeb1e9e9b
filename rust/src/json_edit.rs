//! Read and replace top-level members of a JSON object without decoding and
//! re-encoding it: everything not edited stays byte for byte (whitespace,
//! member order, escapes, number spellings).
//!
//! Keys are compared after unescaping (`"mod\u0065l"` is `model`).

use crate::json::{object_members, offset_in, syntax_error, JsonError};

/// The raw bytes of the value of top-level member `key` (the last one if the
/// key is duplicated), `None` if absent. Fails if `body` is not a JSON object.
pub fn top_level_value<'a>(body: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, JsonError> {
    let (_, members) = object_members(body)?;
    Ok(members
        .iter()
        .rev()
        .find(|m| m.key == key)
        .map(|m| m.value.get().as_bytes()))
}

/// Apply `edits` (key, raw JSON value): the value of every top-level member
/// named `key` is replaced; a key the object lacks is inserted as a member
/// right after `{` (inserted members in the order of `edits`, then a comma
/// if the object had members). When `edits` names a key twice, the last
/// value wins. Each value must be one JSON value (surrounding whitespace is
/// kept). Fails if `body` is not a JSON object or a value is not JSON.
pub fn splice_top_level(body: &[u8], edits: &[(&str, &[u8])]) -> Result<Vec<u8>, JsonError> {
    for (key, value) in edits {
        serde_json::from_slice::<serde::de::IgnoredAny>(value).map_err(|e| {
            let mut err = syntax_error(value, &e);
            err.message = format!("the new value of {key:?} is not JSON: {}", err.message);
            err
        })?;
    }
    let (brace, members) = object_members(body)?;
    // Which edit applies to a key: the last one naming it.
    let edit_for = |key: &str| edits.iter().rposition(|(k, _)| *k == key);

    let mut inserted = Vec::new();
    for (i, (key, _)) in edits.iter().enumerate() {
        if edit_for(key) == Some(i) && !members.iter().any(|m| m.key == *key) {
            inserted.push(i);
        }
    }
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
    if !inserted.is_empty() && !members.is_empty() {
        out.push(b',');
    }
    let mut pos = brace + 1;
    for m in &members {
        if let Some(i) = edit_for(&m.key) {
            let start = offset_in(body, m.value);
            out.extend_from_slice(&body[pos..start]);
            out.extend_from_slice(edits[i].1);
            pos = start + m.value.get().len();
        }
    }
    out.extend_from_slice(&body[pos..]);
    Ok(out)
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
}
