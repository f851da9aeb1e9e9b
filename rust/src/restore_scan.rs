//! The JSON side of restoration: every string value of a document (keys
//! left out), found in one pass over the bytes without building the
//! document, with how it is embedded (plain text, or tool-call arguments:
//! JSON inside a string) and, for a text delta of a stream event, its
//! channel (its path of keys and the `index`-like numbers of the objects
//! around it, plus the event's `type`).

/// How a string's text is embedded in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// A plain JSON string.
    Text,
    /// JSON text inside a JSON string (tool-call arguments).
    Args,
}

/// One string value of a document: the span of its inside (between the
/// quotes), how it is embedded, and, for a text delta, its channel.
pub(crate) struct StrVal {
    pub start: usize,
    pub end: usize,
    pub level: Level,
    pub delta: Option<Vec<u8>>,
}

/// Keys whose numbers tell channels apart.
const INDEX_KEYS: [&[u8]; 3] = [b"index", b"output_index", b"content_index"];

/// A text delta's channel, from its path of keys (arrays skipped).
fn delta_level(path: &[&[u8]], top_type: &[u8]) -> Option<Level> {
    match path {
        [b"choices", b"delta", k]
            if matches!(
                *k,
                b"content" | b"refusal" | b"reasoning_content" | b"reasoning"
            ) =>
        {
            Some(Level::Text)
        }
        [b"choices", b"delta", b"tool_calls", b"function", b"arguments"]
        | [b"choices", b"delta", b"function_call", b"arguments"] => Some(Level::Args),
        [b"choices", b"text"] => Some(Level::Text),
        [b"delta", k] if matches!(*k, b"text" | b"thinking") => Some(Level::Text),
        [b"delta", b"partial_json"] => Some(Level::Args),
        [b"delta"] if top_type.ends_with(b".delta") => {
            Some(if memchr::memmem::find(top_type, b"arguments").is_some() {
                Level::Args
            } else {
                Level::Text
            })
        }
        _ => None,
    }
}

struct Frame<'a> {
    object: bool,
    key: Option<&'a [u8]>,
    /// Index-like numbers of this object (for channels).
    indexes: Vec<(&'a [u8], &'a [u8])>,
}

/// Every string value of the JSON document `doc` (keys excluded); with
/// `deltas`, text deltas get their channel. `None` when `doc` is not a
/// well-formed object or array as far as this scanner can tell.
pub(crate) fn strings(doc: &[u8], deltas: bool) -> Option<(Vec<StrVal>, &[u8])> {
    let mut out = Vec::new();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut expect_key = false;
    let mut top_type: &[u8] = b"";
    // Deltas wait for the end so that indexes after them count too.
    let mut pending: Vec<(usize, Vec<u8>, Vec<usize>)> = Vec::new();
    let mut objects: Vec<Vec<(&[u8], &[u8])>> = Vec::new();
    let mut open_ids: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < doc.len() {
        match doc[i] {
            b'{' | b'[' => {
                let object = doc[i] == b'{';
                stack.push(Frame {
                    object,
                    key: None,
                    indexes: Vec::new(),
                });
                if object {
                    open_ids.push(objects.len());
                    objects.push(Vec::new());
                }
                expect_key = object;
                i += 1;
            }
            b'}' | b']' => {
                let f = stack.pop()?;
                if f.object {
                    let id = open_ids.pop()?;
                    objects[id] = f.indexes;
                }
                expect_key = false;
                i += 1;
            }
            b',' => {
                expect_key = stack.last()?.object;
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                loop {
                    let k = j + memchr::memchr2(b'"', b'\\', &doc[j..])?;
                    if doc[k] == b'\\' {
                        j = k + 2;
                        if j > doc.len() {
                            return None;
                        }
                    } else {
                        j = k;
                        break;
                    }
                }
                let s = &doc[start..j];
                i = j + 1;
                if expect_key {
                    stack.last_mut()?.key = Some(s);
                    expect_key = false;
                    continue;
                }
                let key = stack
                    .last()
                    .and_then(|f| if f.object { f.key } else { None });
                if stack.len() == 1 && key == Some(b"type".as_slice()) {
                    top_type = s;
                }
                let level = if matches!(key, Some(b"arguments" | b"partial_json")) {
                    Level::Args
                } else {
                    Level::Text
                };
                let idx = out.len();
                out.push(StrVal {
                    start,
                    end: j,
                    level,
                    delta: None,
                });
                if deltas {
                    if let Some(k) = key {
                        if matches!(
                            k,
                            b"content"
                                | b"refusal"
                                | b"reasoning_content"
                                | b"reasoning"
                                | b"arguments"
                                | b"text"
                                | b"thinking"
                                | b"partial_json"
                                | b"delta"
                        ) {
                            let path: Vec<&[u8]> = stack
                                .iter()
                                .filter_map(|f| if f.object { f.key } else { None })
                                .collect();
                            let mut chan = Vec::new();
                            for p in &path {
                                chan.extend_from_slice(p);
                                chan.push(b'.');
                            }
                            pending.push((idx, chan, open_ids.clone()));
                        }
                    }
                }
            }
            b':' => {
                i += 1;
            }
            b if b.is_ascii_digit() || b == b'-' => {
                let start = i;
                while i < doc.len()
                    && !matches!(doc[i], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                {
                    i += 1;
                }
                if let Some(f) = stack.last_mut() {
                    if f.object {
                        if let Some(k) = f.key {
                            if INDEX_KEYS.contains(&k) {
                                f.indexes.push((k, &doc[start..i]));
                            }
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    if !stack.is_empty() {
        return None;
    }
    for (idx, mut chan, ids) in pending {
        // The path again, to decide whether this string is a text delta.
        let path: Vec<&[u8]> = chan
            .split(|&b| b == b'.')
            .filter(|p| !p.is_empty())
            .collect();
        let Some(level) = delta_level(&path, top_type) else {
            continue;
        };
        out[idx].level = level;
        chan.push(b'|');
        chan.extend_from_slice(top_type);
        for id in ids {
            for (k, v) in &objects[id] {
                chan.push(b'|');
                chan.extend_from_slice(k);
                chan.push(b'=');
                chan.extend_from_slice(v);
            }
        }
        out[idx].delta = Some(chan);
    }
    Some((out, top_type))
}
