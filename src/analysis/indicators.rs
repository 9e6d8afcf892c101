//! The seam of leading indicators (`analysis::leading`): the target SLI and its candidates (the
//! SLIs under it in the metric hierarchy, or those asked for), read over one range onto one
//! grid of windows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::history::window_value;
use std::collections::HashMap;

use super::leading::{
    correct, duration_text, evaluate, unavailable, GridSeries, LeadStatus, LeadingIndicator,
};
use super::observational::SliStatistic;
use crate::domain::metric::{Metric, MetricKind};
use crate::domain::series::{SeriesKind, SeriesLayout};
use crate::error::{AppError, AppResult, Issue};
use crate::store::{metrics, series, Db, DbConnection};

pub use super::leading::{MAX_LEAD_WINDOWS, MIN_CHANGES};

/// Most candidates compared in one request.
pub const MAX_CANDIDATES: usize = 50;

/// A candidate and its series layout (None: no production series).
pub type Candidate = (Metric, Option<SeriesLayout>);
/// Most windows of the common grid one request reads per series (about 35 days of minutes).
pub const MAX_GRID_WINDOWS: i64 = 50_000;
/// Default range: the 14 days before the target's latest window (8 whole days are needed for
/// the shuffles to keep daily profiles aligned, `stats::block_perm`).
const DEFAULT_DAYS: i64 = 14;

/// What to look for.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeadingQuery {
    /// Longest lead looked for, e.g. `60m`, `2h`, `90s`: 1 to 120 windows of the common grid.
    #[param(example = "60m", max_length = 40)]
    pub max_lag: String,
    /// Start of the range (RFC 3339; default 14 days before `to`; day blocks need 8 whole days).
    pub from: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339; default the end of the target's latest window); at most
    /// 50,000 windows of the grid after `from`.
    pub to: Option<DateTime<Utc>>,
    /// The target's per-window value (default `p95` for a histogram series, `good_share` for
    /// events). Candidates use the same percentile (p95 when the target is a share) or their
    /// good share.
    pub statistic: Option<SliStatistic>,
    /// Comma-separated SLI keys to compare (default: every SLI under the target in the metric
    /// hierarchy, at any depth); at most 50.
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
    /// The target's grid (its window length); each candidate is compared on the longer of its
    /// windows and these (`indicators[].window_seconds`).
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
    if text.len() > 40 {
        return Err(invalid("max_lag", "must be at most 40 characters"));
    }
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

/// How a series' windows are read: a quantile of a histogram window or the good share of
/// an events window.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// `p95`, `good_share`, …
    pub label: String,
    pub quantile: Option<f64>,
}

impl Reading {
    pub fn percentile(p: f64) -> Reading {
        Reading {
            label: format!("p{}", crate::domain::document::round_significant(p * 100.0)),
            quantile: Some(p),
        }
    }

    fn good_share() -> Reading {
        Reading {
            label: "good_share".to_owned(),
            quantile: None,
        }
    }

