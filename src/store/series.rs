//! Production series of SLIs: the layout of each metric's windows and the windows themselves.

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::{sli_series, sli_windows};
use super::upsert::{WriteOutcome, MAX_BINDS_PER_STATEMENT};
use super::{with_backend, DbConnection};
use crate::domain::series::{SeriesKind, SeriesLayout, SeriesWindow, WindowData};
use crate::domain::upload::OnConflict;
use crate::error::{AppError, AppResult, Issue};

fn corrupt(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("stored {what} cannot be read: {e}"))
}

/// The layout of a metric's series, if it has one.
pub fn layout(conn: &mut DbConnection, metric_id: i64) -> AppResult<Option<SeriesLayout>> {
    let row: Option<(String, i32, Option<String>)> = sli_series::table
        .find(metric_id)
        .select((sli_series::kind, sli_series::seconds, sli_series::bounds))
        .first(conn)
        .optional()?;
    row.map(|(kind, seconds, bounds)| {
        Ok(SeriesLayout {
            kind: SeriesKind::try_from(kind).map_err(|e| corrupt("series kind", e))?,
            seconds: u32::try_from(seconds).map_err(|e| corrupt("series length", e))?,
            bounds: match bounds {
                Some(b) => serde_json::from_str(&b).map_err(|e| corrupt("series bounds", e))?,
                None => vec![],
            },
        })
    })
    .transpose()
}

/// Stores the layout of a metric's series, or checks it against the stored one (inside the
/// upload's transaction, so two first uploads cannot fix two layouts).
pub fn ensure_layout(conn: &mut DbConnection, metric_id: i64, l: &SeriesLayout) -> AppResult<()> {
    match layout(conn, metric_id)? {
        Some(stored) if stored == *l => Ok(()),
        Some(stored) => Err(AppError::Conflict(format!(
            "the metric's series changed layout while this upload was read ({} windows of {} s); retry",
            stored.kind, stored.seconds
        ))),
        None => {
            let bounds = (l.kind == SeriesKind::Histogram)
                .then(|| serde_json::to_string(&l.bounds))
                .transpose()
                .map_err(|e| AppError::Internal(e.into()))?;
            diesel::insert_into(sli_series::table)
                .values((
                    sli_series::metric_id.eq(metric_id),
                    sli_series::kind.eq(l.kind.as_str()),
                    sli_series::seconds.eq(l.seconds as i32),
                    sli_series::bounds.eq(bounds),
                ))
                .execute(conn)?;
            Ok(())
        }
    }
}

#[derive(Insertable, Queryable, Clone, PartialEq)]
#[diesel(table_name = sli_windows)]
#[diesel(treat_none_as_default_value = false)]
struct WindowRow {
    metric_id: i64,
    start_at: i64,
    total: f64,
    good: Option<f64>,
    value_sum: Option<f64>,
    counts: Option<Vec<u8>>,
}

fn encode(cumulative: &[f64]) -> Vec<u8> {
    cumulative.iter().flat_map(|c| c.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            f64::from_le_bytes(b)
        })
        .collect()
}

impl WindowRow {
    fn new(metric_id: i64, w: &SeriesWindow) -> WindowRow {
        match &w.data {
            WindowData::Histogram {
                count,
                sum,
                cumulative,
            } => WindowRow {
                metric_id,
                start_at: w.start,
                total: *count,
                good: None,
                value_sum: *sum,
                counts: Some(encode(cumulative)),
            },
            WindowData::Events { good, total } => WindowRow {
                metric_id,
                start_at: w.start,
                total: *total,
                good: Some(*good),
                value_sum: None,
                counts: None,
            },
        }
    }

    fn window(self) -> SeriesWindow {
        let data = match (self.counts, self.good) {
            (Some(c), _) => WindowData::Histogram {
                count: self.total,
                sum: self.value_sum,
                cumulative: decode(&c),
            },
            (None, g) => WindowData::Events {
                good: g.unwrap_or(0.0),
                total: self.total,
            },
        };
        SeriesWindow {
            row: 0,
            start: self.start_at,
            data,
        }
    }
}

