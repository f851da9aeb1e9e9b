//! The built-in PII detectors: one pattern per kind (ASCII-only classes and
//! word boundaries, so the lazy DFA of the multi-pattern regex never falls back to a
//! slower engine) and a validator that looks at the match and its
//! surroundings: Luhn for cards, ISO 7064 mod 97 for IBANs, the SSA's
//! reserved ranges for SSNs, octet ranges for IPv4, a real parse for IPv6.
//!
//! A validator returns the span to redact (it may trim a greedy match, say an
//! IBAN that swallowed a following word) or `None` to drop the candidate.

use std::net::Ipv6Addr;
use std::str::FromStr;

/// How a kind's value is masked (`mask` action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskStyle {
    /// Every letter and digit becomes `*`.
    All,
    /// Every letter and digit but the last four becomes `*` (cards, phones).
    KeepLast4,
    /// The local part becomes `*`; the domain stays.
    Email,
}

/// Decides whether `text[start..end]`, a match of the kind's pattern, is
/// one, and which span to redact.
pub type Validator = fn(text: &str, start: usize, end: usize) -> Option<(usize, usize)>;

/// One built-in kind: its config name, pattern, validator and mask style.
pub struct Builtin {
    pub name: &'static str,
    pub pattern: &'static str,
    pub validate: Validator,
    pub mask: MaskStyle,
}

/// The built-in kinds, highest priority first: where two kinds' matches
/// overlap, the earlier kind wins (an IPv4 address is not a phone number,
/// an API key's digits are not a card).
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "api_key",
        pattern: concat!(
            r"(?-u:\bsk-[A-Za-z0-9_-]{20,}",
            r"|\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
            r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b",
            r"|\bgithub_pat_[A-Za-z0-9_]{22,}",
            r"|\bxox[abposre]-[A-Za-z0-9-]{10,}",
            r"|\bAIza[0-9A-Za-z_-]{35}",
            r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
            r"|\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
            r"|\bhf_[A-Za-z0-9]{30,}",
            r"|\bglpat-[A-Za-z0-9_-]{20,}",
            r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[A-Za-z0-9+/=\s]+-----END [A-Z ]*PRIVATE KEY-----)",
        ),
        validate: api_key,
        mask: MaskStyle::All,
    },
    Builtin {
        name: "email",
        pattern: r"(?i-u:\b[a-z0-9._%+-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,24}\b)",
        validate: email,
        mask: MaskStyle::Email,
    },
    Builtin {
        name: "iban",
        pattern: r"(?i-u:\b[a-z]{2}[0-9]{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,4})?\b)",
        validate: iban,
        mask: MaskStyle::KeepLast4,
    },
    Builtin {
        name: "card",
        pattern: r"(?-u:\b[0-9](?:[ -]?[0-9]){12,18}\b)",
        validate: card,
        mask: MaskStyle::KeepLast4,
    },
    Builtin {
        name: "ssn",
        pattern: r"(?-u:\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b)",
        validate: ssn,
        mask: MaskStyle::KeepLast4,
    },
    Builtin {
        name: "ipv4",
        pattern: r"(?-u:\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b)",
        validate: ipv4,
        mask: MaskStyle::All,
    },
    Builtin {
        name: "ipv6",
        pattern: r"(?i-u:[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})",
        validate: ipv6,
        mask: MaskStyle::All,
    },
    Builtin {
        name: "phone",
        pattern: concat!(
            // International: +CC then 6 to 14 more digits in groups.
            r"(?-u:\+[0-9]{1,3}(?:[ .-]?\(?[0-9]{1,4}\)?)(?:[ .-]?[0-9]{2,5}){1,5}",
            // North American: (555) 123-4567, 555-123-4567, 555.123.4567.
            r"|(?:\([0-9]{3}\)[ .-]?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}\b",
            // National with a trunk 0: 020 7946 0958, 06 12 34 56 78, 0151-12345678.
            r"|\b0[1-9][0-9]{0,3}(?:[ .-]?[0-9]{2,8}){2,4}\b)",
        ),
        validate: phone,
        mask: MaskStyle::KeepLast4,
    },
];

fn before(text: &str, start: usize) -> Option<u8> {
    start.checked_sub(1).map(|i| text.as_bytes()[i])
}

fn after(text: &str, end: usize) -> Option<u8> {
    text.as_bytes().get(end).copied()
}

fn after2(text: &str, end: usize) -> Option<u8> {
    text.as_bytes().get(end + 1).copied()
}

fn is_word(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_digit(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_digit())
}

fn api_key(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    // Random tokens have digits; `sk-some-long-dashed-words` is prose.
    if s.starts_with("sk-") && !s[3..].bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((start, end))
}

fn email(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    // `a.b@c.de` inside a longer token such as a URL path is still an
    // address; only a leading dot (a sentence's end) is trimmed.
    let s = &text[start..end];
    let lead = s.bytes().take_while(|&b| b == b'.').count();
    let at = s.find('@')?;
    (at > lead).then_some((start + lead, end))
}

