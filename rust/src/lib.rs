//! `relay._native`: byte-level hot paths of the Relay gateway.
//!
//! The pure core (no Python types, unit-tested with `cargo test`):
//! [`sse`], [`openai_chunk`] (its two readings: `openai_chunk_fast` and
//! `openai_chunk_serde`) and
//! [`openai_stream`] (the stream relay's per-read work), [`chunked`]
//! (HTTP/1.1 chunked bodies of the upstream client), [`tokens`],
//! [`cache_key`], [`json_edit`], [`gcra`], [`limiter`], [`eventstream`] (AWS
//! event-stream framing), [`redact`] (PII detectors in [`redact_rules`]) and
//! [`restore`] (placeholders back in answers and streams), the shared
//! [`json`] helpers, and the limiter shared by processes: [`shm`] (POSIX
//! shared memory), [`shared_table`] (its table of TAT words), [`siphash`] and
//! [`shared_limiter`] (GCRA over that table). The
//! binding layer is `py` (and `py_stream` for the stream scanner,
//! `py_chunked` for chunked bodies, `py_eventstream` for the AWS event-stream
//! decoder, `py_shared` for the shared limiter, `py_redact` for redaction and
//! restoration); its GIL policy (release the GIL for inputs of 8 KiB or more)
//! is `py::maybe_detached`.

pub mod cache_key;
pub mod chunked;
pub mod eventstream;
pub mod gcra;
pub mod json;
pub mod json_edit;
pub mod limiter;
pub mod openai_chunk;
mod openai_chunk_fast;
mod openai_chunk_serde;
pub mod openai_stream;
pub mod redact;
pub mod redact_rules;
pub mod restore;
mod restore_scan;
pub mod shared_limiter;
pub mod shared_table;
pub mod shm;
pub mod siphash;
pub mod sse;
pub mod tokens;

mod py;
mod py_chunked;
mod py_eventstream;
mod py_redact;
mod py_shared;
mod py_stream;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)?;
    py_chunked::register(m)?;
    py_stream::register(m)?;
    py_eventstream::register(m)?;
    py_redact::register(m)?;
    py_shared::register(m)
}
