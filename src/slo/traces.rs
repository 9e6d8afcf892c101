//! The seam of KPI tracing (`slo::trace`): the KPI's change between two ranges of its series,
//! the SLIs under it in the metric hierarchy (through `parents`, any depth), their pooled
//! production values in both ranges, and the validated slopes of their active SLOs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{Evaluation, EvidenceBasis, Slo};
use super::trace::{summary, trace, Change, Shift, SliInput, TracedSli, UnquantifiedSli};
use crate::analysis::history::window_value;
use crate::domain::metric::{Metric, MetricKind};
use crate::domain::series::{SeriesKind, WindowData};
use crate::error::{AppError, AppResult, Issue};
use crate::stats::hac::ratio_mean_variance;
use crate::stats::histogram::quantile;
use crate::store::{metrics, series, Db, DbConnection};

/// Longest range of a trace, in days.
pub const MAX_TRACE_DAYS: i64 = 92;

/// The ranges to compare.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    /// The range with the change: [from, to), at most 92 days.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The range to compare with (e.g. the same hour last week): [baseline_from, baseline_to).
    pub baseline_from: DateTime<Utc>,
    pub baseline_to: DateTime<Utc>,
}

/// Which SLIs explain how much of a KPI's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Trace {
    pub kpi: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub baseline_from: DateTime<Utc>,
    pub baseline_to: DateTime<Utc>,
    /// Units-weighted KPI means over the baseline and the range, and their difference.
    pub kpi_baseline: f64,
    pub kpi_value: f64,
    pub change: f64,
    /// Newey–West standard error of the change (each range's windows, autocorrelation
    /// included); null with fewer than two windows in a range.
    pub change_std_error: Option<f64>,
    /// change / baseline; null when the baseline is 0.
    pub relative_change: Option<f64>,
    /// SLIs with validated evidence, by share of the change explained (largest first).
    pub slis: Vec<TracedSli>,
    /// SLIs under the KPI whose share could not be computed, with why.
    pub unquantified: Vec<UnquantifiedSli>,
    /// share explained by the quantified SLIs together; null when the KPI did not change.
    pub explained_share: Option<f64>,
    pub summary: String,
}