/// ISO 13616: move the first four characters to the end, letters to
/// 10..35, and the number mod 97 must be 1 (computed digit by digit).
pub fn iban_ok(compact: &[u8]) -> bool {
    if !(15..=34).contains(&compact.len()) || !compact[..2].iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            b'a'..=b'z' => u32::from(b - b'a') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn iban(text: &str, start: usize, mut end: usize) -> Option<(usize, usize)> {
    // A greedy match may have taken a following short word; drop trailing
    // space-separated groups until the checksum holds.
    loop {
        let compact: Vec<u8> = text[start..end].bytes().filter(|&b| b != b' ').collect();
        if iban_ok(&compact) {
            return Some((start, end));
        }
        end = start + text[start..end].rfind(' ')?;
    }
}

/// The Luhn check over the digits of `s` (separators ignored).
pub fn luhn_ok(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn card(text: &str, start: usize, mut end: usize) -> Option<(usize, usize)> {
    // The digits after an IBAN's country and check digits (`DE89 3704 ...`, whose
    // checksum failed) are not a card, even when Luhn passes by chance.
    if matches!(before(text, start), Some(b' ' | b'-')) {
        let head = &text.as_bytes()[..start - 1];
        let from = head
            .iter()
            .rposition(|b| !b.is_ascii_alphanumeric())
            .map_or(0, |i| i + 1);
        let token = &head[from..];
        if token.len() == 4
            && token[..2].iter().all(u8::is_ascii_uppercase)
            && token[2..].iter().all(u8::is_ascii_digit)
        {
            return None;
        }
    }
    loop {
        let s = &text[start..end];
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
        let spaces = s.contains(' ');
        let dashes = s.contains('-');
        // Issuer ranges start with 1 to 6; one kind of separator.
        if (13..=19).contains(&digits.len())
            && (b'1'..=b'6').contains(&digits[0])
            && !(spaces && dashes)
            && luhn_ok(&digits)
        {
            return Some((start, end));
        }
        end = start + s.rfind([' ', '-'])?;
    }
}

fn ssn(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    // Part of a longer dashed number (a phone, an id) is not an SSN.
    if before(text, start) == Some(b'-')
        || (after(text, end) == Some(b'-') && is_digit(after2(text, end)))
    {
        return None;
    }
    let b = &text.as_bytes()[start..end];
    let area = &b[0..3];
    let ok = area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && &b[4..6] != b"00"
        && &b[7..11] != b"0000";
    ok.then_some((start, end))
}

fn ipv4(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    // 1.2.3.4.5 (a version) is not an address.
    if (before(text, start) == Some(b'.') && start >= 2 && is_digit(before(text, start - 1)))
        || (after(text, end) == Some(b'.') && is_digit(after2(text, end)))
    {
        return None;
    }
    let ok = text[start..end]
        .split('.')
        .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255) && (o.len() == 1 || !o.starts_with('0')));
    ok.then_some((start, end))
}

fn ipv6(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let b = before(text, start);
    // `std::vec` and `a::b` are code; an address stands on its own.
    if is_word(b)
        || b == Some(b':')
        || after(text, end).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
    {
        return None;
    }
    let hex = s.bytes().filter(u8::is_ascii_hexdigit).count();
    (hex >= 3 && Ipv6Addr::from_str(s).is_ok()).then_some((start, end))
}

fn phone(text: &str, start: usize, mut end: usize) -> Option<(usize, usize)> {
    let sep = |b: Option<u8>| matches!(b, Some(b' ' | b'.' | b'-'));
    let s = &text[start..end];
    // Part of a longer run of digit groups (an account number) is not a phone; a number
    // written with its country code stands out on its own.
    let bare = !s.starts_with(['+', '(']);
    if is_word(before(text, start))
        || (bare && sep(before(text, start)) && start >= 2 && is_digit(before(text, start - 1)))
    {
        return None;
    }
    loop {
        let s = &text[start..end];
        let digits = s.bytes().filter(u8::is_ascii_digit).count();
        let ok = if s.starts_with('+') {
            (8..=15).contains(&digits)
        } else {
            (10..=15).contains(&digits)
        };
        // Dates (2024-01-15) and dotted quads are not phone numbers.
        let dotted_quad = s.split('.').count() == 4
            && s.split('.')
                .all(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
        let date = s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
        let run_on = is_digit(after(text, end))
            || (bare && sep(after(text, end)) && is_digit(after2(text, end)));
        if ok && !dotted_quad && !date && !run_on {
            return Some((start, end));
        }
        if !s.starts_with('+') || digits <= 15 {
            return None;
        }
        // A greedy international match that took the next number's groups gives them back.
        end = start + s.rfind([' ', '.', '-'])?;
    }
}

/// `value` masked in `style`: letters and digits become `*`, separators stay.
pub fn mask(value: &str, style: MaskStyle) -> String {
    let keep_from = match style {
        MaskStyle::All => usize::MAX,
        MaskStyle::Email => value.rfind('@').unwrap_or(usize::MAX),
        MaskStyle::KeepLast4 => {
            let mut seen = 0;
            let mut at = usize::MAX;
            for (i, c) in value.char_indices().rev() {
                if c.is_ascii_alphanumeric() {
                    seen += 1;
                    if seen == 4 {
                        at = i;
                        break;
                    }
                }
            }
            at
        }
    };
    value
        .char_indices()
        .map(|(i, c)| {
            if i < keep_from && c.is_alphanumeric() {
                '*'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "redact_rules_tests.rs"]
mod tests;
