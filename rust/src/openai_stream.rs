//! The per-read work of relaying an OpenAI-shaped SSE stream: decode the
//! events of one network read, scan each one's JSON ([`crate::openai_chunk`]),
//! and re-frame the ones to relay into one output buffer, data bytes as
//! received.
//!
//! * `data: [DONE]` ends the stream: it is not relayed, nothing after it is read;
//! * an event with a top-level `error` ends the stream: it is reported, not relayed;
//! * with `strip_usage`, a usage-only event (a well-formed `usage`, no choices)
//!   is reported but not relayed;
//! * frames are `event: T\n` (only when the event has a type), one
//!   `data: line\n` per line of data, and a blank line; `id:`, `retry:` and
//!   comments are dropped.
//!
//! After the end (done, error, a failure, or `close`) later reads are ignored.

use memchr::memchr_iter;

use crate::openai_chunk::{scan_chunk, Usage};
use crate::sse::{FeedError, SseDecoder, TooLarge};

/// Default limit for one event's buffered bytes (4 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 << 20;

const DONE: &[u8] = b"[DONE]";

/// What one read held. The frames are in [`OpenAIStreamScanner::out`] and the
/// text it added is `scanner.text()[text_start..]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Events relayed in `out`.
    pub events: usize,
    /// An event carried content (see [`crate::openai_chunk::scan_chunk`]).
    pub content: bool,
    /// `[DONE]` was seen.
    pub done: bool,
    /// The last well-formed `usage` of this read.
    pub usage: Option<Usage>,
    /// Raw JSON of a provider's mid-stream `error`.
    pub error: Option<Vec<u8>>,
    pub text_start: usize,
}

/// Why a read could not be scanned. Events are numbered from 1 in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    TooLarge(TooLarge),
    NotUtf8 { event: u64, at: usize },
    NotJson { event: u64, message: String },
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::TooLarge(t) => t.fmt(f),
            ScanError::NotUtf8 { event, at } => {
                write!(f, "stream event {event} is not valid UTF-8 at byte {at}")
            }
            ScanError::NotJson { event, message } => {
                write!(f, "stream event {event} is not JSON: {message}")
            }
        }
    }
}

impl std::error::Error for ScanError {}

/// A failed read: the error, and what the read held before the bad event
/// (its frames are in `out`; nothing is relayed for a too-large event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub error: ScanError,
    pub partial: Scan,
}

#[derive(Debug)]
pub struct OpenAIStreamScanner {
    decoder: SseDecoder,
    strip_usage: bool,
    out: Vec<u8>,
    text: String,
    /// Events relayed so far.
    relayed: u64,
    /// Events dispatched by the decoder so far (for error messages).
    seen: u64,
    ended: bool,
}

enum Stop {
    Done,
    Error(Vec<u8>),
    Bad(ScanError),
}

impl OpenAIStreamScanner {
    pub fn new(strip_usage: bool, max_event_bytes: usize) -> Self {
        OpenAIStreamScanner {
            decoder: SseDecoder::new(max_event_bytes),
            strip_usage,
            out: Vec::new(),
            text: String::new(),
            relayed: 0,
            seen: 0,
            ended: false,
        }
    }

    /// Frames of the last read.
    pub fn out(&self) -> &[u8] {
        &self.out
    }

    /// All text generated so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Events relayed so far.
    pub fn events(&self) -> u64 {
        self.relayed
    }

    /// Scan one read.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Scan, Failed> {
        self.out.clear();
        let mut scan = Scan {
            text_start: self.text.len(),
            ..Scan::default()
        };
        if self.ended {
            return Ok(scan);
        }
        let (out, text, seen) = (&mut self.out, &mut self.text, &mut self.seen);
        let strip_usage = self.strip_usage;
        let res = self.decoder.feed(chunk, |ev| {
            *seen += 1;
            if ev.data == DONE {
                return Err(Stop::Done);
            }
            let data = std::str::from_utf8(ev.data).map_err(|e| {
                Stop::Bad(ScanError::NotUtf8 {
                    event: *seen,
                    at: e.valid_up_to(),
                })
            })?;
            let c = scan_chunk(data, text).map_err(|e| {
                Stop::Bad(ScanError::NotJson {
                    event: *seen,
                    message: e.to_string(),
                })
            })?;
            if let Some(error) = c.error {
                return Err(Stop::Error(error.get().as_bytes().to_vec()));
            }
            scan.content |= c.content;
            if c.usage.is_some() {
                scan.usage = c.usage;
            }
            if !(strip_usage && c.usage_only) {
                frame(out, ev.event, ev.data);
                scan.events += 1;
            }
            Ok(())
        });
        self.relayed += scan.events as u64;
        let error = match res {
            Ok(()) => return Ok(scan),
            Err(FeedError::Sink(Stop::Done)) => {
                scan.done = true;
                None
            }
            Err(FeedError::Sink(Stop::Error(e))) => {
                scan.error = Some(e);
                None
            }
            Err(FeedError::Sink(Stop::Bad(e))) => Some(e),
            Err(FeedError::TooLarge(t)) => Some(ScanError::TooLarge(t)),
        };
        self.end();
        match error {
            None => Ok(scan),
            Some(error) => Err(Failed {
                error,
                partial: scan,
            }),
        }
    }

    /// End of stream. Returns true if an incomplete event was discarded
    /// (never after `[DONE]`, an error or a failure: later bytes do not count).
    pub fn close(&mut self) -> bool {
        let discarded = !self.ended && self.decoder.close();
        self.end();
        discarded
    }

    fn end(&mut self) {
        self.ended = true;
        self.decoder.close(); // frees the buffers
    }
}

