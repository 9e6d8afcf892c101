//! The seam of KPI tracing (`slo::trace`): the KPI's change between two ranges of its series,
//! the SLIs under it in the metric hierarchy (through `parents`, any depth), their pooled
//! production values in both ranges, and the validated slopes of their active SLOs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{Evaluation, EvidenceBasis, Slo};
use super::trace::{summary, trace, SliInput, TracedSli, UnquantifiedSli};
use crate::domain::metric::{Metric, MetricKind};
use crate::domain::series::{SeriesKind, WindowData};
use crate::error::{AppError, AppResult, Issue};
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

/// The KPI's units-weighted mean over [from, to); None without windows.
fn kpi_mean(
    conn: &mut DbConnection,
    kpi: &Metric,
    (from, to): (i64, i64),
) -> AppResult<Option<f64>> {
    let rows = series::value_windows(
        conn,
        kpi.id,
        (from, to),
        crate::analysis::history::MAX_STORED_WINDOWS,
    )?;
    let (units, sum) = rows.iter().fold((0.0, 0.0), |(u, s), r| (u + r.1, s + r.2));
    Ok((units > 0.0).then(|| sum / units))
}

/// The SLI's statistic over [from, to) from its pooled windows: the SLO's governed percentile
/// (p50 without a windows SLO) of a histogram series, the good share of an events series.
fn pooled(
    conn: &mut DbConnection,
    sli: &Metric,
    slo: Option<&Slo>,
    (from, to): (i64, i64),
) -> AppResult<Option<(String, f64)>> {
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
    Ok(match (&agg, layout.kind) {
        (
            WindowData::Histogram {
                count, cumulative, ..
            },
            SeriesKind::Histogram,
        ) if *count > 0.0 => {
            let p = slo
                .filter(|s| s.slo.evaluation == Evaluation::Windows)
                .and_then(|s| s.slo.percentile)
                .unwrap_or(50);
            let v = quantile(f64::from(p) / 100.0, &layout.bounds, cumulative, *count);
            v.is_finite().then(|| (format!("p{p}"), v))
        }
        (WindowData::Events { good, total }, SeriesKind::Events) if *total > 0.0 => {
            Some(("good_share".to_owned(), good / total))
        }
        _ => None,
    })
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
    let value = kpi_mean(conn, &kpi, range)?.ok_or_else(|| no_data("from"))?;
    let baseline = kpi_mean(conn, &kpi, base)?.ok_or_else(|| no_data("baseline_from"))?;
    let change = value - baseline;
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
        values.push(now.zip(before).map(|((stat, v), (_, b))| (stat, b, v)));
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
    let (traced, unquantified) = trace(&inputs, change);
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    let ranges = format!(
        "{}–{} vs {}–{}",
        fmt(r.from),
        fmt(r.to),
        fmt(r.baseline_from),
        fmt(r.baseline_to)
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
        relative_change: (baseline != 0.0).then(|| change / baseline),
        slis: traced,
        unquantified,
        explained_share,
        summary: text,
    })
}
