//! The Python binding layer: thin wrappers that convert types and errors and
//! decide when to release the GIL. All logic lives in the pure modules.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::cache_key as ck;
use crate::gcra as g;
use crate::json::JsonError;
use crate::json_edit;
use crate::limiter as lim;
use crate::sse;
use crate::tokens::{self, Encoding};

create_exception!(
    relay._native,
    NativeError,
    PyValueError,
    "Base class of every error raised by relay._native."
);
create_exception!(
    relay._native,
    SseEventTooLarge,
    NativeError,
    "One SSE event buffered more than max_event_bytes."
);
create_exception!(
    relay._native,
    InvalidJson,
    NativeError,
    "A JSON body failed to parse (the message gives line, column and byte offset) or has the wrong shape."
);
create_exception!(
    relay._native,
    InvalidStreamEvent,
    NativeError,
    "An event of a stream is not valid UTF-8 or not JSON (the message says which event and what)."
);
create_exception!(
    relay._native,
    UnknownEncoding,
    NativeError,
    "The tokenizer encoding name is not supported."
);

// ---------------------------------------------------------------------------
// GIL policy — the one place that decides when to release the GIL.
// ---------------------------------------------------------------------------

/// Inputs of at least this many bytes are processed with the GIL released.
/// Below it, releasing and re-taking the GIL (a few hundred ns, plus a
/// possible wait behind other threads) costs more than the work itself.
pub(crate) const DETACH_THRESHOLD: usize = 8 * 1024;

fn should_detach(input_len: usize) -> bool {
    input_len >= DETACH_THRESHOLD
}

/// Run `f` with the GIL released if the input is large (see above).
pub(crate) fn maybe_detached<T, F>(py: Python<'_>, input_len: usize, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    if should_detach(input_len) {
        py.detach(f)
    } else {
        f()
    }
}

/// Run tokenizer code, turning a panic inside the tokenizer crate (it
/// unwraps regex-engine errors) into NativeError instead of PanicException,
/// which is a BaseException that generic `except Exception` handlers miss.
fn no_panic<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(NativeError::new_err(
            "the tokenizer failed on this input (see stderr for the panic message)",
        ))
    })
}

fn json_err(e: JsonError) -> PyErr {
    InvalidJson::new_err(e.message)
}

fn gcra_err(e: g::GcraError) -> PyErr {
    NativeError::new_err(e.0)
}

// ---------------------------------------------------------------------------
// SSE
// ---------------------------------------------------------------------------

/// One dispatched server-sent event.
#[pyclass(frozen, module = "relay._native")]
pub struct SseEvent {
    #[pyo3(get)]
    event: Option<Py<PyString>>,
    #[pyo3(get)]
    data: Py<PyBytes>,
    #[pyo3(get)]
    id: Option<Py<PyString>>,
    #[pyo3(get)]
    retry: Option<u64>,
}

fn opt_str<'py>(py: Python<'py>, s: &Option<Py<PyString>>) -> Bound<'py, PyAny> {
    match s {
        Some(s) => s.bind(py).clone().into_any(),
        None => py.None().into_bound(py),
    }
}

impl SseEvent {
    fn from_ref(py: Python<'_>, e: sse::EventRef<'_>) -> Self {
        let s = |b: &[u8]| PyString::new(py, &String::from_utf8_lossy(b)).unbind();
        SseEvent {
            event: e.event.map(s),
            data: PyBytes::new(py, e.data).unbind(),
            id: e.id.map(s),
            retry: e.retry,
        }
    }

    fn from_owned(py: Python<'_>, e: sse::Event) -> Self {
        SseEvent {
            event: e.event.map(|s| PyString::new(py, &s).unbind()),
            data: PyBytes::new(py, &e.data).unbind(),
            id: e.id.map(|s| PyString::new(py, &s).unbind()),
            retry: e.retry,
        }
    }

    fn as_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                opt_str(py, &self.event),
                self.data.bind(py).clone().into_any(),
                opt_str(py, &self.id),
                self.retry.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

#[pymethods]
impl SseEvent {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let r = |o: Bound<'_, PyAny>| -> PyResult<String> { Ok(o.repr()?.to_str()?.to_owned()) };
        Ok(format!(
            "SseEvent(event={}, data={}, id={}, retry={})",
            r(opt_str(py, &self.event))?,
            r(self.data.bind(py).clone().into_any())?,
            r(opt_str(py, &self.id))?,
            r(self.retry.into_pyobject(py)?.into_any())?,
        ))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match other.cast::<SseEvent>() {
            Ok(o) => {
                let eq = self.as_tuple(py)?.eq(o.get().as_tuple(py)?)?;
                Ok(eq.into_pyobject(py)?.to_owned().into_any().unbind())
            }
            Err(_) => Ok(py.NotImplemented()),
        }
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.as_tuple(py)?.hash()
    }
}

/// Incremental WHATWG event-stream decoder.
#[pyclass(module = "relay._native")]
pub struct SseDecoder {
    inner: sse::SseDecoder,
}

