//! Bindings of the shared-memory limiter (`shared_limiter`, `shared_table`).
//!
//! A decision takes microseconds and holds no lock, so the GIL is kept: no
//! thread of this process can be inside the table while the GIL is held by
//! another, and detaching would cost more than the work.

use pyo3::create_exception;
use pyo3::exceptions::{PyFileExistsError, PyFileNotFoundError, PyOSError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyTuple;

use crate::py::NativeError;
use crate::shared_limiter::{ChargeSpec, LimitError, SharedLimiter};
use crate::shm::{self, ShmError};

create_exception!(
    relay._native,
    LimitTableFull,
    NativeError,
    "Every slot a key may use in the shared limit table holds a limit that has not reset."
);

fn shm_err(e: ShmError) -> PyErr {
    let msg = e.to_string();
    match e {
        ShmError::Exists(_) => PyFileExistsError::new_err(msg),
        ShmError::NotFound(_) => PyFileNotFoundError::new_err(msg),
        ShmError::InvalidName(_) | ShmError::Incompatible(_) => NativeError::new_err(msg),
        ShmError::Os(_) => PyOSError::new_err(msg),
    }
}

fn limit_err(e: LimitError) -> PyErr {
    match e {
        LimitError::Invalid(e) => NativeError::new_err(e.0),
        LimitError::Full(e) => LimitTableFull::new_err(e.to_string()),
    }
}

/// A charge as Python passes it: an object with `key`, `cost` and `limit`
/// (`rate`, `period_s`, `burst`), as `relay.storage.limits.Charge`.
struct PyCharge {
    key: PyBackedStr,
    rate: f64,
    period: f64,
    burst: f64,
    cost: f64,
}

fn extract_charges(charges: &Bound<'_, PyAny>) -> PyResult<Vec<PyCharge>> {
    let py = charges.py();
    let mut out = Vec::with_capacity(charges.len().unwrap_or(1));
    for charge in charges.try_iter()? {
        let charge = charge?;
        let limit = charge.getattr(intern!(py, "limit"))?;
        out.push(PyCharge {
            key: charge.getattr(intern!(py, "key"))?.extract()?,
            rate: limit.getattr(intern!(py, "rate"))?.extract()?,
            period: limit.getattr(intern!(py, "period_s"))?.extract()?,
            burst: limit.getattr(intern!(py, "burst"))?.extract()?,
            cost: charge.getattr(intern!(py, "cost"))?.extract()?,
        });
    }
    Ok(out)
}

fn specs(charges: &[PyCharge]) -> Vec<ChargeSpec<'_>> {
    charges
        .iter()
        .map(|c| ChargeSpec {
            key: &c.key,
            rate: c.rate,
            period: c.period,
            burst: c.burst,
            cost: c.cost,
        })
        .collect()
}

/// GCRA cells in POSIX shared memory, shared by every process that maps it.
#[pyclass(frozen, module = "relay._native")]
pub struct SharedLimitTable {
    inner: SharedLimiter,
    name: String,
}

#[pymethods]
impl SharedLimitTable {
    #[staticmethod]
    fn create(name: &str, slots: i64) -> PyResult<Self> {
        let slots = usize::try_from(slots).unwrap_or(0);
        Ok(SharedLimitTable {
            inner: SharedLimiter::create(name, slots).map_err(shm_err)?,
            name: name.to_owned(),
        })
    }

    #[staticmethod]
    fn attach(name: &str) -> PyResult<Self> {
        Ok(SharedLimitTable {
            inner: SharedLimiter::attach(name).map_err(shm_err)?,
            name: name.to_owned(),
        })
    }

    #[staticmethod]
    fn unlink(name: &str) -> PyResult<bool> {
        shm::unlink(name).map_err(shm_err)
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn slots(&self) -> usize {
        self.inner.table().slots()
    }

    #[getter]
    fn evictions(&self) -> u64 {
        self.inner.table().counters().0
    }

    #[getter]
    fn full_refusals(&self) -> u64 {
        self.inner.table().counters().1
    }

    /// The decision is made (every CAS done) before `cell` and `decision`
    /// build its answer: no Python runs while cells are read and charged.
    #[pyo3(signature = (charges, cell, decision, now = None))]
    fn take<'py>(
        &self,
        charges: &Bound<'py, PyAny>,
        cell: &Bound<'py, PyAny>,
        decision: &Bound<'py, PyAny>,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let charges = extract_charges(charges)?;
        let out = self.inner.take(&specs(&charges), now).map_err(limit_err)?;
        let cells = out
            .cells
            .iter()
            .map(|c| cell.call1((c.remaining as f64, c.reset_after)))
            .collect::<PyResult<Vec<_>>>()?;
        let cells = PyTuple::new(cell.py(), cells)?;
        decision.call1((out.allowed, cells, out.retry_after))
    }

    #[pyo3(signature = (charges, now = None))]
    fn adjust(&self, charges: &Bound<'_, PyAny>, now: Option<f64>) -> PyResult<()> {
        let charges = extract_charges(charges)?;
        self.inner.adjust(&specs(&charges), now).map_err(limit_err)
    }

    fn tat(&self, key: &str) -> Option<f64> {
        self.inner.tat(key)
    }

    fn __len__(&self) -> usize {
        self.inner.table().used()
    }

    fn __repr__(&self) -> String {
        format!("SharedLimitTable({:?}, slots={})", self.name, self.slots())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LimitTableFull", py.get_type::<LimitTableFull>())?;
    m.add_class::<SharedLimitTable>()
}
