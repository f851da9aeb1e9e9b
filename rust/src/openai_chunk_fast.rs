//! The fast path of [`crate::openai_chunk::scan_chunk`]: one hand-written pass
//! over the bytes of an event's data that reads the members the gateway needs
//! and validates everything else, for the common shapes, or gives up ("bails")
//! and lets the serde_json reading decide.
//!
//! Why: it runs for every relayed event, and the serde_json reading costs
//! 5,800 to 9,700 instructions per event of an OpenAI chat stream (callgrind,
//! `rust/examples/chunk_instructions.rs`: role 6,871, content 6,171, content
//! with `\n` and `\"` 8,258, content with `\u00e9` 6,775, tool call 9,685,
//! finish 5,822, usage 6,180), mostly in serde_json's string, member name and
//! skipping machinery. This pass costs 2,300 to 3,800 on the same events
//! (2,826, 2,512, 3,613, 2,870, 3,763, 2,368, 3,304: 1.9 to 2.6 times
//! fewer), with identical results. What is left is spread thin: each member
//! name and string is scanned eight bytes at a time ([`find_special`], about
//! 20 instructions a word), and each member costs some 50 instructions of
//! bounds checks and branches around that. An event it leaves to serde costs
//! serde's price plus what it read before giving up (at most one pass).
//!
//! Rules: it returns a result only when it is certain that the data is JSON
//! and that the serde reading gives that same result; so it validates all it
//! reads, skipped values too (strings, escapes, numbers, literals, whitespace,
//! nothing after the value). It bails, and leaves `text` as it found it, on
//! anything invalid and on what would be fiddly to match exactly:
//!
//! - a backslash in any member name (serde unescapes the names it reads);
//! - a `\u` escape of a surrogate that is not a leading one followed by a
//!   trailing one, in a string at a position the serde reading types (a
//!   string it decodes: content, names, ..., or one that makes a member
//!   odd), where serde fails on it; other escapes there are decoded here
//!   (skipped strings, like serde, only need four hex digits after `\u`);
//! - a number at such a position that is not a plain non-negative integer
//!   of at most 19 digits (serde reads others as an `i64` or an `f64`, and
//!   may fail on one out of range);
//! - a top-level `error` that is not `null` (the rare path, where serde
//!   captures the raw value);
//! - a skipped value nested more than 64 deep;
//! - more than [`MAX_CALLS`] tool calls in one message (stream chunks carry
//!   one).
//!
//! The semantics (odd shapes, last duplicate wins, ...) are those of
//! [`crate::openai_chunk`]; its tests and this module's differential test
//! check both paths against each other.

use std::num::NonZeroU32;

use crate::openai_chunk_serde::{Chunk, Key, Usage, Val};

/// Tool calls kept per message.
const MAX_CALLS: usize = 4;

/// Nesting kept track of in a skipped value (serde_json's own limit, for the
/// values it types, is 128; skipped values have none).
const MAX_DEPTH: u32 = 64;

/// Read `data` as [`crate::openai_chunk::scan_chunk`] does, appending the text
/// the event adds to `text`; or `None` (and `text` as it was) when the serde
/// reading must decide. Never returns an `error`.
pub(crate) fn scan(data: &str, text: &mut String) -> Option<Chunk<'static>> {
    let base = text.len();
    if data.len() >= ESC as usize {
        return None;
    }
    let mut s = Scanner {
        data,
        b: data.as_bytes(),
        i: 0,
    };
    match s.document(text) {
        Ok(chunk) => Some(chunk),
        Err(Bail) => {
            text.truncate(base);
            None
        }
    }
}

/// The serde reading must decide.
struct Bail;

type R<T> = Result<T, Bail>;

/// A string's raw bytes between its quotes, in 8 bytes (an `Option<Str>`
/// too): where they start, whether they hold escapes (checked: `\u` ones
/// are characters or surrogate pairs) in the top bit, and where they end
/// (never 0: the opening quote comes before).
#[derive(Clone, Copy)]
struct Str {
    start_esc: u32,
    end: NonZeroU32,
}

const ESC: u32 = 1 << 31;