#[pymethods]
impl SseDecoder {
    #[new]
    // A literal default so that __text_signature__ shows it (for stubtest).
    #[pyo3(signature = (max_event_bytes = 1048576))]
    fn new(max_event_bytes: usize) -> Self {
        SseDecoder {
            inner: sse::SseDecoder::new(max_event_bytes),
        }
    }

    /// Feed the next chunk; returns the events it completed, in order.
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let too_large = |e: sse::TooLarge| SseEventTooLarge::new_err(e.to_string());
        if should_detach(chunk.len()) {
            // Decode without the GIL into owned events, then build objects.
            let inner = &mut self.inner;
            let events = py.detach(|| inner.feed_collect(chunk)).map_err(too_large)?;
            let objs = events
                .into_iter()
                .map(|e| Py::new(py, SseEvent::from_owned(py, e)))
                .collect::<PyResult<Vec<_>>>()?;
            return PyList::new(py, objs);
        }
        let mut objs: Vec<Py<SseEvent>> = Vec::new();
        self.inner
            .feed(chunk, |e| {
                objs.push(Py::new(py, SseEvent::from_ref(py, e))?);
                Ok(())
            })
            .map_err(|e| match e {
                sse::FeedError::TooLarge(t) => too_large(t),
                sse::FeedError::Sink(err) => err,
            })?;
        PyList::new(py, objs)
    }

    /// End of stream: returns True if an incomplete event was discarded.
    fn close(&mut self) -> bool {
        self.inner.close()
    }

    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }
}

const _: () = assert!(sse::DEFAULT_MAX_EVENT_BYTES == 1048576);

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// Counts tokens with an embedded tiktoken encoding.
#[pyclass(frozen, module = "relay._native")]
pub struct TokenCounter {
    enc: Encoding,
}

#[pymethods]
impl TokenCounter {
    #[new]
    fn new(py: Python<'_>, encoding: &str) -> PyResult<Self> {
        let enc = Encoding::from_name(encoding).ok_or_else(|| {
            UnknownEncoding::new_err(format!(
                "unknown encoding {encoding:?}: expected \"o200k_base\" or \"cl100k_base\""
            ))
        })?;
        // Build the shared BPE now (once per process), without the GIL.
        if !enc.is_loaded() {
            py.detach(|| {
                enc.bpe();
            });
        }
        Ok(TokenCounter { enc })
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        self.enc.name()
    }

    fn count(&self, py: Python<'_>, text: &str) -> PyResult<usize> {
        let enc = self.enc;
        no_panic(|| Ok(maybe_detached(py, text.len(), || enc.count(text))))
    }

    fn count_chat(&self, py: Python<'_>, body: &[u8]) -> PyResult<usize> {
        let enc = self.enc;
        no_panic(|| maybe_detached(py, body.len(), || enc.count_chat(body)).map_err(json_err))
    }

    fn count_messages(&self, py: Python<'_>, body: &[u8]) -> PyResult<usize> {
        let enc = self.enc;
        no_panic(|| maybe_detached(py, body.len(), || enc.count_messages(body)).map_err(json_err))
    }

    fn __repr__(&self) -> String {
        format!("TokenCounter('{}')", self.enc.name())
    }
}

// ---------------------------------------------------------------------------
// Editing request JSON
// ---------------------------------------------------------------------------

#[pyfunction]
fn top_level_value<'py>(
    py: Python<'py>,
    body: &[u8],
    key: &str,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let value = maybe_detached(py, body.len(), || json_edit::top_level_value(body, key));
    Ok(value.map_err(json_err)?.map(|v| PyBytes::new(py, v)))
}

#[pyfunction]
fn splice_top_level<'py>(
    py: Python<'py>,
    body: &[u8],
    edits: Vec<(PyBackedStr, PyBackedBytes)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let edits: Vec<(&str, &[u8])> = edits.iter().map(|(k, v)| (&**k, &**v)).collect();
    let out = maybe_detached(py, body.len(), || json_edit::splice_top_level(body, &edits));
    Ok(PyBytes::new(py, &out.map_err(json_err)?))
}

#[pyfunction]
fn encoding_for_model(model: &str) -> &'static str {
    tokens::encoding_for_model(model).name()
}

// ---------------------------------------------------------------------------
// Cache keys
// ---------------------------------------------------------------------------

#[pyfunction]
#[pyo3(
    signature = (body, *, ignore = Vec::new(), salt = b"".as_slice()),
    text_signature = "(body, *, ignore=(), salt=b'')"
)]
fn cache_key(py: Python<'_>, body: &[u8], ignore: Vec<String>, salt: &[u8]) -> PyResult<String> {
    maybe_detached(py, body.len(), || ck::cache_key(body, &ignore, salt)).map_err(json_err)
}

// ---------------------------------------------------------------------------
// GCRA
// ---------------------------------------------------------------------------