/// Append one SSE frame: the data bytes as they are, one `data:` line per line.
pub fn frame(out: &mut Vec<u8>, event: Option<&[u8]>, data: &[u8]) {
    out.reserve(data.len() + 16);
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event);
        out.push(b'\n');
    }
    let mut start = 0;
    for nl in memchr_iter(b'\n', data) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&data[start..=nl]);
        start = nl + 1;
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&data[start..]);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
    const HI: &str = r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
    const STOP: &str = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    const USAGE: &str = r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;

    fn stream() -> String {
        let mut s = String::new();
        for d in [ROLE, HI, STOP, USAGE] {
            s += &format!("data: {d}\n\n");
        }
        s + "data: [DONE]\n\ndata: garbage\n\n"
    }

    /// Feed `input` cut at `cuts`; (out, events, content, done, usage, text).
    fn run(input: &[u8], cuts: &[usize], strip: bool) -> (Vec<u8>, usize, bool, bool, String) {
        let mut s = OpenAIStreamScanner::new(strip, DEFAULT_MAX_EVENT_BYTES);
        let (mut out, mut events, mut content, mut done, mut prev) = (vec![], 0, false, false, 0);
        let mut usage = None;
        for &c in cuts.iter().chain(&[input.len()]) {
            let scan = s.feed(&input[prev..c]).unwrap();
            out.extend_from_slice(s.out());
            events += scan.events;
            content |= scan.content;
            done |= scan.done;
            usage = scan.usage.or(usage);
            prev = c;
        }
        assert_eq!(s.events(), events as u64);
        assert_eq!(usage.map(|u| u.prompt_tokens), Some(5));
        (out, events, content, done, s.text().to_owned())
    }

    #[test]
    fn relays_byte_exact_under_any_split() {
        let input = stream();
        let input = input.as_bytes();
        let want_all = format!("data: {ROLE}\n\ndata: {HI}\n\ndata: {STOP}\n\ndata: {USAGE}\n\n");
        let want = (
            want_all.clone().into_bytes(),
            4,
            true,
            true,
            "Hi".to_owned(),
        );
        for cut in 0..=input.len() {
            assert_eq!(run(input, &[cut], false), want, "split at {cut}");
        }
        let all: Vec<usize> = (0..input.len()).collect();
        assert_eq!(run(input, &all, false), want);
        let stripped = want_all.replace(&format!("data: {USAGE}\n\n"), "");
        assert_eq!(run(input, &[], true).0, stripped.into_bytes());
        assert_eq!(run(input, &[], true).1, 3);
    }

    #[test]
    fn reframes_types_and_multiline_data_drops_ids() {
        let input = b"id: 1\nretry: 5\n: comment\nevent: delta\ndata: {\"choices\":\ndata: []}\n\ndata: [DONE]\n\n";
        let mut s = OpenAIStreamScanner::new(false, 1000);
        let scan = s.feed(input).unwrap();
        assert_eq!(s.out(), b"event: delta\ndata: {\"choices\":\ndata: []}\n\n");
        assert_eq!((scan.events, scan.done, scan.content), (1, true, false));
        assert!(!s.close());
    }

    #[test]
    fn error_stops_and_keeps_earlier_events() {
        let input =
            format!("data: {HI}\n\ndata: {{\"error\":{{\"message\":\"x\"}}}}\n\ndata: {HI}\n\n");
        let mut s = OpenAIStreamScanner::new(false, 1000);
        let scan = s.feed(input.as_bytes()).unwrap();
        assert_eq!(scan.error.as_deref(), Some(&br#"{"message":"x"}"#[..]));
        assert_eq!((scan.events, scan.done), (1, false));
        assert_eq!(s.out(), format!("data: {HI}\n\n").as_bytes());
        assert_eq!(s.text(), "Hi");
        // Ended: later reads are ignored.
        assert_eq!(s.feed(input.as_bytes()).unwrap().events, 0);
        assert!(s.out().is_empty());
    }

    #[test]
    fn bad_events_fail_with_their_number() {
        let mut s = OpenAIStreamScanner::new(false, 1000);
        let input = format!("data: {HI}\n\ndata: {{\"a\": 1,\n\n");
        let f = s.feed(input.as_bytes()).unwrap_err();
        assert!(
            f.error
                .to_string()
                .starts_with("stream event 2 is not JSON: "),
            "{}",
            f.error
        );
        assert_eq!(f.partial.events, 1);
        assert_eq!(s.out(), format!("data: {HI}\n\n").as_bytes());

        let mut s = OpenAIStreamScanner::new(false, 1000);
        s.feed(b"data: {}\n\n").unwrap();
        let f = s.feed(b"data: {\"a\":\"\xff\"}\n\n").unwrap_err();
        assert_eq!(
            f.error.to_string(),
            "stream event 2 is not valid UTF-8 at byte 6"
        );

        let mut s = OpenAIStreamScanner::new(false, 10);
        let f = s.feed(b"data: 123456789\n\n").unwrap_err();
        assert!(matches!(f.error, ScanError::TooLarge(_)));
    }

    #[test]
    fn close_reports_incomplete_event() {
        let mut s = OpenAIStreamScanner::new(false, 1000);
        s.feed(format!("data: {HI}\n\ndata: {{").as_bytes())
            .unwrap();
        assert!(s.close());
        let mut s = OpenAIStreamScanner::new(false, 1000);
        s.feed(b"data: [DONE]\n\ndata: {").unwrap();
        assert!(!s.close());
    }
}
