//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`),
//! as Bedrock's ConverseStream sends it, decoded incrementally.
//!
//! One message on the wire, all integers big-endian:
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 (of the 8 bytes before)
//! headers (headers length bytes) | payload | message CRC32 (of every byte before)
//! ```
//!
//! A header is `name length u8 | name | value type u8 | value`; the value
//! types are 0 true, 1 false, 2 i8, 3 i16, 4 i32, 5 i64, 6 bytes (u16
//! length), 7 string (u16 length), 8 timestamp (i64 ms), 9 uuid (16 bytes).
//!
//! Both CRCs are checked before anything of a message is used: a corrupt
//! length could otherwise make the decoder wait for gigabytes. After the
//! first error the framing is lost, so the decoder refuses every later read.

use std::fmt;

/// Prelude (two lengths and their CRC) plus the message CRC.
pub const OVERHEAD: usize = 16;
/// Larger than any message AWS documents (16 MiB payload, 128 KiB headers).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024 + 128 * 1024 + OVERHEAD;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE, as gzip and zlib compute it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// A header value, by its wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One decoded message: its headers in wire order and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The string value of header `name`, if it has one.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Why a stream could not be decoded; `message` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    PreludeCrc {
        message: u64,
        expected: u32,
        actual: u32,
    },
    MessageCrc {
        message: u64,
        expected: u32,
        actual: u32,
    },
    BadLength {
        message: u64,
        total: u32,
        headers: u32,
    },
    TooLarge {
        message: u64,
        total: u32,
        max: usize,
    },
    BadHeader {
        message: u64,
        what: String,
    },
    /// The decoder failed before; the stream cannot be resynchronised.
    Failed,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::PreludeCrc { message, expected, actual } => write!(
                f,
                "event-stream message {message}: prelude CRC mismatch (frame says {expected:#010x}, bytes give {actual:#010x})"
            ),
            FrameError::MessageCrc { message, expected, actual } => write!(
                f,
                "event-stream message {message}: message CRC mismatch (frame says {expected:#010x}, bytes give {actual:#010x})"
            ),
            FrameError::BadLength { message, total, headers } => write!(
                f,
                "event-stream message {message}: impossible lengths (total {total}, headers {headers})"
            ),
            FrameError::TooLarge { message, total, max } => write!(
                f,
                "event-stream message {message}: {total} bytes, over the limit of {max}"
            ),
            FrameError::BadHeader { message, what } => {
                write!(f, "event-stream message {message}: bad header: {what}")
            }
            FrameError::Failed => write!(f, "the event stream failed earlier and cannot continue"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The messages completed before a failure, and the failure.
#[derive(Debug)]
pub struct FeedError {
    pub messages: Vec<Message>,
    pub error: FrameError,
}

/// Incremental decoder: feed network reads split anywhere.
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    max_message: usize,
    decoded: u64,
    failed: bool,
}

impl Decoder {
    pub fn new(max_message_bytes: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            start: 0,
            max_message: max_message_bytes.max(OVERHEAD),
            decoded: 0,
            failed: false,
        }
    }

    /// Messages decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Bytes held for an incomplete message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Decode every message `chunk` completes, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Message>, FeedError> {
        let mut messages = Vec::new();
        if self.failed {
            return Err(FeedError {
                messages,
                error: FrameError::Failed,
            });
        }
        self.buf.extend_from_slice(chunk);
        loop {
            match self.next_message() {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(error) => {
                    self.failed = true;
                    self.buf = Vec::new();
                    self.start = 0;
                    return Err(FeedError { messages, error });
                }
            }
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(messages)
    }

    fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        let rest = &self.buf[self.start..];
        if rest.len() < 12 {
            return Ok(None);
        }
        let number = self.decoded + 1;
        let total = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let headers_len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let prelude_crc = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let actual = crc32(&rest[..8]);
        if actual != prelude_crc {
            return Err(FrameError::PreludeCrc {
                message: number,
                expected: prelude_crc,
                actual,
            });
        }
        let (t, h) = (total as usize, headers_len as usize);
        if t < OVERHEAD || h > t - OVERHEAD {
            return Err(FrameError::BadLength {
                message: number,
                total,
                headers: headers_len,
            });
        }
        if t > self.max_message {
            return Err(FrameError::TooLarge {
                message: number,
                total,
                max: self.max_message,
            });
        }
        if rest.len() < t {
            return Ok(None);
        }
        let frame = &rest[..t];
        let expected = u32::from_be_bytes([frame[t - 4], frame[t - 3], frame[t - 2], frame[t - 1]]);
        let actual = crc32(&frame[..t - 4]);
        if actual != expected {
            return Err(FrameError::MessageCrc {
                message: number,
                expected,
                actual,
            });
        }
        let headers = parse_headers(&frame[12..12 + h]).map_err(|what| FrameError::BadHeader {
            message: number,
            what,
        })?;
        let payload = frame[12 + h..t - 4].to_vec();
        self.start += t;
        self.decoded += 1;
        Ok(Some(Message { headers, payload }))
    }
}

