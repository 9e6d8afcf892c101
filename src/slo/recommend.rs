//! From a validated causal effect and the business's tolerance to an SLO (see
//! docs/methodology.md for the formulas), in steps: the validated effect, the baseline, the
//! slope-based threshold, knees, the target, the error budget and the statement.

use super::model::{
    Comparison, Derivation, ErrorBudget, Evaluation, KneeUsed, RecommendationEvidence,
    RecommendationInputs, SloSpec, ThresholdRange, ThresholdSource,
};
use super::request::resolve;
pub use super::request::CreateRecommendation;
use crate::analysis::report::{
    Analysis, CausalEffect, Correction, Evidence as EvidenceKind, SliSummary,
};
use crate::domain::metric::{Direction, Metric};
use crate::error::{AppError, AppResult, Issue};

/// Everything of a recommendation but its identity and review state.
#[derive(Debug, Clone)]
pub struct Derived {
    pub slo: SloSpec,
    pub threshold_range: ThresholdRange,
    pub error_budget: ErrorBudget,
    pub derivation: Derivation,
    pub evidence: RecommendationEvidence,
    pub inputs: RecommendationInputs,
}

/// Target bounds when derived from a value at risk.
const MIN_TARGET: f64 = 0.9;
const MAX_TARGET: f64 = 0.99999;

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

fn round_significant(x: f64, down: bool) -> f64 {
    let mag = 10f64.powf(x.abs().log10().floor() - 2.0);
    let scaled = x / mag;
    let r = if down { scaled.floor() } else { scaled.ceil() };
    // Undo the scaling without re-introducing binary noise in the last digits.
    let digits = (-(mag.log10().round())).max(0.0) as i32;
    let v = r * mag;
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

pub(crate) fn fmt_num(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The validated causal effect of the SLI on the KPI and the control arm's SLI summary; 422
/// with the verdict's reasons when the effect on that KPI was not validated.
fn validated_effect<'a>(
    a: &'a Analysis,
    sli: &Metric,
    kpi: &Metric,
) -> AppResult<(&'a CausalEffect, &'a SliSummary)> {
    let verdict = a
        .verdicts
        .iter()
        .find(|v| v.kpi == kpi.key)
        .ok_or_else(|| {
            AppError::invalid(
                "the analysis has no verdict for this KPI",
                vec![Issue::field(
                    "kpi",
                    format!("'{}' is not a KPI of analysis {}", kpi.key, a.id),
                )],
            )
        })?;
    if !verdict.validated {
        let issues = verdict
            .reasons
            .iter()
            .map(|r| Issue::field("kpi", format!("{}: {}", r.code, r.message)))
            .collect();
        return Err(AppError::invalid(
            format!("analysis {} did not validate the effect of {} on {}; no SLO can be derived from it", a.id, sli.key, kpi.key),
            issues,
        ));
    }
    let effect = a
        .causal_effects
        .iter()
        .find(|c| c.kpi == kpi.key)
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "validated KPI {} has no causal effect in analysis {}",
                kpi.key,
                a.id
            ))
        })?;
    let control = a
        .variants
        .iter()
        .find(|v| v.control)
        .and_then(|v| v.sli.as_ref())
        .ok_or_else(|| AppError::invalid("the analysis has no control SLI summary", vec![]))?;
    Ok((effect, control))
}

/// The percentile an SLO governs per window for a requested coverage p (95 = "95% of requests
/// good"): the harmful tail, p95 for a lower-is-better SLI and p5 for a higher-is-better one.
fn governed_percentile(p: u32, direction: Direction) -> u32 {
    match direction {
        Direction::LowerIsBetter => p,
        Direction::HigherIsBetter => 100 - p,
    }
}

