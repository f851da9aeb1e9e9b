//! GCRA cells shared by processes: the [`gcra`] math over the TAT words of a
//! [`Table`] in shared memory, each decision one call with no lock.
//!
//! A take charges several cells all or nothing: it charges them in order,
//! each with one CAS, and when one refuses it gives back the ones already
//! charged (restoring the exact TAT when nobody charged the cell since). In
//! between, for the few hundred nanoseconds of the call, another request may
//! see those cells charged and be refused: a rollback can refuse a request
//! that would have passed, never let one pass that should not. The refusal
//! reports what every cell held before the take and, like a store that
//! decides all charges together, when each refused charge would fit.
//!
//! `now` is CLOCK_MONOTONIC (one clock for every process of the host), read
//! once for the charges of a take: a charge only ever raises a TAT, and its
//! CAS fails if the TAT moved, whatever `now` it computed with. A give-back
//! lowers a TAT down to now, so it reads the clock after loading the TAT: it
//! never stores a time older than a takeover of the slot (the guarantee
//! `shared_table` relies on). Tests pass their own, which must not go back.

use std::sync::atomic::Ordering::SeqCst;

use crate::gcra::{self, Decision, GcraError};
use crate::limiter::{emission_interval, monotonic};
use crate::shared_table::{decode, encode, KeyId, Table, TableFull, MARK, NO_TAT};
use crate::shm::ShmError;

/// `cost` units against `key` at `rate` per `period` seconds, bursts of `burst`.
#[derive(Debug, Clone, Copy)]
pub struct ChargeSpec<'k> {
    pub key: &'k str,
    pub rate: f64,
    pub period: f64,
    pub burst: f64,
    pub cost: f64,
}

/// One cell after a decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellOut {
    pub remaining: u64,
    pub reset_after: f64,
}

impl From<Decision> for CellOut {
    fn from(d: Decision) -> Self {
        CellOut {
            remaining: d.remaining,
            reset_after: d.reset_after,
        }
    }
}

/// All charged (`allowed`) or none; `cells` in the order of the charges.
#[derive(Debug, Clone, PartialEq)]
pub struct TakeOutcome {
    pub allowed: bool,
    pub retry_after: f64,
    pub cells: Vec<CellOut>,
}

#[derive(Debug)]
pub enum LimitError {
    Invalid(GcraError),
    Full(TableFull),
}

impl From<GcraError> for LimitError {
    fn from(e: GcraError) -> Self {
        LimitError::Invalid(e)
    }
}

impl From<TableFull> for LimitError {
    fn from(e: TableFull) -> Self {
        LimitError::Full(e)
    }
}

struct Prepared {
    id: KeyId,
    t: f64,
    burst: f64,
    cost: f64,
}

/// One charge made (or refused): enough to report it and to undo it.
struct Charged {
    slot: Option<usize>,
    prev: u64,
    new: u64,
    before: f64,
    now: f64,
    d: Decision,
}

/// The limiter over one shared table.
pub struct SharedLimiter {
    table: Table,
}

impl SharedLimiter {
    /// Create the shared memory `name` for at least `slots` cells.
    pub fn create(name: &str, slots: usize) -> Result<Self, ShmError> {
        Table::create(name, slots).map(|table| SharedLimiter { table })
    }

