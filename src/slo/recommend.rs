//! From a validated causal effect and the business's tolerance to an SLO (see
//! docs/methodology.md for the formulas), in steps: the validated effect, the baseline, the
//! slope-based threshold, knees, the target, the error budget and the statement.

use super::model::{
    Comparison, Derivation, ErrorBudget, Evaluation, KneeUsed, RecommendationEvidence,
    RecommendationInputs, SloSpec, ThresholdRange, ThresholdSource,
};
use crate::analysis::report::{Analysis, CausalEffect, SliSummary};
use crate::domain::metric::{Direction, Metric};
use crate::error::{AppError, AppResult, Issue};

/// Parameters of a recommendation.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRecommendation {
    /// KPI key (default: the experiment's primary KPI).
    pub kpi: Option<String>,
    /// Largest tolerated relative KPI loss, e.g. 0.01 for "lose at most 1% conversion".
    #[schema(example = 0.01)]
    pub max_relative_kpi_loss: f64,
    /// Percentile of the SLI governed per window: 50, 95 (default) or 99.
    pub percentile: Option<u32>,
    /// Share of good windows or requests (default 0.99); or give `max_budget_value_at_risk`.
    pub target: Option<f64>,
    /// Largest currency at risk when the budget is spent; sets the target (needs
    /// `value_per_kpi_unit` and `units_per_day`).
    pub max_budget_value_at_risk: Option<f64>,
    /// Compliance period in days (default 28).
    pub window_days: Option<u32>,
    /// `windows` (default) or `requests`.
    pub evaluation: Option<Evaluation>,
    /// Window length for `windows` evaluation (default 5).
    pub window_minutes: Option<u32>,
    /// Currency per KPI unit (e.g. per conversion; 1 for revenue).
    pub value_per_kpi_unit: Option<f64>,
    /// Units (users, sessions) per day exposed to the SLI.
    pub units_per_day: Option<f64>,
}

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

/// Rounds to 3 significant digits towards the conservative side (down for "<" SLOs).
pub fn round_conservative(x: f64, down: bool) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = 10f64.powf(x.abs().log10().floor() - 2.0);
    let scaled = x / mag;
    let r = if down { scaled.floor() } else { scaled.ceil() };
    // Undo the scaling without re-introducing binary noise in the last digits.
    let digits = (-(mag.log10().round())).max(0.0) as i32;
    let v = r * mag;
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

