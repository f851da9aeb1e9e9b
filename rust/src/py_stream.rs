//! Bindings of the stream relay's per-read work (`openai_stream`): one
//! `StreamScan` object per network read, no Python object per event.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::openai_stream as os;
use crate::py::{maybe_detached, InvalidStreamEvent, SseEventTooLarge};

/// What one network read of an OpenAI-shaped SSE stream held.
#[pyclass(frozen, module = "relay._native")]
pub struct StreamScan {
    #[pyo3(get)]
    out: Py<PyBytes>,
    #[pyo3(get)]
    events: usize,
    #[pyo3(get)]
    content: bool,
    #[pyo3(get)]
    done: bool,
    #[pyo3(get)]
    usage: Option<(u64, u64, u64)>,
    #[pyo3(get)]
    error: Option<Py<PyBytes>>,
    #[pyo3(get)]
    text: Py<PyString>,
}

impl StreamScan {
    fn new(py: Python<'_>, scanner: &os::OpenAIStreamScanner, scan: os::Scan) -> Self {
        let text = scanner.text();
        let text = if text.is_empty() {
            intern!(py, "").clone().unbind()
        } else {
            PyString::new(py, text).unbind()
        };
        StreamScan {
            out: PyBytes::new(py, scanner.out()).unbind(),
            events: scan.events,
            content: scan.content,
            done: scan.done,
            usage: scan
                .usage
                .map(|u| (u.prompt_tokens, u.completion_tokens, u.cached_tokens)),
            error: scan.error.map(|e| PyBytes::new(py, &e).unbind()),
            text,
        }
    }
}

#[pymethods]
impl StreamScan {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let r = |o: Bound<'_, PyAny>| -> PyResult<String> { Ok(o.repr()?.to_str()?.to_owned()) };
        let py_bool = |b: bool| if b { "True" } else { "False" };
        Ok(format!(
            "StreamScan(out={}, events={}, content={}, done={}, usage={}, error={}, text={})",
            r(self.out.bind(py).clone().into_any())?,
            self.events,
            py_bool(self.content),
            py_bool(self.done),
            r(self.usage.into_pyobject(py)?.into_any())?,
            r(self.error.clone_ref_opt(py).into_pyobject(py)?.into_any())?,
            r(self.text.bind(py).clone().into_any())?,
        ))
    }
}

trait CloneRefOpt {
    fn clone_ref_opt(&self, py: Python<'_>) -> Self;
}

impl<T> CloneRefOpt for Option<Py<T>> {
    fn clone_ref_opt(&self, py: Python<'_>) -> Self {
        self.as_ref().map(|p| p.clone_ref(py))
    }
}

/// Scans an OpenAI-shaped SSE stream one network read at a time.
#[pyclass(module = "relay._native")]
pub struct OpenAIStreamScanner {
    inner: os::OpenAIStreamScanner,
}

#[pymethods]
impl OpenAIStreamScanner {
    #[new]
    #[pyo3(signature = (*, strip_usage = false, max_event_bytes = 4194304))]
    fn new(strip_usage: bool, max_event_bytes: usize) -> Self {
        OpenAIStreamScanner {
            inner: os::OpenAIStreamScanner::new(strip_usage, max_event_bytes),
        }
    }

    fn feed(&mut self, py: Python<'_>, chunk: &[u8]) -> PyResult<StreamScan> {
        let inner = &mut self.inner;
        match maybe_detached(py, chunk.len(), || inner.feed(chunk)) {
            Ok(scan) => Ok(StreamScan::new(py, &self.inner, scan)),
            Err(failed) => {
                let partial = StreamScan::new(py, &self.inner, failed.partial);
                let err = match failed.error {
                    os::ScanError::TooLarge(t) => SseEventTooLarge::new_err(t.to_string()),
                    e => InvalidStreamEvent::new_err(e.to_string()),
                };
                err.value(py).setattr("scan", Py::new(py, partial)?)?;
                Err(err)
            }
        }
    }

    #[getter]
    fn events(&self) -> u64 {
        self.inner.events()
    }

    fn close(&mut self) -> bool {
        self.inner.close()
    }
}

const _: () = assert!(os::DEFAULT_MAX_EVENT_BYTES == 4194304);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamScan>()?;
    m.add_class::<OpenAIStreamScanner>()?;
    Ok(())
}
