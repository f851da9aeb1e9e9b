//! Placeholder restoration: `[EMAIL_1]` in an answer back to the value the
//! request held, for the caller (the provider only ever saw placeholders).
//!
//! Works on the raw JSON bytes, never re-encoding a document: a placeholder
//! is made of `[`, `A-Z`, `0-9`, `_` and `]`, which JSON never escapes and
//! which can only occur inside a string (`[EMAIL_1]` is not a JSON value),
//! so it is found in the bytes as is and replaced by the value escaped for
//! a JSON string. Tool-call arguments (`arguments`, `partial_json`) are JSON
//! text inside a JSON string: there the placeholder sits in a string of the
//! inner document, and the value is escaped twice.
//!
//! Streams ([`StreamRestorer`]): the text deltas of one channel (a choice's
//! content, a tool call's arguments, a content block, a Responses output
//! part) are one text cut into events, so a placeholder may be split across
//! events. When a delta ends with what may be the start of a placeholder
//! (`... [EMA`), that tail is taken out of the event and put in front of the
//! channel's next delta; nothing else is held. When the channel's next event
//! is not a delta (its end, a finish chunk) or the stream ends, the held
//! tail is sent in a copy of the channel's last delta event.

use std::collections::HashMap;

use memchr::memchr_iter;

use crate::redact::Table;
use crate::restore_scan::{strings, Level};

/// `value` escaped for the inside of a JSON string.
fn escape_into(out: &mut Vec<u8>, value: &str) {
    let quoted = serde_json::to_string(value).expect("strings serialize");
    out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
}

fn escaped(value: &str, level: Level) -> Vec<u8> {
    let mut once = Vec::with_capacity(value.len() + 2);
    escape_into(&mut once, value);
    match level {
        Level::Text => once,
        Level::Args => {
            let mut twice = Vec::with_capacity(once.len() + 4);
            escape_into(
                &mut twice,
                std::str::from_utf8(&once).expect("escaped JSON is UTF-8"),
            );
            twice
        }
    }
}

fn is_ph_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
}

/// There may be a placeholder, or the start of one, in `bytes`: a `[`
/// followed by `A-Z`, by the end of a string (`"`) or by nothing.
pub fn may_hold_placeholder(bytes: &[u8]) -> bool {
    memchr_iter(b'[', bytes).any(|i| {
        bytes
            .get(i + 1)
            .is_none_or(|&b| b.is_ascii_uppercase() || b == b'"')
    })
}

/// Appends `raw` (the inside of a JSON string) to `out` with every
/// placeholder of `table` replaced; returns whether any was.
fn restore_raw(out: &mut Vec<u8>, raw: &[u8], table: &Table, level: Level) -> bool {
    let mut at = 0;
    let mut changed = false;
    for i in memchr_iter(b'[', raw) {
        if i < at {
            continue;
        }
        let mut j = i + 1;
        while j < raw.len() && is_ph_byte(raw[j]) {
            j += 1;
        }
        if j < raw.len() && raw[j] == b']' {
            if let Some(value) = table.value_of(&raw[i..=j]) {
                out.extend_from_slice(&raw[at..i]);
                out.extend_from_slice(&escaped(value, level));
                at = j + 1;
                changed = true;
            }
        }
    }
    out.extend_from_slice(&raw[at..]);
    changed
}

/// Where a held tail starts in `raw`: the last `[` when what follows it is
/// a proper prefix of one of the table's placeholders.
fn tail_start(raw: &[u8], table: &Table) -> Option<usize> {
    let from = raw.len().saturating_sub(table.max_len());
    let i = raw[from..].iter().rposition(|&b| b == b'[')? + from;
    table.is_prefix(&raw[i..]).then_some(i)
}

/// `body` (a JSON answer) with every placeholder of `table` restored, or
/// `None` when it holds none.
pub fn restore_json(body: &[u8], table: &Table) -> Option<Vec<u8>> {
    if table.is_empty() || !may_hold_placeholder(body) {
        return None;
    }
    let Some((strs, _)) = strings(body, false) else {
        // Not a document this scanner reads: restore as plain text.
        let mut out = Vec::with_capacity(body.len());
        return restore_raw(&mut out, body, table, Level::Text).then_some(out);
    };
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut at = 0;
    let mut changed = false;
    for s in strs {
        if !may_hold_placeholder(&body[s.start..s.end]) {
            continue;
        }
        out.extend_from_slice(&body[at..s.start]);
        changed |= restore_raw(&mut out, &body[s.start..s.end], table, s.level);
        at = s.end;
    }
    out.extend_from_slice(&body[at..]);
    changed.then_some(out)
}

/// A channel's held tail and the event it came from (for sending the tail
/// on its own): the event's bytes before and after the delta's inside.
struct Held {
    tail: Vec<u8>,
    before: Vec<u8>,
    after: Vec<u8>,
}

/// Restores one stream's events (one per request). See the module docs.
pub struct StreamRestorer {
    table: Table,
    held: HashMap<Vec<u8>, Held>,
    /// Channels in the order their tails were held (flush order).
    order: Vec<Vec<u8>>,
}

/// `doc` has a non-null `finish_reason` (OpenAI's last chunk of a choice).
fn has_finish(doc: &[u8]) -> bool {
    memchr::memmem::find_iter(doc, br#""finish_reason":"#).any(|i| {
        let rest = &doc[i + 16..];
        let rest = &rest[rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
        rest.first() == Some(&b'"')
    })
}

