//! Bindings of the chunked transfer decoder (`chunked`).

use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::chunked as ch;
use crate::py::NativeError;

create_exception!(
    relay._native,
    InvalidChunkedBody,
    NativeError,
    "A chunked HTTP body is malformed (the message says how)."
);

/// Incremental decoder of one HTTP/1.1 chunked body.
#[pyclass(module = "relay._native")]
pub struct ChunkedDecoder {
    inner: ch::Dechunker,
    out: Vec<u8>,
    trailing: usize,
}

#[pymethods]
impl ChunkedDecoder {
    #[new]
    fn new() -> Self {
        ChunkedDecoder {
            inner: ch::Dechunker::new(),
            out: Vec::new(),
            trailing: 0,
        }
    }

    /// The payload of the next network read (``b""`` when it held only framing).
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        self.out.clear();
        let taken = self
            .inner
            .feed(data, &mut self.out)
            .map_err(|e| InvalidChunkedBody::new_err(e.to_string()))?;
        self.trailing = data.len() - taken;
        let out = PyBytes::new(py, &self.out);
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new(); // a large read's buffer is not kept for the stream's life
        }
        Ok(out)
    }

    /// The body's end was read.
    #[getter]
    fn done(&self) -> bool {
        self.inner.done()
    }

    /// Bytes of the last read that came after the body's end.
    #[getter]
    fn trailing(&self) -> usize {
        self.trailing
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InvalidChunkedBody", py.get_type::<InvalidChunkedBody>())?;
    m.add_class::<ChunkedDecoder>()
}
