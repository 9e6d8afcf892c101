//! The summary's seam to the store: the per-arm sums of an experiment read by the database
//! (SQL `GROUP BY` over unit ranges, or on PostgreSQL with a bootstrap a cursor over each
//! range's units) or by streaming its rows in key order (SQLite), then summarised.

use super::aggregate::AggregateSummary;
use super::aggregate_boot::BootSettings;
use super::aggregate_cells::CellsBuilder;
use super::aggregate_stream::{StreamedSums, SumsBuilder};
use super::service::{read_in_ranges, PARALLEL_LOAD_UNITS};
use crate::domain::experiment::Experiment;
use crate::error::{AppError, AppResult};
use crate::store::aggregates::{arm_sums, assigned_per_variant, ArmSums, Slot, UnitRange};
use crate::store::analyses::{for_each_assignment, for_each_observation};
use crate::store::experiments::data_version;
use crate::store::{read_snapshot, Backend, Db, DbConnection};

/// Longest a summary's aggregation query may run on PostgreSQL.
const SUMMARY_TIMEOUT_SECONDS: u32 = 300;

/// What a summary is asked for: its confidence, the missing-outcome rule, and optionally a
/// bootstrap run on counted cells (`aggregate_boot`).
#[derive(Debug, Clone, Copy)]
pub struct SummaryRequest {
    pub confidence: f64,
    pub rule: super::report::MissingOutcomes,
    /// Multiple-testing correction of the p-values (as an analysis's `correction`).
    pub correction: super::report::Correction,
    pub bootstrap: Option<BootSettings>,
    /// Adjust with each metric's pre-period values (default: when any KPI or guardrail has
    /// them).
    pub cuped: Option<bool>,
}

/// Summarises an experiment from per-arm sums (see `aggregate`): on PostgreSQL the server
/// computes them (`GROUP BY`, one snapshot); on the embedded SQLite the rows stream through
/// [`SumsBuilder`] in key order, as two unit ranges read at once (as [`load_split`] does),
/// which is faster in-process; the SQL path is its fallback. Neither keeps units' values.
/// A bootstrap counts the units' values into cells as they stream past (SQLite) or from a
/// cursor over the units in the same snapshot as the sums (PostgreSQL).
pub fn summary(db: &Db, e: &Experiment, r: SummaryRequest) -> AppResult<AggregateSummary> {
    summary_split(db, e, r, PARALLEL_LOAD_UNITS)
}

/// [`summary`], streaming two ranges from `split_from` assigned units on (tests compare).
pub fn summary_split(
    db: &Db,
    e: &Experiment,
    r: SummaryRequest,
    split_from: usize,
) -> AppResult<AggregateSummary> {
    use crate::store::aggregates::{shift_of, slot_of};
    // Sums are of values shifted by a median of observed values of each metric and period
    // (`shift_of`), so the variances computed from them keep their digits (see
    // `ArmMoments::from_shifted_sums`). The SLI's pre-period values enter no sum.
    let (sli, ids) = read_snapshot(&mut *db.conn()?, |conn| {
        pg_summary_settings(conn)?;
        let sli = (e.sli.id, shift_of(conn, e.id, e.sli.id, "post")?, 0.0);
        let ids = (e.kpis.iter().chain(&e.guardrails))
            .map(|m| slot_of(conn, e.id, m.id))
            .collect::<AppResult<Vec<Slot>>>()?;
        Ok((sli, ids))
    })?;
    let paired: Vec<i64> = e.kpis.iter().map(|m| m.id).collect();
    let cells_wanted = r.bootstrap.is_some().then_some(paired.as_slice());
    let streamed = if db.backend() == Backend::Sqlite {
        stream_sums(db, e, (sli, &ids), cells_wanted, split_from)?
    } else {
        None
    };
    let (sums, cells) = match streamed {
        Some(found) => found,
        None => sql_sums(db, e, (sli, &ids), cells_wanted, split_from)?,
    };
    let mut out = super::aggregate::summarise(e, &sums, (r.confidence, r.rule), r.cuped)?;
    super::aggregate::adjust(&mut out, r.correction);
    if let Some(b) = r.bootstrap {
        match cells {
            Some(cells) => super::aggregate_boot::attach(&mut out, e, &cells.finish(), &b, r.rule),
            None => out.not_summarised.push(super::aggregate::NotSummarised {
                metric: e.sli.key.clone(),
                reason: "no bootstrap: the rows did not stream in key order; see the full \
                         analysis"
                    .into(),
            }),
        }
    }
    Ok(out)
}

/// The per-arm sums computed by the database, from `split_from` assigned units on as two unit
/// ranges on two connections at once (see [`read_in_ranges`]; one process each on PostgreSQL,
/// [`pg_summary_settings`]). With `cells` (a bootstrap; (SLI, value) pairs of those
/// metric ids) on PostgreSQL, one cursor over each range's units feeds both the sums and the
/// cells instead, so the data is read once.
fn sql_sums(
    db: &Db,
    e: &Experiment,
    (sli, ids): (Slot, &[Slot]),
    cells: Option<&[i64]>,
    split_from: usize,
) -> AppResult<(ArmSums, Option<CellsBuilder>)> {
    let paired = cells.filter(|_| db.backend() == Backend::Postgres);
    let range = |from: Option<i64>, to: Option<i64>| {
        read_snapshot(&mut *db.conn()?, |conn| {
            let version = data_version(conn, e.id)?;
            pg_summary_settings(conn)?;
            let found = match paired {
                None => SqlSums::Sums(arm_sums(conn, e.id, sli, ids, (from, to))?),
                Some(paired) => {
                    SqlSums::Streamed(unit_cursor(conn, e, (sli, ids), paired, (from, to))?)
                }
            };
            Ok((version, found))
        })
    };
    let parts = read_in_ranges(db, e, split_from, range)?;
    let mut merged: Option<SqlSums> = None;
    for part in parts {
        merged = Some(match (merged, part) {
            (None, p) => p,
            (Some(SqlSums::Sums(a)), SqlSums::Sums(b)) => SqlSums::Sums(a.merge(b)),
            (Some(SqlSums::Streamed(a)), SqlSums::Streamed(b)) => {
                SqlSums::Streamed(merge_streamed(a, b))
            }
            _ => unreachable!("every range is read the same way"),
        });
    }
    Ok(match merged {
        Some(SqlSums::Sums(s)) => (s, None),
        Some(SqlSums::Streamed((s, cells))) => (s.into_sums(), cells),
        None => unreachable!("read_in_ranges reads at least one range"),
    })
}