fn check(r: &TraceRequest) -> AppResult<()> {
    let mut issues = Vec::new();
    for (a, b, field) in [
        (r.from, r.to, "to"),
        (r.baseline_from, r.baseline_to, "baseline_to"),
    ] {
        if b <= a {
            issues.push(Issue::field(field, "must be after the range's start"));
        } else if (b - a).num_seconds() > MAX_TRACE_DAYS * 86_400 {
            issues.push(Issue::field(
                field,
                format!("a range spans at most {MAX_TRACE_DAYS} days"),
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid("invalid trace ranges", issues))
    }
}

/// The KPI's units-weighted mean over [from, to) and its Newey–West variance over the windows;
/// None without windows.
fn kpi_mean(
    conn: &mut DbConnection,
    kpi: &Metric,
    (from, to): (i64, i64),
) -> AppResult<Option<(f64, Option<f64>)>> {
    let rows = series::value_windows(
        conn,
        kpi.id,
        (from, to),
        crate::analysis::history::MAX_STORED_WINDOWS,
    )?;
    let (units, sums): (Vec<f64>, Vec<f64>) = rows.iter().map(|r| (r.1, r.2)).unzip();
    let total: f64 = units.iter().sum();
    Ok((total > 0.0).then(|| {
        (
            sums.iter().sum::<f64>() / total,
            ratio_mean_variance(&sums, &units),
        )
    }))
}

/// The SLI's statistic over [from, to) from its pooled windows: the SLO's governed percentile
/// (p50 without a windows SLO) of a histogram series, the good share of an events series; with
/// the Newey–West variance of the mean of the per-window values, which stands for the pooled
/// statistic's (None with fewer than two windows).
fn pooled(
    conn: &mut DbConnection,
    sli: &Metric,
    slo: Option<&Slo>,
    (from, to): (i64, i64),
) -> AppResult<Option<(String, f64, Option<f64>)>> {
    let Some(layout) = series::layout(conn, sli.id)? else {
        return Ok(None);
    };
    let block = ((to - from) / crate::slo::live::service::MAX_EVALUATED_WINDOWS + 1).max(1)
        * i64::from(layout.seconds);
    let windows = series::windows_in_blocks(conn, sli.id, (from, to), block)?;
    let mut agg = WindowData::empty(&layout);
    for w in &windows {
        agg.add(&w.data);
    }
    let q = slo
        .filter(|s| s.slo.evaluation == Evaluation::Windows)
        .and_then(|s| s.slo.percentile)
        .unwrap_or(50);
    let quantile_of = (layout.kind == SeriesKind::Histogram).then(|| f64::from(q) / 100.0);
    let per_window: Vec<f64> = windows
        .iter()
        .filter_map(|w| window_value(&w.data, quantile_of, &layout.bounds).map(|v| v.0))
        .collect();
    let variance = ratio_mean_variance(&per_window, &vec![1.0; per_window.len()]);
    Ok(match (&agg, layout.kind) {
        (
            WindowData::Histogram {
                count, cumulative, ..
            },
            SeriesKind::Histogram,
        ) if *count > 0.0 => {
            let v = quantile(f64::from(q) / 100.0, &layout.bounds, cumulative, *count);
            v.is_finite().then(|| (format!("p{q}"), v, variance))
        }
        (WindowData::Events { good, total }, SeriesKind::Events) if *total > 0.0 => {
            Some(("good_share".to_owned(), good / total, variance))
        }
        _ => None,
    })
}

/// A range in words, the date written once: `2026-11-01 02:00–03:00`; a range on the date of
/// `after` (the range written before it) drops the date: `00:00–01:00`.
fn range_text(from: DateTime<Utc>, to: DateTime<Utc>, after: Option<DateTime<Utc>>) -> String {
    let same_day = |a: DateTime<Utc>, b: DateTime<Utc>| a.date_naive() == b.date_naive();
    let start = if after.is_some_and(|a| same_day(a, from)) {
        from.format("%H:%M").to_string()
    } else {
        from.format("%Y-%m-%d %H:%M").to_string()
    };
    // An end at midnight closes its day: 22:00–24:00 rather than the next date.
    let end = if same_day(from, to) {
        to.format("%H:%M").to_string()
    } else if to.format("%H:%M").to_string() == "00:00"
        && same_day(from, to - chrono::Duration::seconds(1))
    {
        "24:00".to_owned()
    } else {
        to.format("%Y-%m-%d %H:%M").to_string()
    };
    format!("{start}–{end}")
}

/// Traces the change of KPI `key` between the ranges.
pub fn run(db: &Db, key: &str, r: &TraceRequest) -> AppResult<Trace> {
    check(r)?;
    let conn = &mut *db.conn()?;
    let kpi = metrics::get(conn, key)?;
    if kpi.kind != MetricKind::Kpi {
        return Err(AppError::invalid(
            "only a KPI is traced",
            vec![Issue::field(
                "key",
                format!("'{key}' is an SLI; trace the KPI above it"),
            )],
        ));
    }
    let range = (r.from.timestamp(), r.to.timestamp());
    let base = (r.baseline_from.timestamp(), r.baseline_to.timestamp());
    let no_data = |field: &str| {
        AppError::invalid(
            "the KPI has no windows in a range",
            vec![Issue::field(
                field,
                format!("{key} has no series windows in this range"),
            )],
        )
    };
    let (value, v1) = kpi_mean(conn, &kpi, range)?.ok_or_else(|| no_data("from"))?;
    let (baseline, v0) = kpi_mean(conn, &kpi, base)?.ok_or_else(|| no_data("baseline_from"))?;
    let change = value - baseline;
    let change_std_error = v1.zip(v0).map(|(a, b)| (a + b).sqrt());
    let slis = metrics::slis_under(conn, key)?;
    let mut slos = Vec::new();
    for s in &slis {
        let slo = super::service::active_slo(conn, (s.id, kpi.id))?
            .filter(|o| o.evidence.kind == EvidenceBasis::Causal && o.evidence.validated);
        slos.push(slo);
    }
    let mut values = Vec::new();
    for (s, slo) in slis.iter().zip(&slos) {
        let now = pooled(conn, s, slo.as_ref(), range)?;
        let before = pooled(conn, s, slo.as_ref(), base)?;
        values.push(
            now.zip(before)
                .map(|((statistic, v, v1), (_, b, v0))| Shift {
                    statistic,
                    baseline: b,
                    value: v,
                    std_error: v1.zip(v0).map(|(x, y)| (x + y).sqrt()),
                }),
        );
    }
    let inputs: Vec<SliInput> = slis
        .iter()
        .zip(&slos)
        .zip(values)
        .map(|((m, slo), values)| SliInput {
            metric: m,
            values,
            slope: slo.as_ref().map(|o| (o.id, &o.evidence.slope)),
        })
        .collect();
    let (traced, unquantified) = trace(
        &inputs,
        Change {
            delta: change,
            std_error: change_std_error,
        },
    );
    let ranges = format!(
        "{} vs {}",
        range_text(r.from, r.to, None),
        range_text(r.baseline_from, r.baseline_to, Some(r.from))
    );
    let text = summary(
        &kpi,
        (baseline, change),
        &ranges,
        &traced,
        unquantified.len(),
    );
    let explained_share =
        (change != 0.0).then(|| traced.iter().map(|t| t.explained).sum::<f64>() / change);
    Ok(Trace {
        kpi: key.to_owned(),
        from: r.from,
        to: r.to,
        baseline_from: r.baseline_from,
        baseline_to: r.baseline_to,
        kpi_baseline: baseline,
        kpi_value: value,
        change,
        change_std_error,
        relative_change: (baseline != 0.0).then(|| change / baseline),
        slis: traced,
        unquantified,
        explained_share,
        summary: text,
    })
}