    /// A candidate's reading: the target's percentile for a histogram (p95 when the target
    /// is a share), the good share of events.
    fn of_candidate(&self, layout: &SeriesLayout) -> Reading {
        match (layout.kind, self.quantile) {
            (SeriesKind::Histogram, Some(q)) => Reading::percentile(q),
            (SeriesKind::Histogram, None) => Reading::percentile(0.95),
            _ => Reading::good_share(),
        }
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
) -> AppResult<Vec<Candidate>> {
    let metrics_list = match asked {
        Some(list) => {
            if list.len() > 2000 {
                return Err(invalid("candidates", "must be at most 2000 characters"));
            }
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
            Some(l) if l.kind != SeriesKind::Values => out.push((m, Some(l))),
            _ => out.push((m, None)),
        }
    }
    if out.iter().all(|c| c.1.is_none()) {
        return Err(match asked {
            Some(_) => invalid("candidates", "none of these SLIs has a production series"),
            None => invalid(
                "key",
                format!(
                    "'{}' has no upstream SLIs with production series (SLIs that list it in `parents`, at any depth); name some in `candidates`",
                    target.key
                ),
            ),
        });
    }
    if out.len() > MAX_CANDIDATES {
        return Err(invalid(
            "candidates",
            format!(
                "'{}' has {} upstream SLIs; name at most {MAX_CANDIDATES} in `candidates`",
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
    reading: &Reading,
    range: (i64, i64),
    block: i64,
) -> AppResult<GridSeries> {
    let points = series::windows_in_blocks(conn, m.id, range, block)?
        .iter()
        .filter_map(|w| {
            window_value(&w.data, reading.quantile, &layout.bounds).map(|(v, _)| (w.start, v))
        })
        .collect();
    Ok(GridSeries {
        key: m.key.clone(),
        statistic: reading.label.clone(),
        points,
    })
}

/// What to compare over which range: the longest lead, the range (default the 14 days up to
/// the end of the target's latest window) and the family-wise level.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub max_lag_seconds: i64,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub alpha: f64,
}

impl Scope {
    /// Checks the lead (a duration like `60m`) and alpha.
    pub fn parse(
        max_lag: &str,
        (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        alpha: Option<f64>,
    ) -> AppResult<Scope> {
        let alpha = alpha.unwrap_or(0.05);
        if !(alpha > 0.0 && alpha <= 0.5) {
            return Err(invalid("alpha", "must be in (0, 0.5]"));
        }
        Ok(Scope {
            max_lag_seconds: parse_lag(max_lag)?,
            from: from.map(|f| f.timestamp()),
            to: to.map(|t| t.timestamp()),
            alpha,
        })
    }
}

/// The target and every candidate, each pair on its own grid, and how each relates to the
/// target in time.
pub struct Family {
    /// The target's grid (its windows, or the floor asked for) and the lags on it.
    pub block: i64,
    pub max_lag: usize,
    pub from: i64,
    pub to: i64,
    pub indicators: Vec<LeadingIndicator>,
    /// Per compared candidate: the target and the candidate on their common grid, and its length.
    pub pairs: HashMap<String, (GridSeries, GridSeries, i64)>,
}

/// The grid of the target with a candidate: the longer window, which the other must divide.
fn pair_block(target_block: i64, cand: &SeriesLayout) -> Result<i64, String> {
    let c = i64::from(cand.seconds);
    let block = target_block.max(c);
    if block % c != 0 || block % target_block != 0 {
        return Err(format!(
            "its {c}-second windows and the target's {target_block}-second grid do not nest"
        ));
    }
    Ok(block)
}

/// Reads the target and each candidate onto their common grid (the longer of the two window
/// lengths, at least `min_block`) and compares them; Holm across those compared.
pub fn compute(
    conn: &mut DbConnection,
    (target, layout): (&Metric, &SeriesLayout),
    reading: &Reading,
    cands: &[Candidate],
    scope: Scope,
    min_block: i64,
) -> AppResult<Family> {
    let block = i64::from(layout.seconds).max(min_block);
    let max_lag = scope.max_lag_seconds / block;
    if max_lag < 1 || max_lag as usize > MAX_LEAD_WINDOWS {
        return Err(invalid(
            "max_lag",
            format!(
                "is {} on the target's grid of {} windows; it must be 1 to {MAX_LEAD_WINDOWS} windows",
                duration_text(scope.max_lag_seconds),
                duration_text(block)
            ),
        ));
    }
    let to = match scope.to {
        Some(t) => t,
        None => series::latest_start(conn, target.id)?.unwrap_or(0) + i64::from(layout.seconds),
    };
    let from = scope.from.unwrap_or(to - DEFAULT_DAYS * 86_400);
    if to <= from {
        let field = if scope.to.is_some() { "to" } else { "from" };
        return Err(invalid(
            field,
            "the range is empty: `to` (default: the end of the target's latest window) must be after `from`",
        ));
    }
    if (to - from) / block > MAX_GRID_WINDOWS {
        return Err(invalid(
            "from",
            format!("the range holds more than {MAX_GRID_WINDOWS} windows of {block} s"),
        ));
    }
    let mut targets: HashMap<i64, GridSeries> = HashMap::new();
    let mut indicators = Vec::new();
    let mut pairs = HashMap::new();
    for (m, l) in cands {
        let Some(l) = l else {
            indicators.push(unavailable(&m.key, "", "no production series"));
            continue;
        };
        let r = reading.of_candidate(l);
        let b = match pair_block(block, l) {
            Ok(b) => b,
            Err(why) => {
                indicators.push(unavailable(&m.key, &r.label, &why));
                continue;
            }
        };
        let lags = (scope.max_lag_seconds / b) as usize;
        if lags == 0 {
            let why = format!(
                "max_lag is shorter than one of its {} windows",
                duration_text(b)
            );
            indicators.push(unavailable(&m.key, &r.label, &why));
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = targets.entry(b) {
            e.insert(grid(conn, (target, layout), reading, (from, to), b)?);
        }
        let c = grid(conn, (m, l), &r, (from, to), b)?;
        let t = &targets[&b];
        indicators.push(evaluate(t, &c, b, lags, (scope.alpha, cands.len())));
        pairs.insert(m.key.clone(), (t.clone(), c, b));
    }
    let label = GridSeries {
        key: target.key.clone(),
        statistic: reading.label.clone(),
        points: Vec::new(),
    };
    correct(&mut indicators, &label, scope.alpha);
    Ok(Family {
        block,
        max_lag: max_lag as usize,
        from,
        to,
        indicators,
        pairs,
    })
}

/// An SLI with a production series (422 naming `field` otherwise; 404 for an unknown key).
pub fn sli_with_series(
    conn: &mut DbConnection,
    field: &str,
    key: &str,
) -> AppResult<(Metric, SeriesLayout)> {
    let m = metrics::get(conn, key)?;
    if m.kind != MetricKind::Sli {
        return Err(invalid(
            field,
            format!("'{key}' is a KPI; leading indicators relate SLIs"),
        ));
    }
    match series::layout(conn, m.id)? {
        Some(l) if l.kind != SeriesKind::Values => Ok((m, l)),
        _ => Err(invalid(
            field,
            format!("'{key}' has no production series yet"),
        )),
    }
}

/// Leading indicators of SLI `key`.
pub fn run(db: &Db, key: &str, q: &LeadingQuery) -> AppResult<LeadingIndicators> {
    let scope = Scope::parse(&q.max_lag, (q.from, q.to), q.alpha)?;
    let conn = &mut *db.conn()?;
    let (target, layout) = sli_with_series(conn, "key", key)?;
    let statistic = target_statistic(q, &layout)?;
    let reading = match statistic.quantile() {
        Some(p) => Reading::percentile(p),
        None => Reading::good_share(),
    };
    let cands = candidates(conn, &target, q.candidates.as_deref())?;
    let f = compute(conn, (&target, &layout), &reading, &cands, scope, 0)?;
    let leading: Vec<&str> = f
        .indicators
        .iter()
        .filter(|i| i.status == LeadStatus::Leads)
        .map(|i| i.summary.as_str())
        .collect();
    let compared = f
        .indicators
        .iter()
        .filter(|i| i.lead_test.is_some())
        .count();
    let which = if q.candidates.is_some() {
        "candidate SLI"
    } else {
        "upstream SLI"
    };
    let summary = if compared == 0 {
        format!(
            "No {which} could be compared with {key} {statistic} ({} listed, each with why).",
            f.indicators.len()
        )
    } else if leading.is_empty() {
        format!(
            "No {which} significantly leads {key} {statistic} within {} ({compared} of {} compared).",
            duration_text(f.max_lag as i64 * f.block),
            f.indicators.len()
        )
    } else {
        leading.join("; ") + "."
    };
    Ok(LeadingIndicators {
        metric: key.to_owned(),
        statistic,
        window_seconds: f.block,
        max_lag_seconds: f.max_lag as i64 * f.block,
        max_lag_windows: f.max_lag as u32,
        from: DateTime::from_timestamp(f.from, 0).unwrap_or_default(),
        to: DateTime::from_timestamp(f.to, 0).unwrap_or_default(),
        alpha: scope.alpha,
        indicators: f.indicators,
        summary,
    })
}
