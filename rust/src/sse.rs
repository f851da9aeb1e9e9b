//! Incremental Server-Sent Events decoder (WHATWG HTML "event stream
//! interpretation"), byte oriented and free of Python types.
//!
//! Semantics, in the order the spec gives them:
//! * a single UTF-8 BOM at the very start of the stream is skipped (it may be
//!   split across chunks);
//! * lines end with CRLF, LF or CR; a CR that ends one chunk followed by an LF
//!   that starts the next is one line end;
//! * an empty line dispatches the pending event; a line starting with `:` is a
//!   comment; otherwise the field name runs up to the first `:` (the whole line
//!   if there is none) and one leading space is stripped from the value;
//! * `data` appends value + LF (the last LF is removed on dispatch), `event`
//!   sets the event type, `id` sets the last-event-ID buffer unless the value
//!   contains NUL, `retry` sets the reconnection time if the value is all ASCII
//!   digits; other fields are ignored;
//! * an event whose data buffer is empty is not dispatched (its type is reset).
//!
//! As in the spec, the last-event-ID (`id`) persists across events until
//! changed, and so does the reconnection time (`retry`): every dispatched
//! event carries the stream's current values. An empty value maps to `None`
//! for both `event` and `id` (the spec treats "" as "no type" / "no id").
//! `retry` values that do not fit in a `u64` are ignored. `event` and `id`
//! are decoded as UTF-8 with replacement characters; `data` stays raw bytes.
//!
//! Size limit: the bytes of the event being assembled (data buffer + event
//! type + the current line, complete or not) must not exceed `max_event_bytes`.
//! Whether a stream trips the limit does not depend on how it is chunked.
//! After [`TooLarge`] the decoder is poisoned: every later `feed` fails too,
//! until [`SseDecoder::close`] resets it.

use memchr::{memchr, memchr2};

const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// Default limit for one event's buffered bytes (1 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// A dispatched event, borrowed from the decoder's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Event type, `None` when the type buffer is empty (spec: "message").
    pub event: Option<&'a [u8]>,
    /// Data lines joined with `\n`.
    pub data: &'a [u8],
    /// Last event ID, `None` when empty.
    pub id: Option<&'a [u8]>,
    /// Reconnection time in ms, if the stream set one.
    pub retry: Option<u64>,
}

/// An owned event (used when decoding without the GIL and in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: Vec<u8>,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

impl From<EventRef<'_>> for Event {
    fn from(e: EventRef<'_>) -> Self {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let (event, id) = (e.event.map(lossy), e.id.map(lossy));
        let (data, retry) = (e.data.to_vec(), e.retry);
        Event {
            event,
            data,
            id,
            retry,
        }
    }
}

/// One event exceeded the configured size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub limit: usize,
    pub size: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SSE event too large: {} buffered bytes exceed max_event_bytes={}",
            self.size, self.limit
        )
    }
}

impl std::error::Error for TooLarge {}

/// Error of [`SseDecoder::feed`]: the size limit, or the sink's own error.
#[derive(Debug, PartialEq, Eq)]
pub enum FeedError<E> {
    TooLarge(TooLarge),
    Sink(E),
}

#[derive(Debug, Clone)]
pub struct SseDecoder {
    max_event_bytes: usize,
    /// Bytes of a line not yet terminated (or a BOM prefix at stream start).
    line: Vec<u8>,
    data: Vec<u8>,
    event_type: Vec<u8>,
    last_id: Vec<u8>,
    retry: Option<u64>,
    /// Still at the start of the stream: a BOM may follow.
    at_start: bool,
    /// The previous chunk ended with CR: skip one LF at the next chunk start.
    pending_cr: bool,
    /// A field line was seen since the last dispatch (for `close`).
    has_fields: bool,
    poisoned: Option<TooLarge>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    pub fn new(max_event_bytes: usize) -> Self {
        SseDecoder {
            max_event_bytes,
            line: Vec::new(),
            data: Vec::new(),
            event_type: Vec::new(),
            last_id: Vec::new(),
            retry: None,
            at_start: true,
            pending_cr: false,
            has_fields: false,
            poisoned: None,
        }
    }

    /// Bytes held for the incomplete event: partial line + data + event type.
    pub fn buffered(&self) -> usize {
        self.line.len() + self.data.len() + self.event_type.len()
    }

