//! Tracing a KPI drop to its SLIs: for each SLI under the KPI in the metric hierarchy, the
//! share of the KPI's change (range vs baseline) that its validated slope explains: slope × the
//! SLI's shift. Three things are uncertain and all enter the interval: the slope (its standard
//! error), the shift and the KPI's change (each the difference of two range means, with
//! Newey–West standard errors over the ranges' windows, `stats::hac::ratio_mean_variance`).
//! The explained change E = b·s has Var(E) = s²·SE(b)² + b²·SE(s)² (delta method); the share
//! E/Δ gets Fieller's interval, {q : (E − qΔ)² ≤ z²(Var E + q² Var Δ)}, which is unbounded — and
//! reported as null — when the KPI's change is itself within its noise (|Δ|/SE(Δ) < z).
//! SLIs without validated evidence, or without data in both ranges, are listed as
//! unquantified, never dropped. Pure; `slo::traces` loads the data.

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
    /// Newey–West standard error of the shift (from the per-window values of both ranges);
    /// null with fewer than two windows in a range.
    pub shift_std_error: Option<f64>,
    /// The published SLO whose validated slope prices the shift.
    pub slo_id: i64,
    /// KPI change the slope assigns to the shift (slope × shift), with its 95% interval (the
    /// slope's and the shift's uncertainty).
    pub explained: f64,
    pub explained_ci: [f64; 2],
    /// explained / the KPI's change; null when the KPI did not change.
    pub share: Option<f64>,
    /// Fieller's 95% interval of the share; null when the KPI's change is within its noise
    /// (the interval is unbounded) or did not change.
    pub share_ci: Option<[f64; 2]>,
}

/// An SLI under the KPI whose share could not be computed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnquantifiedSli {
    pub sli: String,
    pub reason: String,
}

/// An SLI's statistic in both ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    pub statistic: String,
    pub baseline: f64,
    pub value: f64,
    /// Standard error of value − baseline; None when it cannot be estimated.
    pub std_error: Option<f64>,
}

/// The KPI's change between the ranges and its standard error (None when unknown).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub delta: f64,
    pub std_error: Option<f64>,
}

/// The 95% normal quantile.
const Z: f64 = 1.959_963_984_540_054;

/// Fieller's interval of E/Δ for independent E and Δ with variances `ve`, `vd`; None when it
/// is unbounded (Δ² ≤ z²·Var Δ) or Δ is 0.
pub fn fieller(e: f64, ve: f64, d: f64, vd: f64) -> Option<[f64; 2]> {
    let a = d * d - Z * Z * vd;
    if d == 0.0 || a.is_nan() || a <= 0.0 {
        return None;
    }
    let disc = Z * Z * (ve * a + vd * e * e);
    let root = disc.max(0.0).sqrt();
    let lo = (e * d - root) / a;
    let hi = (e * d + root) / a;
    Some([lo.min(hi), lo.max(hi)])
}

/// The SLI's side of a trace, as loaded.
pub struct SliInput<'a> {
    pub metric: &'a Metric,
    /// None without data in one of the ranges.
    pub values: Option<Shift>,
    /// The active SLO of (SLI, KPI) with causal, validated evidence: (id, slope).
    pub slope: Option<(i64, &'a Estimate)>,
}

/// Ranks what each SLI explains of the KPI's change (range mean − baseline mean).
pub fn trace(inputs: &[SliInput], change: Change) -> (Vec<TracedSli>, Vec<UnquantifiedSli>) {
    let (delta, vd) = (change.delta, change.std_error.map_or(0.0, |s| s * s));
    let mut traced = Vec::new();
    let mut open = Vec::new();
    for i in inputs {
        let key = i.metric.key.clone();
        let (Some(sh), Some((slo_id, slope))) = (&i.values, i.slope) else {
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
        let shift = sh.value - sh.baseline;
        let vs = sh.std_error.map_or(0.0, |s| s * s);
        let explained = slope.estimate * shift;
        let ve = shift * shift * slope.std_error * slope.std_error
            + slope.estimate * slope.estimate * vs;
        let ci = [explained - Z * ve.sqrt(), explained + Z * ve.sqrt()];
        let share = (delta != 0.0).then(|| explained / delta);
        let share_ci = fieller(explained, ve, delta, vd);
        traced.push(TracedSli {
            sli: key,
            name: i.metric.name.clone(),
            unit: i.metric.unit.clone(),
            statistic: sh.statistic.clone(),
            baseline_value: sh.baseline,
            value: sh.value,
            shift,
            shift_std_error: sh.std_error,
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
            (Some(s), None) => format!(
                " ({:.0}% of the change, which is itself within its noise: no interval)",
                100.0 * s
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

#[cfg(test)]
mod tests {
    use super::{fieller, Z};

    #[test]
    fn fieller_ends_solve_the_test_and_widen_with_the_change_noise() {
        let (e, ve, d, vd) = (-0.016, 0.002f64.powi(2), -0.021, 0.003f64.powi(2));
        let [lo, hi] = fieller(e, ve, d, vd).unwrap_or([f64::NAN; 2]);
        for q in [lo, hi] {
            let lhs = (e - q * d).powi(2);
            let rhs = Z * Z * (ve + q * q * vd);
            assert!((lhs - rhs).abs() < 1e-15, "{q}: {lhs} vs {rhs}");
        }
        assert!(lo < e / d && e / d < hi);
        // Without noise in the change it is the explained change's interval over Δ.
        let [a, b] = fieller(e, ve, d, 0.0).unwrap_or([f64::NAN; 2]);
        assert!((a - (e + Z * ve.sqrt()) / d).abs() < 1e-12);
        assert!((b - (e - Z * ve.sqrt()) / d).abs() < 1e-12);
        assert!(b - a < hi - lo);
        // A change within its noise has no bounded interval.
        assert_eq!(fieller(e, ve, d, (d / 1.9).powi(2)), None);
        assert_eq!(fieller(e, ve, 0.0, 0.0), None);
    }
}