/// The control arm's SLI at the governed percentile (the mean for request-based SLOs).
fn baseline(control: &SliSummary, governed: Option<u32>) -> AppResult<f64> {
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

/// The largest SLI shift in the harmful direction that an arm produced (measured mean shift).
fn max_tested_shift(a: &Analysis, sli: &Metric) -> f64 {
    let worse = sli.direction.worse_sign();
    a.first_stage
        .iter()
        .map(|arm| worse * arm.mean_shift.estimate)
        .fold(0.0, f64::max)
}

/// Refuses a slope-based threshold that the experiment cannot support: one beyond the doses it
/// tested, or on a dose-response that departs from a line, unless the request accepts it.
fn check_support(
    a: &Analysis,
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
    let nonlinear = a
        .dose_response
        .iter()
        .find(|d| d.kpi == kpi.key)
        .and_then(|d| d.linearity.as_ref())
        .filter(|l| !l.linear);
    if let Some(l) = nonlinear {
        let msg = format!(
            "the dose-response departs from a line (over-identification p = {:.3})",
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
struct SlopeThreshold {
    range: ThresholdRange,
    /// The slope used (the conservative end of its CI).
    slope_used: f64,
    /// SLI degradation, in SLI units, that costs the tolerated loss at `slope_used`.
    degradation: f64,
}

fn slope_threshold(
    effect: &CausalEffect,
    baseline: f64,
    loss: f64,
    sli: &Metric,
    kpi: &Metric,
) -> AppResult<SlopeThreshold> {
    let mu = effect.control_kpi_mean;
    let harmful = sli.direction.harmful_slope_sign(kpi.direction);
    let (most, least) = if harmful < 0.0 {
        (effect.slope.ci_low, effect.slope.ci_high)
    } else {
        (effect.slope.ci_high, effect.slope.ci_low)
    };
    // SLI degradation (in SLI units) that costs the tolerated relative loss at a slope s.
    let degradation_at = |s: f64| -> Option<f64> {
        let rel = s / mu;
        (rel * harmful > 0.0).then(|| loss / rel.abs())
    };
    let worse = sli.direction.worse_sign();
    let degradation = degradation_at(most).ok_or_else(|| {
        AppError::invalid(
            "the conservative end of the slope's CI is not harmful",
            vec![],
        )
    })?;
    let conservative = baseline + worse * degradation;
    let estimate =
        degradation_at(effect.slope.estimate).map_or(conservative, |d| baseline + worse * d);
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
fn apply_knees(
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
    for t in a.threshold.iter().filter(|t| t.kpi == kpi.key) {
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
fn snap_to_bucket(
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
fn detectable_loss(a: &Analysis, kpi: &Metric, degradation: f64) -> Option<f64> {
    a.power
        .iter()
        .find(|p| p.kpi == kpi.key)
        .map(|p| p.mde_relative_per_100.abs() * degradation / 100.0)
        .filter(|d| d.is_finite())
}

/// The target: given, derived from the largest tolerated value at risk, or 0.99.
fn target(
    inputs: &RecommendationInputs,
    value_per_budget: Option<f64>,
    notes: &mut Vec<String>,
) -> f64 {
    match (
        inputs.target,
        inputs.max_budget_value_at_risk,
        value_per_budget,
    ) {
        (Some(t), _, _) => t,
        (None, Some(max), Some(per_budget)) => {
            let t = (1.0 - max / per_budget).clamp(MIN_TARGET, MAX_TARGET);
            notes.push(format!(
                "Target derived from a value at risk of at most {}.",
                fmt_num(max)
            ));
            (t * 1e5).floor() / 1e5
        }
        _ => 0.99,
    }
}

/// The error budget of `target` over the period, in windows or requests and in business terms.
fn error_budget(
    inputs: &RecommendationInputs,
    target: f64,
    mu: f64,
    period_units: Option<f64>,
    value_per_budget: Option<f64>,
) -> ErrorBudget {
    let fraction = 1.0 - target;
    let loss = inputs.max_relative_kpi_loss;
    let total_windows = inputs
        .window_minutes
        .map(|w| u64::from(inputs.window_days) * 1440 / u64::from(w));
    ErrorBudget {
        fraction,
        total_windows,
        allowed_bad_windows: total_windows.map(|n| (fraction * n as f64 + 1e-9).floor() as u64),
        allowed_bad_requests: match inputs.evaluation {
            Evaluation::Requests => period_units.map(|u| fraction * u),
            Evaluation::Windows => None,
        },
        expected_relative_kpi_loss: fraction * loss,
        expected_kpi_units_lost: period_units.map(|u| fraction * loss * mu * u),
        value_at_risk: value_per_budget.map(|v| fraction * v),
    }
}

/// The SLO in words, e.g. "checkout latency p95 < 474 ms in 99% of 5-minute windows over 28 days".
fn statement(
    sli: &Metric,
    inputs: &RecommendationInputs,
    governed: Option<u32>,
    comparison: Comparison,
    threshold: f64,
    target: f64,
) -> String {
    let op = if comparison == Comparison::Lt {
        "<"
    } else {
        ">"
    };
    let target_pct = fmt_num(100.0 * target);
    let unit = if sli.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", sli.unit)
    };
    match (inputs.evaluation, governed, inputs.window_minutes) {
        (Evaluation::Windows, Some(p), Some(w)) => format!(
            "{} p{p} {op} {}{unit} in {target_pct}% of {w}-minute windows over {} days",
            sli.name,
            fmt_num(threshold),
            inputs.window_days
        ),
        _ => format!(
            "{} {op} {}{unit} for {target_pct}% of requests over {} days",
            sli.name,
            fmt_num(threshold),
            inputs.window_days
        ),
    }
}

/// Derives a recommendation from an analysis; 422 with the verdict's reasons when the effect
/// on that KPI was not validated.
pub fn derive(
    a: &Analysis,
    sli: &Metric,
    kpi: &Metric,
    req: &CreateRecommendation,
) -> AppResult<Derived> {
    let inputs = resolve(req, &kpi.key)?;
    let (effect, control) = validated_effect(a, sli, kpi)?;
    let governed = inputs
        .percentile
        .map(|p| governed_percentile(p, sli.direction));
    let baseline = baseline(control, governed)?;
    let mu = effect.control_kpi_mean;
    let loss = inputs.max_relative_kpi_loss;
    let slope = slope_threshold(effect, baseline, loss, sli, kpi)?;
    let mut notes = vec![format!(
        "Assumes a degradation shifts the SLI's distribution, so its p{} moves by the same amount as its mean (as a latency injection does).",
        governed.unwrap_or(50)
    )];
    let tested = max_tested_shift(a, sli);
    let (threshold, source, knee_used) =
        apply_knees(a, sli, kpi, baseline, slope.range.conservative, &mut notes);
    if source == ThresholdSource::Slope {
        check_support(a, kpi, &inputs, slope.degradation, tested, &mut notes)?;
    }
    let loose_evidence = a.parameters.alpha > 0.05 || a.parameters.correction == Correction::None;
    if loose_evidence {
        notes.push(format!(
            "The analysis used alpha {} with correction '{}'; approving needs the reviewer to acknowledge these looser parameters.",
            a.parameters.alpha, a.parameters.correction
        ));
    }
    let detectable = detectable_loss(a, kpi, slope.degradation);
    if let Some(d) = detectable.filter(|d| *d > loss) {
        notes.push(format!(
            "Underpowered for this tolerance: at this degradation the experiment could only detect a loss of {:.2}% (80% power), more than the {:.2}% the SLO protects against.",
            100.0 * d,
            100.0 * loss
        ));
    }
    let lower_is_better = sli.direction == Direction::LowerIsBetter;
    let comparison = if lower_is_better {
        Comparison::Lt
    } else {
        Comparison::Gt
    };
    let threshold = round_conservative(threshold, lower_is_better);
    let threshold = snap_to_bucket(sli, threshold, lower_is_better, &mut notes)?;
    let period_units = inputs
        .units_per_day
        .map(|u| u * f64::from(inputs.window_days));
    let value_per_budget = match (period_units, inputs.value_per_kpi_unit) {
        (Some(units), Some(v)) => Some(loss * mu * units * v),
        _ => None,
    };
    let target = target(&inputs, value_per_budget, &mut notes);
    Ok(Derived {
        slo: SloSpec {
            sli: sli.key.clone(),
            sli_name: sli.name.clone(),
            kpi: kpi.key.clone(),
            percentile: governed,
            comparison,
            threshold,
            unit: sli.unit.clone(),
            target,
            window_days: inputs.window_days,
            evaluation: inputs.evaluation,
            window_minutes: inputs.window_minutes,
            statement: statement(sli, &inputs, governed, comparison, threshold, target),
        },
        threshold_range: slope.range,
        error_budget: error_budget(&inputs, target, mu, period_units, value_per_budget),
        derivation: Derivation {
            baseline_sli: baseline,
            control_kpi_mean: mu,
            slope_used: slope.slope_used,
            relative_slope_per_unit: slope.slope_used / mu,
            max_relative_kpi_loss: loss,
            degradation: slope.degradation,
            threshold_source: source,
            knee: knee_used,
            max_tested_shift: tested,
            extrapolated: slope.degradation > tested,
            analysis_alpha: Some(a.parameters.alpha),
            analysis_correction: Some(a.parameters.correction),
            loose_evidence,
            detectable_relative_loss: detectable,
            notes,
        },
        evidence: RecommendationEvidence {
            analysis_id: a.id,
            experiment: a.experiment.clone(),
            seed: a.parameters.bootstrap.seed,
            fingerprint: a.fingerprint.clone(),
            validated: true,
            slope: effect.slope.clone(),
            relative_per_100: effect.relative_per_100.clone(),
            summary: a.summary.clone(),
        },
        inputs,
    })
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
