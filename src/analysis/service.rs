//! The seam between analyses and the store: reads an experiment's data into unit columns,
//! computes the analysis, stores it, and reads stored analyses back.

use super::data::{self, Layout, Part, PartBuilder, UnitData};
pub use super::summary_service::{summary, summary_split, KneeRequest, SummaryRequest};
use super::{compute, resolve, AnalysisRequest};
use crate::domain::document::DocumentError;
use crate::domain::experiment::Experiment;
use crate::error::{AppError, AppResult, Issue};
pub use crate::store::analyses::StoredAnalysis;
use crate::store::analyses::{self, for_each_assignment, for_each_observation, unit_split};
use crate::store::experiments::{self, data_version};
use crate::store::{read_snapshot, units, Db};

/// Attempts to store a computed analysis while the database is locked by other writers.
const STORE_ATTEMPTS: u32 = 6;

/// Reads of a changing experiment before giving up.
const READ_ATTEMPTS: u32 = 3;

/// Units at which the read is split into two parallel range reads.
pub(super) const PARALLEL_LOAD_UNITS: usize = 100_000;

/// Reads the units (text ids), the assignments and then the observations of the units
/// numbered in [`from`, `to`) in one snapshot.
fn read_range(
    db: &Db,
    experiment_id: i64,
    layout: &Layout,
    from: Option<i64>,
    to: Option<i64>,
) -> AppResult<Part> {
    read_snapshot(&mut *db.conn()?, |conn| {
        let mut part = PartBuilder::new(layout, data_version(conn, experiment_id)?);
        units::for_each_key(conn, experiment_id, from, to, |n, key| part.unit(n, key))?;
        part.units_done();
        for_each_assignment(conn, experiment_id, from, to, |unit, variant| {
            part.assignment(unit, variant)
        })?;
        part.assignments_done();
        for_each_observation(conn, experiment_id, from, to, |unit, metric, pre, value| {
            part.observation(unit, metric, pre, value)
        })?;
        let part = part.finish();
        match part.orphan_rows() {
            0 => Ok(part),
            n => Err(AppError::Internal(anyhow::anyhow!(
                "experiment {experiment_id}: {n} assignment or observation rows name a unit \
                 number without a unit"
            ))),
        }
    })
}

/// Reads the experiment's data. Large experiments are read as two unit-number ranges on two
/// connections at once; each range reader reads its assignments, then its observations.
pub fn load(db: &Db, e: &Experiment) -> AppResult<UnitData> {
    load_split(db, e, PARALLEL_LOAD_UNITS)
}

/// [`load`], split in two ranges from `split_from` assigned units on. Every choice gives the
/// same data (tests compare them on small experiments).
pub fn load_split(db: &Db, e: &Experiment, split_from: usize) -> AppResult<UnitData> {
    let layout = Layout::of(e);
    let parts = read_in_ranges(db, e, split_from, |from, to| {
        read_range(db, e.id, &layout, from, to).map(|p| (p.version(), p))
    })?;
    let mut data = data::assemble(e, parts);
    data.sli_shift = super::summary_service::sli_shift(db, e)?;
    Ok(data)
}

/// Reads an experiment's units with `read(from, to)`, which answers the data version it saw
/// and what it read: from `split_from` assigned units on as two unit-number ranges on two
/// connections at once (when the assigned unit numbers span that many), otherwise whole. The
/// two ranges are two snapshots: an upload committed between them would mix two states of the
/// data, which their data versions reveal; then the read is repeated (409 after
/// [`READ_ATTEMPTS`]).
pub(super) fn read_in_ranges<T: Send>(
    db: &Db,
    e: &Experiment,
    split_from: usize,
    read: impl Fn(Option<i64>, Option<i64>) -> AppResult<(i64, T)> + Sync,
) -> AppResult<Vec<T>> {
    for attempt in 1..=READ_ATTEMPTS {
        let split = unit_split(&mut *db.conn()?, e.id)?;
        let parts = match split {
            Some((span, middle)) if span >= split_from.max(2) as i64 => {
                let (a, b) = rayon::join(|| read(None, Some(middle)), || read(Some(middle), None));
                vec![a?, b?]
            }
            _ => vec![read(None, None)?],
        };
        if parts.iter().all(|p| p.0 == parts[0].0) {
            return Ok(parts.into_iter().map(|p| p.1).collect());
        }
        tracing::info!(experiment = %e.key, attempt, "data changed during the read; reading again");
    }
    Err(AppError::Conflict(format!(
        "the data of experiment '{}' kept changing while it was read ({READ_ATTEMPTS} \
         attempts); retry when the uploads are done",
        e.key
    )))
}

