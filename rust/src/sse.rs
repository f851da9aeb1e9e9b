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
        Event {
            event: e.event.map(lossy),
            data: e.data.to_vec(),
            id: e.id.map(lossy),
            retry: e.retry,
        }
    }
}

/// Decode a field value as UTF-8, replacing invalid sequences with U+FFFD.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
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

    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
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
            // Collect up to three bytes in `line` while they match the BOM.
            while let Some((&b, rest)) = input.split_first() {
                if b != BOM[self.line.len()] {
                    self.at_start = false;
                    break;
                }
                self.line.push(b);
                input = rest;
                if self.line.len() == BOM.len() {
                    self.line.clear();
                    self.at_start = false;
                    break;
                }
            }
            if self.at_start {
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

    fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> Event {
        Event {
            event: event.map(str::to_owned),
            data: data.as_bytes().to_vec(),
            id: id.map(str::to_owned),
            retry,
        }
    }

    fn decode_all(input: &[u8]) -> Vec<Event> {
        SseDecoder::default().feed_collect(input).unwrap()
    }

    /// Feed the stream in every two-way and byte-by-byte split.
    fn decode_splits(input: &[u8]) -> Vec<Event> {
        let whole = decode_all(input);
        for cut in 0..=input.len() {
            let mut d = SseDecoder::default();
            let mut got = d.feed_collect(&input[..cut]).unwrap();
            got.extend(d.feed_collect(&input[cut..]).unwrap());
            assert_eq!(got, whole, "split at {cut}");
        }
        let mut d = SseDecoder::default();
        let mut got = Vec::new();
        for b in input {
            got.extend(d.feed_collect(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, whole, "byte by byte");
        whole
    }

    #[test]
    fn simple_data() {
        let got = decode_splits(b"data: hello\n\ndata: world\n\n");
        assert_eq!(
            got,
            vec![ev(None, "hello", None, None), ev(None, "world", None, None)]
        );
    }

    #[test]
    fn line_endings() {
        for s in [
            &b"data: a\r\ndata: b\r\n\r\n"[..],
            b"data: a\rdata: b\r\r",
            b"data: a\ndata: b\n\n",
            b"data: a\r\ndata: b\r\r\n",
            b"data: a\rdata: b\n\r",
        ] {
            assert_eq!(
                decode_splits(s),
                vec![ev(None, "a\nb", None, None)],
                "{s:?}"
            );
        }
    }

    #[test]
    fn cr_then_lf_across_chunks_is_one_line_end() {
        let mut d = SseDecoder::default();
        assert!(d.feed_collect(b"data: x\r").unwrap().is_empty());
        assert!(d.feed_collect(b"\n").unwrap().is_empty());
        assert_eq!(d.buffered(), 2);
        assert_eq!(
            d.feed_collect(b"\r").unwrap(),
            vec![ev(None, "x", None, None)]
        );
        assert!(d.feed_collect(b"").unwrap().is_empty());
        assert!(d.feed_collect(b"\n").unwrap().is_empty());
        assert!(!d.close());
    }

    #[test]
    fn comments_fields_and_spaces() {
        let s = b": comment\nevent: add\ndata:  two spaces\ndata:none\ndata\nfoo: bar\nid: 7\nretry: 1500\n\n";
        assert_eq!(
            decode_splits(s),
            vec![ev(
                Some("add"),
                " two spaces\nnone\n",
                Some("7"),
                Some(1500)
            )]
        );
    }

    #[test]
    fn id_and_retry_persist_event_type_does_not() {
        let s = b"event: a\nid: 1\nretry: 10\ndata: x\n\ndata: y\n\nid\ndata: z\n\n";
        assert_eq!(
            decode_splits(s),
            vec![
                ev(Some("a"), "x", Some("1"), Some(10)),
                ev(None, "y", Some("1"), Some(10)),
                ev(None, "z", None, Some(10)),
            ]
        );
    }

    #[test]
    fn invalid_id_and_retry_are_ignored() {
        let s = b"id: 5\ndata: a\n\nid: x\0y\nretry: 1x\nretry:\nretry: 99999999999999999999999\ndata: b\n\n";
        assert_eq!(
            decode_splits(s),
            vec![
                ev(None, "a", Some("5"), None),
                ev(None, "b", Some("5"), None)
            ]
        );
    }

    #[test]
    fn empty_data_not_dispatched_but_type_reset() {
        let s = b"event: ping\n\ndata: x\n\nevent: e\ndata\n\n";
        assert_eq!(
            decode_splits(s),
            vec![ev(None, "x", None, None), ev(Some("e"), "", None, None)]
        );
    }

    #[test]
    fn bom_skipped_only_at_start() {
        assert_eq!(
            decode_splits(b"\xEF\xBB\xBFdata: a\n\n"),
            vec![ev(None, "a", None, None)]
        );
        // A second BOM is part of the field name, so the line is ignored.
        assert!(decode_splits(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n").is_empty());
        // A partial BOM is content.
        assert!(decode_splits(b"\xEF\xBBdata: a\n\n").is_empty());
        assert_eq!(
            decode_splits(b"\xEF\xBB\n\ndata: \xEF\xBB\xBF\n\n"),
            vec![Event {
                event: None,
                data: BOM.to_vec(),
                id: None,
                retry: None
            }]
        );
    }

    #[test]
    fn invalid_utf8_in_event_is_replaced() {
        let got = decode_all(b"event: a\xFFb\ndata: \xFF\n\n");
        assert_eq!(got[0].event.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(got[0].data, b"\xFF");
    }

    #[test]
    fn close_reports_discarded() {
        let mut d = SseDecoder::default();
        assert!(!d.close());
        d.feed_collect(b"data: x\n").unwrap();
        assert!(d.close());
        d.feed_collect(b"data: x").unwrap();
        assert_eq!(d.buffered(), 7);
        assert!(d.close());
        assert_eq!(d.buffered(), 0);
        d.feed_collect(b": just a comment\n").unwrap();
        assert!(!d.close());
        d.feed_collect(b"data: x\n\n").unwrap();
        assert!(!d.close());
        d.feed_collect(b"\xEF").unwrap();
        assert!(d.close());
        // After close the decoder is fresh: a BOM is skipped again.
        let got = d.feed_collect(b"\xEF\xBB\xBFdata: y\n\n").unwrap();
        assert_eq!(got, vec![ev(None, "y", None, None)]);
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
    }

    #[test]
    fn too_large_is_split_independent() {
        let s = b"data: 1234\ndata: 5678\n\n";
        for limit in 0..30 {
            let whole = SseDecoder::new(limit).feed_collect(s).is_err();
            for cut in 0..=s.len() {
                let mut d = SseDecoder::new(limit);
                let r = d.feed_collect(&s[..cut]).is_err() || d.feed_collect(&s[cut..]).is_err();
                assert_eq!(r, whole, "limit {limit} cut {cut}");
            }
        }
        // data(5) + second line(10) = 15 is the peak.
        assert!(SseDecoder::new(14).feed_collect(s).is_err());
        assert!(SseDecoder::new(15).feed_collect(s).is_ok());
    }

    #[test]
    fn unterminated_line_counts_toward_limit() {
        let mut d = SseDecoder::new(8);
        assert!(d.feed_collect(b"data: ab").is_ok());
        assert!(d.feed_collect(b"c").is_err());
    }

    #[test]
    fn sink_error_propagates() {
        let mut d = SseDecoder::default();
        let r = d.feed(b"data: a\n\n", |_| Err::<(), _>("boom"));
        assert_eq!(r, Err(FeedError::Sink("boom")));
    }
}