fn fmt_num(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn resolve(req: &CreateRecommendation, kpi: &str) -> AppResult<RecommendationInputs> {
    let mut issues = Vec::new();
    if !(req.max_relative_kpi_loss > 0.0 && req.max_relative_kpi_loss < 1.0) {
        issues.push(Issue::field(
            "max_relative_kpi_loss",
            "must be in (0, 1), e.g. 0.01 for 1%",
        ));
    }
    let evaluation = req.evaluation.unwrap_or(Evaluation::Windows);
    let percentile = match evaluation {
        Evaluation::Windows => Some(req.percentile.unwrap_or(95)),
        Evaluation::Requests => None,
    };
    if let Some(p) = percentile {
        if ![50, 95, 99].contains(&p) {
            issues.push(Issue::field(
                "percentile",
                "must be 50, 95 or 99 (the percentiles an analysis reports)",
            ));
        }
    }
    if req.target.is_some() && req.max_budget_value_at_risk.is_some() {
        issues.push(Issue::field(
            "target",
            "give either target or max_budget_value_at_risk, not both",
        ));
    }
    if let Some(t) = req.target {
        if !(t > 0.0 && t < 1.0) {
            issues.push(Issue::field("target", "must be in (0, 1), e.g. 0.99"));
        }
    }
    if let Some(v) = req.max_budget_value_at_risk {
        if !(v > 0.0 && v.is_finite()) {
            issues.push(Issue::field("max_budget_value_at_risk", "must be positive"));
        }
        if req.units_per_day.is_none() || req.value_per_kpi_unit.is_none() {
            issues.push(Issue::field(
                "max_budget_value_at_risk",
                "needs units_per_day and value_per_kpi_unit to price the budget",
            ));
        }
    }
    let window_days = req.window_days.unwrap_or(28);
    if !(1..=366).contains(&window_days) {
        issues.push(Issue::field("window_days", "must be between 1 and 366"));
    }
    let window_minutes = match evaluation {
        Evaluation::Windows => Some(req.window_minutes.unwrap_or(5)),
        Evaluation::Requests => None,
    };
    if let Some(w) = window_minutes {
        if !(1..=1440).contains(&w) || (window_days * 1440) % w != 0 {
            issues.push(Issue::field(
                "window_minutes",
                "must be between 1 and 1440 and divide the period evenly",
            ));
        }
    }
    for (field, v) in [
        ("value_per_kpi_unit", req.value_per_kpi_unit),
        ("units_per_day", req.units_per_day),
    ] {
        if v.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
            issues.push(Issue::field(field, "must be positive"));
        }
    }
    if !issues.is_empty() {
        return Err(AppError::invalid(
            "invalid recommendation parameters",
            issues,
        ));
    }
    Ok(RecommendationInputs {
        kpi: kpi.to_owned(),
        max_relative_kpi_loss: req.max_relative_kpi_loss,
        percentile,
        target: req.target,
        max_budget_value_at_risk: req.max_budget_value_at_risk,
        window_days,
        evaluation,
        window_minutes,
        value_per_kpi_unit: req.value_per_kpi_unit,
        units_per_day: req.units_per_day,
    })
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

/// The control arm's SLI at the governed percentile (the mean for request-based SLOs).
fn baseline(control: &SliSummary, percentile: Option<u32>) -> f64 {
    match percentile {
        Some(50) => control.p50,
        Some(99) => control.p99,
        Some(_) => control.p95,
        None => control.mean,
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

/// The threshold after the KPI's knees: a knee tighter than the slope-based threshold and
/// beyond the baseline replaces it; a tighter knee inside the baseline is noted, not used.
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
        let tighter = worse * (threshold - bp.estimate) > 0.0;
        let beyond_baseline = worse * (bp.estimate - baseline) > 0.0;
        if tighter && beyond_baseline {
            threshold = bp.estimate;
            source = ThresholdSource::Knee;
            knee_used = Some(KneeUsed {
                estimate: bp.estimate,
                ci_low: bp.ci_low,
                ci_high: bp.ci_high,
                evidence: t.evidence,
            });
        } else if tighter {
            notes.push(format!(
                "A {} knee at {:.1} {} lies beyond the current baseline ({:.1}) and was not used.",
                t.evidence, bp.estimate, sli.unit, baseline
            ));
        }
    }
    (threshold, source, knee_used)
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
    match (inputs.evaluation, inputs.percentile, inputs.window_minutes) {
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
    let baseline = baseline(control, inputs.percentile);
    let mu = effect.control_kpi_mean;
    let loss = inputs.max_relative_kpi_loss;
    let slope = slope_threshold(effect, baseline, loss, sli, kpi)?;
    let mut notes = vec![format!(
        "Assumes a degradation shifts the SLI's distribution, so its p{} moves by the same amount as its mean (as latency injection does).",
        inputs.percentile.unwrap_or(50)
    )];
    let (threshold, source, knee_used) =
        apply_knees(a, sli, kpi, baseline, slope.range.conservative, &mut notes);
    let lower_is_better = sli.direction == Direction::LowerIsBetter;
    let comparison = if lower_is_better {
        Comparison::Lt
    } else {
        Comparison::Gt
    };
    let threshold = round_conservative(threshold, lower_is_better);
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
            percentile: inputs.percentile,
            comparison,
            threshold,
            unit: sli.unit.clone(),
            target,
            window_days: inputs.window_days,
            evaluation: inputs.evaluation,
            window_minutes: inputs.window_minutes,
            statement: statement(sli, &inputs, comparison, threshold, target),
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
}