impl Str {
    /// `scan` checked that the data's length is below `ESC`.
    fn new(start: usize, end: usize, esc: bool) -> R<Str> {
        let end = NonZeroU32::new(end as u32).ok_or(Bail)?;
        let start_esc = start as u32 | if esc { ESC } else { 0 };
        Ok(Str { start_esc, end })
    }

    fn start(self) -> usize {
        (self.start_esc & !ESC) as usize
    }

    fn end(self) -> usize {
        self.end.get() as usize
    }

    /// An escape decodes to one character, so a string is empty exactly when
    /// its raw bytes are.
    fn nonempty(s: Option<Str>) -> bool {
        s.is_some_and(|s| s.end() > s.start())
    }

    fn push(s: Option<Str>, data: &str, out: &mut String) {
        let Some(s) = s else { return };
        let raw = &data[s.start()..s.end()];
        if s.start_esc & ESC == 0 {
            out.push_str(raw);
            return;
        }
        let mut rest = raw;
        while let Some(k) = memchr::memchr(b'\\', rest.as_bytes()) {
            out.push_str(&rest[..k]);
            let b = rest.as_bytes();
            let (c, len) = match b[k + 1] {
                b'n' => ('\n', 2),
                b't' => ('\t', 2),
                b'r' => ('\r', 2),
                b'b' => ('\u{8}', 2),
                b'f' => ('\u{c}', 2),
                b'u' => {
                    // Checked when scanned: a character, or a surrogate pair.
                    let n = hex4(b, k + 2).unwrap_or(0xFFFD);
                    match n {
                        0xD800..=0xDBFF => {
                            let low = hex4(b, k + 8).unwrap_or(0xDC00);
                            let c = 0x1_0000 + ((n - 0xD800) << 10 | low.wrapping_sub(0xDC00));
                            (char::from_u32(c).unwrap_or('\u{fffd}'), 12)
                        }
                        n => (char::from_u32(n).unwrap_or('\u{fffd}'), 6),
                    }
                }
                // `"`, `\` and `/` stand for themselves (nothing else was let through).
                c => (char::from(c), 2),
            };
            out.push(c);
            rest = &rest[k + len..];
        }
        out.push_str(rest);
    }
}

/// A `function` (of a tool call) or a `function_call`.
#[derive(Clone, Copy)]
struct Func {
    name: Option<Str>,
    arguments: Option<Str>,
    /// The object had at least one member.
    nonempty: bool,
}

impl Func {
    const EMPTY: Func = Func {
        name: None,
        arguments: None,
        nonempty: false,
    };

    fn push(&self, data: &str, out: &mut String) {
        Str::push(self.name, data, out);
        Str::push(self.arguments, data, out);
    }
}

/// A `delta` or a `message`.
#[derive(Clone, Copy)]
struct Msg {
    content: Option<Str>,
    refusal: Option<Str>,
    /// Its tool calls' functions (a call without one adds no text).
    calls: [Func; MAX_CALLS],
    n_calls: usize,
    function_call: Option<Func>,
}

impl Msg {
    const EMPTY: Msg = Msg {
        content: None,
        refusal: None,
        calls: [Func::EMPTY; MAX_CALLS],
        n_calls: 0,
        function_call: None,
    };

    fn has_content(&self) -> bool {
        Str::nonempty(self.content)
            || Str::nonempty(self.refusal)
            || self.n_calls > 0
            || self.function_call.is_some_and(|f| f.nonempty)
    }
}

/// What the last `choices` member was.
enum Choices {
    /// Absent or null.
    Absent,
    Odd,
    Array {
        content: bool,
        empty: bool,
    },
}

/// Whether a byte ends a run of plain string bytes: `"`, `\` or a control
/// character.
fn is_special(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// The index of the first special byte (see [`is_special`]) of `b` from `i`
/// on, or `b.len()`. Eight bytes at a time: a byte is flagged when it is
/// below 0x20 or equal to `"` or `\` (the classic "has a zero byte" test
/// applied three times); flags can spill only into bytes above a flagged one,
/// so the lowest flag is exact.
#[inline]
fn find_special(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * u64::from(b'"'));
        let q = q.wrapping_sub(ONES) & !q;
        let bs = w ^ (ONES * u64::from(b'\\'));
        let bs = bs.wrapping_sub(ONES) & !bs;
        let m = (ctrl | q | bs) & HIGH;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !is_special(b[i]) {
        i += 1;
    }
    i
}

