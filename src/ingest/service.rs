//! The seam between ingestion and the store: the metric catalog, experiments, and uploads
//! written all or nothing.

use std::collections::HashMap;
use std::io::Read;

use super::read::Format;
use super::{IngestSummary, OnConflict, ValidUpload};
use crate::domain::experiment::{Experiment, ExperimentData, NewExperiment};
use crate::domain::metric::MetricKind;
use crate::domain::metric::{Metric, NewMetric};
use crate::domain::series::SeriesLayout;
use crate::domain::Page;
use crate::error::AppResult;
use crate::error::{AppError, Issue};
use crate::store::units::UnitNumbers;
use crate::store::upsert::{commit_bulk, commit_upload, WriteOutcome};
use crate::store::{assignments, experiments, metrics, observations, series, Db, DbConnection};

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

/// Names the ids of an upload's rows in conflict messages.
fn namer<'a>(pairs: impl Iterator<Item = (i64, &'a str)>) -> impl Fn(i64) -> String {
    let names: HashMap<i64, String> = pairs.map(|(id, k)| (id, k.to_owned())).collect();
    move |id| names.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

/// Writes an upload's validated rows, batch by batch, in one transaction (see `commit_upload`)
/// and logs it.
fn store(
    db: &Db,
    experiment_id: i64,
    what: &str,
    received: u64,
    write: impl FnOnce(&mut DbConnection) -> AppResult<WriteOutcome>,
) -> AppResult<IngestSummary> {
    let started = std::time::Instant::now();
    let o = commit_upload(&mut *db.conn()?, experiment_id, received, what, write)?;
    Ok(committed(what, received, started, &o))
}

/// Logs a committed bulk write and answers what it did.
fn committed(
    what: &str,
    received: u64,
    started: std::time::Instant,
    o: &WriteOutcome,
) -> IngestSummary {
    tracing::info!(
        what,
        received,
        inserted = o.inserted,
        write_ms = started.elapsed().as_millis() as u64,
        "bulk write committed"
    );
    IngestSummary {
        received,
        inserted: o.inserted,
        duplicates: o.duplicates,
        replaced: o.replaced,
    }
}

/// Reads, validates and stores an upload of assignments, all or nothing.
pub fn upload_assignments(
    db: &Db,
    experiment: &Experiment,
    input: impl Read,
    format: Format,
) -> AppResult<IngestSummary> {
    let ValidUpload { received, records } = super::assignments(experiment, input, format)?;
    let name = namer(experiment.variants.iter().map(|v| (v.id, v.key.as_str())));
    store(db, experiment.id, "assignment", received, |conn| {
        let mut outcome = WriteOutcome::default();
        let mut numbers = UnitNumbers::start(conn, experiment.id)?;
        records.drain(|batch| {
            outcome.absorb(assignments::write(
                conn,
                experiment.id,
                batch,
                &mut numbers,
                &name,
            )?);
            Ok(())
        })?;
        Ok(outcome)
    })
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
    let name = namer(experiment.metrics().map(|m| (m.id, m.key.as_str())));
    store(db, experiment.id, "observation", received, |conn| {
        let mut outcome = WriteOutcome::default();
        let mut numbers = UnitNumbers::start(conn, experiment.id)?;
        records.drain(|batch| {
            outcome.absorb(observations::write(
                conn,
                experiment.id,
                batch,
                on_conflict,
                &mut numbers,
                &name,
            )?);
            Ok(())
        })?;
        Ok(outcome)
    })
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

/// A metric with its series layout and number of stored windows.
pub fn metric_series(db: &Db, key: &str) -> AppResult<(Metric, Option<SeriesLayout>, i64)> {
    let conn = &mut *db.conn()?;
    let m = metrics::get(conn, key)?;
    let layout = series::layout(conn, m.id)?;
    let n = series::count(conn, m.id)?;
    Ok((m, layout, n))
}

/// The metric as the target of a production series: an SLI (histogram or event windows) or a
/// KPI (value windows).
pub fn series_metric(db: &Db, key: &str) -> AppResult<(Metric, Option<SeriesLayout>)> {
    let conn = &mut *db.conn()?;
    let m = metrics::get(conn, key)?;
    let layout = series::layout(conn, m.id)?;
    Ok((m, layout))
}

/// The range of a KPI window's mean by the metric's value type: a share of 0/1 values, a
/// non-negative mean count, a mean score within the scale.
fn value_range(m: &Metric) -> Option<(f64, f64)> {
    use crate::domain::metric::ValueType;
    match (m.value_type, m.scale) {
        (ValueType::Binary, _) => Some((0.0, 1.0)),
        (ValueType::Count, _) => Some((0.0, f64::INFINITY)),
        (_, Some(s)) => Some((f64::from(s.min), f64::from(s.max))),
        _ => None,
    }
}

/// A KPI's windows are values (`value`, `units`); an SLI's are histograms or events.
fn check_kind(metric: &Metric, layout: Option<&SeriesLayout>) -> AppResult<()> {
    let values = layout.map(|l| l.kind == crate::domain::series::SeriesKind::Values);
    let problem = match (metric.kind, values) {
        (MetricKind::Kpi, Some(false)) => Some((
            "value",
            "is a KPI: its windows are its mean over units ({start, seconds, value, units})",
        )),
        (MetricKind::Sli, Some(true)) => Some((
            "buckets",
            "is an SLI: its windows are histograms (count, buckets) or events (good, total)",
        )),
        _ => None,
    };
    match problem {
        Some((field, m)) => Err(AppError::invalid(
            "the windows do not fit the metric",
            vec![Issue::row(1, Some(field), format!("'{}' {m}", metric.key))],
        )),
        None => Ok(()),
    }
}

/// Reads, validates and stores windows of an SLI's production series, all or nothing.
pub fn upload_series(
    db: &Db,
    metric: &Metric,
    stored: Option<&SeriesLayout>,
    input: impl Read,
    format: Format,
    on_conflict: OnConflict,
) -> AppResult<IngestSummary> {
    let valid = super::series::windows(
        stored,
        input,
        format,
        (chrono::Utc::now(), value_range(metric)),
    )?;
    check_kind(metric, valid.layout.as_ref())?;
    let events = valid
        .layout
        .as_ref()
        .is_some_and(|l| l.kind == crate::domain::series::SeriesKind::Events);
    if events && metric.direction == crate::domain::metric::Direction::LowerIsBetter {
        return Err(AppError::invalid(
            "event rows count good events, which a lower-is-better SLI does not have",
            vec![Issue::field(
                "good",
                format!("'{}' is lower-is-better: send histogram rows of its values (count, buckets), or declare the SLI as a share of good events (higher is better)", metric.key),
            )],
        ));
    }
    store_series(db, metric, valid, on_conflict)
}

/// Stores windows pulled from the metric's Prometheus source, validated like an upload;
/// identical windows already stored are duplicates, different ones are replaced (Prometheus
/// is the source of truth for pulled windows).
pub fn store_pulled(
    db: &Db,
    metric: &Metric,
    stored: Option<&SeriesLayout>,
    rows: Vec<super::series::SeriesRow>,
) -> AppResult<IngestSummary> {
    let valid = super::series::rows(stored, rows, chrono::Utc::now())?;
    store_series(db, metric, valid, OnConflict::Replace)
}

fn store_series(
    db: &Db,
    metric: &Metric,
    valid: super::series::ValidSeries,
    on_conflict: OnConflict,
) -> AppResult<IngestSummary> {
    // A metric that declares its histogram's bounds (for its exported rules) gets windows with
    // those bounds: a threshold snapped to a declared bound is then exact here too.
    if let (Some(l), Some(declared)) = (&valid.layout, &metric.prometheus.buckets) {
        if l.kind == crate::domain::series::SeriesKind::Histogram && &l.bounds != declared {
            return Err(AppError::invalid(
                "the windows' bucket bounds are not the metric's",
                vec![Issue::row(
                    1,
                    Some("buckets"),
                    format!(
                        "the metric declares the bounds {declared:?} (prometheus.buckets); its windows must use them"
                    ),
                )],
            ));
        }
    }
    let received = valid.upload.received;
    let records = valid.upload.records;
    let started = std::time::Instant::now();
    // Series writes of one metric take turns on PostgreSQL (key space 2 of the two-key locks).
    let lock = format!("SELECT pg_advisory_xact_lock(2, {})", metric.id as i32);
    let o = commit_bulk(&mut *db.conn()?, &lock, received, "window", |conn| {
        if let Some(l) = &valid.layout {
            series::ensure_layout(conn, metric.id, l)?;
        }
        let mut outcome = WriteOutcome::default();
        let mut earliest = i64::MAX;
        records.drain(|batch| {
            earliest = batch.iter().map(|w| w.start).fold(earliest, i64::min);
            outcome.absorb(series::write(conn, metric.id, batch, on_conflict)?);
            Ok(())
        })?;
        if outcome.inserted + outcome.replaced > 0 {
            series::touch(conn, metric.id, earliest)?;
        }
        Ok(outcome)
    })?;
    Ok(committed("window", received, started, &o))
}

/// Keys of the SLIs that name a Prometheus source (for the background sync).
pub fn pullable(db: &Db) -> AppResult<Vec<String>> {
    metrics::with_source(&mut *db.conn()?)
}

/// End of the metric's latest stored window (Unix seconds), if any.
pub fn series_end(
    db: &Db,
    metric: &Metric,
    layout: Option<&SeriesLayout>,
) -> AppResult<Option<i64>> {
    let latest = series::latest_start(&mut *db.conn()?, metric.id)?;
    Ok(latest.zip(layout).map(|(s, l)| s + i64::from(l.seconds)))
}