fn parse_headers(mut data: &[u8]) -> Result<Vec<(String, HeaderValue)>, String> {
    fn take<'a>(data: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
        if data.len() < n {
            return Err(format!("{what} runs past the headers"));
        }
        let (head, tail) = data.split_at(n);
        *data = tail;
        Ok(head)
    }
    let mut out = Vec::new();
    while !data.is_empty() {
        let name_len = take(&mut data, 1, "a name length")?[0] as usize;
        if name_len == 0 {
            return Err("empty header name".to_owned());
        }
        let name = std::str::from_utf8(take(&mut data, name_len, "a name")?)
            .map_err(|_| "a header name is not UTF-8".to_owned())?
            .to_owned();
        let kind = take(&mut data, 1, "a value type")?[0];
        let mut fixed = |n: usize| take(&mut data, n, &name).map(|b| b.to_vec());
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(fixed(1)?[0] as i8),
            3 => HeaderValue::Short(i16::from_be_bytes(fixed(2)?.try_into().unwrap())),
            4 => HeaderValue::Int(i32::from_be_bytes(fixed(4)?.try_into().unwrap())),
            5 => HeaderValue::Long(i64::from_be_bytes(fixed(8)?.try_into().unwrap())),
            8 => HeaderValue::Timestamp(i64::from_be_bytes(fixed(8)?.try_into().unwrap())),
            9 => HeaderValue::Uuid(fixed(16)?.try_into().unwrap()),
            6 | 7 => {
                let len = take(&mut data, 2, &name)?;
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                let raw = take(&mut data, len, &name)?;
                if kind == 6 {
                    HeaderValue::Bytes(raw.to_vec())
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(raw)
                            .map_err(|_| format!("{name}: string value is not UTF-8"))?
                            .to_owned(),
                    )
                }
            }
            other => return Err(format!("{name}: unknown value type {other}")),
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Encode one message (string headers only): for tests and benchmarks.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut hbytes = Vec::new();
    for (name, value) in headers {
        hbytes.push(name.len() as u8);
        hbytes.extend_from_slice(name.as_bytes());
        hbytes.push(7);
        hbytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
        hbytes.extend_from_slice(value.as_bytes());
    }
    let total = (OVERHEAD + hbytes.len() + payload.len()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(hbytes.len() as u32).to_be_bytes());
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&hbytes);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        encode(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.as_bytes(),
        )
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_known_frame_from_the_documented_layout() {
        // No headers, payload {"foo": "bar"}: total 30, prelude CRC 0xbaf2f68a.
        let frame = encode(&[], br#"{"foo": "bar"}"#);
        assert_eq!(
            &frame[..12],
            &[0, 0, 0, 30, 0, 0, 0, 0, 0xba, 0xf2, 0xf6, 0x8a]
        );
        assert_eq!(&frame[26..], &[0xae, 0x72, 0x58, 0xe4]);
    }

    #[test]
    fn decodes_messages_split_at_every_byte() {
        let mut wire = event("messageStart", r#"{"role":"assistant"}"#);
        wire.extend(event(
            "contentBlockDelta",
            r#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#,
        ));
        for cut in 0..=wire.len() {
            let mut d = Decoder::new(DEFAULT_MAX_MESSAGE_BYTES);
            let mut got = d.feed(&wire[..cut]).unwrap();
            got.extend(d.feed(&wire[cut..]).unwrap());
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].header_str(":event-type"), Some("messageStart"));
            assert_eq!(
                got[1].payload,
                br#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#
            );
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn every_header_type() {
        let mut h = Vec::new();
        let mut add = |name: &str, kind: u8, value: &[u8]| {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(kind);
            h.extend_from_slice(value);
        };
        add("t", 0, &[]);
        add("f", 1, &[]);
        add("b", 2, &[0xff]);
        add("s", 3, &(-2i16).to_be_bytes());
        add("i", 4, &7i32.to_be_bytes());
        add("l", 5, &(-9i64).to_be_bytes());
        add("y", 6, &[0, 2, 1, 2]);
        add("z", 7, &[0, 1, b'x']);
        add("ts", 8, &1_700_000_000_000i64.to_be_bytes());
        add("u", 9, &[7; 16]);
        let got = parse_headers(&h).unwrap();
        let values: Vec<HeaderValue> = got.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            vec![
                HeaderValue::Bool(true),
                HeaderValue::Bool(false),
                HeaderValue::Byte(-1),
                HeaderValue::Short(-2),
                HeaderValue::Int(7),
                HeaderValue::Long(-9),
                HeaderValue::Bytes(vec![1, 2]),
                HeaderValue::String("x".into()),
                HeaderValue::Timestamp(1_700_000_000_000),
                HeaderValue::Uuid([7; 16]),
            ]
        );
    }

    #[test]
    fn corrupt_bytes_are_errors_and_the_decoder_stays_failed() {
        let good = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            let mut d = Decoder::new(DEFAULT_MAX_MESSAGE_BYTES);
            let mut wire = good.clone();
            wire.extend(&bad);
            match d.feed(&wire) {
                Err(FeedError { messages, .. }) => assert_eq!(messages.len(), 1, "byte {i}"),
                Ok(_) => panic!("a flipped bit in byte {i} passed the CRCs"),
            }
            assert!(matches!(
                d.feed(&good),
                Err(FeedError {
                    error: FrameError::Failed,
                    ..
                })
            ));
        }
    }

    #[test]
    fn lengths_are_checked_before_waiting() {
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&u32::MAX.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        let err = Decoder::new(1024).feed(&prelude).unwrap_err().error;
        assert!(matches!(err, FrameError::TooLarge { .. }));

        let mut short = Vec::new();
        short.extend_from_slice(&20u32.to_be_bytes());
        short.extend_from_slice(&10u32.to_be_bytes());
        let crc = crc32(&short);
        short.extend_from_slice(&crc.to_be_bytes());
        let err = Decoder::new(1024).feed(&short).unwrap_err().error;
        assert!(matches!(err, FrameError::BadLength { .. }), "{err}");
    }

    #[test]
    fn truncated_header_is_reported() {
        // One header claiming a 5-byte string where 1 byte follows.
        let h = [1u8, b'a', 7, 0, 5, b'x'];
        assert!(parse_headers(&h).unwrap_err().contains("runs past"));
        assert!(parse_headers(&[1, b'a', 42])
            .unwrap_err()
            .contains("unknown value type 42"));
    }
}
