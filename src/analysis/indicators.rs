//! The seam of leading indicators (`analysis::leading`): the target SLI and its candidates (the
//! SLIs under it in the metric hierarchy, or those asked for), read over one range onto one
//! grid of windows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::history::window_value;
use super::leading::{analyse, duration_text, GridSeries, LeadStatus, LeadingIndicator};
use super::observational::SliStatistic;
use crate::domain::metric::{Metric, MetricKind};
use crate::domain::series::{SeriesKind, SeriesLayout};
use crate::error::{AppError, AppResult, Issue};
use crate::store::{metrics, series, Db, DbConnection};

pub use super::leading::{MAX_LEAD_WINDOWS, MIN_CHANGES};

/// Most candidates compared in one request.
pub const MAX_CANDIDATES: usize = 20;
/// Most windows of the common grid one request reads per series (about 35 days of minutes).
pub const MAX_GRID_WINDOWS: i64 = 50_000;
/// Default range: the 7 days before the target's latest window.
const DEFAULT_DAYS: i64 = 7;

/// What to look for.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeadingQuery {
    /// Longest lead looked for, e.g. `60m`, `2h`, `90s`: 1 to 120 windows of the common grid.
    #[param(example = "60m", max_length = 40)]
    pub max_lag: String,
    /// Start of the range (RFC 3339; default 7 days before `to`).
    pub from: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339; default the end of the target's latest window); at most
    /// 50,000 windows of the grid after `from`.
    pub to: Option<DateTime<Utc>>,
    /// The target's per-window value (default `p95` for a histogram series, `good_share` for
    /// events). Candidates use the same percentile (p95 when the target is a share) or their
    /// good share.
    pub statistic: Option<SliStatistic>,
    /// Comma-separated SLI keys to compare (default: every SLI under the target in the metric
    /// hierarchy, at any depth); at most 20.
    #[param(max_length = 2000)]
    pub candidates: Option<String>,
    /// Family-wise significance level across candidates, in (0, 0.5] (default 0.05).
    #[param(exclusive_minimum = 0.0, maximum = 0.5)]
    pub alpha: Option<f64>,
}

/// Which upstream SLIs move before the target, and by how much time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeadingIndicators {
    pub metric: String,
    pub statistic: SliStatistic,
    /// The common grid (the longest window length of the series involved).
    pub window_seconds: i64,
    pub max_lag_seconds: i64,
    pub max_lag_windows: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub alpha: f64,
    /// By corrected p-value, smallest first; candidates without enough data last.
    pub indicators: Vec<LeadingIndicator>,
    pub summary: String,
}

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::invalid(
        "leading indicators cannot be computed",
        vec![Issue::field(field, message)],
    )
}

/// Seconds of a duration like `60m` or `1h 30m` (whole seconds).
fn parse_lag(text: &str) -> AppResult<i64> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        invalid(
            "max_lag",
            format!("'{text}' is not a duration like 60m, 2h or 90s: {e}"),
        )
    })?;
    if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 10 * 86_400 {
        return Err(invalid(
            "max_lag",
            "must be whole seconds, at least 1 s and at most 10 days",
        ));
    }
    Ok(d.as_secs() as i64)
}

/// The per-window statistic of a candidate: the target's percentile for a histogram (p95 when
/// the target is a share), the good share of events; None for other series.
fn candidate_statistic(target: SliStatistic, layout: &SeriesLayout) -> Option<SliStatistic> {
    match layout.kind {
        SeriesKind::Histogram if target == SliStatistic::GoodShare => Some(SliStatistic::P95),
        SeriesKind::Histogram => Some(target),
        SeriesKind::Events => Some(SliStatistic::GoodShare),
        SeriesKind::Values => None,
    }
}

fn target_statistic(q: &LeadingQuery, layout: &SeriesLayout) -> AppResult<SliStatistic> {
    let default = match layout.kind {
        SeriesKind::Events => SliStatistic::GoodShare,
        _ => SliStatistic::P95,
    };
    let s = q.statistic.unwrap_or(default);
    let fits = match layout.kind {
        SeriesKind::Histogram => s != SliStatistic::GoodShare,
        SeriesKind::Events => s == SliStatistic::GoodShare,
        SeriesKind::Values => false,
    };
    if fits {
        Ok(s)
    } else {
        Err(invalid(
            "statistic",
            format!("the target's {} series has no {s}", layout.kind),
        ))
    }
}

