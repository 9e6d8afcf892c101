//! The seam of observational analyses: resolves a request, reads the SLI's and the KPI's
//! production windows onto a common grid, and stores the result (see [`super::observational`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::observational::{
    analyse, AlignedSeries, Controls, ObservationalAnalysis, ObservationalParameters, SliStatistic,
    Transform, MAX_LAG_WINDOWS, MAX_WINDOWS,
};
use crate::domain::metric::{Direction, Metric, MetricKind};
use crate::domain::series::{SeriesKind, SeriesLayout, WindowData};
use crate::error::{AppError, AppResult, Issue};
use crate::stats::histogram::{quantile, quantile_variance};
use crate::store::{metrics, observational, series, Db, DbConnection};

/// Most stored windows of either series one analysis reads.
pub const MAX_STORED_WINDOWS: i64 = 1_000_000;

/// A new observational analysis: the KPI's windows regressed on the SLI's over [from, to).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationalRequest {
    /// SLI key; its production series (histogram or event windows).
    #[schema(example = "checkout-latency")]
    pub sli: String,
    /// KPI key; its series of value windows (`{start, seconds, value, units}`).
    #[schema(example = "checkout-conversion")]
    pub kpi: String,
    /// Start of the range (RFC 3339).
    pub from: DateTime<Utc>,
    /// End of the range (RFC 3339), after `from`; at most 200,000 windows of the common length.
    pub to: DateTime<Utc>,
    /// Per-window SLI value (default `p95` for histogram series, `good_share` for events).
    #[serde(default)]
    pub statistic: Option<SliStatistic>,
    /// Lags searched, 0 to 48 windows of the common length (default 12).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 48)]
    pub max_lag_windows: Option<u32>,
    /// Fixed effects (default `hour_of_week`, which needs windows of at most an hour that
    /// divide it).
    #[serde(default)]
    pub controls: Option<Controls>,
    /// Regress changes between consecutive windows (`differences`, default) or levels.
    #[serde(default)]
    pub transform: Option<Transform>,
    /// Confidence level of intervals, in [0.5, 1) (default 0.95).
    #[serde(default)]
    #[schema(minimum = 0.5, exclusive_maximum = 1.0)]
    pub confidence: Option<f64>,
    /// Significance level of the verdict, in (0, 0.5] (default 0.05).
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    pub alpha: Option<f64>,
}

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::invalid(
        "the observational analysis cannot be run",
        vec![Issue::field(field, message)],
    )
}

/// The metric with this key and kind, and its series layout (422 naming `field` otherwise).
fn metric_with_series(
    conn: &mut DbConnection,
    field: &str,
    key: &str,
    kind: MetricKind,
) -> AppResult<(Metric, SeriesLayout)> {
    let m = metrics::get(conn, key).map_err(|e| match e {
        AppError::NotFound { .. } => invalid(field, format!("no metric '{key}'")),
        other => other,
    })?;
    if m.kind != kind {
        return Err(invalid(
            field,
            format!("'{key}' is a {}, not a {kind}", m.kind),
        ));
    }
    let layout = series::layout(conn, m.id)?
        .ok_or_else(|| invalid(field, format!("'{key}' has no production series yet")))?;
    Ok((m, layout))
}

/// Defaults and checks of everything but the data.
fn parameters(
    r: &ObservationalRequest,
    sli: &SeriesLayout,
    sli_direction: Direction,
) -> AppResult<ObservationalParameters> {
    let statistic = r.statistic.unwrap_or(match sli.kind {
        SeriesKind::Events => SliStatistic::GoodShare,
        _ => SliStatistic::P95,
    });
    let fits = match sli.kind {
        SeriesKind::Events => statistic == SliStatistic::GoodShare,
        _ => statistic != SliStatistic::GoodShare,
    };
    if !fits {
        let article = if sli.kind == SeriesKind::Events {
            "an"
        } else {
            "a"
        };
        return Err(invalid(
            "statistic",
            format!("{article} {} series has no {statistic}", sli.kind),
        ));
    }
    if statistic == SliStatistic::GoodShare && sli_direction == Direction::LowerIsBetter {
        return Err(invalid(
            "sli",
            "a good share is higher-is-better; this SLI is declared lower-is-better",
        ));
    }
    let max_lag_windows = r.max_lag_windows.unwrap_or(12);
    if max_lag_windows > MAX_LAG_WINDOWS {
        return Err(invalid(
            "max_lag_windows",
            format!("must be at most {MAX_LAG_WINDOWS}"),
        ));
    }
    let confidence = r.confidence.unwrap_or(0.95);
    if !(0.5..1.0).contains(&confidence) {
        return Err(invalid("confidence", "must be in [0.5, 1)"));
    }
    let alpha = r.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha <= 0.5) {
        return Err(invalid("alpha", "must be in (0, 0.5]"));
    }
    Ok(ObservationalParameters {
        statistic,
        controls: r.controls.unwrap_or(Controls::HourOfWeek),
        transform: r.transform.unwrap_or(Transform::Differences),
        max_lag_windows,
        confidence,
        alpha,
    })
}

