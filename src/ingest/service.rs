//! The seam between ingestion and the store: the metric catalog, experiments, and uploads
//! written all or nothing.

use std::collections::HashMap;
use std::io::Read;

use super::read::Format;
use super::{IngestSummary, OnConflict, ValidUpload};
use crate::domain::experiment::{Experiment, ExperimentData, NewExperiment};
use crate::domain::metric::{Metric, NewMetric};
use crate::domain::Page;
use crate::error::AppResult;
use crate::store::upsert::{commit_upload, WriteOutcome};
use crate::store::{assignments, experiments, metrics, observations, Db};

/// Stores a new metric; 409 if the key exists, 422 if a parent does not exist.
pub fn create_metric(db: &Db, m: &NewMetric) -> AppResult<Metric> {
    metrics::create(&mut *db.conn()?, m)
}

/// The metric with this key, or 404.
pub fn metric(db: &Db, key: &str) -> AppResult<Metric> {
    metrics::get(&mut *db.conn()?, key)
}

/// Metrics in creation order, one page (`limit + 1` items) at a time.
pub fn metrics(db: &Db, page: Page) -> AppResult<Vec<Metric>> {
    metrics::list(&mut *db.conn()?, page)
}

/// Stores a new experiment; 409 if the key exists, 422 if a metric is missing or of the wrong kind.
pub fn create_experiment(db: &Db, e: &NewExperiment) -> AppResult<Experiment> {
    experiments::create(&mut *db.conn()?, e)
}

/// The experiment with this key, or 404.
pub fn experiment(db: &Db, key: &str) -> AppResult<Experiment> {
    experiments::get(&mut *db.conn()?, key)
}

/// Experiments in creation order, one page (`limit + 1` items) at a time.
pub fn experiments(db: &Db, page: Page) -> AppResult<Vec<Experiment>> {
    experiments::list(&mut *db.conn()?, page)
}

/// The experiment with this key and what has been uploaded for it.
pub fn experiment_with_data(db: &Db, key: &str) -> AppResult<(Experiment, ExperimentData)> {
    let mut conn = db.conn()?;
    let e = experiments::get(&mut conn, key)?;
    let counts = ExperimentData {
        assigned_units: assignments::count(&mut conn, e.id)?,
        observations: observations::count(&mut conn, e.id)?,
    };
    Ok((e, counts))
}

fn summary(received: u64, o: &WriteOutcome) -> IngestSummary {
    IngestSummary {
        received,
        inserted: o.inserted,
        duplicates: o.duplicates,
        replaced: o.replaced,
    }
}

fn logged(what: &str, received: u64, started: std::time::Instant, o: &WriteOutcome) {
    tracing::info!(
        what,
        received,
        inserted = o.inserted,
        write_ms = started.elapsed().as_millis() as u64,
        "bulk write committed"
    );
}

/// Reads, validates and stores an upload of assignments, all or nothing.
pub fn upload_assignments(
    db: &Db,
    experiment: &Experiment,
    input: impl Read,
    format: Format,
) -> AppResult<IngestSummary> {
    let ValidUpload { received, records } = super::assignments(experiment, input, format)?;
    let names: HashMap<i64, &str> = experiment
        .variants
        .iter()
        .map(|v| (v.id, v.key.as_str()))
        .collect();
    let variant_key = |id: i64| {
        names
            .get(&id)
            .map_or_else(|| id.to_string(), |k| k.to_string())
    };
    let started = std::time::Instant::now();
    let outcome = commit_upload(
        &mut *db.conn()?,
        experiment.id,
        received,
        "assignment",
        |conn| assignments::write(conn, experiment.id, &records, &variant_key),
    )?;
    logged("assignment", received, started, &outcome);
    Ok(summary(received, &outcome))
}

/// Reads, validates and stores an upload of observations, all or nothing.
pub fn upload_observations(
    db: &Db,
    experiment: &Experiment,
    input: impl Read,
    format: Format,
    on_conflict: OnConflict,
) -> AppResult<IngestSummary> {
    let ValidUpload { received, records } = super::observations(experiment, input, format)?;
    let names: HashMap<i64, &str> = experiment
        .metrics()
        .map(|m| (m.id, m.key.as_str()))
        .collect();
    let metric_key = |id: i64| {
        names
            .get(&id)
            .map_or_else(|| id.to_string(), |k| k.to_string())
    };
    let started = std::time::Instant::now();
    let outcome = commit_upload(
        &mut *db.conn()?,
        experiment.id,
        received,
        "observation",
        |conn| observations::write(conn, experiment.id, &records, on_conflict, &metric_key),
    )?;
    logged("observation", received, started, &outcome);
    Ok(summary(received, &outcome))
}

/// What an upload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    Assignments,
    Observations(OnConflict),
}

/// Reads, validates and stores an upload, all or nothing.
pub fn upload(
    db: &Db,
    experiment: &Experiment,
    kind: Upload,
    input: impl Read,
    format: Format,
) -> AppResult<IngestSummary> {
    match kind {
        Upload::Assignments => upload_assignments(db, experiment, input, format),
        Upload::Observations(on_conflict) => {
            upload_observations(db, experiment, input, format, on_conflict)
        }
    }
}
