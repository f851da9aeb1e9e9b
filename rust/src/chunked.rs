//! HTTP/1.1 chunked transfer decoding (RFC 9112, section 7.1), one network
//! read at a time: the upstream client's body framing for streams, where a
//! provider writes each event as its own chunk and one read holds dozens.
//!
//! Strict where leniency lets a request smuggle: a size is 1 to 16 hex
//! digits (optional spaces or tabs around it, then an optional `;extension`),
//! a chunk's data must be followed by CRLF, and every line ends with CRLF.
//! Lines (size lines, trailer fields) are bounded by [`MAX_LINE`]; trailer
//! fields are read and dropped, bounded in total by [`MAX_TRAILER`].

/// The longest size line or trailer field accepted.
pub const MAX_LINE: usize = 4096;
/// The most trailer bytes accepted after the last chunk.
pub const MAX_TRAILER: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A size line (its bytes so far are in `line`).
    Size,
    /// Chunk data, `left` bytes to go.
    Data,
    /// The CRLF after a chunk's data (the bytes of it seen are in `line`).
    DataEnd,
    /// A trailer field or the blank line that ends the body.
    Trailer,
    /// The body is complete; later bytes are not part of it.
    Done,
}

/// Why a body cannot be decoded (the upstream client answers 502 with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    LineTooLong,
    BadSize,
    BadLineEnd,
    DataOverrun,
    TrailerTooLarge,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkError::LineTooLong => "a chunk-size line over 4096 bytes",
            ChunkError::BadSize => "a malformed chunk size",
            ChunkError::BadLineEnd => "a chunk line not ended by CRLF",
            ChunkError::DataOverrun => "a chunk longer than its size",
            ChunkError::TrailerTooLarge => "a chunked trailer over 65536 bytes",
        })
    }
}

impl std::error::Error for ChunkError {}

/// Incremental decoder of one chunked body.
#[derive(Debug)]
pub struct Dechunker {
    state: State,
    left: u64,
    line: Vec<u8>,
    trailer: usize,
}

impl Default for Dechunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Dechunker {
    pub fn new() -> Self {
        Dechunker {
            state: State::Size,
            left: 0,
            line: Vec::new(),
            trailer: 0,
        }
    }

    /// The body's last byte (the blank line after the trailer) was read.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Append the payload of `data` to `out`. Returns the number of bytes of
    /// `data` that were part of the body: `data.len()` unless the body ended
    /// inside it (the rest belongs to no response). After the end, nothing is
    /// taken. An error leaves the decoder unusable (the framing is lost).
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut pos = 0;
        while pos < data.len() {
            match self.state {
                State::Done => return Ok(pos),
                State::Data => {
                    let room = (data.len() - pos) as u64;
                    let take = self.left.min(room) as usize;
                    out.extend_from_slice(&data[pos..pos + take]);
                    pos += take;
                    self.left -= take as u64;
                    if self.left == 0 {
                        self.state = State::DataEnd;
                    }
                }
                State::DataEnd => {
                    // Exactly CRLF; anything else means the chunk ran past its size.
                    let want = b"\r\n"[self.line.len()];
                    if data[pos] != want {
                        return Err(ChunkError::DataOverrun);
                    }
                    pos += 1;
                    if want == b'\n' {
                        self.line.clear();
                        self.state = State::Size;
                    } else {
                        self.line.push(want);
                    }
                }
                State::Size | State::Trailer => {
                    let sizing = self.state == State::Size;
                    let Some(line) = take_line(&mut self.line, data, &mut pos)? else {
                        break;
                    };
                    if sizing {
                        self.left = parse_size(line)?;
                        self.state = if self.left == 0 {
                            State::Trailer
                        } else {
                            State::Data
                        };
                    } else if line.is_empty() {
                        self.state = State::Done;
                    } else {
                        self.trailer += line.len() + 2;
                        if self.trailer > MAX_TRAILER {
                            return Err(ChunkError::TrailerTooLarge);
                        }
                    }
                    self.line.clear();
                }
            }
        }
        Ok(pos)
    }
}