/// Result of one GCRA step.
#[pyclass(frozen, get_all, module = "relay._native")]
pub struct GcraDecision {
    allowed: bool,
    tat: f64,
    retry_after: f64,
    reset_after: f64,
    remaining: u64,
}

impl From<g::Decision> for GcraDecision {
    fn from(d: g::Decision) -> Self {
        GcraDecision {
            allowed: d.allowed,
            tat: d.tat,
            retry_after: d.retry_after,
            reset_after: d.reset_after,
            remaining: d.remaining,
        }
    }
}

#[pymethods]
impl GcraDecision {
    fn __repr__(&self) -> String {
        let f = |x: f64| {
            if x.is_infinite() {
                "inf".to_owned()
            } else {
                format!("{x:?}")
            }
        };
        format!(
            "GcraDecision(allowed={}, tat={}, retry_after={}, reset_after={}, remaining={})",
            if self.allowed { "True" } else { "False" },
            f(self.tat),
            f(self.retry_after),
            f(self.reset_after),
            self.remaining
        )
    }
}

#[pyfunction]
#[pyo3(signature = (tat, now, emission_interval, burst, cost = 1.0))]
fn gcra(
    tat: f64,
    now: f64,
    emission_interval: f64,
    burst: f64,
    cost: f64,
) -> PyResult<GcraDecision> {
    g::gcra(tat, now, emission_interval, burst, cost)
        .map(Into::into)
        .map_err(gcra_err)
}

/// In-process keyed GCRA limiter (thread-safe).
#[pyclass(frozen, module = "relay._native")]
pub struct LocalLimiter {
    inner: lim::LocalLimiter,
}

#[pymethods]
impl LocalLimiter {
    #[new]
    #[pyo3(signature = (*, max_keys = 100000))]
    fn new(max_keys: i64) -> PyResult<Self> {
        let max_keys = usize::try_from(max_keys).unwrap_or(0);
        Ok(LocalLimiter {
            inner: lim::LocalLimiter::with_max_keys(max_keys).map_err(gcra_err)?,
        })
    }

    #[getter]
    fn max_keys(&self) -> usize {
        self.inner.max_keys()
    }

    // The GIL is always released around the lock: a thread waiting for the
    // mutex must not hold the GIL, or it would stall every Python thread.
    #[pyo3(signature = (key, rate, period, burst, cost = 1.0, now = None))]
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        py: Python<'_>,
        key: &str,
        rate: f64,
        period: f64,
        burst: f64,
        cost: f64,
        now: Option<f64>,
    ) -> PyResult<GcraDecision> {
        py.detach(|| self.inner.check(key, rate, period, burst, cost, now))
            .map(Into::into)
            .map_err(gcra_err)
    }

    #[pyo3(signature = (key, rate, period, cost, now = None))]
    fn refund(
        &self,
        py: Python<'_>,
        key: &str,
        rate: f64,
        period: f64,
        cost: f64,
        now: Option<f64>,
    ) -> PyResult<()> {
        py.detach(|| self.inner.refund(key, rate, period, cost, now))
            .map_err(gcra_err)
    }

    fn reset(&self, py: Python<'_>, key: &str) {
        py.detach(|| self.inner.reset(key))
    }

    #[pyo3(signature = (now = None))]
    fn purge(&self, py: Python<'_>, now: Option<f64>) -> usize {
        py.detach(|| self.inner.purge(now))
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        py.detach(|| self.inner.len())
    }
}

/// The monotonic clock LocalLimiter uses (same as time.monotonic() on Unix).
#[pyfunction]
fn monotonic() -> f64 {
    lim::monotonic()
}

// ---------------------------------------------------------------------------
// Module
// ---------------------------------------------------------------------------

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NativeError", py.get_type::<NativeError>())?;
    m.add("SseEventTooLarge", py.get_type::<SseEventTooLarge>())?;
    m.add("InvalidJson", py.get_type::<InvalidJson>())?;
    m.add("InvalidStreamEvent", py.get_type::<InvalidStreamEvent>())?;
    m.add("UnknownEncoding", py.get_type::<UnknownEncoding>())?;
    // Set on instances raised by OpenAIStreamScanner.feed.
    py.get_type::<SseEventTooLarge>()
        .setattr("scan", py.None())?;
    py.get_type::<InvalidStreamEvent>()
        .setattr("scan", py.None())?;
    m.add_class::<SseEvent>()?;
    m.add_class::<SseDecoder>()?;
    m.add_class::<TokenCounter>()?;
    m.add_function(wrap_pyfunction!(encoding_for_model, m)?)?;
    m.add_function(wrap_pyfunction!(cache_key, m)?)?;
    m.add_function(wrap_pyfunction!(top_level_value, m)?)?;
    m.add_function(wrap_pyfunction!(splice_top_level, m)?)?;
    m.add_class::<GcraDecision>()?;
    m.add_function(wrap_pyfunction!(gcra, m)?)?;
    m.add_class::<LocalLimiter>()?;
    m.add_function(wrap_pyfunction!(monotonic, m)?)?;
    Ok(())
}
