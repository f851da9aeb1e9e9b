//! Bindings of PII redaction (`redact`, `redact_rules`) and placeholder
//! restoration (`restore`). Scans of 8 KiB or more run with the GIL released
//! (`py::maybe_detached`).

use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::py::{maybe_detached, NativeError};
use crate::redact::{self as rd, Action};
use crate::restore;

create_exception!(
    relay._native,
    RedactorConfigError,
    NativeError,
    "A redaction setting is wrong; the message starts with the setting (`custom.employee_id: ...`)."
);
create_exception!(
    relay._native,
    PiiBlocked,
    NativeError,
    "A text holds a kind of value whose action is block; the message is the kind's name (never the value)."
);

/// One request's placeholders, shared by its texts and its answer.
#[pyclass(module = "relay._native")]
pub struct RedactionTable {
    inner: rd::Table,
}

#[pymethods]
impl RedactionTable {
    #[new]
    fn new() -> Self {
        RedactionTable {
            inner: rd::Table::new(),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.pairs().len()
    }

    /// (placeholder, original value) pairs, in the order they were made.
    fn pairs(&self) -> Vec<(String, String)> {
        self.inner.pairs().to_vec()
    }

    /// `text` with every placeholder of this table replaced by its value.
    fn restore(&self, text: &str) -> String {
        let mut out = Vec::with_capacity(text.len());
        let body = text.as_bytes();
        let mut at = 0;
        for i in memchr::memchr_iter(b'[', body) {
            if i < at {
                continue;
            }
            let window = &body[i..body.len().min(i + self.inner.max_len())];
            if let Some(j) = memchr::memchr(b']', window) {
                if let Some(v) = self.inner.value_of(&body[i..=i + j]) {
                    out.extend_from_slice(&body[at..i]);
                    out.extend_from_slice(v.as_bytes());
                    at = i + j + 1;
                }
            }
        }
        out.extend_from_slice(&body[at..]);
        String::from_utf8(out).expect("placeholders are ASCII, values UTF-8")
    }

    fn __repr__(&self) -> String {
        format!("RedactionTable({} placeholders)", self.inner.pairs().len())
    }
}

fn parse_action(setting: &str, action: &str) -> PyResult<Action> {
    Action::parse(action).ok_or_else(|| {
        RedactorConfigError::new_err(format!(
            "{setting}: unknown action {action:?}: expected placeholder, mask or block"
        ))
    })
}

/// A compiled set of PII detectors.
#[pyclass(frozen, module = "relay._native")]
pub struct Redactor {
    inner: rd::Detector,
}

#[pymethods]
impl Redactor {
    #[new]
    #[pyo3(signature = (entities, custom = Vec::new()))]
    fn new(
        entities: Vec<(String, String)>,
        custom: Vec<(String, String, String)>,
    ) -> PyResult<Self> {
        let mut ents = Vec::with_capacity(entities.len());
        for (kind, action) in entities {
            let a = parse_action(&format!("entities.{kind}"), &action)?;
            ents.push((kind, a));
        }
        let mut cust = Vec::with_capacity(custom.len());
        for (name, pattern, action) in custom {
            let a = parse_action(&format!("entities.{name}"), &action)?;
            cust.push((name, pattern, a));
        }
        let inner = rd::Detector::new(&ents, &cust)
            .map_err(|e| RedactorConfigError::new_err(format!("{}: {}", e.setting, e.message)))?;
        Ok(Redactor { inner })
    }

    /// The built-in kinds, highest priority first.
    #[staticmethod]
    fn builtin_kinds() -> Vec<&'static str> {
        rd::builtin_names()
    }

    /// The kinds looked for, in priority order (custom patterns first).
    #[getter]
    fn kinds(&self) -> Vec<String> {
        self.inner.kinds().into_iter().map(str::to_owned).collect()
    }

    /// The regular expressions (Rust `regex` syntax), in the order of `kinds`.
    #[getter]
    fn patterns(&self) -> Vec<String> {
        self.inner
            .patterns()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// (kind, value) of every value found in `text`, in order.
    fn find(&self, py: Python<'_>, text: &str) -> Vec<(String, String)> {
        let found = maybe_detached(py, text.len(), || self.inner.find(text));
        found
            .into_iter()
            .map(|f| {
                (
                    self.inner.kind(f.rule).to_owned(),
                    text[f.start..f.end].to_owned(),
                )
            })
            .collect()
    }

    /// `text` redacted, or None when it holds nothing to redact. Placeholders
    /// are made in `table`. Raises PiiBlocked when a blocked kind occurs.
    fn redact(
        &self,
        py: Python<'_>,
        text: &str,
        mut table: PyRefMut<'_, RedactionTable>,
    ) -> PyResult<Option<String>> {
        let inner = &self.inner;
        let t = &mut table.inner;
        maybe_detached(py, text.len(), || inner.redact(text, t)).map_err(PiiBlocked::new_err)
    }

    /// Values redacted so far in `table`, per kind (kinds with none left out).
    fn counts(&self, table: PyRef<'_, RedactionTable>) -> Vec<(String, u32)> {
        table
            .inner
            .counts()
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (self.inner.kind(i).to_owned(), n))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Redactor({:?})", self.inner.kinds())
    }
}

/// A JSON answer with the placeholders of `table` restored; None when it
/// holds none.
#[pyfunction]
fn restore_json<'py>(
    py: Python<'py>,
    body: &[u8],
    table: PyRef<'_, RedactionTable>,
) -> Option<Bound<'py, PyBytes>> {
    let t = &table.inner;
    maybe_detached(py, body.len(), || restore::restore_json(body, t)).map(|b| PyBytes::new(py, &b))
}

/// Restores a stream's placeholders event by event (one per request).
#[pyclass(module = "relay._native")]
pub struct StreamRestorer {
    inner: restore::StreamRestorer,
}

#[pymethods]
impl StreamRestorer {
    #[new]
    fn new(table: PyRef<'_, RedactionTable>) -> Self {
        StreamRestorer {
            inner: restore::StreamRestorer::new(table.inner.clone()),
        }
    }

    /// The frames to send for one SSE frame: `event` itself when unchanged.
    fn event<'py>(&mut self, py: Python<'py>, event: Bound<'py, PyBytes>) -> Bound<'py, PyBytes> {
        match self.inner.event(event.as_bytes()) {
            None => event,
            Some(out) => PyBytes::new(py, &out),
        }
    }

    /// The tails still held, each in a copy of its channel's last event.
    fn flush<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.flush())
    }

    /// Nothing is held.
    #[getter]
    fn idle(&self) -> bool {
        self.inner.is_idle()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RedactorConfigError", py.get_type::<RedactorConfigError>())?;
    m.add("PiiBlocked", py.get_type::<PiiBlocked>())?;
    m.add_class::<RedactionTable>()?;
    m.add_class::<Redactor>()?;
    m.add_class::<StreamRestorer>()?;
    m.add_function(wrap_pyfunction!(restore_json, m)?)?;
    Ok(())
}
