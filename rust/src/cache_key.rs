//! Cache keys for JSON request bodies: SHA-256 over a canonical serialization.
//!
//! Canonical form (our own writer, so it does not change with serde_json's
//! formatting or with its `preserve_order` feature):
//! * no whitespace; object keys sorted by their UTF-8 bytes at every depth;
//!   duplicate keys: the last one wins (as when parsing into a map);
//! * arrays keep their order;
//! * strings are re-escaped: `"` `\` and `\b \f \n \r \t` as short escapes,
//!   other control characters as `\u00xx` (lowercase hex), everything else as
//!   raw UTF-8 — so `"\u0041"` and `"A"` are the same string;
//! * numbers: a literal without fraction or exponent that fits in an i64/u64
//!   is an integer and is written in decimal; every other number is a float
//!   (an f64) written as the shortest round-trip scientific form (`1e0`,
//!   `1.5e-7`). Hence `1.0`, `1.00` and `1e0` are equal, while `1` and `1.0`
//!   are different keys (an API may treat them differently). Integers beyond
//!   64 bits become floats and compare with f64 precision; `-0` is the float
//!   `-0.0` (serde_json's reading) and differs from `0`.
//!
//! The key is `hex(SHA-256(u64_be(len(salt)) || salt || canonical))`: the
//! length prefix keeps (salt, body) pairs from colliding.

use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use crate::json::{self, JsonError};

/// The cache key of `body`, ignoring the listed top-level keys.
pub fn cache_key<S: AsRef<str>>(
    body: &[u8],
    ignore: &[S],
    salt: &[u8],
) -> Result<String, JsonError> {
    let value = parse_without(body, ignore)?;
    let mut sink = HashSink::new();
    sink.hasher.update((salt.len() as u64).to_be_bytes());
    sink.hasher.update(salt);
    write_value(&value, &mut sink);
    Ok(to_hex(&sink.finish()))
}

/// The canonical bytes that [`cache_key`] hashes (after the salt).
pub fn canonical_json<S: AsRef<str>>(body: &[u8], ignore: &[S]) -> Result<Vec<u8>, JsonError> {
    let value = parse_without(body, ignore)?;
    let mut out = Vec::with_capacity(body.len());
    write_value(&value, &mut out);
    Ok(out)
}

fn parse_without<S: AsRef<str>>(body: &[u8], ignore: &[S]) -> Result<Value, JsonError> {
    let mut value = json::parse(body)?;
    if let Value::Object(map) = &mut value {
        for key in ignore {
            map.remove(key.as_ref());
        }
    }
    Ok(value)
}

trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Buffers small writes so the hasher sees few, large updates.
struct HashSink {
    hasher: Sha256,
    buf: Vec<u8>,
}

const HASH_BUF: usize = 8 * 1024;

impl HashSink {
    fn new() -> Self {
        HashSink {
            hasher: Sha256::new(),
            buf: Vec::with_capacity(HASH_BUF),
        }
    }

    fn finish(mut self) -> [u8; 32] {
        self.hasher.update(&self.buf);
        self.hasher.finalize().into()
    }
}

impl Sink for HashSink {
    fn put(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > HASH_BUF {
            self.hasher.update(&self.buf);
            self.buf.clear();
            if bytes.len() > HASH_BUF {
                self.hasher.update(bytes);
                return;
            }
        }
        self.buf.extend_from_slice(bytes);
    }
}

fn write_value(v: &Value, out: &mut impl Sink) {
    match v {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::Number(n) => out.put(canonical_number(n).as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.put(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_value(item, out);
            }
            out.put(b"]");
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.put(b"{");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_string(k, out);
                out.put(b":");
                write_value(v, out);
            }
            out.put(b"}");
        }
    }
}

fn canonical_number(n: &Number) -> String {
    if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        // JSON parsing never yields NaN or infinities.
        format!("{:e}", n.as_f64().unwrap_or(f64::NAN))
    }
}

