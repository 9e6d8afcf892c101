//! The threshold of a recommended SLO: the governed tail and its baseline, the slope-based
//! threshold, causal knees, what the experiment supports, conservative rounding and histogram
//! buckets (see docs/methodology.md).

use super::model::{KneeUsed, RecommendationInputs, ThresholdRange, ThresholdSource};
use super::recommend::fmt_num;
use crate::analysis::report::{Analysis, Estimate, Evidence as EvidenceKind, SliSummary};
use crate::domain::metric::{Direction, Metric};
use crate::error::{AppError, AppResult, Issue};
use crate::stats::descriptive::quantile_sorted;

/// Rounds to 3 significant digits towards the conservative side (down for "<" SLOs). A value
/// in (0.9, 1) is rounded through its complement 1 − x, so 0.99912 becomes 0.9991 or 0.9992,
/// never 1 (an impossible share).
pub fn round_conservative(x: f64, down: bool) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    if x > 0.9 && x < 1.0 {
        // 1 − x carries binary noise in its last bits (1 − 0.9999512 = 4.8799…e-5): drop it
        // (12 significant digits) before rounding to 3.
        let c = format!("{:.11e}", 1.0 - x).parse().unwrap_or(1.0 - x);
        let c = round_significant(c, !down);
        let digits = (-(c.log10().floor()) + 2.0).clamp(0.0, 15.0) as i32;
        let p = 10f64.powi(digits);
        return ((1.0 - c) * p).round() / p;
    }
    round_significant(x, down)
}