/// The JSON of an SSE frame: the span of its single `data:` line's value.
fn data_span(event: &[u8]) -> Option<(usize, usize)> {
    let mut found = None;
    let mut line_start = 0;
    while line_start < event.len() {
        let end =
            memchr::memchr(b'\n', &event[line_start..]).map_or(event.len(), |i| line_start + i);
        let line = &event[line_start..end];
        if let Some(rest) = line.strip_prefix(b"data:") {
            if found.is_some() {
                return None; // several data lines: not a frame this restorer splits
            }
            let skip = usize::from(rest.first() == Some(&b' '));
            let mut stop = end;
            if stop > line_start && event[stop - 1] == b'\r' {
                stop -= 1;
            }
            found = Some((line_start + 5 + skip, stop));
        }
        line_start = end + 1;
    }
    found
}

impl StreamRestorer {
    pub fn new(table: Table) -> Self {
        StreamRestorer {
            table,
            held: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Nothing is held.
    pub fn is_idle(&self) -> bool {
        self.held.is_empty()
    }

    fn flush_into(&mut self, out: &mut Vec<u8>, keep: &[&[u8]]) {
        let order = std::mem::take(&mut self.order);
        for chan in order {
            if keep.contains(&chan.as_slice()) {
                self.order.push(chan);
                continue;
            }
            if let Some(h) = self.held.remove(&chan) {
                out.extend_from_slice(&h.before);
                restore_raw(out, &h.tail, &self.table, Level::Text);
                out.extend_from_slice(&h.after);
            }
        }
    }

    /// The frames to send for `event`; `None`: send it unchanged.
    pub fn event(&mut self, event: &[u8]) -> Option<Vec<u8>> {
        if self.table.is_empty() || (self.held.is_empty() && !may_hold_placeholder(event)) {
            return None;
        }
        let Some((ds, de)) = data_span(event) else {
            // Not a one-line JSON frame: whole placeholders only.
            let mut out = Vec::new();
            self.flush_into(&mut out, &[]);
            let flushed = !out.is_empty();
            let changed = restore_raw(&mut out, event, &self.table, Level::Text);
            return (flushed || changed).then_some(out);
        };
        let doc = &event[ds..de];
        let (strs, top_type) = strings(doc, true).unwrap_or_default();
        // Channels continued by this event keep their tails; others are sent first.
        let continued: Vec<&[u8]> = strs.iter().filter_map(|s| s.delta.as_deref()).collect();
        // Anthropic's keep-alive may come between two deltas of a block.
        let ping = top_type == b"ping";
        // The channel's last event (a finish reason with it): its tail is not held,
        // since sending it later would repeat the finish.
        let last = has_finish(doc);
        let mut out = Vec::with_capacity(event.len() + 32);
        if !ping {
            self.flush_into(&mut out, &continued);
        }
        let frame_start = out.len();
        let mut changed = false;
        out.extend_from_slice(&event[..ds]);
        let mut at = 0;
        let mut new_held: Vec<(Vec<u8>, Vec<u8>, usize, usize)> = Vec::new();
        for s in &strs {
            let raw = &doc[s.start..s.end];
            match &s.delta {
                Some(chan) => {
                    let prev = self.held.remove(chan.as_slice());
                    if prev.is_none() && !may_hold_placeholder(raw) {
                        continue;
                    }
                    if prev.is_some() {
                        self.order.retain(|c| c != chan);
                    }
                    let mut text = prev.map(|h| h.tail).unwrap_or_default();
                    text.extend_from_slice(raw);
                    let cut = if last {
                        text.len()
                    } else {
                        tail_start(&text, &self.table).unwrap_or(text.len())
                    };
                    out.extend_from_slice(&doc[at..s.start]);
                    let inside = out.len();
                    restore_raw(&mut out, &text[..cut], &self.table, s.level);
                    changed = true;
                    if cut < text.len() {
                        new_held.push((
                            chan.clone(),
                            text[cut..].to_vec(),
                            inside - frame_start,
                            out.len() - frame_start,
                        ));
                    }
                    at = s.end;
                }
                None => {
                    if !may_hold_placeholder(raw) {
                        continue;
                    }
                    out.extend_from_slice(&doc[at..s.start]);
                    changed |= restore_raw(&mut out, raw, &self.table, s.level);
                    at = s.end;
                }
            }
        }
        out.extend_from_slice(&doc[at..]);
        out.extend_from_slice(&event[de..]);
        for (chan, tail, a, b) in new_held {
            // The frame sent with the delta's inside cut out: the template
            // for sending the tail on its own.
            let frame = &out[frame_start..];
            let held = Held {
                tail,
                before: frame[..a].to_vec(),
                after: frame[b..].to_vec(),
            };
            self.order.push(chan.clone());
            self.held.insert(chan, held);
        }
        if !changed && out.len() - frame_start == event.len() && frame_start == 0 {
            return None;
        }
        Some(out)
    }

    /// The tails still held, each in a copy of its channel's last event.
    pub fn flush(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.flush_into(&mut out, &[]);
        out
    }
}

#[cfg(test)]
#[path = "restore_tests.rs"]
mod tests;