/// The common window length: the longer of the two, which the shorter must divide.
fn common_seconds(sli: &SeriesLayout, kpi: &SeriesLayout, controls: Controls) -> AppResult<i64> {
    let (a, b) = (i64::from(sli.seconds), i64::from(kpi.seconds));
    let block = a.max(b);
    if block % a.min(b) != 0 {
        return Err(invalid(
            "kpi",
            format!("the KPI's {b}-second windows and the SLI's {a}-second windows do not nest"),
        ));
    }
    if controls == Controls::HourOfWeek && 3600 % block != 0 {
        return Err(invalid(
            "controls",
            format!("hour-of-week effects need windows that divide an hour; these are {block} s (use \"none\")"),
        ));
    }
    Ok(block)
}

/// A window's value and its sampling variance: quantile `q` of a histogram window (the delta
/// method's variance), or the good share of an events window (binomial variance); None for an
/// empty window or one of another kind.
pub(crate) fn window_value(
    data: &WindowData,
    q: Option<f64>,
    bounds: &[f64],
) -> Option<(f64, f64)> {
    let (v, var) = match (data, q) {
        (
            WindowData::Histogram {
                count, cumulative, ..
            },
            Some(q),
        ) if *count > 0.0 => (
            quantile(q, bounds, cumulative, *count),
            quantile_variance(q, bounds, cumulative, *count),
        ),
        (WindowData::Events { good, total }, None) if *total > 0.0 => {
            let p = good / total;
            (p, p * (1.0 - p) / total)
        }
        _ => return None,
    };
    v.is_finite().then_some((v, var))
}

/// Reads both series over the range onto the common grid.
fn aligned(
    conn: &mut DbConnection,
    (sli, kpi): (&Metric, &Metric),
    (from, to): (i64, i64),
    block: i64,
    statistic: SliStatistic,
    layout: &SeriesLayout,
) -> AppResult<AlignedSeries> {
    let sli_windows = series::windows_in_blocks(conn, sli.id, (from, to), block)?;
    let (sli_values, sli_variance): (Vec<(i64, f64)>, Vec<f64>) = sli_windows
        .iter()
        .filter_map(|w| {
            window_value(&w.data, statistic.quantile(), &layout.bounds)
                .map(|(v, var)| ((w.start, v), var))
        })
        .unzip();
    let mut kpi_values: Vec<(i64, f64, f64)> = Vec::new();
    for (start, units, sum) in series::value_windows(conn, kpi.id, (from, to), MAX_STORED_WINDOWS)?
    {
        let start = start.div_euclid(block) * block;
        match kpi_values.last_mut() {
            Some(last) if last.0 == start => {
                last.1 += sum;
                last.2 += units;
            }
            _ => kpi_values.push((start, sum, units)),
        }
    }
    let kpi_values = kpi_values
        .into_iter()
        .filter(|k| k.2 > 0.0)
        .map(|(s, sum, units)| (s, sum / units, units))
        .collect();
    Ok(AlignedSeries {
        window_seconds: block as u32,
        sli: sli_values,
        sli_variance,
        kpi: kpi_values,
    })
}

/// Runs and stores an observational analysis; the stored document's JSON text.
pub fn run(db: &Db, r: &ObservationalRequest) -> AppResult<String> {
    if r.to <= r.from {
        return Err(invalid("to", "must be after from"));
    }
    let conn = &mut *db.conn()?;
    let (sli, sli_layout) = metric_with_series(conn, "sli", &r.sli, MetricKind::Sli)?;
    let (kpi, kpi_layout) = metric_with_series(conn, "kpi", &r.kpi, MetricKind::Kpi)?;
    let p = parameters(r, &sli_layout, sli.direction)?;
    let block = common_seconds(&sli_layout, &kpi_layout, p.controls)?;
    let (from, to) = (r.from.timestamp(), r.to.timestamp());
    let finest = i64::from(sli_layout.seconds.min(kpi_layout.seconds));
    if (to - from) / block > MAX_WINDOWS || (to - from) / finest > MAX_STORED_WINDOWS {
        return Err(invalid(
            "to",
            format!(
                "the range holds more than {MAX_WINDOWS} windows of {block} s, or more than \
                 {MAX_STORED_WINDOWS} stored windows of a series"
            ),
        ));
    }
    let s = aligned(
        conn,
        (&sli, &kpi),
        (from, to),
        block,
        p.statistic,
        &sli_layout,
    )?;
    observational::insert(conn, (sli.id, kpi.id), |id, created| {
        let a = analyse(&s, p, (&sli, &kpi), (r.from, r.to), id, created.and_utc())?;
        serde_json::to_string(&a).map_err(|e| AppError::Internal(e.into()))
    })
}

/// The stored document of observational analysis `id`, or 404.
pub fn get(db: &Db, id: i64) -> AppResult<String> {
    observational::get(&mut *db.conn()?, id)
}

/// A stored document, parsed (500 when it cannot be read).
pub fn document(db: &Db, id: i64) -> AppResult<ObservationalAnalysis> {
    serde_json::from_str(&get(db, id)?).map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "stored observational analysis {id} cannot be read: {e}"
        ))
    })
}
