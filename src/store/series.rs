//! Production series of SLIs: the layout of each metric's windows and the windows themselves.

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::{sli_series, sli_windows};
use super::series_cache::{Lookup, Read, Revision, SeriesCache, Windows};
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

/// Largest count stored as an integer (every integer up to it is exact in an f64).
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// A histogram's cumulative counts as stored: tag 1 and the LEB128 varints of the bucket
/// counts (each cumulative count minus the previous) when every count is a whole number — a
/// few bytes per bucket, so rows stay small and a status scans fewer pages — else tag 0 and
/// the little-endian f64s.
fn encode(cumulative: &[f64]) -> Vec<u8> {
    let whole = cumulative
        .iter()
        .all(|c| c.fract() == 0.0 && (0.0..=MAX_EXACT).contains(c))
        && cumulative.windows(2).all(|w| w[0] <= w[1]);
    if !whole {
        let mut out = vec![0u8];
        out.extend(cumulative.iter().flat_map(|c| c.to_le_bytes()));
        return out;
    }
    let mut out = Vec::with_capacity(1 + 2 * cumulative.len());
    out.push(1u8);
    let mut previous = 0u64;
    for &c in cumulative {
        let c = c as u64;
        let mut v = c - previous;
        previous = c;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

fn decode(bytes: &[u8]) -> Vec<f64> {
    match bytes.split_first() {
        Some((1, rest)) => {
            let mut out = Vec::with_capacity(rest.len());
            let (mut total, mut v, mut shift) = (0u64, 0u64, 0u32);
            for &b in rest {
                if shift == 0 && b < 0x80 {
                    // One-byte varint: the common case for per-bucket counts below 128.
                    total += u64::from(b);
                    out.push(total as f64);
                    continue;
                }
                v |= u64::from(b & 0x7f) << shift.min(63);
                shift += 7;
                if b & 0x80 == 0 {
                    total += v;
                    out.push(total as f64);
                    (v, shift) = (0, 0);
                }
            }
            out
        }
        Some((_, rest)) => rest
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b)
            })
            .collect(),
        None => Vec::new(),
    }
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
            WindowData::Values { units, sum } => WindowRow {
                metric_id,
                start_at: w.start,
                total: *units,
                good: None,
                value_sum: Some(*sum),
                counts: None,
            },
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
        // Full chunks go in as fixed-size arrays: their statement has a static query id, so
        // diesel prepares it once instead of re-parsing thousands of binds per chunk.
        let (inserted, rows) =
            match Box::<[WindowRow; ROWS_PER_STATEMENT]>::try_from(rows.into_boxed_slice()) {
                Ok(full) => {
                    let n = with_backend!(conn, |c| diesel::insert_into(sli_windows::table)
                        .values(&*full)
                        .on_conflict_do_nothing()
                        .execute(c))?;
                    (n, (full as Box<[WindowRow]>).into_vec())
                }
                Err(rows) => {
                    let n = with_backend!(conn, |c| diesel::insert_into(sli_windows::table)
                        .values(&rows[..])
                        .on_conflict_do_nothing()
                        .execute(c))?;
                    (n, rows.into_vec())
                }
            };
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

/// Windows of a metric starting in `[from, to)` (Unix seconds), oldest first, without their
/// sums (no evaluation reads them). A status reads tens of thousands: on SQLite each row's
/// fields are read in place (the blob borrowed from the row), without diesel's per-row
/// deserialization.
pub fn windows(
    conn: &mut DbConnection,
    metric_id: i64,
    from: i64,
    to: i64,
) -> AppResult<Vec<SeriesWindow>> {
    windows_in_blocks(conn, metric_id, (from, to), 1)
}