/// The candidates with their layouts: those asked for, or the SLIs under the target.
fn candidates(
    conn: &mut DbConnection,
    target: &Metric,
    asked: Option<&str>,
) -> AppResult<Vec<(Metric, SeriesLayout)>> {
    let metrics_list = match asked {
        Some(list) => {
            let keys: Vec<&str> = list.split(',').map(str::trim).collect();
            if let Some(k) = keys
                .iter()
                .enumerate()
                .find_map(|(i, k)| keys[..i].contains(k).then_some(k))
            {
                return Err(invalid("candidates", format!("'{k}' is listed twice")));
            }
            if keys.iter().any(|k| k.is_empty()) || keys.len() > MAX_CANDIDATES {
                return Err(invalid(
                    "candidates",
                    format!("list 1 to {MAX_CANDIDATES} SLI keys separated by commas"),
                ));
            }
            let mut out = Vec::new();
            for k in keys {
                let m = metrics::get(conn, k).map_err(|e| match e {
                    AppError::NotFound { .. } => invalid("candidates", format!("no metric '{k}'")),
                    other => other,
                })?;
                if m.kind != MetricKind::Sli || m.id == target.id {
                    return Err(invalid(
                        "candidates",
                        format!("'{k}' is not an SLI other than the target"),
                    ));
                }
                out.push(m);
            }
            out
        }
        None => metrics::slis_under(conn, &target.key)?,
    };
    let mut out = Vec::new();
    for m in metrics_list {
        match series::layout(conn, m.id)? {
            Some(l) if l.kind != SeriesKind::Values => out.push((m, l)),
            _ if asked.is_some() => {
                return Err(invalid(
                    "candidates",
                    format!("'{}' has no production series", m.key),
                ))
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(invalid(
            "key",
            format!(
                "'{}' has no upstream SLIs with production series (SLIs that list it in `parents`, at any depth); name some in `candidates`",
                target.key
            ),
        ));
    }
    if out.len() > MAX_CANDIDATES {
        return Err(invalid(
            "candidates",
            format!(
                "'{}' has {} upstream SLIs with series; name at most {MAX_CANDIDATES} in `candidates`",
                target.key,
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// One series' values on the grid.
fn grid(
    conn: &mut DbConnection,
    (m, layout): (&Metric, &SeriesLayout),
    statistic: SliStatistic,
    range: (i64, i64),
    block: i64,
) -> AppResult<GridSeries> {
    let points = series::windows_in_blocks(conn, m.id, range, block)?
        .iter()
        .filter_map(|w| {
            window_value(&w.data, statistic.quantile(), &layout.bounds).map(|(v, _)| (w.start, v))
        })
        .collect();
    Ok(GridSeries {
        key: m.key.clone(),
        statistic: statistic.to_string(),
        points,
    })
}

/// The range: as asked, or the 7 days up to the end of the target's latest window.
fn range(
    conn: &mut DbConnection,
    q: &LeadingQuery,
    target: &Metric,
    layout: &SeriesLayout,
) -> AppResult<(i64, i64)> {
    let to = match q.to {
        Some(t) => t.timestamp(),
        None => series::latest_start(conn, target.id)?.unwrap_or(0) + i64::from(layout.seconds),
    };
    let from = q.from.map_or(to - DEFAULT_DAYS * 86_400, |f| f.timestamp());
    if to <= from {
        return Err(invalid("to", "must be after from"));
    }
    Ok((from, to))
}

/// Leading indicators of SLI `key`.
pub fn run(db: &Db, key: &str, q: &LeadingQuery) -> AppResult<LeadingIndicators> {
    let max_lag_seconds = parse_lag(&q.max_lag)?;
    let alpha = q.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha <= 0.5) {
        return Err(invalid("alpha", "must be in (0, 0.5]"));
    }
    let conn = &mut *db.conn()?;
    let target = metrics::get(conn, key)?;
    if target.kind != MetricKind::Sli {
        return Err(invalid(
            "key",
            format!("'{key}' is a KPI; leading indicators are found for SLIs"),
        ));
    }
    let layout = series::layout(conn, target.id)?
        .ok_or_else(|| invalid("key", format!("'{key}' has no production series yet")))?;
    let statistic = target_statistic(q, &layout)?;
    let cands = candidates(conn, &target, q.candidates.as_deref())?;
    let block = cands
        .iter()
        .map(|(_, l)| i64::from(l.seconds))
        .fold(i64::from(layout.seconds), i64::max);
    if let Some((m, _)) = cands
        .iter()
        .find(|(_, l)| block % i64::from(l.seconds) != 0)
        .or_else(|| (block % i64::from(layout.seconds) != 0).then_some(&cands[0]))
    {
        return Err(invalid(
            "candidates",
            format!(
                "the windows of '{}' and the others do not nest in one grid of {block} s",
                m.key
            ),
        ));
    }
    let max_lag = max_lag_seconds / block;
    if max_lag < 1 || max_lag as usize > MAX_LEAD_WINDOWS {
        return Err(invalid(
            "max_lag",
            format!(
                "is {} of the {} grid; it must be 1 to {MAX_LEAD_WINDOWS} windows",
                duration_text(max_lag_seconds),
                duration_text(block)
            ),
        ));
    }
    let (from, to) = range(conn, q, &target, &layout)?;
    if (to - from) / block > MAX_GRID_WINDOWS {
        return Err(invalid(
            "from",
            format!("the range holds more than {MAX_GRID_WINDOWS} windows of {block} s"),
        ));
    }
    let target_series = grid(conn, (&target, &layout), statistic, (from, to), block)?;
    let mut series_list = Vec::new();
    for (m, l) in &cands {
        let s = candidate_statistic(statistic, l).unwrap_or(SliStatistic::GoodShare);
        series_list.push(grid(conn, (m, l), s, (from, to), block)?);
    }
    let indicators = analyse(&target_series, &series_list, block, max_lag as usize, alpha);
    let leading: Vec<&str> = indicators
        .iter()
        .filter(|i| i.status == LeadStatus::Leads)
        .map(|i| i.summary.as_str())
        .collect();
    let summary = if leading.is_empty() {
        format!(
            "No upstream SLI significantly leads {key} {statistic} within {} ({} compared).",
            duration_text(max_lag * block),
            indicators.len()
        )
    } else {
        leading.join("; ") + "."
    };
    Ok(LeadingIndicators {
        metric: key.to_owned(),
        statistic,
        window_seconds: block,
        max_lag_seconds: max_lag * block,
        max_lag_windows: max_lag as u32,
        from: DateTime::from_timestamp(from, 0).unwrap_or_default(),
        to: DateTime::from_timestamp(to, 0).unwrap_or_default(),
        alpha,
        indicators,
        summary,
    })
}