const ROWS_PER_STATEMENT: usize = MAX_BINDS_PER_STATEMENT / 6;

/// Writes windows inside the caller's transaction: identical windows already stored are
/// duplicates; a window whose stored counts differ is a conflict, or overwritten with `Replace`.
pub fn write(
    conn: &mut DbConnection,
    metric_id: i64,
    windows: &[SeriesWindow],
    on_conflict: OnConflict,
) -> AppResult<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    for chunk in windows.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<WindowRow> = chunk.iter().map(|w| WindowRow::new(metric_id, w)).collect();
        let inserted = with_backend!(conn, |c| diesel::insert_into(sli_windows::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .execute(c))?;
        let differing = if inserted < chunk.len() {
            reconcile(conn, metric_id, chunk, rows, on_conflict, &mut outcome)?
        } else {
            0
        };
        outcome.book_batch(chunk.len(), inserted, differing);
    }
    Ok(outcome)
}

fn reconcile(
    conn: &mut DbConnection,
    metric_id: i64,
    chunk: &[SeriesWindow],
    rows: Vec<WindowRow>,
    on_conflict: OnConflict,
    outcome: &mut WriteOutcome,
) -> AppResult<usize> {
    let starts: Vec<i64> = chunk.iter().map(|w| w.start).collect();
    let stored: Vec<WindowRow> = sli_windows::table
        .filter(sli_windows::metric_id.eq(metric_id))
        .filter(sli_windows::start_at.eq_any(&starts))
        .load(conn)?;
    let mut stored: HashMap<i64, WindowRow> = stored.into_iter().map(|r| (r.start_at, r)).collect();
    let mut differing = 0;
    for (w, row) in chunk.iter().zip(rows) {
        let Some(old) = stored.get_mut(&w.start) else {
            continue;
        };
        if *old == row {
            continue;
        }
        differing += 1;
        match on_conflict {
            OnConflict::Reject => outcome.conflict(Issue::row(
                w.row,
                Some("start"),
                format!(
                    "the window starting {} is stored (or earlier in this upload) with other counts \
                     (use ?on_conflict=replace to overwrite)",
                    chrono::DateTime::from_timestamp(w.start, 0)
                        .map_or_else(|| w.start.to_string(), |t| t.to_rfc3339())
                ),
            )),
            OnConflict::Replace => {
                diesel::update(sli_windows::table.find((metric_id, w.start)))
                    .set((
                        sli_windows::total.eq(row.total),
                        sli_windows::good.eq(row.good),
                        sli_windows::value_sum.eq(row.value_sum),
                        sli_windows::counts.eq(&row.counts),
                    ))
                    .execute(conn)?;
                *old = row;
                outcome.replaced += 1;
            }
        }
    }
    Ok(differing)
}

/// Windows of a metric starting in `[from, to)` (Unix seconds), oldest first.
pub fn windows(
    conn: &mut DbConnection,
    metric_id: i64,
    from: i64,
    to: i64,
) -> AppResult<Vec<SeriesWindow>> {
    let rows: Vec<WindowRow> = sli_windows::table
        .filter(sli_windows::metric_id.eq(metric_id))
        .filter(sli_windows::start_at.ge(from))
        .filter(sli_windows::start_at.lt(to))
        .order(sli_windows::start_at.asc())
        .load(conn)?;
    Ok(rows.into_iter().map(WindowRow::window).collect())
}

/// Start of a metric's latest window (Unix seconds), if any.
pub fn latest_start(conn: &mut DbConnection, metric_id: i64) -> AppResult<Option<i64>> {
    Ok(sli_windows::table
        .filter(sli_windows::metric_id.eq(metric_id))
        .select(diesel::dsl::max(sli_windows::start_at))
        .first::<Option<i64>>(conn)?)
}

/// Number of stored windows of a metric.
pub fn count(conn: &mut DbConnection, metric_id: i64) -> AppResult<i64> {
    Ok(sli_windows::table
        .filter(sli_windows::metric_id.eq(metric_id))
        .count()
        .get_result(conn)?)
}
