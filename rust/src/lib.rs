//! `relay._native`: byte-level hot paths of the Relay gateway.
//!
//! The pure core (no Python types, unit-tested with `cargo test`):
//! [`sse`], [`tokens`], [`cache_key`], [`gcra`], [`limiter`] and the shared
//! [`json`] error helper. The binding layer is [`py`]; its GIL policy (release
//! the GIL for inputs of 8 KiB or more) is `py::maybe_detached`.

pub mod cache_key;
pub mod gcra;
pub mod json;
pub mod json_edit;
pub mod limiter;
pub mod sse;
pub mod tokens;

mod py;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)
}
