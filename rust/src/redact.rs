//! PII redaction: a compiled set of detectors (the built-in kinds of
//! [`crate::redact_rules`] and custom patterns from the config), and a
//! per-request table of placeholders.
//!
//! One pass of a `RegexSet` (a lazy DFA, linear in the text) says which kinds
//! occur at all; only those kinds' regexes then look for their matches, so a
//! text without PII costs one pass whatever the number of kinds. Matches are
//! validated (checksums, ranges), overlaps resolved by kind priority (custom
//! patterns first, then the built-ins in their order), and each kept match
//! is replaced by a placeholder (`[EMAIL_1]`: the same value gets the same
//! placeholder for the whole request), masked, or refused (block).

use std::collections::{BTreeMap, HashMap};

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::redact_rules::{mask, MaskStyle, Validator, BUILTINS};

/// What happens to a value of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Placeholder,
    Mask,
    Block,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "placeholder" => Some(Action::Placeholder),
            "mask" => Some(Action::Mask),
            "block" => Some(Action::Block),
            _ => None,
        }
    }
}

struct Rule {
    name: String,
    /// The placeholder's label: the name in upper case.
    label: String,
    action: Action,
    regex: Regex,
    validate: Option<Validator>,
    mask: MaskStyle,
}

/// A compiled set of detectors. Immutable, shared by every request.
pub struct Detector {
    set: RegexSet,
    rules: Vec<Rule>,
}

/// Why a detector could not be built; `setting` names the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

/// One value found: its byte span and the index of its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
    pub rule: usize,
}

// Compiled programs may grow this large (the default 10 MiB refuses big
// custom alternations; this is per pattern, built once per config).
const SIZE_LIMIT: usize = 64 << 20;

/// The names of the built-in kinds, in priority order.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

impl Detector {
    /// `entities`: built-in kind -> action; `custom`: (name, pattern, action),
    /// checked before the built-ins, in the order given.
    pub fn new(
        entities: &[(String, Action)],
        custom: &[(String, String, Action)],
    ) -> Result<Self, ConfigError> {
        let mut rules = Vec::new();
        for (name, pattern, action) in custom {
            if BUILTINS.iter().any(|b| b.name == name) {
                return Err(ConfigError {
                    setting: format!("custom.{name}"),
                    message: "is a built-in kind; choose another name".into(),
                });
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                || !name.as_bytes()[0].is_ascii_lowercase()
            {
                return Err(ConfigError {
                    setting: format!("custom.{name}"),
                    message: "a name is lower-case letters, digits and _, starting with a letter"
                        .into(),
                });
            }
            let regex = RegexBuilder::new(pattern)
                .size_limit(SIZE_LIMIT)
                .build()
                .map_err(|e| ConfigError {
                    setting: format!("custom.{name}"),
                    message: format!("invalid pattern: {}", one_line(&e.to_string())),
                })?;
            if regex.is_match("") {
                return Err(ConfigError {
                    setting: format!("custom.{name}"),
                    message: "the pattern matches the empty string".into(),
                });
            }
            rules.push(Rule {
                name: name.clone(),
                label: name.to_ascii_uppercase(),
                action: *action,
                regex,
                validate: None,
                mask: MaskStyle::All,
            });
        }
        for b in BUILTINS {
            let Some((_, action)) = entities.iter().find(|(n, _)| n == b.name) else {
                continue;
            };
            let regex = RegexBuilder::new(b.pattern)
                .size_limit(SIZE_LIMIT)
                .build()
                .expect("built-in patterns compile");
            rules.push(Rule {
                name: b.name.to_string(),
                label: b.name.to_ascii_uppercase(),
                action: *action,
                regex,
                validate: Some(b.validate),
                mask: b.mask,
            });
        }
        for (name, _) in entities {
            if !BUILTINS.iter().any(|b| b.name == name) && !custom.iter().any(|(c, _, _)| c == name)
            {
                return Err(ConfigError {
                    setting: format!("entities.{name}"),
                    message: format!(
                        "unknown kind (built-in: {}; or name a custom pattern)",
                        builtin_names().join(", ")
                    ),
                });
            }
        }
        let set = RegexSetBuilder::new(rules.iter().map(|r| r.regex.as_str()))
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| ConfigError {
                setting: "custom".into(),
                message: one_line(&e.to_string()),
            })?;
        Ok(Detector { set, rules })
    }

    /// The kinds this detector looks for, in priority order.
    pub fn kinds(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// The regular expressions, in priority order (custom patterns first).
    pub fn patterns(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.regex.as_str()).collect()
    }

    /// A kind's name by rule index.
    pub fn kind(&self, rule: usize) -> &str {
        &self.rules[rule].name
    }

