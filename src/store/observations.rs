//! Unit-level observations: one value per (experiment, unit, metric, period).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::observations::dsl as o;
use super::units::UnitNumbers;
use super::upsert::{WriteOutcome, MAX_BINDS_PER_STATEMENT};
use super::{with_backend, DbConnection};
use crate::domain::upload::{ObservationRecord, OnConflict};
use crate::error::{AppResult, Issue};

#[derive(Insertable)]
#[diesel(table_name = super::schema::observations)]
#[diesel(treat_none_as_default_value = false)]
struct NewObservation {
    experiment_id: i64,
    unit_id: i64,
    metric_id: i64,
    period: &'static str,
    value: f64,
    observed_at: Option<NaiveDateTime>,
}

const ROWS_PER_STATEMENT: usize = MAX_BINDS_PER_STATEMENT / 6;

fn new_row(experiment_id: i64, unit_id: i64, r: &ObservationRecord) -> NewObservation {
    NewObservation {
        experiment_id,
        unit_id,
        metric_id: r.metric_id,
        period: r.period.as_str(),
        value: r.value,
        observed_at: r.observed_at,
    }
}

/// Writes observations inside the caller's transaction: on PostgreSQL a batch of new rows goes in
/// by one `COPY` (see `upsert::copy_if_new`). Identical rows already stored are counted
/// as duplicates; rows whose stored value differs are conflicts, or overwritten with `Replace`.
/// Units are numbered with `numbers`; `metric_key` names a metric id in conflict messages.
pub fn write(
    conn: &mut DbConnection,
    experiment_id: i64,
    records: &[ObservationRecord],
    on_conflict: OnConflict,
    numbers: &mut UnitNumbers,
    metric_key: &dyn Fn(i64) -> String,
) -> AppResult<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    let keys: Vec<&str> = records.iter().map(|r| r.unit_id.as_str()).collect();
    let ids = numbers.resolve(conn, &keys)?;
    let rows = |from: usize, to: usize| -> Vec<NewObservation> {
        (from..to)
            .map(|i| new_row(experiment_id, ids[i], &records[i]))
            .collect()
    };
    if let Some(n) = super::upsert::copy_if_new(conn, |c| {
        let rows = rows(0, records.len());
        diesel::copy_from(o::observations)
            .from_insertable(&rows)
            .execute(c)
    })? {
        outcome.book_batch(records.len(), n, 0);
        return Ok(outcome);
    }
    for (k, chunk) in records.chunks(ROWS_PER_STATEMENT).enumerate() {
        let first = k * ROWS_PER_STATEMENT;
        let chunk_ids = &ids[first..first + chunk.len()];
        let rows = rows(first, first + chunk.len());
        // Full chunks go in as fixed-size arrays: their statement has a static query id, so
        // diesel prepares it once and reuses it instead of re-preparing 30,000 binds per batch.
        let inserted =
            match Box::<[NewObservation; ROWS_PER_STATEMENT]>::try_from(rows.into_boxed_slice()) {
                Ok(full) => with_backend!(conn, |c| diesel::insert_into(o::observations)
                    .values(&*full)
                    .on_conflict_do_nothing()
                    .execute(c))?,
                Err(rows) => with_backend!(conn, |c| diesel::insert_into(o::observations)
                    .values(&rows[..])
                    .on_conflict_do_nothing()
                    .execute(c))?,
            };
        let differing = if inserted < chunk.len() {
            reconcile(
                conn,
                experiment_id,
                (chunk, chunk_ids),
                on_conflict,
                metric_key,
                &mut outcome,
            )?
        } else {
            0
        };
        outcome.book_batch(chunk.len(), inserted, differing);
    }
    Ok(outcome)
}

/// Compares a batch with what is stored and books or replaces the rows that differ; returns
/// how many differed.
fn reconcile(
    conn: &mut DbConnection,
    experiment_id: i64,
    (chunk, ids): (&[ObservationRecord], &[i64]),
    on_conflict: OnConflict,
    metric_key: &dyn Fn(i64) -> String,
    outcome: &mut WriteOutcome,
) -> AppResult<usize> {
    let stored: Vec<(i64, i64, String, f64)> = with_backend!(conn, |c| o::observations
        .filter(o::experiment_id.eq(experiment_id))
        .filter(o::unit_id.eq_any(ids))
        .select((o::unit_id, o::metric_id, o::period, o::value))
        .load(c))?;
    let mut stored: HashMap<(i64, i64, String), f64> = stored
        .into_iter()
        .map(|(u, m, p, v)| ((u, m, p), v))
        .collect();
    let mut differing = 0;
    for (r, &id) in chunk.iter().zip(ids) {
        let key = (id, r.metric_id, r.period.as_str().to_owned());
        let Some(old) = stored.get_mut(&key) else {
            continue;
        };
        if *old == r.value {
            continue;
        }
        differing += 1;
        match on_conflict {
            OnConflict::Reject => outcome.conflict(Issue::row(
                r.row,
                Some("value"),
                format!(
                    "unit '{}' already has {} ({}) = {} stored or earlier in this upload; got {} \
                     (use ?on_conflict=replace to overwrite)",
                    r.unit_id,
                    metric_key(r.metric_id),
                    r.period,
                    old,
                    r.value
                ),
            )),
            OnConflict::Replace => {
                diesel::update(o::observations.find((
                    experiment_id,
                    id,
                    r.metric_id,
                    r.period.as_str(),
                )))
                .set((o::value.eq(r.value), o::observed_at.eq(r.observed_at)))
                .execute(conn)?;
                *old = r.value;
                outcome.replaced += 1;
            }
        }
    }
    Ok(differing)
}

/// Number of stored observations of an experiment.
pub fn count(conn: &mut DbConnection, experiment_id: i64) -> AppResult<i64> {
    Ok(o::observations
        .filter(o::experiment_id.eq(experiment_id))
        .count()
        .get_result(conn)?)
}