pub(crate) fn round_significant(x: f64, down: bool) -> f64 {
    let mag = 10f64.powf(x.abs().log10().floor() - 2.0);
    let scaled = x / mag;
    let r = if down { scaled.floor() } else { scaled.ceil() };
    // Undo the scaling without re-introducing binary noise in the last digits.
    let digits = (-(mag.log10().round())).max(0.0) as i32;
    let v = r * mag;
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

/// The percentile an SLO governs per window for a requested coverage p (95 = "95% of requests
/// good"): the harmful tail, p95 for a lower-is-better SLI and p5 for a higher-is-better one.
pub(crate) fn governed_percentile(p: u32, direction: Direction) -> u32 {
    match direction {
        Direction::LowerIsBetter => p,
        Direction::HigherIsBetter => 100 - p,
    }
}

/// The control arm's SLI at the governed percentile (the mean for request-based SLOs).
pub(crate) fn baseline(control: &SliSummary, governed: Option<u32>) -> AppResult<f64> {
    let low_tail = |v: Option<f64>| {
        v.ok_or_else(|| {
            AppError::invalid(
                "the analysis predates low-tail percentiles; run the analysis again",
                vec![Issue::field(
                    "percentile",
                    "a higher-is-better SLI is governed by its low tail (p5, p1), which this analysis does not report",
                )],
            )
        })
    };
    Ok(match governed {
        Some(1) => low_tail(control.p1)?,
        Some(5) => low_tail(control.p5)?,
        Some(50) => control.p50,
        Some(99) => control.p99,
        Some(_) => control.p95,
        None => control.mean,
    })
}

/// Refuses a threshold on the wrong side of the baseline: an SLO the unchanged service already
/// fails (rounding a tiny tolerance, or snapping to a bucket bound, can put it there).
pub(crate) fn check_beyond_baseline(
    sli: &Metric,
    threshold: f64,
    baseline: f64,
    snapped: bool,
) -> AppResult<()> {
    if sli.direction.worse_sign() * (threshold - baseline) > 0.0 {
        return Ok(());
    }
    let (field, fix) = if snapped {
        (
            "prometheus.buckets",
            "declare a bucket bound between the baseline and the unsnapped threshold",
        )
    } else {
        ("max_relative_kpi_loss", "tolerate a larger loss")
    };
    Err(AppError::invalid(
        "the threshold is not beyond the current baseline",
        vec![Issue::field(
            field,
            format!(
                "the threshold {} is at or inside the baseline {} (the SLI's governed percentile today): the service already fails it; {fix}",
                fmt_num(threshold),
                fmt_num(baseline)
            ),
        )],
    ))
}

/// The request-based baseline: the control arm's SLI quantile at the target's good share (the
/// 0.99 quantile for "< T for 99% of requests", 0.01 for "> T"), from its quantile grid
/// (p99/p1 for analyses without one). The mean would put most of the budget's requests beyond
/// the threshold before any degradation.
pub(crate) fn request_baseline(
    control: &SliSummary,
    target: f64,
    direction: Direction,
) -> AppResult<f64> {
    let level = match direction {
        Direction::LowerIsBetter => target,
        Direction::HigherIsBetter => 1.0 - target,
    };
    // The grid is evenly spaced, so its linear interpolation is `quantile_sorted`'s.
    if let Ok(v) = quantile_sorted(&control.quantiles, level) {
        return Ok(v);
    }
    match direction {
        Direction::LowerIsBetter => Ok(control.p99),
        Direction::HigherIsBetter => baseline(control, Some(1)),
    }
}

/// The largest SLI shift in the harmful direction that an arm produced (measured mean shift).
pub(crate) fn max_tested_shift(a: &Analysis, sli: &Metric) -> f64 {
    let worse = sli.direction.worse_sign();
    a.first_stage
        .iter()
        .filter(|arm| crate::analysis::report::is_about(arm.sli.as_deref(), &sli.key))
        .map(|arm| worse * arm.mean_shift.estimate)
        .fold(0.0, f64::max)
}

/// Refuses a slope-based threshold that the experiment cannot support: one beyond the doses it
/// tested, or on a dose-response that departs from a line, unless the request accepts it.
pub(crate) fn check_support(
    a: &Analysis,
    sli: &Metric,
    kpi: &Metric,
    inputs: &RecommendationInputs,
    degradation: f64,
    tested: f64,
    notes: &mut Vec<String>,
) -> AppResult<()> {
    let mut issues = Vec::new();
    if degradation > tested {
        let msg = format!(
            "the tolerated loss is reached at a degradation of {} but the experiment's largest shift was {}: a linear extrapolation",
            fmt_num(degradation),
            fmt_num(tested)
        );
        if inputs.allow_extrapolation {
            notes.push(format!("Extrapolated (accepted by the request): {msg}."));
        } else {
            issues.push(Issue::field(
                "allow_extrapolation",
                format!("{msg}; set allow_extrapolation to accept it, or test larger doses"),
            ));
        }
    }
    let dose = a
        .dose_response
        .iter()
        .find(|d| d.kpi == kpi.key && d.sli == sli.key);
    if dose.is_some_and(|d| d.linearity.is_none()) {
        notes.push("Linearity could not be tested: the experiment has two arms (one dose), so the slope is a straight line through two points by construction.".to_owned());
    }
    let nonlinear = dose
        .and_then(|d| d.linearity.as_ref())
        .filter(|l| !l.linear);
    if let Some(l) = nonlinear {
        let msg = format!(
            "the dose-response departs from a line, or with several SLIs their effects do not add up across the arms (over-identification p = {:.3})",
            l.p_value
        );
        if inputs.allow_nonlinear {
            notes.push(format!("Nonlinear (accepted by the request): {msg}."));
        } else {
            issues.push(Issue::field("allow_nonlinear", format!("{msg}; a linear threshold would mislead: set allow_nonlinear to accept it, or use a knee")));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid(
            "the experiment does not support this threshold",
            issues,
        ))
    }
}

/// Thresholds from the slope alone: baseline + the SLI degradation that costs the tolerated
/// loss, at the conservative end of the slope's CI, its estimate and its other end.
pub(crate) struct SlopeThreshold {
    pub range: ThresholdRange,
    /// The slope used (the conservative end of its CI).
    pub slope_used: f64,
    /// SLI degradation, in SLI units, that costs the tolerated loss at `slope_used`.
    pub degradation: f64,
}

pub(crate) fn slope_threshold(
    (effect, mu): (&Estimate, f64),
    baseline: f64,
    loss: f64,
    sli: &Metric,
    kpi: &Metric,
) -> AppResult<SlopeThreshold> {
    let harmful = sli.direction.harmful_slope_sign(kpi.direction);
    let (most, least) = if harmful < 0.0 {
        (effect.ci_low, effect.ci_high)
    } else {
        (effect.ci_high, effect.ci_low)
    };
    // SLI degradation (in SLI units) that costs the tolerated relative loss at a slope s.
    // The slope's own sign says whether it is harmful (a negative KPI mean must not flip it).
    let degradation_at = |s: f64| -> Option<f64> {
        let rel = s / mu;
        (s * harmful > 0.0 && rel != 0.0).then(|| loss / rel.abs())
    };
    let worse = sli.direction.worse_sign();
    let degradation = degradation_at(most).ok_or_else(|| {
        AppError::invalid(
            "the conservative end of the slope's CI is not harmful",
            vec![],
        )
    })?;
    let conservative = baseline + worse * degradation;
    let estimate = degradation_at(effect.estimate).map_or(conservative, |d| baseline + worse * d);
    let optimistic = degradation_at(least).map(|d| baseline + worse * d);
    Ok(SlopeThreshold {
        range: ThresholdRange {
            conservative,
            estimate,
            optimistic,
        },
        slope_used: most,
        degradation,
    })
}

/// The threshold after the KPI's knees: the conservative end of a causal knee's interval (the
/// lower end for a lower-is-better SLI), when tighter than the slope-based threshold and beyond
/// the baseline, replaces it; a tighter knee inside the baseline is noted, not used.
/// Observational knees are only noted: they are correlations.
pub(crate) fn apply_knees(
    a: &Analysis,
    sli: &Metric,
    kpi: &Metric,
    baseline: f64,
    slope_based: f64,
    notes: &mut Vec<String>,
) -> (f64, ThresholdSource, Option<KneeUsed>) {
    let worse = sli.direction.worse_sign();
    let mut threshold = slope_based;
    let mut source = ThresholdSource::Slope;
    let mut knee_used = None;
    for t in a
        .threshold
        .iter()
        .filter(|t| t.kpi == kpi.key && t.sli == sli.key)
    {
        let Some(bp) = &t.breakpoint else { continue };
        if t.evidence != EvidenceKind::Causal {
            notes.push(format!(
                "An observational knee at {:.1} {} (95% CI {:.1}–{:.1}) was not used: it is a correlation, not an effect.",
                bp.estimate, sli.unit, bp.ci_low, bp.ci_high
            ));
            continue;
        }
        let end = if worse > 0.0 { bp.ci_low } else { bp.ci_high };
        let tighter = worse * (threshold - end) > 0.0;
        let beyond_baseline = worse * (end - baseline) > 0.0;
        if tighter && beyond_baseline {
            threshold = end;
            source = ThresholdSource::Knee;
            knee_used = Some(KneeUsed {
                estimate: bp.estimate,
                ci_low: bp.ci_low,
                ci_high: bp.ci_high,
                evidence: t.evidence,
            });
        } else if tighter {
            notes.push(format!(
                "A {} knee at {:.1} {} (conservative end {:.1}) lies inside the current baseline ({:.1}) and was not used.",
                t.evidence, bp.estimate, sli.unit, end, baseline
            ));
        }
    }
    (threshold, source, knee_used)
}

/// The threshold on a bucket bound of the SLI's histogram when it declares its buckets, moved
/// towards the strict side (down when good is "below"); a query on a bound the histogram lacks
/// would select nothing. 422 when no bound lies on the strict side.
pub(crate) fn snap_to_bucket(
    sli: &Metric,
    threshold: f64,
    below: bool,
    notes: &mut Vec<String>,
) -> AppResult<f64> {
    let q = &sli.prometheus;
    match (&q.buckets, q.snap(threshold, below)) {
        (None, _) => {
            if q.good_events.is_none() {
                notes.push(format!(
                    "The exported rules query the histogram bucket at {}; declare the SLI's prometheus.buckets so the threshold snaps to a bound the histogram has.",
                    fmt_num(threshold)
                ));
            }
            Ok(threshold)
        }
        (Some(_), Some(bound)) => {
            if bound != threshold {
                notes.push(format!(
                    "Threshold moved from {} to the histogram bucket bound {} (towards the strict side).",
                    fmt_num(threshold),
                    fmt_num(bound)
                ));
            }
            Ok(bound)
        }
        (Some(_), None) => Err(AppError::invalid(
            "the threshold has no histogram bucket bound on its strict side",
            vec![Issue::field(
                "prometheus.buckets",
                format!(
                    "metric '{}' declares no bucket bound {} {}; add finer buckets",
                    sli.key,
                    if below { "at or below" } else { "at or above" },
                    fmt_num(threshold)
                ),
            )],
        )),
    }
}

/// The smallest relative KPI loss the experiment could detect at SLI degradation `degradation`:
/// the analysis's minimum detectable relative change per +100 SLI units, scaled.
pub(crate) fn detectable_loss(
    a: &Analysis,
    sli: &Metric,
    kpi: &Metric,
    degradation: f64,
) -> Option<f64> {
    a.power
        .iter()
        .find(|p| p.kpi == kpi.key && crate::analysis::report::is_about(p.sli.as_deref(), &sli.key))
        .and_then(|p| p.mde_relative_per_100)
        .map(|m| m.abs() * degradation / 100.0)
        .filter(|d| d.is_finite())
}

#[cfg(test)]
mod tests {
    use super::round_conservative;

    #[test]
    fn rounding_is_conservative_to_three_digits() {
        assert_eq!(round_conservative(340.87, true), 340.0);
        assert_eq!(round_conservative(340.17, false), 341.0);
        assert_eq!(round_conservative(0.012345, true), 0.0123);
        assert_eq!(round_conservative(1234.5, true), 1230.0);
    }

    /// Shares near 1 round through their complement: never to an impossible 1.
    #[test]
    fn rounding_near_one_keeps_the_share_possible() {
        assert_eq!(round_conservative(0.999_123_4, false), 0.999_124);
        assert_eq!(round_conservative(0.999_123_4, true), 0.999_123);
        assert_eq!(round_conservative(0.999_951_2, true), 0.999_951_2);
        assert_eq!(round_conservative(0.999_951_23, true), 0.999_951_2);
        assert_eq!(round_conservative(0.999_951_23, false), 0.999_951_3);
        assert!(round_conservative(0.999_999_9, false) < 1.0);
        assert_eq!(round_conservative(0.951_23, true), 0.9512);
    }
}