    /// Feed a chunk; `sink` is called for every event it completes, in order.
    pub fn feed<E, F>(&mut self, chunk: &[u8], mut sink: F) -> Result<(), FeedError<E>>
    where
        F: FnMut(EventRef<'_>) -> Result<(), E>,
    {
        if let Some(err) = self.poisoned {
            return Err(FeedError::TooLarge(err));
        }
        let mut input = chunk;
        if self.at_start {
            // Hold bytes in `line` while they match the BOM; drop a full one.
            let (have, n) = (
                self.line.len(),
                input.len().min(BOM.len() - self.line.len()),
            );
            if input[..n] != BOM[have..have + n] {
                self.at_start = false; // held bytes (if any) are content
            } else if have + n == BOM.len() {
                (self.at_start, input) = (false, &input[n..]);
                self.line.clear();
            } else {
                self.line.extend_from_slice(input);
                return Ok(()); // only a BOM prefix so far
            }
        }
        if self.pending_cr && !input.is_empty() {
            self.pending_cr = false;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        while let Some(i) = memchr2(b'\r', b'\n', input) {
            let end = if input[i] == b'\n' {
                i + 1
            } else if i + 1 == input.len() {
                self.pending_cr = true;
                i + 1
            } else if input[i + 1] == b'\n' {
                i + 2
            } else {
                i + 1
            };
            let res = if self.line.is_empty() {
                self.process_line(&input[..i], &mut sink)
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&input[..i]);
                let r = self.process_line(&line, &mut sink);
                line.clear();
                self.line = line; // keep the allocation
                r
            };
            res?;
            input = &input[end..];
        }
        if !input.is_empty() {
            self.check_size(self.line.len() + input.len())?;
            self.line.extend_from_slice(input);
        }
        Ok(())
    }

    /// Convenience: feed and collect owned events.
    pub fn feed_collect(&mut self, chunk: &[u8]) -> Result<Vec<Event>, TooLarge> {
        let mut out = Vec::new();
        self.feed::<(), _>(chunk, |e| {
            out.push(e.into());
            Ok(())
        })
        .map_err(|e| match e {
            FeedError::TooLarge(t) => t,
            FeedError::Sink(()) => unreachable!("sink never fails"),
        })?;
        Ok(out)
    }

    /// End of stream: discard any incomplete event and reset the decoder to
    /// its initial state. Returns true if something was discarded (a partial
    /// line, or field lines not yet followed by a blank line).
    pub fn close(&mut self) -> bool {
        let discarded = self.poisoned.is_some() || !self.line.is_empty() || self.has_fields;
        *self = SseDecoder::new(self.max_event_bytes);
        discarded
    }

    fn check_size<E>(&mut self, line_len: usize) -> Result<(), FeedError<E>> {
        let size = self.data.len() + self.event_type.len() + line_len;
        if size > self.max_event_bytes {
            let err = TooLarge {
                limit: self.max_event_bytes,
                size,
            };
            self.poisoned = Some(err);
            self.line.clear();
            self.data.clear();
            self.event_type.clear();
            return Err(FeedError::TooLarge(err));
        }
        Ok(())
    }

    fn process_line<E, F>(&mut self, line: &[u8], sink: &mut F) -> Result<(), FeedError<E>>
    where
        F: FnMut(EventRef<'_>) -> Result<(), E>,
    {
        if line.is_empty() {
            return self.dispatch(sink);
        }
        self.check_size(line.len())?;
        if line[0] == b':' {
            return Ok(()); // comment
        }
        self.has_fields = true;
        let (name, value) = match memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"id" if memchr(0, value).is_none() => {
                self.last_id.clear();
                self.last_id.extend_from_slice(value);
            }
            b"retry" => self.retry = parse_retry(value).or(self.retry),
            _ => {}
        }
        Ok(())
    }

    fn dispatch<E, F>(&mut self, sink: &mut F) -> Result<(), FeedError<E>>
    where
        F: FnMut(EventRef<'_>) -> Result<(), E>,
    {
        self.has_fields = false;
        if self.data.is_empty() {
            self.event_type.clear();
            return Ok(());
        }
        let data = &self.data[..self.data.len() - 1]; // drop the trailing LF
        let ev = EventRef {
            event: (!self.event_type.is_empty()).then_some(&self.event_type[..]),
            data,
            id: (!self.last_id.is_empty()).then_some(&self.last_id[..]),
            retry: self.retry,
        };
        let res = sink(ev).map_err(FeedError::Sink);
        self.data.clear();
        self.event_type.clear();
        res
    }
}

/// `retry` value: one or more ASCII digits that fit in a u64, else ignored.
fn parse_retry(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events as "event|data|id|retry" joined by " ; " (None prints as "").
    fn show(events: &[Event]) -> String {
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        let r = |r: Option<u64>| r.map(|r| r.to_string()).unwrap_or_default();
        let one = |e: &Event| {
            let data = String::from_utf8_lossy(&e.data);
            format!("{}|{}|{}|{}", o(&e.event), data, o(&e.id), r(e.retry))
        };
        events.iter().map(one).collect::<Vec<_>>().join(" ; ")
    }

    fn decode(input: &[u8], cuts: &[usize]) -> String {
        let mut dec = SseDecoder::default();
        let (mut out, mut prev) = (Vec::new(), 0);
        for &c in cuts.iter().chain(&[input.len()]) {
            out.extend(dec.feed_collect(&input[prev..c]).unwrap());
            prev = c;
        }
        show(&out)
    }

    /// Whole, split in two at every position, and byte by byte must all give
    /// `want`. (tests/native/test_sse.py also checks against a reference.)
    fn check(input: &[u8], want: &str) {
        assert_eq!(decode(input, &[]), want);
        for cut in 0..=input.len() {
            assert_eq!(decode(input, &[cut]), want, "split at {cut}");
        }
        assert_eq!(decode(input, &(0..input.len()).collect::<Vec<_>>()), want);
    }

    #[test]
    fn data_and_line_endings() {
        check(b"data: hello\n\ndata: world\n\n", "|hello|| ; |world||");
        check(b"data: a\r\ndata: b\r\n\r\n", "|a\nb||");
        check(b"data: a\rdata: b\r\r", "|a\nb||");
        check(b"data: a\r\ndata: b\r\r\n", "|a\nb||");
        check(b"data: a\rdata: b\n\r", "|a\nb||");
    }

    #[test]
    fn cr_then_lf_across_chunks_is_one_line_end() {
        let mut d = SseDecoder::default();
        assert!(d.feed_collect(b"data: x\r").unwrap().is_empty());
        assert!(d.feed_collect(b"\n").unwrap().is_empty());
        assert_eq!(d.buffered(), 2);
        assert_eq!(show(&d.feed_collect(b"\r").unwrap()), "|x||");
        assert!(d.feed_collect(b"").unwrap().is_empty());
        assert!(d.feed_collect(b"\n").unwrap().is_empty());
        assert!(!d.close());
    }

    #[test]
    fn fields_comments_and_spaces() {
        let s = b": c\nevent: add\ndata:  two\ndata:none\ndata\nfoo: bar\nid: 7\nretry: 1500\n\n";
        check(s, "add| two\nnone\n|7|1500");
    }

    #[test]
    fn id_and_retry_persist_event_type_does_not() {
        let s = b"event: a\nid: 1\nretry: 10\ndata: x\n\ndata: y\n\nid\ndata: z\n\n";
        check(s, "a|x|1|10 ; |y|1|10 ; |z||10");
        let s = b"id: 5\ndata: a\n\nid: x\0y\nretry: 1x\nretry:\nretry: 99999999999999999999\ndata: b\n\n";
        check(s, "|a|5| ; |b|5|");
    }

    #[test]
    fn empty_data_not_dispatched_but_type_reset() {
        check(
            b"event: ping\n\ndata: x\n\nevent: e\ndata\n\n",
            "|x|| ; e|||",
        );
    }

    #[test]
    fn bom_skipped_only_at_start() {
        check(b"\xEF\xBB\xBFdata: a\n\n", "|a||");
        // A second BOM is part of the field name, so the line is ignored.
        check(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n", "");
        // A partial BOM is content.
        check(b"\xEF\xBBdata: a\n\n", "");
        check(b"\xEF\xBB\n\ndata: \xEF\xBB\xBF\n\n", "|\u{FEFF}||");
    }

    #[test]
    fn invalid_utf8_in_event_is_replaced() {
        let got = SseDecoder::default().feed_collect(b"event: a\xFFb\ndata: \xFF\n\n");
        let got = got.unwrap();
        assert_eq!(got[0].event.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(got[0].data, b"\xFF");
    }

    #[test]
    fn close_reports_discarded() {
        let mut d = SseDecoder::default();
        assert!(!d.close());
        for (input, discarded) in [
            (&b"data: x\n"[..], true),
            (b"data: x", true),
            (b": just a comment\n", false),
            (b"data: x\n\n", false),
            (b"\xEF", true),
        ] {
            d.feed_collect(input).unwrap();
            assert_eq!(d.close(), discarded, "{input:?}");
            assert_eq!(d.buffered(), 0);
        }
        // After close the decoder is fresh: a BOM is skipped again.
        assert_eq!(d.feed_collect(b"\xEF\xBB\xBFdata: y\n\n").unwrap().len(), 1);
    }

    #[test]
    fn too_large_poisons_until_close() {
        assert!(SseDecoder::new(11).feed_collect(b"data: 12345\n").is_ok());
        let mut d = SseDecoder::new(10);
        let err = d.feed_collect(b"data: 12345\n").unwrap_err();
        assert_eq!(
            err,
            TooLarge {
                limit: 10,
                size: 11
            }
        );
        assert_eq!(d.buffered(), 0);
        assert!(d.feed_collect(b"\n").is_err());
        assert!(d.close());
        assert_eq!(d.feed_collect(b"data: 1\n\n").unwrap().len(), 1);
        // Peak of "data: 1234\ndata: 5678": data(5) + second line(10) = 15.
        let s = b"data: 1234\ndata: 5678\n\n";
        assert!(SseDecoder::new(14).feed_collect(s).is_err());
        assert!(SseDecoder::new(15).feed_collect(s).is_ok());
        // An unterminated line counts too. (That the limit trips the same way
        // under any chunking is a property test in tests/native/test_sse.py.)
        let mut d = SseDecoder::new(8);
        assert!(d.feed_collect(b"data: ab").is_ok());
        assert!(d.feed_collect(b"c").is_err());
    }

    #[test]
    fn sink_error_propagates() {
        let r = SseDecoder::default().feed(b"data: a\n\n", |_| Err::<(), _>("boom"));
        assert_eq!(r, Err(FeedError::Sink("boom")));
    }
}