fn write_string(s: &str, out: &mut impl Sink) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put(b"\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.put(&bytes[start..i]);
        out.put(esc);
        start = i + 1;
    }
    out.put(&bytes[start..]);
    out.put(b"\"");
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: &[&str] = &[];

    fn canon(s: &str) -> String {
        String::from_utf8(canonical_json(s.as_bytes(), NONE).unwrap()).unwrap()
    }

    fn key(s: &str) -> String {
        cache_key(s.as_bytes(), NONE, b"").unwrap()
    }

    #[test]
    fn canonical_form() {
        assert_eq!(
            canon(r#" { "b" : [3, 1, {"z": null, "a": true}], "a": "x" } "#),
            r#"{"a":"x","b":[3,1,{"a":true,"z":null}]}"#
        );
        assert_eq!(
            canon(r#"{"é": 1, "z": 2, "Z": 3}"#),
            r#"{"Z":3,"z":2,"é":1}"#
        );
    }

    #[test]
    fn strings() {
        assert_eq!(canon(r#""\u0041\/""#), r#""A/""#);
        assert_eq!(canon(r#""\u00e9\ud83e\udd80""#), "\"é🦀\"");
        assert_eq!(
            canon(r#""q\" b\\ \b\f\n\r\t \u0001 \u001F \u007f""#),
            "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001 \\u001f \u{7f}\""
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            canon("[1, -1, 0, 1.0, 1.00, 1e0, 10E-1, 1.5, -2.5e-7, 1e300]"),
            "[1,-1,0,1e0,1e0,1e0,1e0,1.5e0,-2.5e-7,1e300]"
        );
        assert_eq!(canon("18446744073709551615"), "18446744073709551615");
        assert_eq!(canon("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(canon("18446744073709551616"), "1.8446744073709552e19");
        assert_eq!(canon("0.1"), "1e-1");
        assert_ne!(key("1"), key("1.0"));
        assert_eq!(key("1.0"), key("1.00"));
    }

    #[test]
    fn key_properties() {
        let k = key(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(k.len(), 64);
        assert!(k
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            k,
            key("{\n  \"messages\": [{\"content\": \"hi\", \"role\": \"user\"}],\n  \"model\": \"gpt-4o\"\n}")
        );
        assert_ne!(
            k,
            key(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi!"}]}"#)
        );
        assert_ne!(key("[1,2]"), key("[2,1]"));
    }

    #[test]
    fn ignore_and_salt() {
        let a = br#"{"model":"m","user":"alice","stream":true}"#;
        let b = br#"{"model":"m","user":"bob","stream":false}"#;
        assert_ne!(
            cache_key(a, NONE, b"").unwrap(),
            cache_key(b, NONE, b"").unwrap()
        );
        let ig = ["user", "stream"];
        assert_eq!(
            cache_key(a, &ig, b"").unwrap(),
            cache_key(b, &ig, b"").unwrap()
        );
        assert_eq!(cache_key(a, &ig, b"").unwrap(), key(r#"{"model":"m"}"#));
        // Only top-level keys are ignored.
        assert_ne!(
            cache_key(br#"{"x":{"user":1}}"#, &["user"], b"").unwrap(),
            key(r#"{"x":{}}"#)
        );
        assert_ne!(
            cache_key(a, NONE, b"s1").unwrap(),
            cache_key(a, NONE, b"s2").unwrap()
        );
        assert_ne!(
            cache_key(a, NONE, b"").unwrap(),
            cache_key(a, NONE, b"s").unwrap()
        );
    }

    #[test]
    fn known_digest() {
        // Computed independently with Python's hashlib:
        // sha256(struct.pack(">Q", len(salt)) + salt + canonical).hexdigest()
        assert_eq!(
            key(" { } "),
            "9bf2cdb8cad05b1300c3c1eb12770a9a52f8b78a40da41030a83040ad08fb797"
        );
        assert_eq!(
            cache_key(br#"{"a": [1, 1.0, "\u000a"]}"#, NONE, b"salt").unwrap(),
            "6d1056b7140249fbc991419bad9fb8103bd7dacc4e661ac7ccf9e8d66779b61c"
        );
        assert_eq!(
            to_hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn long_bodies_hash_like_short_ones() {
        let big = format!("[\"{}\"]", "x".repeat(100_000));
        let canonical = canonical_json(big.as_bytes(), NONE).unwrap();
        let mut h = Sha256::new();
        h.update([0u8; 8]);
        h.update(&canonical);
        assert_eq!(key(&big), to_hex(&h.finalize()));
    }

    #[test]
    fn invalid() {
        let e = cache_key(b"{\"a\":}", NONE, b"").unwrap_err();
        assert_eq!(e.offset, Some(5));
    }
}