/// The next whole line (without its CRLF), from what `held` kept of it and
/// `data`; None when `data` ends first (what it held is kept).
fn take_line<'a>(
    held: &'a mut Vec<u8>,
    data: &'a [u8],
    pos: &mut usize,
) -> Result<Option<&'a [u8]>, ChunkError> {
    let rest = &data[*pos..];
    let Some(nl) = memchr::memchr(b'\n', rest) else {
        if held.len() + rest.len() > MAX_LINE {
            return Err(ChunkError::LineTooLong);
        }
        held.extend_from_slice(rest);
        *pos = data.len();
        return Ok(None);
    };
    *pos += nl + 1;
    let line: &[u8] = if held.is_empty() {
        &rest[..nl]
    } else {
        held.extend_from_slice(&rest[..nl]);
        held
    };
    if line.len() > MAX_LINE + 1 {
        return Err(ChunkError::LineTooLong);
    }
    // A bare LF is not a line end here: it would let a front and a back end
    // disagree about where a chunk starts.
    match line.split_last() {
        Some((b'\r', line)) => Ok(Some(line)),
        _ => Err(ChunkError::BadLineEnd),
    }
}

/// The size of a size line: hex digits, spaces or tabs around them, then an
/// optional extension after `;` (ignored).
fn parse_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = match memchr::memchr(b';', line) {
        Some(at) => &line[..at],
        None => line,
    };
    let digits = trim(digits);
    if digits.is_empty() || digits.len() > 16 {
        return Err(ChunkError::BadSize);
    }
    let mut size = 0u64;
    for &b in digits {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(ChunkError::BadSize),
        };
        size = (size << 4) | u64::from(d);
    }
    Ok(size)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `input` fed in pieces cut at `cuts`: (payload, bytes taken, done).
    fn run(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = Dechunker::new();
        let (mut out, mut taken, mut prev) = (Vec::new(), 0, 0);
        for &c in cuts.iter().chain(&[input.len()]) {
            taken += d.feed(&input[prev..c], &mut out)?;
            prev = c;
        }
        Ok((out, taken, d.done()))
    }

    #[test]
    fn decodes_under_every_split() {
        let body = b"3;name=value\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let want = (b"abc0123456789abcdef".to_vec(), body.len(), true);
        for a in 0..=body.len() {
            assert_eq!(run(body, &[a]).unwrap(), want, "cut at {a}");
            for b in a..=body.len() {
                assert_eq!(run(body, &[a, b]).unwrap(), want, "cuts at {a}, {b}");
            }
        }
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let (out, taken, done) = run(b"2\r\nhi\r\n0\r\n\r\nHTTP/1.1 200", &[]).unwrap();
        assert_eq!((out.as_slice(), taken, done), (&b"hi"[..], 12, true));
        let (_, taken, done) = run(b"2\r\nhi\r\n0\r\n\r", &[]).unwrap();
        assert_eq!((taken, done), (11, false));
    }

    #[test]
    fn sizes_are_strict() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b"1_0\r\n",
            b"0x10\r\n",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(run(bad, &[]), Err(ChunkError::BadSize), "{bad:?}");
        }
        assert_eq!(run(b"2\nhi\r\n", &[]), Err(ChunkError::BadLineEnd));
        assert_eq!(run(b"0\r\nX: 1\n\r\n", &[]), Err(ChunkError::BadLineEnd));
        assert_eq!(run(b" 2 \r\nhi\r\n", &[]).unwrap().0, b"hi");
        assert_eq!(run(b"A\r\n0123456789\r\n", &[]).unwrap().0, b"0123456789");
        assert_eq!(
            run(b"ffffffffffffffff\r\nab", &[]).unwrap(),
            (b"ab".to_vec(), 20, false)
        );
    }

    #[test]
    fn data_must_end_where_its_size_says() {
        assert_eq!(run(b"2\r\nhix\r\n", &[]), Err(ChunkError::DataOverrun));
        assert_eq!(run(b"2\r\nhi\rx", &[6]), Err(ChunkError::DataOverrun));
    }

    #[test]
    fn lines_and_trailers_are_bounded() {
        let long = [b'1'; MAX_LINE + 1];
        assert_eq!(run(&long, &[]), Err(ChunkError::LineTooLong));
        let mut ext = b"1;".to_vec();
        ext.resize(MAX_LINE - 2, b'x');
        ext.extend_from_slice(b"\r\na\r\n");
        assert_eq!(run(&ext, &[100]).unwrap().0, b"a");
        let mut trailer = b"0\r\n".to_vec();
        for _ in 0..40 {
            trailer.extend_from_slice(&[b'x'; 2000]);
            trailer.extend_from_slice(b"\r\n");
        }
        assert_eq!(run(&trailer, &[]), Err(ChunkError::TrailerTooLarge));
    }
}