/// A KPI's windows (kind `values`) starting in [from, to), oldest first, at most `limit`:
/// (start, units, sum of values).
pub fn value_windows(
    conn: &mut DbConnection,
    metric_id: i64,
    (from, to): (i64, i64),
    limit: i64,
) -> AppResult<Vec<(i64, f64, f64)>> {
    let rows: Vec<(i64, f64, Option<f64>)> = sli_windows::table
        .filter(sli_windows::metric_id.eq(metric_id))
        .filter(sli_windows::start_at.ge(from))
        .filter(sli_windows::start_at.lt(to))
        .order(sli_windows::start_at.asc())
        .limit(limit)
        .select((
            sli_windows::start_at,
            sli_windows::total,
            sli_windows::value_sum,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(s, u, v)| {
            v.map(|v| (s, u, v))
                .ok_or_else(|| corrupt("KPI window", "its value sum is null"))
        })
        .collect()
}

/// [`windows`], summed into blocks of `block` seconds (aligned to Unix time; 1 = as stored):
/// a fine series read over a long range stays within a bounded number of windows.
pub fn windows_in_blocks(
    conn: &mut DbConnection,
    metric_id: i64,
    (from, to): (i64, i64),
    block: i64,
) -> AppResult<Vec<SeriesWindow>> {
    use diesel::connection::LoadConnection;
    use diesel::row::{Field, Row};
    let query = sli_windows::table
        .filter(sli_windows::metric_id.eq(metric_id))
        .filter(sli_windows::start_at.ge(from))
        .filter(sli_windows::start_at.lt(to))
        .order(sli_windows::start_at.asc())
        .select((
            sli_windows::start_at,
            sli_windows::total,
            sli_windows::good,
            sli_windows::counts,
        ));
    let expected = (to.saturating_sub(from) / block.max(1)).clamp(0, 250_000);
    let mut out: Vec<SeriesWindow> = Vec::with_capacity(expected as usize);
    let mut push = |w: SeriesWindow| {
        let start = w.start.div_euclid(block.max(1)) * block.max(1);
        match out.last_mut() {
            Some(last) if last.start == start => last.data.add(&w.data),
            _ => out.push(SeriesWindow { start, ..w }),
        }
    };
    let window = |start, total, good: Option<f64>, counts: Option<&[u8]>| SeriesWindow {
        row: 0,
        start,
        data: match counts {
            Some(blob) => WindowData::Histogram {
                count: total,
                sum: None,
                cumulative: decode(blob),
            },
            None => WindowData::Events {
                good: good.unwrap_or(0.0),
                total,
            },
        },
    };
    match conn {
        DbConnection::Sqlite(c) => {
            for row in c.load(query)? {
                let row = row?;
                let (Some(f0), Some(f1), Some(f2), Some(f3)) =
                    (row.get(0), row.get(1), row.get(2), row.get(3))
                else {
                    return Err(corrupt("series window", "a selected column is missing"));
                };
                let (Some(mut start), Some(mut total)) = (f0.value(), f1.value()) else {
                    return Err(corrupt("series window", "start or total is null"));
                };
                let good = f2.value().map(|mut v| v.read_double());
                let mut counts = f3.value();
                push(window(
                    start.read_long(),
                    total.read_double(),
                    good,
                    counts.as_mut().map(|v| v.read_blob()),
                ));
            }
        }
        DbConnection::Postgresql(c) => {
            let rows = query.load_iter::<
                (i64, f64, Option<f64>, Option<Vec<u8>>),
                diesel::connection::DefaultLoadingMode,
            >(c)?;
            for row in rows {
                let (start, total, good, counts) = row?;
                push(window(start, total, good, counts.as_deref()));
            }
        }
    }
    Ok(out)
}

/// The revision of a metric's windows, if it has a series (see [`super::series_cache`]).
pub fn revision(conn: &mut DbConnection, metric_id: i64) -> AppResult<Option<Revision>> {
    let row: Option<(i64, Option<i64>, Option<i64>)> = sli_series::table
        .find(metric_id)
        .select((
            sli_series::revision,
            sli_series::previous_revision,
            sli_series::changed_from,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(current, previous, changed_from)| Revision {
        current,
        previous: previous.zip(changed_from),
    }))
}

/// Gives a metric's windows a new revision, recording the one before and the earliest window
/// start written (inside the transaction that wrote them).
pub fn touch(conn: &mut DbConnection, metric_id: i64, earliest: i64) -> AppResult<()> {
    diesel::update(sli_series::table.find(metric_id))
        .set((
            sli_series::previous_revision.eq(sli_series::revision.nullable()),
            sli_series::revision.eq(rand::random::<i64>()),
            sli_series::changed_from.eq(earliest),
        ))
        .execute(conn)?;
    Ok(())
}

/// [`windows_in_blocks`] through the cache of decoded windows: as stored (`block` equal to
/// the series' window length) they are kept and served again while the series' revision is
/// unchanged, and after one write only the windows from its earliest start are read again;
/// longer blocks are read from the database.
pub fn windows_cached(
    cache: &SeriesCache,
    conn: &mut DbConnection,
    layout: &SeriesLayout,
    metric_id: i64,
    (from, to): (i64, i64),
    block: i64,
) -> AppResult<Windows> {
    let Some(revision) = revision(conn, metric_id)?.filter(|_| block == i64::from(layout.seconds))
    else {
        return Ok(Windows::owned(windows_in_blocks(
            conn,
            metric_id,
            (from, to),
            block,
        )?));
    };
    let (read_from, kept) = match cache.get(metric_id, revision, from, to) {
        Lookup::Hit(w) => return Ok(w),
        Lookup::ChangedFrom(start, kept) => (start.max(from), Some(kept)),
        Lookup::Miss => (from, None),
    };
    let windows = windows_in_blocks(conn, metric_id, (read_from, to), block)?;
    let through_latest = latest_start(conn, metric_id)?.is_none_or(|l| l < to);
    let read = Read {
        from,
        to,
        through_latest,
        windows,
    };
    Ok(cache.put(metric_id, revision.current, read, kept))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_in_both_encodings() {
        for counts in [
            vec![0.0, 3.0, 200.0, 200.0, 1e6, 9_007_199_254_740_992.0],
            vec![0.5, 3.25, 200.0],
            vec![],
        ] {
            assert_eq!(decode(&encode(&counts)), counts);
        }
        // Whole counts take a few bytes each.
        assert_eq!(encode(&[1.0, 2.0, 130.0]), vec![1, 1, 1, 0x80, 1]);
    }
}