/// The experiment's first and last assignment dates, when the uploads gave them.
fn dates(db: &Db, experiment_id: i64) -> AppResult<Option<super::report::ExperimentDates>> {
    let (first, last) = crate::store::assignments::date_range(&mut *db.conn()?, experiment_id)?;
    Ok(first
        .zip(last)
        .map(|(f, l)| super::report::ExperimentDates {
            first_assignment: f.and_utc(),
            last_assignment: l.and_utc(),
            days: u32::try_from((l.date() - f.date()).num_days() + 1).unwrap_or(u32::MAX),
        }))
}

/// Where a running analysis is, for a job's progress: reading the data, computing, storing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Loading,
    Computing,
    Storing,
}

/// How large an analysis this server computes unit by unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalysisLimits {
    /// Bootstrap weights: assigned units × resamples × metrics (SLOPROOF_MAX_ANALYSIS_COST).
    pub max_cost: u64,
    /// Assigned units (SLOPROOF_MAX_ANALYSIS_UNITS): an analysis holds every unit's values,
    /// ~0.5–0.9 KB per unit at its peak.
    pub max_units: u64,
}

/// Checks that experiment `key` exists, that the parameters are valid and that the analysis
/// is within `limits`, reading no observations; answers its cost (units × resamples ×
/// metrics).
pub fn admit_request(
    db: &Db,
    key: &str,
    request: &AnalysisRequest,
    limits: AnalysisLimits,
) -> AppResult<u64> {
    let e = experiments::get(&mut *db.conn()?, key)?;
    let resamples = resolve(request, false)?.bootstrap.resamples;
    let units = crate::store::assignments::count(&mut *db.conn()?, e.id)?.max(0) as u64;
    let metrics = e.metrics().count() as u64;
    admit_units(&e.key, units, limits.max_units)?;
    admit(units, resamples, metrics, limits.max_cost)?;
    Ok(units
        .saturating_mul(metrics.max(1))
        .saturating_mul(u64::from(resamples)))
}

/// Analyses experiment `key` with the requested parameters and stores the result; returns the
/// stored JSON document.
pub fn run(
    db: &Db,
    key: &str,
    request: &AnalysisRequest,
    limits: AnalysisLimits,
) -> AppResult<StoredAnalysis> {
    run_staged(db, key, request, limits, &mut |_| Ok(()))
}

/// [`run`], telling `stage` when each stage begins; an error from it (a cancelled job) stops
/// the analysis there, before anything is stored.
pub fn run_staged(
    db: &Db,
    key: &str,
    request: &AnalysisRequest,
    limits: AnalysisLimits,
    stage: &mut dyn FnMut(Stage) -> AppResult<()>,
) -> AppResult<StoredAnalysis> {
    // Parameters are checked, and the cost admitted, before anything is read.
    admit_request(db, key, request, limits)?;
    let e = experiments::get(&mut *db.conn()?, key)?;
    stage(Stage::Loading)?;
    let started = std::time::Instant::now();
    let d = load(db, &e)?;
    let loaded_ms = started.elapsed().as_millis() as u64;
    let has_pre = d.metrics.iter().any(|m| m.units_pre() > 0);
    let p = resolve(request, has_pre)?;
    stage(Stage::Computing)?;
    // Compute before opening the write transaction; id and time are filled in afterwards.
    let mut analysis = compute(&d, &p, 0, &e.key, chrono::Utc::now())?;
    analysis.dates = dates(db, e.id)?;
    let computed_ms = started.elapsed().as_millis() as u64 - loaded_ms;
    stage(Stage::Storing)?;
    let parameters = serde_json::to_string(&p).map_err(|e| AppError::Internal(e.into()))?;
    // The result took long to compute: a database locked by a long upload (SQLite admits one
    // writer) is waited for, up to STORE_ATTEMPTS busy timeouts, rather than the work lost.
    let mut attempt = 1;
    let stored = loop {
        let stored = analyses::insert(
            &mut *db.conn()?,
            e.id,
            p.bootstrap.seed,
            &d.fingerprint,
            &parameters,
            |id, created_at| {
                analysis.id = id;
                analysis.created_at = created_at.and_utc();
                // A statistic that overflowed: refused rather than stored unreadable.
                crate::domain::document::to_stored_document(&analysis).map_err(|e| match e {
                    DocumentError::Json(e) => AppError::Internal(e.into()),
                    DocumentError::NotFinite => AppError::invalid(
                        "the data's magnitudes overflow the statistics",
                        vec![Issue::field(
                            "observations",
                            "a statistic of these values is not a finite number; check the \
                             metrics' units and values",
                        )],
                    ),
                })
            },
        );
        match stored {
            Err(AppError::Busy { .. }) if attempt < STORE_ATTEMPTS => {
                tracing::info!(experiment = %e.key, attempt, "database busy; storing the analysis again");
                attempt += 1;
            }
            other => break other?,
        }
    };
    tracing::info!(experiment = %e.key, units = d.len(), loaded_ms, computed_ms, id = stored.id, "analysis stored");
    Ok(stored)
}