    /// Every value found in `text`: validated, without overlaps, in order.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let hits = self.set.matches(text);
        if !hits.matched_any() {
            return Vec::new();
        }
        // Kept spans by start; a higher-priority rule's span is kept first.
        let mut kept: BTreeMap<usize, Found> = BTreeMap::new();
        for i in hits.iter() {
            let rule = &self.rules[i];
            let mut pos = 0;
            while let Some(m) = rule.regex.find_at(text, pos) {
                // Go on after the match, or after what the validator kept of it (a
                // greedy card match that took the next number's first group gives it
                // back); an empty match moves one character on.
                pos = match text[m.end()..].chars().next() {
                    Some(c) if m.is_empty() => m.end() + c.len_utf8(),
                    None if m.is_empty() => break,
                    _ => m.end(),
                };
                let span = match rule.validate {
                    Some(v) => v(text, m.start(), m.end()),
                    None => Some((m.start(), m.end())),
                };
                let Some((start, end)) = span else {
                    // A rejected candidate (a failed checksum) may hide a real value
                    // starting inside it: look again from its next character. Patterns
                    // are bounded or start at a word boundary, so this stays linear.
                    pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                    continue;
                };
                if start == end {
                    continue;
                }
                pos = pos.min(end);
                let clash_before = kept
                    .range(..=start)
                    .next_back()
                    .is_some_and(|(_, f)| f.end > start);
                let clash_after = kept
                    .range(start..)
                    .next()
                    .is_some_and(|(_, f)| f.start < end);
                if !clash_before && !clash_after {
                    kept.insert(
                        start,
                        Found {
                            start,
                            end,
                            rule: i,
                        },
                    );
                }
            }
        }
        kept.into_values().collect()
    }

    /// `text` with every value found replaced per its kind's action, or
    /// `Ok(None)` when nothing was found; `Err(kind)` when a blocked kind
    /// occurs (the value itself is never reported).
    pub fn redact(&self, text: &str, table: &mut Table) -> Result<Option<String>, String> {
        let found = self.find(text);
        if found.is_empty() {
            return Ok(None);
        }
        if let Some(f) = found
            .iter()
            .find(|f| self.rules[f.rule].action == Action::Block)
        {
            return Err(self.rules[f.rule].name.clone());
        }
        let mut out = String::with_capacity(text.len() + 16 * found.len());
        let mut at = 0;
        for f in &found {
            let rule = &self.rules[f.rule];
            let value = &text[f.start..f.end];
            out.push_str(&text[at..f.start]);
            match rule.action {
                Action::Placeholder => out.push_str(table.placeholder(&rule.label, value)),
                Action::Mask => out.push_str(&mask(value, rule.mask)),
                Action::Block => unreachable!("blocked above"),
            }
            table.count(f.rule, self.rules.len());
            at = f.end;
        }
        out.push_str(&text[at..]);
        Ok(Some(out))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One request's placeholders: value -> placeholder and back, shared by all
/// the texts of the request (and by its answer's restoration).
#[derive(Debug, Default, Clone)]
pub struct Table {
    by_value: HashMap<(String, String), usize>,
    by_placeholder: HashMap<String, usize>,
    /// (placeholder, original value), in the order made.
    pairs: Vec<(String, String)>,
    next: HashMap<String, u32>,
    /// Values found per rule index (placeholders, masks).
    counts: Vec<u32>,
    max_len: usize,
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    fn placeholder(&mut self, label: &str, value: &str) -> &str {
        let key = (label.to_string(), value.to_string());
        let i = match self.by_value.get(&key) {
            Some(&i) => i,
            None => {
                let n = self.next.entry(label.to_string()).or_insert(0);
                *n += 1;
                let ph = format!("[{label}_{n}]");
                self.max_len = self.max_len.max(ph.len());
                let i = self.pairs.len();
                self.by_placeholder.insert(ph.clone(), i);
                self.pairs.push((ph, value.to_string()));
                self.by_value.insert(key, i);
                i
            }
        };
        &self.pairs[i].0
    }

    fn count(&mut self, rule: usize, rules: usize) {
        if self.counts.len() < rules {
            self.counts.resize(rules, 0);
        }
        self.counts[rule] += 1;
    }

    /// Values redacted per rule index.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// The (placeholder, value) pairs, in the order made.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The original value of a placeholder (`[EMAIL_1]`), if this request made it.
    pub fn value_of(&self, placeholder: &[u8]) -> Option<&str> {
        let s = std::str::from_utf8(placeholder).ok()?;
        self.by_placeholder
            .get(s)
            .map(|&i| self.pairs[i].1.as_str())
    }

    /// The longest placeholder's length in bytes (0 when empty).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// `tail` (starting with `[`) is a proper prefix of some placeholder.
    pub fn is_prefix(&self, tail: &[u8]) -> bool {
        tail.len() < self.max_len
            && self
                .pairs
                .iter()
                .any(|(p, _)| p.len() > tail.len() && p.as_bytes().starts_with(tail))
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
