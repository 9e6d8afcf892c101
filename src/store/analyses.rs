//! Stored analyses, and the bulk reads an analysis needs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::analyses::dsl as an;
use super::schema::{assignments, observations};
use super::{now, with_backend, DbConnection};
use crate::error::{AppError, AppResult};

/// A stored analysis: its result document as JSON text, exactly as first produced.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = super::schema::analyses)]
pub struct StoredAnalysis {
    pub id: i64,
    pub experiment_id: i64,
    pub created_at: NaiveDateTime,
    pub seed: i64,
    pub fingerprint: String,
    pub parameters: String,
    pub result: String,
}

/// Stores a new analysis: `result` renders the document once the id and creation time are known.
pub fn insert(
    conn: &mut DbConnection,
    experiment_id: i64,
    seed: u64,
    fingerprint: &str,
    parameters: &str,
    result: impl FnOnce(i64, NaiveDateTime) -> AppResult<String>,
) -> AppResult<StoredAnalysis> {
    super::transaction(conn, |conn| {
        let created_at = now();
        let values = (
            an::experiment_id.eq(experiment_id),
            an::created_at.eq(created_at),
            // Stored as the same 64 bits; read back with `as u64`.
            an::seed.eq(seed as i64),
            an::fingerprint.eq(fingerprint),
            an::parameters.eq(parameters),
            an::result.eq(""),
        );
        let id: i64 = with_backend!(conn, |c| diesel::insert_into(an::analyses)
            .values(values)
            .returning(an::id)
            .get_result(c))?;
        let text = result(id, created_at)?;
        diesel::update(an::analyses.find(id))
            .set(an::result.eq(&text))
            .execute(conn)?;
        get(conn, id)
    })
}

/// When analysis `id` was computed, or 404.
pub fn created_at(conn: &mut DbConnection, id: i64) -> AppResult<chrono::NaiveDateTime> {
    use super::schema::analyses::dsl as a;
    a::analyses
        .find(id)
        .select(a::created_at)
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("analysis", id))
}

/// The analysis with this id, or 404.
pub fn get(conn: &mut DbConnection, id: i64) -> AppResult<StoredAnalysis> {
    an::analyses
        .find(id)
        .select(StoredAnalysis::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("analysis", id))
}

/// Analyses of an experiment, newest first, each mapped by `f` as its document is read (one
/// document in memory at a time); `before` is the id of the last item of the previous page.
pub fn list<T>(
    conn: &mut DbConnection,
    experiment_id: i64,
    before: Option<i64>,
    limit: i64,
    mut f: impl FnMut(StoredAnalysis) -> AppResult<T>,
) -> AppResult<Vec<T>> {
    let mut q = an::analyses
        .filter(an::experiment_id.eq(experiment_id))
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(an::id.lt(b));
    }
    let ids: Vec<i64> = q
        .order(an::id.desc())
        .limit(limit)
        .select(an::id)
        .load(conn)?;
    ids.into_iter().map(|id| f(get(conn, id)?)).collect()
}

/// The span of the experiment's assigned unit numbers (last − first + 1) and the number
/// halfway through it (`None` when no unit is assigned): the number that splits the units into
/// two ranges for parallel reads. Uploads number an experiment's units 1, 2, ..., so the halves
/// hold about as many units each; two probes of the primary key, whatever the number of units
/// (counting them, or seeking the median one, reads half the index: 4 s each at 100M units).
pub fn unit_split(conn: &mut DbConnection, experiment_id: i64) -> AppResult<Option<(i64, i64)>> {
    let mut end = |last: bool| {
        let q = assignments::table
            .filter(assignments::experiment_id.eq(experiment_id))
            .select(assignments::unit_id)
            .limit(1);
        let q = match last {
            true => q.order(assignments::unit_id.desc()).into_boxed(),
            false => q.order(assignments::unit_id.asc()).into_boxed(),
        };
        q.first::<i64>(&mut *conn).optional()
    };
    let (first, last) = (end(false)?, end(true)?);
    Ok(first.zip(last).map(|(a, b)| {
        let span = b - a + 1;
        (span, a + span / 2)
    }))
}

