//! Tracing a KPI drop to its SLIs: for each SLI under the KPI in the metric hierarchy, the
//! share of the KPI's change (range vs baseline) that its validated slope explains: slope × the
//! SLI's shift, with the slope's interval. SLIs without validated evidence, or without data in
//! both ranges, are listed as unquantified, never dropped. Pure; `slo::traces` loads the data.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::analysis::report::Estimate;
use crate::domain::metric::Metric;
use crate::slo::recommend::fmt_num;

/// What one SLI explains of the KPI's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TracedSli {
    pub sli: String,
    pub name: String,
    pub unit: String,
    /// `p50`, `p95`, `p99` (histograms) or `good_share` (events): what was compared.
    pub statistic: String,
    pub baseline_value: f64,
    pub value: f64,
    /// value − baseline value.
    pub shift: f64,
    /// The published SLO whose validated slope prices the shift.
    pub slo_id: i64,
    /// KPI change the slope assigns to the shift (slope × shift), with the slope's interval.
    pub explained: f64,
    pub explained_ci: [f64; 2],
    /// explained / the KPI's change, with its interval; null when the KPI did not change.
    pub share: Option<f64>,
    pub share_ci: Option<[f64; 2]>,
}

/// An SLI under the KPI whose share could not be computed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnquantifiedSli {
    pub sli: String,
    pub reason: String,
}

/// The SLI's side of a trace, as loaded.
pub struct SliInput<'a> {
    pub metric: &'a Metric,
    /// (statistic, baseline value, value); None without data in one of the ranges.
    pub values: Option<(String, f64, f64)>,
    /// The active SLO of (SLI, KPI) with causal, validated evidence: (id, slope).
    pub slope: Option<(i64, &'a Estimate)>,
}

/// Ranks what each SLI explains of `change` (range mean − baseline mean of the KPI).
pub fn trace(inputs: &[SliInput], change: f64) -> (Vec<TracedSli>, Vec<UnquantifiedSli>) {
    let mut traced = Vec::new();
    let mut open = Vec::new();
    for i in inputs {
        let key = i.metric.key.clone();
        let (Some((statistic, base, value)), Some((slo_id, slope))) = (&i.values, i.slope) else {
            let reason = match (&i.values, i.slope) {
                (None, _) => "no production windows of the SLI in both ranges",
                _ => "no active SLO with validated (causal) evidence for this SLI and KPI",
            };
            open.push(UnquantifiedSli {
                sli: key,
                reason: reason.to_owned(),
            });
            continue;
        };
        let shift = value - base;
        let ends = [slope.ci_low * shift, slope.ci_high * shift];
        let ci = [ends[0].min(ends[1]), ends[0].max(ends[1])];
        let explained = slope.estimate * shift;
        let share = (change != 0.0).then(|| explained / change);
        let share_ci = (change != 0.0).then(|| {
            let s = [ci[0] / change, ci[1] / change];
            [s[0].min(s[1]), s[0].max(s[1])]
        });
        traced.push(TracedSli {
            sli: key,
            name: i.metric.name.clone(),
            unit: i.metric.unit.clone(),
            statistic: statistic.clone(),
            baseline_value: *base,
            value: *value,
            shift,
            slo_id,
            explained,
            explained_ci: ci,
            share,
            share_ci,
        });
    }
    traced.sort_by(|a, b| {
        b.share
            .unwrap_or(0.0)
            .total_cmp(&a.share.unwrap_or(0.0))
            .then_with(|| a.sli.cmp(&b.sli))
    });
    (traced, open)
}

/// The summary, e.g. "conversion fell 2.1% (range vs baseline); checkout latency p95 rose
/// 180 ms, which its validated slope prices at −1.6% (76% of the drop, 95% CI 58–94%)".
pub fn summary(
    kpi: &Metric,
    (baseline_mean, change): (f64, f64),
    ranges: &str,
    traced: &[TracedSli],
    unquantified: usize,
) -> String {
    let rel = |x: f64| {
        if baseline_mean != 0.0 {
            format!("{:+.1}%", 100.0 * x / baseline_mean)
        } else {
            format!("{x:+.4}")
        }
    };
    let moved = if change < 0.0 { "fell" } else { "rose" };
    let mut text = format!(
        "{} {moved} {} ({ranges})",
        kpi.name,
        rel(change).trim_start_matches(['+', '-'])
    );
    for t in traced.iter().take(3) {
        let unit = if t.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", t.unit)
        };
        let dir = if t.shift >= 0.0 { "rose" } else { "fell" };
        let share = match (t.share, t.share_ci) {
            (Some(s), Some(ci)) => format!(
                " ({:.0}% of the change, 95% CI {:.0}–{:.0}%)",
                100.0 * s,
                100.0 * ci[0],
                100.0 * ci[1]
            ),
            _ => String::new(),
        };
        text.push_str(&format!(
            "; {} {} {dir} {}{unit}, which its validated slope prices at {}{share}",
            t.name,
            t.statistic,
            fmt_num(crate::slo::threshold::round_significant(
                t.shift.abs(),
                false
            )),
            rel(t.explained)
        ));
    }
    if unquantified > 0 {
        text.push_str(&if unquantified == 1 {
            "; 1 SLI under it is unquantified (listed)".to_owned()
        } else {
            format!("; {unquantified} SLIs under it are unquantified (listed)")
        });
    }
    text.push('.');
    text
}
