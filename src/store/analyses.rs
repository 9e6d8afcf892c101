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

/// The number of units assigned in the experiment and the unit id at position ⌊n/2⌋ in the
/// database's order (`None` when no unit is assigned): the key that splits the units into two
/// ranges of ⌊n/2⌋ and ⌈n/2⌉ for parallel reads.
pub fn unit_split(conn: &mut DbConnection, experiment_id: i64) -> AppResult<(i64, Option<String>)> {
    let n: i64 = assignments::table
        .filter(assignments::experiment_id.eq(experiment_id))
        .count()
        .get_result(conn)?;
    let middle = assignments::table
        .filter(assignments::experiment_id.eq(experiment_id))
        .order(assignments::unit_id)
        .select(assignments::unit_id)
        .offset(n / 2)
        .limit(1)
        .first::<String>(conn)
        .optional()?;
    Ok((n, middle))
}

/// Calls `f(unit_id, variant_id)` for every assignment of the experiment whose unit id is in
/// [`from`, `to`) in the database's collation (`None` = unbounded). On SQLite the unit id is
/// borrowed from the row instead of copied.
pub fn for_each_assignment(
    conn: &mut DbConnection,
    experiment_id: i64,
    from: Option<&str>,
    to: Option<&str>,
    mut f: impl FnMut(&str, i64),
) -> AppResult<()> {
    use diesel::connection::LoadConnection;
    use diesel::row::{Field, Row};

    // Boxed queries are per backend, so the query is spelled once and built in each arm.
    macro_rules! query {
        () => {{
            let mut q = assignments::table
                .filter(assignments::experiment_id.eq(experiment_id))
                .into_boxed();
            if let Some(from) = from {
                q = q.filter(assignments::unit_id.ge(from));
            }
            if let Some(to) = to {
                q = q.filter(assignments::unit_id.lt(to));
            }
            q.select((assignments::unit_id, assignments::variant_id))
        }};
    }
    match conn {
        DbConnection::Sqlite(c) => {
            for row in c.load(query!())? {
                let row = row?;
                let (Some(u), Some(v)) = (row.get(0), row.get(1)) else {
                    return Err(missing_column());
                };
                let (Some(mut u), Some(mut v)) = (u.value(), v.value()) else {
                    return Err(missing_column());
                };
                f(u.read_text(), v.read_long());
            }
        }
        DbConnection::Postgresql(c) => {
            let rows =
                query!().load_iter::<(String, i64), diesel::connection::DefaultLoadingMode>(c)?;
            for row in rows {
                let (u, v) = row?;
                f(&u, v);
            }
        }
    }
    Ok(())
}

fn missing_column() -> AppError {
    AppError::Internal(anyhow::anyhow!("a row lacks a selected column"))
}

/// Calls `f(unit_id, metric_id, is_pre, value)` for every observation of the experiment whose
/// unit id is ≥ `from` and < `to` (in the database's collation; `None` = unbounded), so callers
/// can read disjoint ranges in parallel. Rows come in primary-key order, which on SQLite is
/// bytewise by unit id; callers must not rely on that (PostgreSQL's collation may differ).
///
/// On SQLite the unit id is borrowed from the current row instead of copied: this is the read
/// path of every analysis, millions of rows long.
pub fn for_each_observation(
    conn: &mut DbConnection,
    experiment_id: i64,
    from: Option<&str>,
    to: Option<&str>,
    mut f: impl FnMut(&str, i64, bool, f64),
) -> AppResult<()> {
    use diesel::connection::LoadConnection;
    use diesel::row::{Field, Row};

    // Boxed queries are per backend, so the query is spelled once and built in each arm.
    macro_rules! query {
        () => {{
            let mut q = observations::table
                .filter(observations::experiment_id.eq(experiment_id))
                .into_boxed();
            if let Some(from) = from {
                q = q.filter(observations::unit_id.ge(from));
            }
            if let Some(to) = to {
                q = q.filter(observations::unit_id.lt(to));
            }
            q.select((
                observations::unit_id,
                observations::metric_id,
                observations::period.eq("pre"),
                observations::value,
            ))
        }};
    }
    match conn {
        DbConnection::Sqlite(c) => {
            let rows = c.load(query!())?;
            for row in rows {
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
                    u.read_text(),
                    m.read_long(),
                    pre.read_integer() != 0,
                    v.read_double(),
                );
            }
        }
        DbConnection::Postgresql(c) => {
            let rows = query!()
                .load_iter::<(String, i64, bool, f64), diesel::connection::DefaultLoadingMode>(c)?;
            for row in rows {
                let (u, m, pre, v) = row?;
                f(&u, m, pre, v);
            }
        }
    }
    Ok(())
}