/// Calls `f(unit number, variant_id)` for every assignment of the experiment whose unit number
/// is in [`from`, `to`) (`None` = unbounded): in unit order on SQLite (its primary-key order),
/// in any order on PostgreSQL.
pub fn for_each_assignment(
    conn: &mut DbConnection,
    experiment_id: i64,
    from: Option<i64>,
    to: Option<i64>,
    mut f: impl FnMut(i64, i64),
) -> AppResult<()> {
    use diesel::connection::DefaultLoadingMode;
    let (from, to) = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
    let query = assignments::table
        .filter(assignments::experiment_id.eq(experiment_id))
        .filter(assignments::unit_id.ge(from))
        .filter(assignments::unit_id.lt(to))
        .select((assignments::unit_id, assignments::variant_id));
    // SQLite's primary-key order costs nothing; on PostgreSQL an ORDER BY would sort.
    match conn {
        DbConnection::Sqlite(c) => {
            let ordered = query.order(assignments::unit_id);
            for row in ordered.load_iter::<(i64, i64), DefaultLoadingMode>(c)? {
                let (u, v) = row?;
                f(u, v);
            }
        }
        DbConnection::Postgresql(c) => {
            for row in query.load_iter::<(i64, i64), DefaultLoadingMode>(c)? {
                let (u, v) = row?;
                f(u, v);
            }
        }
    }
    Ok(())
}

pub(crate) fn missing_column() -> AppError {
    AppError::Internal(anyhow::anyhow!("a row lacks a selected column"))
}

/// Calls `f(unit number, metric_id, is_pre, value)` for every observation of the experiment
/// whose unit number is in [`from`, `to`) (`None` = unbounded), so callers can read disjoint
/// ranges in parallel. On SQLite rows come in primary-key order (by unit, then metric and
/// period), which `SumsBuilder` relies on; on PostgreSQL in any order (an `ORDER BY` there
/// costs a sort of every row, and its readers do not need one).
///
/// This is the read path of every analysis and summary, millions of rows long.
pub fn for_each_observation(
    conn: &mut DbConnection,
    experiment_id: i64,
    from: Option<i64>,
    to: Option<i64>,
    mut f: impl FnMut(i64, i64, bool, f64),
) -> AppResult<()> {
    use diesel::connection::DefaultLoadingMode;
    let (from, to) = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
    let query = observations::table
        .filter(observations::experiment_id.eq(experiment_id))
        .filter(observations::unit_id.ge(from))
        .filter(observations::unit_id.lt(to))
        .select((
            observations::unit_id,
            observations::metric_id,
            observations::period.eq("pre"),
            observations::value,
        ));
    match conn {
        // Columns read straight from SQLite's row: this loop runs once per observation.
        DbConnection::Sqlite(c) => {
            use diesel::connection::LoadConnection;
            use diesel::row::{Field, Row};
            // The primary key's order, which `SumsBuilder` needs, at no cost.
            let ordered = query.order((
                observations::unit_id,
                observations::metric_id,
                observations::period,
            ));
            for row in c.load(ordered)? {
                let row = row?;
                let (Some(u), Some(m), Some(pre), Some(v)) =
                    (row.get(0), row.get(1), row.get(2), row.get(3))
                else {
                    return Err(missing_column());
                };
                let (Some(mut u), Some(mut m), Some(mut pre), Some(mut v)) =
                    (u.value(), m.value(), pre.value(), v.value())
                else {
                    return Err(missing_column());
                };
                f(
                    u.read_long(),
                    m.read_long(),
                    pre.read_integer() != 0,
                    v.read_double(),
                );
            }
        }
        DbConnection::Postgresql(c) => {
            for row in query.load_iter::<(i64, i64, bool, f64), DefaultLoadingMode>(c)? {
                let (u, m, pre, v) = row?;
                f(u, m, pre, v);
            }
        }
    }
    Ok(())
}