/// One range's sums: from SQL, or from the units streamed by cursor (with their cells).
enum SqlSums {
    Sums(ArmSums),
    Streamed((StreamedSums, Option<CellsBuilder>)),
}

/// The plan of a summary's query on PostgreSQL, fixed: each unit range is read by one process
/// through the primary keys, in unit order, grouped by unit as it streams, merge-joined with the
/// assignments and summed per arm in a small hash table. Linear in the rows, never spilling the
/// grouping to disk, and the parallelism comes from the ranges on separate connections. Left to
/// itself the planner errs: right after a bulk upload its statistics are stale and it may join
/// every assignment with every observation by nested loops (20 minutes for 220,000 units);
/// with fresh statistics it still underestimates the units (n_distinct 685,276 for 10M) and
/// sorts or hashes every observation with spills to disk (10M units: 25–35 s instead of about
/// 11). The timeout bounds the request whatever happens.
fn pg_summary_settings(conn: &mut DbConnection) -> AppResult<()> {
    use diesel::RunQueryDsl;
    if let DbConnection::Postgresql(c) = conn {
        for setting in [
            "enable_nestloop = off",
            "enable_hashjoin = off",
            "enable_seqscan = off",
            "enable_bitmapscan = off",
            "max_parallel_workers_per_gather = 0",
        ] {
            diesel::sql_query(format!("SET LOCAL {setting}")).execute(c)?;
        }
        diesel::sql_query(format!(
            "SET LOCAL statement_timeout = '{SUMMARY_TIMEOUT_SECONDS}s'"
        ))
        .execute(c)?;
    }
    Ok(())
}

/// One range's sums and cells from its units read whole by cursor (PostgreSQL).
fn unit_cursor(
    conn: &mut DbConnection,
    e: &Experiment,
    (sli, ids): (Slot, &[Slot]),
    paired: &[i64],
    range: UnitRange,
) -> AppResult<(StreamedSums, Option<CellsBuilder>)> {
    let variants = e.variants.iter().map(|v| v.id).collect();
    let mut b = SumsBuilder::new(variants, sli, ids).with_cells(paired);
    for (variant, units) in assigned_per_variant(conn, e.id, range)? {
        b.assigned(variant, units);
    }
    let slots = b.slot_ids();
    crate::store::unit_rows::for_each_unit(conn, e.id, &slots, range, |variant, rows, values| {
        b.unit(variant, rows, values)
    })?;
    b.finish().ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "a unit row of experiment {} had an unknown variant",
            e.key
        ))
    })
}

/// The per-arm sums (and cells, when `cells` asks for them) from the rows of two unit ranges
/// streamed at once (see [`read_in_ranges`]). `None` when a range's rows were not in key
/// order (or a unit was assigned twice): then SQL computes them.
fn stream_sums(
    db: &Db,
    e: &Experiment,
    (sli, ids): (Slot, &[Slot]),
    cells: Option<&[i64]>,
    split_from: usize,
) -> AppResult<Option<(ArmSums, Option<CellsBuilder>)>> {
    let range = |from: Option<i64>, to: Option<i64>| {
        read_snapshot(&mut *db.conn()?, |conn| {
            let version = data_version(conn, e.id)?;
            let variants = e.variants.iter().map(|v| v.id).collect();
            let mut b = SumsBuilder::new(variants, sli, ids);
            if let Some(paired) = cells {
                b = b.with_cells(paired);
            }
            for_each_assignment(conn, e.id, from, to, |u, v| b.assignment(u, v))?;
            b.assignments_done();
            for_each_observation(conn, e.id, from, to, |u, m, pre, v| {
                b.observation(u, m, pre, v)
            })?;
            Ok((version, b.finish()))
        })
    };
    let parts = read_in_ranges(db, e, split_from, range)?;
    // A range whose rows were out of key order (or that assigned a unit twice) answers None.
    let parts: Option<Vec<(StreamedSums, Option<CellsBuilder>)>> = parts.into_iter().collect();
    let merged = parts.and_then(|p| p.into_iter().reduce(merge_streamed));
    Ok(merged.map(|(sums, cells)| (sums.into_sums(), cells)))
}

/// Two ranges' exact sums and cells, added.
fn merge_streamed(
    (s1, c1): (StreamedSums, Option<CellsBuilder>),
    (s2, c2): (StreamedSums, Option<CellsBuilder>),
) -> (StreamedSums, Option<CellsBuilder>) {
    let cells = match (c1, c2) {
        (Some(a), Some(b)) => Some(a.merge(b)),
        (a, b) => a.or(b),
    };
    (s1.merge(s2), cells)
}