/// `hex4(b, i)`: the four hex digits at `b[i..]`, as a number.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut n = 0;
    for &c in digits {
        n = n << 4 | char::from(c).to_digit(16)?;
    }
    Some(n)
}

/// Kinds of strings (see [`Scanner::string`]).
const TYPED: bool = true;
const SKIPPED: bool = false;

struct Scanner<'a> {
    data: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    // -- Tokens ---------------------------------------------------------------

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> R<u8> {
        self.b.get(self.i).copied().ok_or(Bail)
    }

    fn lit(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// A string, its opening quote consumed. `typed`: serde decodes it, and
    /// fails on a `\u` escape of a surrogate that is not a leading one
    /// followed by a trailing one (bail then); skipped, any four hex digits
    /// go.
    #[inline]
    fn string(&mut self, typed: bool) -> R<Str> {
        let start = self.i;
        let j = find_special(self.b, start);
        if self.b.get(j) == Some(&b'"') {
            self.i = j + 1;
            return Str::new(start, j, false);
        }
        self.escaped_string(start, j, typed)
    }

    /// The rest of a string from `j`, at a byte that is not plain.
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, mut j: usize, typed: bool) -> R<Str> {
        loop {
            match self.b.get(j) {
                Some(b'"') => {
                    self.i = j + 1;
                    return Str::new(start, j, true);
                }
                Some(b'\\') => match self.b.get(j + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                    Some(b'u') => {
                        let n = hex4(self.b, j + 2).ok_or(Bail)?;
                        j += 6;
                        if typed && (0xD800..=0xDFFF).contains(&n) {
                            // Only a leading surrogate, then a trailing one.
                            let pair = self.b.get(j..j + 2) == Some(&b"\\u"[..]);
                            let low = hex4(self.b, j + 2).filter(|_| pair);
                            if n > 0xDBFF || !low.is_some_and(|n| (0xDC00..=0xDFFF).contains(&n)) {
                                return Err(Bail);
                            }
                            j += 6;
                        }
                    }
                    _ => return Err(Bail),
                },
                // A control character, or the end of the data.
                _ => return Err(Bail),
            }
            j = find_special(self.b, j);
        }
    }

    /// A member name (at its opening quote, whitespace skipped) without
    /// escapes, and the colon after it.
    #[inline(always)]
    fn key(&mut self) -> R<&'a [u8]> {
        let b = self.b;
        if b.get(self.i) != Some(&b'"') {
            return Err(Bail);
        }
        let start = self.i + 1;
        let end = find_special(b, start);
        if b.get(end) != Some(&b'"') {
            return Err(Bail);
        }
        self.i = end + 1;
        if b.get(self.i) != Some(&b':') {
            self.ws();
            if b.get(self.i) != Some(&b':') {
                return Err(Bail);
            }
        }
        self.i += 1;
        b.get(start..end).ok_or(Bail)
    }

    /// In an object, its `{` consumed: the next member's name (the value
    /// follows), or `None` past the closing `}`.
    fn next_key(&mut self, first: &mut bool) -> R<Option<&'a [u8]>> {
        self.ws();
        match self.peek()? {
            b'}' => {
                self.i += 1;
                return Ok(None);
            }
            b',' if !*first => {
                self.i += 1;
                self.ws();
            }
            _ if *first => {}
            _ => return Err(Bail),
        }
        *first = false;
        self.key().map(Some)
    }

    /// [`Scanner::member`], without a call at the usual end of an object.
    #[inline(always)]
    fn next_member(
        &mut self,
        first: &mut bool,
        name: impl Fn(&[u8]) -> Option<Key>,
    ) -> R<Option<Key>> {
        if !*first && self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(None);
        }
        self.member(first, name)
    }

    /// In an object (its `{` consumed, or after a member's value): the next
    /// member that `name` knows, or `None` past the closing `}`. Skips (and
    /// validates) the members it does not know: one call for a run of them.
    /// Compact JSON (no whitespace) takes the shortest way.
    #[inline(never)]
    fn member(&mut self, first: &mut bool, name: impl Fn(&[u8]) -> Option<Key>) -> R<Option<Key>> {
        let b = self.b;
        loop {
            let mut i = self.i;
            // `,"` (or `"` first) then the name, or the closing `}`.
            match (b.get(i), *first) {
                (Some(b','), false) if b.get(i + 1) == Some(&b'"') => i += 1,
                (Some(b'"'), true) => {}
                _ => {
                    let Some(key) = self.next_key(first)? else {
                        return Ok(None);
                    };
                    if let Some(key) = name(key) {
                        return Ok(Some(key));
                    }
                    self.skip_member()?;
                    continue;
                }
            }
            *first = false;
            let start = i + 1;
            let end = find_special(b, start);
            if b.get(end) != Some(&b'"') {
                return Err(Bail);
            }
            i = end + 1;
            if b.get(i) != Some(&b':') {
                self.i = i;
                self.ws();
                i = self.i;
                if b.get(i) != Some(&b':') {
                    return Err(Bail);
                }
            }
            self.i = i + 1;
            if let Some(key) = name(&b[start..end]) {
                return Ok(Some(key));
            }
            // A string value, the usual case, right here.
            if b.get(i + 1) == Some(&b'"') {
                let j = find_special(b, i + 2);
                if b.get(j) == Some(&b'"') {
                    self.i = j + 1;
                    continue;
                }
            }
            self.skip_member()?;
        }
    }

    /// In an array, its `[` consumed: whether an element follows (then at
    /// it, whitespace skipped), or past the closing `]`.
    fn next_elem(&mut self, first: &mut bool) -> R<bool> {
        self.ws();
        let c = self.peek()?;
        if c == b']' {
            self.i += 1;
            return Ok(false);
        }
        if *first {
            *first = false;
        } else if c == b',' {
            self.i += 1;
            self.ws();
        } else {
            return Err(Bail);
        }
        Ok(true)
    }

    /// A number, in JSON's grammar exactly.
    fn number(&mut self) -> R<()> {
        let b = self.b;
        let mut i = self.i;
        let digits = |mut i: usize| {
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            i
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i + 1),
            _ => return Err(Bail),
        }
        if b.get(i) == Some(&b'.') {
            let j = digits(i + 1);
            if j == i + 1 {
                return Err(Bail);
            }
            i = j;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let j = digits(i);
            if j == i {
                return Err(Bail);
            }
            i = j;
        }
        self.i = i;
        Ok(())
    }

    /// A plain non-negative integer of at most 19 digits (so it fits in a
    /// `u64`, and serde reads it as one); bails on any other number.
    fn uint(&mut self) -> R<u64> {
        let b = self.b;
        let mut i = self.i;
        let mut v: u64 = 0;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            v = v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            i += 1;
        }
        // No digit, a leading zero, too many digits to be sure of no
        // overflow (the largest `u64` has 20), or a fraction or exponent next.
        let n = i - self.i;
        if n == 0 || n > 19 || (n > 1 && b[self.i] == b'0') {
            return Err(Bail);
        }
        if let Some(b'.' | b'e' | b'E') = b.get(i) {
            return Err(Bail);
        }
        self.i = i;
        Ok(v)
    }

    // -- Values ---------------------------------------------------------------

    /// Skip one value (at it, whitespace skipped), validating it: what
    /// serde_json's `IgnoredAny` reads, without a recursion.
    fn skip(&mut self) -> R<()> {
        // Bit k: the container at depth k + 1 (from the innermost) is an object.
        let mut stack: u64 = 0;
        let mut depth = 0;
        loop {
            // A value starts here.
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    self.string(SKIPPED)?;
                }
                open @ (b'{' | b'[') => {
                    if depth == MAX_DEPTH {
                        return Err(Bail);
                    }
                    self.i += 1;
                    depth += 1;
                    stack = (stack << 1) | u64::from(open == b'{');
                    self.ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek()? != close {
                        if open == b'{' {
                            self.key()?;
                        }
                        self.ws();
                        continue;
                    }
                    self.i += 1;
                    depth -= 1;
                    stack >>= 1;
                }
                b't' => self.lit(b"true")?,
                b'f' => self.lit(b"false")?,
                b'n' => self.lit(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(Bail),
            }
            // A value ended: close containers up to the next comma.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.ws();
                let object = stack & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        self.ws();
                        if object {
                            self.key()?;
                            self.ws();
                        }
                        break;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return Err(Bail),
                }
                self.i += 1;
                depth -= 1;
                stack >>= 1;
            }
        }
    }

    /// The value of a member that is not read (whitespace not skipped).
    #[inline(always)]
    fn skip_member(&mut self) -> R<()> {
        self.ws();
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string(SKIPPED).map(drop)
            }
            b'1'..=b'9' => {
                // Digits alone, the usual case, here.
                let mut i = self.i + 1;
                while let Some(b'0'..=b'9') = self.b.get(i) {
                    i += 1;
                }
                if let Some(b'.' | b'e' | b'E') = self.b.get(i) {
                    return self.number();
                }
                self.i = i;
                Ok(())
            }
            b'-' | b'0' => self.number(),
            b'n' => self.lit(b"null"),
            _ => self.skip(),
        }
    }

    /// A value that is not of the shape its position expects (at it,
    /// whitespace skipped): serde reads it typed, then finds it odd.
    fn odd(&mut self) -> R<()> {
        match self.peek()? {
            // Read, then found odd, by serde: checked as it decodes it.
            b'"' => {
                self.i += 1;
                self.string(TYPED).map(drop)
            }
            b'{' | b'[' => self.skip(),
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            b'0'..=b'9' => self.uint().map(drop),
            _ => Err(Bail),
        }
    }

    /// `str | null`.
    #[inline]
    fn str_val(&mut self) -> R<Val<Str>> {
        self.ws();
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string(TYPED).map(Val::Ok)
            }
            b'n' => self.lit(b"null").map(|()| Val::Absent),
            _ => self.odd().map(|()| Val::Odd),
        }
    }

    /// `u64 | null`.
    #[inline]
    fn u64_val(&mut self) -> R<Val<u64>> {
        self.ws();
        match self.peek()? {
            b'0'..=b'9' => self.uint().map(Val::Ok),
            b'n' => self.lit(b"null").map(|()| Val::Absent),
            _ => self.odd().map(|()| Val::Odd),
        }
    }

    /// The whole data: a value, then nothing but whitespace.
    fn document(&mut self, text: &mut String) -> R<Chunk<'static>> {
        // Anything but an object (null included) is relayed as content.
        let mut chunk = Chunk {
            content: true,
            usage: None,
            usage_only: false,
            error: None,
        };
        self.ws();
        match self.peek()? {
            b'{' => {
                self.i += 1;
                chunk = self.top(text)?;
            }
            _ => self.odd()?,
        }
        self.ws();
        if self.i != self.b.len() {
            return Err(Bail);
        }
        Ok(chunk)
    }

    /// The top object, its `{` consumed.
    fn top(&mut self, text: &mut String) -> R<Chunk<'static>> {
        let base = text.len();
        let mut choices = Choices::Absent;
        let mut usage = None;
        let mut first = true;
        let name = |k: &[u8]| match k {
            b"choices" => Some(Key::Choices),
            b"usage" => Some(Key::Usage),
            b"error" => Some(Key::Error),
            _ => None,
        };
        while let Some(key) = self.next_member(&mut first, name)? {
            match key {
                Key::Choices => {
                    // The last one wins: drop the text of an earlier one.
                    text.truncate(base);
                    choices = self.choices(text)?;
                }
                Key::Usage => usage = self.usage()?,
                Key::Error => {
                    self.ws();
                    self.lit(b"null")?;
                }
                _ => self.skip_member()?,
            }
        }
        let (content, no_choices) = match choices {
            Choices::Absent => (false, true),
            Choices::Odd => (true, false),
            Choices::Array { content, empty } => (content, empty),
        };
        Ok(Chunk {
            content,
            usage,
            usage_only: usage.is_some() && no_choices,
            error: None,
        })
    }

    fn choices(&mut self, text: &mut String) -> R<Choices> {
        self.ws();
        match self.peek()? {
            b'n' => self.lit(b"null").map(|()| Choices::Absent),
            b'[' => {
                self.i += 1;
                let (mut content, mut empty, mut first) = (false, true, true);
                while self.next_elem(&mut first)? {
                    empty = false;
                    if self.peek()? == b'{' {
                        self.i += 1;
                        content |= self.choice(text)?;
                    } else {
                        // A null or odd choice: content without text.
                        self.odd()?;
                        content = true;
                    }
                }
                Ok(Choices::Array { content, empty })
            }
            _ => self.odd().map(|()| Choices::Odd),
        }
    }

    /// One choice, its `{` consumed: appends its text, says whether it
    /// carries content.
    fn choice(&mut self, text: &mut String) -> R<bool> {
        let (mut delta, mut message) = (Msg::EMPTY, Msg::EMPTY);
        let (mut has_delta, mut has_message) = (Val::Absent, Val::Absent);
        let (mut legacy, mut finish) = (Val::Absent, Val::Absent);
        let mut first = true;
        let name = |k: &[u8]| match k {
            b"delta" => Some(Key::Delta),
            b"message" => Some(Key::Message),
            b"text" => Some(Key::Text),
            b"finish_reason" => Some(Key::FinishReason),
            _ => None,
        };
        while let Some(key) = self.next_member(&mut first, name)? {
            match key {
                Key::Delta => has_delta = self.msg(&mut delta)?,
                Key::Message => has_message = self.msg(&mut message)?,
                Key::Text => legacy = self.str_val()?,
                Key::FinishReason => finish = self.str_val()?,
                _ => self.skip_member()?,
            }
        }
        if has_delta.is_odd() || has_message.is_odd() || legacy.is_odd() || finish.is_odd() {
            return Ok(true);
        }
        let mut content = Str::nonempty(finish.ok()) || Str::nonempty(legacy.ok());
        for (m, has) in [(&delta, has_delta), (&message, has_message)] {
            if has.ok().is_some() {
                self.push_msg(m, text);
                content |= m.has_content();
            }
        }
        Str::push(legacy.ok(), self.data, text);
        Ok(content)
    }

    /// `msg | null` into `m`.
    fn msg(&mut self, m: &mut Msg) -> R<Val<()>> {
        self.ws();
        match self.peek()? {
            b'{' => self.i += 1,
            b'n' => return self.lit(b"null").map(|()| Val::Absent),
            _ => return self.odd().map(|()| Val::Odd),
        }
        // The last one wins: forget an earlier one's calls (the other
        // members are set below).
        m.n_calls = 0;
        let (mut content, mut refusal) = (Val::Absent, Val::Absent);
        let (mut calls, mut function_call) = (Val::Absent, Val::Absent);
        let mut first = true;
        let name = |k: &[u8]| match k {
            b"content" => Some(Key::Content),
            b"refusal" => Some(Key::Refusal),
            b"tool_calls" => Some(Key::ToolCalls),
            b"function_call" => Some(Key::FunctionCall),
            _ => None,
        };
        while let Some(key) = self.next_member(&mut first, name)? {
            match key {
                Key::Content => content = self.str_val()?,
                Key::Refusal => refusal = self.str_val()?,
                Key::ToolCalls => calls = self.tool_calls(m)?,
                Key::FunctionCall => function_call = self.func()?,
                _ => self.skip_member()?,
            }
        }
        if content.is_odd() || refusal.is_odd() || calls.is_odd() || function_call.is_odd() {
            return Ok(Val::Odd);
        }
        m.content = content.ok();
        m.refusal = refusal.ok();
        m.function_call = function_call.ok();
        Ok(Val::Ok(()))
    }

    /// Append the text of a well-formed message.
    fn push_msg(&self, m: &Msg, out: &mut String) {
        Str::push(m.content, self.data, out);
        Str::push(m.refusal, self.data, out);
        for f in m.calls[..m.n_calls].iter().chain(&m.function_call) {
            f.push(self.data, out);
        }
    }

    /// `[call] | null` into `m.calls`; odd if any call is null or odd.
    fn tool_calls(&mut self, m: &mut Msg) -> R<Val<()>> {
        // The last one wins.
        m.n_calls = 0;
        self.ws();
        match self.peek()? {
            b'[' => self.i += 1,
            b'n' => return self.lit(b"null").map(|()| Val::Absent),
            _ => return self.odd().map(|()| Val::Odd),
        }
        let (mut odd, mut first) = (false, true);
        while self.next_elem(&mut first)? {
            let call = if self.peek()? == b'{' {
                self.i += 1;
                self.tool_call()?
            } else {
                self.odd()?;
                Val::Odd
            };
            match call {
                Val::Ok(f) => {
                    *m.calls.get_mut(m.n_calls).ok_or(Bail)? = f;
                    m.n_calls += 1;
                }
                Val::Absent | Val::Odd => odd = true,
            }
        }
        Ok(if odd { Val::Odd } else { Val::Ok(()) })
    }

    /// `{function: func | null, ...}`, its `{` consumed.
    fn tool_call(&mut self) -> R<Val<Func>> {
        let mut function = Val::Absent;
        let mut first = true;
        let name = |k: &[u8]| (k == b"function").then_some(Key::Function);
        while let Some(key) = self.next_member(&mut first, name)? {
            match key {
                Key::Function => function = self.func()?,
                _ => self.skip_member()?,
            }
        }
        // A call without a function adds no text.
        Ok(match function {
            Val::Absent => Val::Ok(Func::EMPTY),
            f => f,
        })
    }

    /// `func | null`.
    fn func(&mut self) -> R<Val<Func>> {
        self.ws();
        match self.peek()? {
            b'{' => self.i += 1,
            b'n' => return self.lit(b"null").map(|()| Val::Absent),
            _ => return self.odd().map(|()| Val::Odd),
        }
        let (mut name, mut arguments) = (Val::Absent, Val::Absent);
        let (mut nonempty, mut first) = (false, true);
        let known = |k: &[u8]| match k {
            b"name" => Some(Key::Name),
            b"arguments" => Some(Key::Arguments),
            // Every member counts (`nonempty`).
            _ => Some(Key::Other),
        };
        while let Some(key) = self.next_member(&mut first, known)? {
            nonempty = true;
            match key {
                Key::Name => name = self.str_val()?,
                Key::Arguments => arguments = self.str_val()?,
                _ => self.skip_member()?,
            }
        }
        if name.is_odd() || arguments.is_odd() {
            return Ok(Val::Odd);
        }
        Ok(Val::Ok(Func {
            name: name.ok(),
            arguments: arguments.ok(),
            nonempty,
        }))
    }

    /// `usage | null`; `None` when absent, null or odd.
    fn usage(&mut self) -> R<Option<Usage>> {
        self.ws();
        match self.peek()? {
            b'{' => self.i += 1,
            b'n' => return self.lit(b"null").map(|()| None),
            _ => return self.odd().map(|()| None),
        }
        let (mut prompt, mut completion) = (Val::Absent, Val::Absent);
        let mut cached = Val::Absent;
        let mut first = true;
        let name = |k: &[u8]| match k {
            b"prompt_tokens" => Some(Key::PromptTokens),
            b"completion_tokens" => Some(Key::CompletionTokens),
            b"prompt_tokens_details" => Some(Key::PromptTokensDetails),
            _ => None,
        };
        while let Some(key) = self.next_member(&mut first, name)? {
            match key {
                Key::PromptTokens => prompt = self.u64_val()?,
                Key::CompletionTokens => completion = self.u64_val()?,
                Key::PromptTokensDetails => cached = self.details()?,
                _ => self.skip_member()?,
            }
        }
        if prompt.is_odd() || completion.is_odd() || cached.is_odd() {
            return Ok(None);
        }
        Ok(Some(Usage {
            prompt_tokens: prompt.ok().unwrap_or(0),
            completion_tokens: completion.ok().unwrap_or(0),
            cached_tokens: cached.ok().unwrap_or(0),
        }))
    }

    /// `{cached_tokens: u64 | null, ...} | null`: the cached tokens.
    fn details(&mut self) -> R<Val<u64>> {
        self.ws();
        match self.peek()? {
            b'{' => self.i += 1,
            b'n' => return self.lit(b"null").map(|()| Val::Absent),
            _ => return self.odd().map(|()| Val::Odd),
        }
        let mut cached = Val::Absent;
        let mut first = true;
        let name = |k: &[u8]| (k == b"cached_tokens").then_some(Key::CachedTokens);
        while let Some(key) = self.next_member(&mut first, name)? {
            match key {
                Key::CachedTokens => cached = self.u64_val()?,
                _ => self.skip_member()?,
            }
        }
        Ok(match cached {
            Val::Odd => Val::Odd,
            c => Val::Ok(c.ok().unwrap_or(0)),
        })
    }
}
