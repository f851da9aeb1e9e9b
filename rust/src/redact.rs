//! PII redaction: a compiled set of detectors (the built-in kinds of
//! [`crate::redact_rules`] and custom patterns from the config), and a
//! per-request table of placeholders.
//!
//! Every kind's pattern is compiled into one multi-pattern regex (the `regex`
//! crate's engine, `regex_automata::meta`, built from the whole set at once):
//! one left-to-right pass of its lazy DFA finds the leftmost match of any
//! kind and says which kind it is, whatever the number of kinds; a text
//! without PII costs that one pass. At one position the kinds are tried in
//! priority order (custom patterns first, then the built-ins in their order).
//! A match is validated (checksums, ranges); a rejected one lets the other
//! kinds try the same position (anchored there), then the scan goes on from
//! the next character. Each kept match is replaced by a placeholder
//! (`[EMAIL_1]`: the same value gets the same placeholder for the whole
//! request), masked, or refused (block).

use std::collections::HashMap;

use regex_automata::meta::{self, Regex};
use regex_automata::{Anchored, Input};

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
    source: String,
    /// This rule alone (for anchored retries at a rejected match's place).
    regex: Regex,
    validate: Option<Validator>,
    mask: MaskStyle,
}

/// A compiled set of detectors. Immutable, shared by every request.
pub struct Detector {
    /// Every rule's pattern, pattern id = rule index.
    set: Regex,
    rules: Vec<Rule>,
}

/// The regex of `patterns` (pattern id = index), or the compiler's message on one line.
fn compile(patterns: &[&str]) -> Result<Regex, String> {
    let config = meta::Config::new()
        .nfa_size_limit(Some(SIZE_LIMIT))
        .hybrid_cache_capacity(DFA_LIMIT);
    Regex::builder()
        .configure(config)
        .build_many(patterns)
        .map_err(|e| match e.syntax_error() {
            Some(syntax) => one_line(&syntax.to_string()),
            None => one_line(&e.to_string()),
        })
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
// The lazy DFA's cache per regex and thread: room for the states of every kind at once, so a
// scan never falls back to the slower NFA engines.
const DFA_LIMIT: usize = 16 << 20;

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
            let regex = compile(&[pattern.as_str()]).map_err(|e| ConfigError {
                setting: format!("custom.{name}"),
                message: format!("invalid pattern: {e}"),
            })?;
            if regex.is_match(Input::new("")) {
                return Err(ConfigError {
                    setting: format!("custom.{name}"),
                    message: "the pattern matches the empty string".into(),
                });
            }
            rules.push(Rule {
                name: name.clone(),
                label: name.to_ascii_uppercase(),
                action: *action,
                source: pattern.clone(),
                regex,
                validate: None,
                mask: MaskStyle::All,
            });
        }
        for b in BUILTINS {
            let Some((_, action)) = entities.iter().find(|(n, _)| n == b.name) else {
                continue;
            };
            let regex = compile(&[b.pattern]).expect("built-in patterns compile");
            rules.push(Rule {
                name: b.name.to_string(),
                label: b.name.to_ascii_uppercase(),
                action: *action,
                source: b.pattern.to_string(),
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
        let sources: Vec<&str> = rules.iter().map(|r| r.source.as_str()).collect();
        let set = compile(&sources).map_err(|e| ConfigError {
            setting: "custom".into(),
            message: e,
        })?;
        Ok(Detector { set, rules })
    }

    /// The kinds this detector looks for, in priority order.
    pub fn kinds(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// The regular expressions, in priority order (custom patterns first).
    pub fn patterns(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.source.as_str()).collect()
    }

    /// A kind's name by rule index.
    pub fn kind(&self, rule: usize) -> &str {
        &self.rules[rule].name
    }

    /// Every value found in `text`: validated, without overlaps, in order.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let mut found = Vec::new();
        let mut pos = 0;
        while pos <= text.len() {
            let Some(m) = self.set.search(&Input::new(text).range(pos..)) else {
                break;
            };
            let start = m.start();
            let first = m.pattern().as_usize();
            // The kind that matched, else (a failed check) the later kinds anchored at
            // the same place, in priority order.
            let mut kept = self.check(first, text, start, m.end());
            if kept.is_none() {
                let here = Input::new(text).range(start..).anchored(Anchored::Yes);
                for i in first + 1..self.rules.len() {
                    if let Some(m) = self.rules[i].regex.search(&here) {
                        kept = self.check(i, text, start, m.end());
                        if kept.is_some() {
                            break;
                        }
                    }
                }
            }
            match kept {
                // Go on after what was kept (a greedy match the check trimmed gives
                // the rest back).
                Some(f) => {
                    pos = f.end;
                    found.push(f);
                }
                // A value may start inside a rejected candidate: go on from its next
                // character (patterns are bounded or start at a word boundary, so
                // this stays linear).
                None => pos = start + text[start..].chars().next().map_or(1, char::len_utf8),
            }
        }
        found
    }

    /// Rule `rule`'s validator on a match: the span kept, if any (never empty).
    fn check(&self, rule: usize, text: &str, start: usize, end: usize) -> Option<Found> {
        let (start, end) = match self.rules[rule].validate {
            Some(v) => v(text, start, end)?,
            None => (start, end),
        };
        (start < end).then_some(Found { start, end, rule })
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