/// Refuses (422) an analysis of more than `max_units` assigned units: its memory grows with
/// the units, where the summary's does not.
pub fn admit_units(key: &str, units: u64, max_units: u64) -> AppResult<()> {
    if units <= max_units {
        return Ok(());
    }
    Err(AppError::invalid(
        "the experiment is larger than this server analyses unit by unit",
        vec![Issue::field(
            "experiment",
            format!(
                "'{key}' has {units} assigned units, more than the limit of {max_units} \
                 (SLOPROOF_MAX_ANALYSIS_UNITS; an analysis holds every unit's values, about \
                 0.5–0.9 KB per unit at its peak); GET /api/v1/experiments/{key}/summary?resamples=2000 gives the \
                 sample ratio, every difference (CUPED-adjusted), the causal slopes and their bootstrap \
                 intervals in bounded memory at any size, or raise the limit"
            ),
        )],
    ))
}

/// Refuses (422) an analysis whose bootstrap would draw more than `max_cost` weights
/// (units × resamples × metrics), saying what to lower.
pub fn admit(units: u64, resamples: u32, metrics: u64, max_cost: u64) -> AppResult<()> {
    let per_resample = units.saturating_mul(metrics).max(1);
    let cost = per_resample.saturating_mul(u64::from(resamples));
    if cost <= max_cost {
        return Ok(());
    }
    let most = max_cost / per_resample;
    let advice = if most >= u64::from(*super::RESAMPLES.start()) {
        format!("lower bootstrap.resamples to at most {most}")
    } else {
        "the experiment is too large for this server even at the fewest resamples; \
         raise SLOPROOF_MAX_ANALYSIS_COST"
            .to_owned()
    };
    Err(AppError::invalid(
        "the analysis is larger than this server computes",
        vec![Issue::field(
            "bootstrap.resamples",
            format!(
                "{units} units × {resamples} resamples × {metrics} metrics = {cost} bootstrap \
                 weights, more than the limit of {max_cost} (SLOPROOF_MAX_ANALYSIS_COST); {advice}"
            ),
        )],
    ))
}

/// The stored analysis with this id, or 404.
pub fn get(db: &Db, id: i64) -> AppResult<StoredAnalysis> {
    analyses::get(&mut *db.conn()?, id)
}

/// The analysis document with this id, or 404 (500 when the stored document cannot be read).
pub fn document(db: &Db, id: i64) -> AppResult<super::report::Analysis> {
    let stored = get(db, id)?;
    serde_json::from_str(&stored.result).map_err(|e| {
        AppError::Internal(anyhow::anyhow!("stored analysis {id} cannot be read: {e}"))
    })
}

/// Summaries of experiment `key`'s analyses, newest first; `before` is the id of the last
/// item of the previous page; `limit` at most. Documents are read one at a time.
pub fn list(
    db: &Db,
    key: &str,
    before: Option<i64>,
    limit: i64,
) -> AppResult<Vec<super::report::AnalysisSummary>> {
    let mut conn = db.conn()?;
    let e = experiments::get(&mut conn, key)?;
    analyses::list(&mut conn, e.id, before, limit, |a| {
        super::report::AnalysisSummary::of_document(&a.result).map_err(|err| {
            AppError::Internal(anyhow::anyhow!(
                "stored analysis {} cannot be read: {err}",
                a.id
            ))
        })
    })
}