    /// Map the table another process created.
    pub fn attach(name: &str) -> Result<Self, ShmError> {
        Table::attach(name).map(|table| SharedLimiter { table })
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    fn prepare(&self, c: &ChargeSpec<'_>, now: Option<f64>) -> Result<Prepared, GcraError> {
        let t = emission_interval(c.rate, c.period)?;
        // An adjustment's cost may be negative: its size is checked like a charge's.
        gcra::validate(0.0, now.unwrap_or(0.0), t, c.burst, c.cost.abs())?;
        Ok(Prepared {
            id: self.table.key_id(c.key),
            t,
            burst: c.burst,
            cost: c.cost,
        })
    }

    /// Charge every one of `charges` if all fit, else none.
    pub fn take(
        &self,
        charges: &[ChargeSpec<'_>],
        now: Option<f64>,
    ) -> Result<TakeOutcome, LimitError> {
        let prepared = charges
            .iter()
            .map(|c| match c.cost < 0.0 {
                true => Err(GcraError(format!(
                    "cost must be a finite number >= 0, got {}",
                    c.cost
                ))),
                false => self.prepare(c, now),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // One reading of the clock for every charge: a CAS keeps a charge right whatever
        // `now` it computed with (undoing one reads the clock again: see `give_back`).
        let at = Some(Self::clock(now));
        let mut done: Vec<Charged> = Vec::with_capacity(prepared.len());
        for p in &prepared {
            let c = match self.charge(p, at) {
                Ok(c) => c,
                Err(e) => {
                    self.undo_all(&prepared, &done, now);
                    return Err(e);
                }
            };
            if !c.d.allowed {
                return Ok(self.refuse(&prepared, &done, c, now, at));
            }
            done.push(c);
        }
        Ok(TakeOutcome {
            allowed: true,
            retry_after: 0.0,
            cells: done.iter().map(|c| c.d.into()).collect(),
        })
    }

    /// Settle earlier charges: a negative cost gives back (never below
    /// empty), a positive one charges over the burst. Each is its own CAS;
    /// a full table fails the call after the other adjustments are made.
    pub fn adjust(&self, charges: &[ChargeSpec<'_>], now: Option<f64>) -> Result<(), LimitError> {
        let prepared = charges
            .iter()
            .map(|c| self.prepare(c, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut full = None;
        for p in &prepared {
            if p.cost > 0.0 {
                match self.charge_over(p, now) {
                    Err(LimitError::Full(e)) => full = Some(e),
                    r => r?,
                }
            } else if p.cost < 0.0 {
                self.give_back(p, -p.cost, now);
            }
        }
        full.map_or(Ok(()), |e| Err(LimitError::Full(e)))
    }

    /// The stored TAT of `key`, if it has a cell.
    pub fn tat(&self, key: &str) -> Option<f64> {
        let id = self.table.key_id(key);
        let i = self.table.locate(id, 0.0, false).ok()??;
        decode(self.table.slot(id.bucket, i).tat.load(SeqCst))
    }

    fn clock(now: Option<f64>) -> f64 {
        now.unwrap_or_else(monotonic)
    }

    fn charge(&self, p: &Prepared, fixed: Option<f64>) -> Result<Charged, LimitError> {
        loop {
            let i = match self.table.locate(p.id, 0.0, false)? {
                Some(i) => i,
                None => {
                    // No cell is a full one: refuse or peek without taking a slot.
                    let now = Self::clock(fixed);
                    let d = gcra::gcra(now, now, p.t, p.burst, p.cost)?;
                    if !d.allowed || p.cost == 0.0 {
                        let (prev, new, slot) = (NO_TAT, NO_TAT, None);
                        let before = now;
                        return Ok(Charged {
                            slot,
                            prev,
                            new,
                            before,
                            now,
                            d,
                        });
                    }
                    match self.table.locate(p.id, now, true)? {
                        Some(i) => i,
                        None => continue,
                    }
                }
            };
            let s = self.table.slot(p.id.bucket, i);
            loop {
                let prev = s.tat.load(SeqCst);
                if prev == MARK || !s.owned_by(p.id) {
                    break; // moved to another key: look again
                }
                let now = Self::clock(fixed);
                let before = decode(prev).unwrap_or(now);
                let d = gcra::gcra(before, now, p.t, p.burst, p.cost)?;
                let new = if d.allowed && p.cost > 0.0 {
                    encode(d.tat)
                } else {
                    prev
                };
                if new == prev || s.tat.compare_exchange(prev, new, SeqCst, SeqCst).is_ok() {
                    let slot = Some(i);
                    return Ok(Charged {
                        slot,
                        prev,
                        new,
                        before,
                        now,
                        d,
                    });
                }
            }
            self.table.settle(p.id.bucket, Self::clock(fixed));
        }
    }

    fn undo_all(&self, prepared: &[Prepared], done: &[Charged], now: Option<f64>) {
        for (p, c) in prepared.iter().zip(done).rev() {
            let Some(i) = c.slot.filter(|_| c.new != c.prev) else {
                continue;
            };
            let s = self.table.slot(p.id.bucket, i);
            // Nobody charged the cell since: put back exactly what it held.
            let untouched = s.tat.load(SeqCst) == c.new && s.owned_by(p.id);
            if !(untouched
                && s.tat
                    .compare_exchange(c.new, c.prev, SeqCst, SeqCst)
                    .is_ok())
            {
                self.give_back(p, p.cost, now);
            }
        }
    }

    fn refuse(
        &self,
        prepared: &[Prepared],
        done: &[Charged],
        refused: Charged,
        fixed: Option<f64>,
        at: Option<f64>,
    ) -> TakeOutcome {
        self.undo_all(prepared, done, fixed);
        let k = done.len();
        let mut stored: Vec<(KeyId, f64, f64)> = Vec::with_capacity(prepared.len());
        // The TATs this take would have left, for the charges after the refused one.
        let mut tentative: Vec<(KeyId, f64)> = prepared
            .iter()
            .zip(done)
            .map(|(p, c)| (p.id, c.d.tat))
            .collect();
        let mut retry_after = refused.d.retry_after;
        let mut cells = Vec::with_capacity(prepared.len());
        for (j, p) in prepared.iter().enumerate() {
            let (tat, now) = match done.get(j) {
                Some(c) => (c.before, c.now),
                None if j == k => (refused.before, refused.now),
                None => self.peek(p.id, at),
            };
            // A key charged twice: what it held before the first charge.
            let (tat, now) = match stored.iter().find(|s| s.0 == p.id) {
                Some(&(_, t, n)) => (t, n),
                None => {
                    stored.push((p.id, tat, now));
                    (tat, now)
                }
            };
            let empty = CellOut {
                remaining: 0,
                reset_after: 0.0,
            };
            cells.push(gcra::gcra(tat, now, p.t, p.burst, 0.0).map_or(empty, CellOut::from));
            if j > k {
                let base = tentative
                    .iter()
                    .rev()
                    .find(|t| t.0 == p.id)
                    .map_or(tat, |t| t.1);
                match gcra::gcra(base, now, p.t, p.burst, p.cost) {
                    Ok(d) if !d.allowed => retry_after = retry_after.max(d.retry_after),
                    Ok(d) if p.cost > 0.0 => tentative.push((p.id, d.tat)),
                    _ => {}
                }
            }
        }
        TakeOutcome {
            allowed: false,
            retry_after,
            cells,
        }
    }

    /// The TAT `id` holds now (now itself when it has none) and that now.
    fn peek(&self, id: KeyId, fixed: Option<f64>) -> (f64, f64) {
        let tat = match self.table.locate(id, 0.0, false) {
            Ok(Some(i)) => decode(self.table.slot(id.bucket, i).tat.load(SeqCst)),
            _ => None,
        };
        let now = Self::clock(fixed);
        (tat.unwrap_or(now), now)
    }

    /// Lower `p`'s TAT by `amount` units, not below now (read after the TAT).
    fn give_back(&self, p: &Prepared, amount: f64, fixed: Option<f64>) {
        loop {
            let Ok(Some(i)) = self.table.locate(p.id, 0.0, false) else {
                return; // no cell: nothing to give back
            };
            let s = self.table.slot(p.id.bucket, i);
            loop {
                let prev = s.tat.load(SeqCst);
                if prev == MARK || !s.owned_by(p.id) {
                    break;
                }
                let now = Self::clock(fixed);
                match decode(prev) {
                    Some(tat) if tat > now => {
                        let new = encode((tat - amount * p.t).max(now));
                        if s.tat.compare_exchange(prev, new, SeqCst, SeqCst).is_ok() {
                            return;
                        }
                    }
                    _ => return, // already empty
                }
            }
            self.table.settle(p.id.bucket, Self::clock(fixed));
        }
    }

    fn charge_over(&self, p: &Prepared, fixed: Option<f64>) -> Result<(), LimitError> {
        loop {
            let Some(i) = self.table.locate(p.id, Self::clock(fixed), true)? else {
                continue;
            };
            let s = self.table.slot(p.id.bucket, i);
            loop {
                let prev = s.tat.load(SeqCst);
                if prev == MARK || !s.owned_by(p.id) {
                    break;
                }
                let now = Self::clock(fixed);
                let tat = decode(prev).map_or(now, |t| t.max(now)) + p.cost * p.t;
                if !tat.is_finite() {
                    return Err(GcraError(format!("the TAT overflows: {tat}")).into());
                }
                if s.tat
                    .compare_exchange(prev, encode(tat), SeqCst, SeqCst)
                    .is_ok()
                {
                    return Ok(());
                }
            }
            self.table.settle(p.id.bucket, Self::clock(fixed));
        }
    }
}

#[cfg(test)]
#[path = "shared_limiter_tests.rs"]
mod tests;
