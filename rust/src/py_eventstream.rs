//! Bindings of the AWS event-stream decoder (`eventstream`).

use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::eventstream as es;
use crate::py::{maybe_detached, NativeError};

create_exception!(
    relay._native,
    InvalidEventStream,
    NativeError,
    "An AWS event-stream frame is corrupt (CRC mismatch, impossible lengths, bad headers)."
);

/// One event-stream message: its headers and its payload.
#[pyclass(frozen, module = "relay._native")]
pub struct EventStreamMessage {
    #[pyo3(get)]
    headers: Py<PyDict>,
    #[pyo3(get)]
    payload: Py<PyBytes>,
}

impl EventStreamMessage {
    fn new(py: Python<'_>, m: es::Message) -> PyResult<Self> {
        let headers = PyDict::new(py);
        for (name, value) in m.headers {
            match value {
                es::HeaderValue::Bool(b) => headers.set_item(name, b)?,
                es::HeaderValue::Byte(v) => headers.set_item(name, v)?,
                es::HeaderValue::Short(v) => headers.set_item(name, v)?,
                es::HeaderValue::Int(v) => headers.set_item(name, v)?,
                es::HeaderValue::Long(v) | es::HeaderValue::Timestamp(v) => {
                    headers.set_item(name, v)?
                }
                es::HeaderValue::Bytes(b) => headers.set_item(name, PyBytes::new(py, &b))?,
                es::HeaderValue::Uuid(b) => headers.set_item(name, PyBytes::new(py, &b))?,
                es::HeaderValue::String(s) => headers.set_item(name, s)?,
            }
        }
        Ok(EventStreamMessage {
            headers: headers.unbind(),
            payload: PyBytes::new(py, &m.payload).unbind(),
        })
    }
}

#[pymethods]
impl EventStreamMessage {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "EventStreamMessage(headers={}, payload={})",
            self.headers.bind(py).repr()?.to_str()?,
            self.payload.bind(py).repr()?.to_str()?,
        ))
    }
}

fn messages<'py>(py: Python<'py>, ms: Vec<es::Message>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for m in ms {
        list.append(Py::new(py, EventStreamMessage::new(py, m)?)?)?;
    }
    Ok(list)
}

/// Incremental decoder of `application/vnd.amazon.eventstream` bodies.
#[pyclass(module = "relay._native")]
pub struct EventStreamDecoder {
    inner: es::Decoder,
}

#[pymethods]
impl EventStreamDecoder {
    #[new]
    #[pyo3(signature = (max_message_bytes = 16908304))]
    fn new(max_message_bytes: usize) -> Self {
        EventStreamDecoder {
            inner: es::Decoder::new(max_message_bytes),
        }
    }

    /// Feed the next network read; returns the messages it completed, in order.
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let inner = &mut self.inner;
        match maybe_detached(py, chunk.len(), || inner.feed(chunk)) {
            Ok(ms) => messages(py, ms),
            Err(failed) => {
                let err = InvalidEventStream::new_err(failed.error.to_string());
                err.value(py)
                    .setattr("messages", messages(py, failed.messages)?)?;
                Err(err)
            }
        }
    }

    /// Bytes held for a message not complete yet.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending()
    }

    /// Messages decoded so far.
    #[getter]
    fn decoded(&self) -> u64 {
        self.inner.decoded()
    }
}

const _: () = assert!(es::DEFAULT_MAX_MESSAGE_BYTES == 16908304);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InvalidEventStream", py.get_type::<InvalidEventStream>())?;
    // Set on instances raised by EventStreamDecoder.feed.
    py.get_type::<InvalidEventStream>()
        .setattr("messages", PyList::empty(py))?;
    m.add_class::<EventStreamMessage>()?;
    m.add_class::<EventStreamDecoder>()?;
    Ok(())
}
