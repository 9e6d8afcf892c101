//! Recommendations from correlational evidence: an observational analysis of production
//! history (`analysis::observational`) in place of a validated experiment, for SLIs that are
//! hard to experiment on. The derivation is the experiment's (docs/methodology.md) with the
//! history's slope: the conservative end of the best lag's interval, simultaneous over the lags
//! searched (as its Bonferroni p-value), relative to the KPI's mean over the range; the
//! baseline is production's; the support is the span of SLI values history saw. Everything it
//! yields is labelled `evidence: correlational` (statement, evidence, exports) and approving it
//! needs the reviewer's `acknowledge_correlational_evidence`.

use super::model::{
    Comparison, Derivation, Evaluation, EvidenceBasis, RecommendationEvidence, SloSpec,
    ThresholdSource,
};
use super::recommend::{
    baseline_from, budget_of, fmt_num, pricing, settle, shift_note, statement, target, Derived,
    Production,
};
use super::request::{resolve, CreateRecommendation};
use super::threshold::{governed_percentile, slope_threshold};
use crate::analysis::observational::{simultaneous, ObservationalAnalysis};
use crate::analysis::report::{Estimate, Method};
use crate::domain::metric::{Direction, Metric};
use crate::error::{AppError, AppResult, Issue};

/// The label a correlational SLO's statement ends with.
pub const LABEL: &str = "(evidence: correlational)";

/// The request with the defaults that fit the analysis's statistic: a good share is governed
/// as events, a percentile per window at that percentile. Anything else is refused: the slope
/// is about that statistic and no other.
fn fit_request(
    o: &ObservationalAnalysis,
    sli: &Metric,
    req: &CreateRecommendation,
) -> AppResult<CreateRecommendation> {
    let mut r = req.clone();
    let refuse = |field: &str, why: String| {
        Err(AppError::invalid(
            "the request does not fit the observational analysis",
            vec![Issue::field(field, why)],
        ))
    };
    let statistic = o.parameters.statistic;
    match (statistic.quantile(), r.evaluation) {
        (None, None | Some(Evaluation::Events)) => r.evaluation = Some(Evaluation::Events),
        (None, Some(e)) => {
            return refuse(
                "evaluation",
                format!("the analysis regressed the KPI on the SLI's good share per window, so only events evaluation fits, not {e}"),
            )
        }
        (Some(q), None | Some(Evaluation::Windows)) => {
            let p = (q * 100.0).round() as u32;
            let asked = r
                .percentile
                .map(|p| governed_percentile(p, sli.direction));
            if asked.is_some_and(|a| a != p) || sli.direction == Direction::HigherIsBetter {
                return refuse(
                    "percentile",
                    format!("the analysis's slope is about {statistic} per window; a recommendation from it governs that percentile of a lower-is-better SLI"),
                );
            }
            r.evaluation = Some(Evaluation::Windows);
            r.percentile = Some(p);
        }
        (Some(_), Some(e)) => {
            return refuse(
                "evaluation",
                format!("the analysis regressed the KPI on the SLI's {statistic} per window, so only windows evaluation fits, not {e}"),
            )
        }
    }
    Ok(r)
}

/// 422 unless the analysis found a significant association in the harmful direction on a KPI
/// with a positive mean (a relative loss of a KPI around zero means nothing).
fn usable(o: &ObservationalAnalysis) -> AppResult<()> {
    use crate::analysis::observational::ObservationalStatus;
    if o.verdict.status != ObservationalStatus::Correlational {
        let issues = o
            .verdict
            .reasons
            .iter()
            .map(|r| Issue::field("id", format!("{}: {}", r.code, r.message)))
            .collect();
        return Err(AppError::invalid(
            format!(
                "observational analysis {} found no harmful association ({}); no SLO can be derived from it",
                o.id, o.verdict.status
            ),
            issues,
        ));
    }
    if o.kpi_mean.is_nan() || o.kpi_mean <= 0.0 {
        return Err(AppError::invalid(
            "the KPI's mean is not positive",
            vec![Issue::field(
                "id",
                format!(
                    "{} averaged {} over the range: a relative loss of it means nothing",
                    o.kpi,
                    fmt_num(o.kpi_mean)
                ),
            )],
        ));
    }
    Ok(())
}

/// The best lag's slope with its interval simultaneous over the lags searched.
fn slope_estimate(o: &ObservationalAnalysis) -> Estimate {
    let (ci_low, ci_high) = simultaneous(&o.best, o.parameters.confidence, o.lags.len());
    Estimate {
        estimate: o.best.slope,
        std_error: o.best.std_error,
        ci_low,
        ci_high,
        p_value: Some(o.best.p_value),
        log10_p_value: None,
        adjusted_p_value: Some(o.best_p_adjusted),
        method: Method::NeweyWestHac,
    }
}

/// The largest step towards worse SLI values that history saw from its mean: the span the
/// regression has support over.
fn observed_shift(o: &ObservationalAnalysis, sli: &Metric) -> f64 {
    let far = match sli.direction {
        Direction::LowerIsBetter => o.sli_max.map(|m| m - o.sli_mean),
        Direction::HigherIsBetter => o.sli_min.map(|m| o.sli_mean - m),
    };
    far.unwrap_or(0.0).max(0.0)
}

/// Refuses a degradation beyond what history saw, unless the request accepts extrapolation.
fn check_observed(
    degradation: f64,
    observed: f64,
    allow: bool,
    notes: &mut Vec<String>,
) -> AppResult<()> {
    if degradation <= observed {
        return Ok(());
    }
    let msg = format!(
        "the tolerated loss is reached at a degradation of {} but history's SLI strayed at most {} from its mean in the harmful direction: a linear extrapolation",
        fmt_num(degradation),
        fmt_num(observed)
    );
    if allow {
        notes.push(format!("Extrapolated (accepted by the request): {msg}."));
        return Ok(());
    }
    Err(AppError::invalid(
        "history does not support this threshold",
        vec![Issue::field(
            "allow_extrapolation",
            format!("{msg}; set allow_extrapolation to accept it"),
        )],
    ))
}

/// The caveats every correlational recommendation carries.
fn caveats(o: &ObservationalAnalysis, kpi: &Metric) -> Vec<String> {
    let mut notes = vec![format!(
        "Correlational evidence: the slope comes from production history ({} windows, {} lag), not from an experiment; a common cause (traffic mix, incidents, campaigns) may drive both series. Approving needs the reviewer to acknowledge it; an experiment that validates the effect replaces it (re-validation).",
        o.best.windows,
        if o.best.lag_windows == 0 { "same-window".to_owned() } else { format!("{}-minute", o.best.lag_minutes) }
    )];
    if kpi.ratio.is_some() {
        notes.push(format!(
            "{} is a ratio: its loss is priced at the ratio's mean per unit over the range, and units_per_day counts its series' units.",
            kpi.key
        ));
    }
    notes.push(
        "The window-noise check needs an experiment's per-unit SLI distribution; it was not made."
            .to_owned(),
    );
    notes
}

/// 422: production has no windows of the SLI's kind over the period to read a baseline from.
fn no_baseline(sli: &Metric, inputs: &super::model::RecommendationInputs) -> AppError {
    let kind = match inputs.evaluation {
        Evaluation::Events => "events",
        _ => "histogram",
    };
    AppError::invalid(
        "the SLI has no production windows to read a baseline from",
        vec![Issue::field(
            "window_days",
            format!(
                "no {kind} windows of {} in the last {} days of its series",
                sli.key, inputs.window_days
            ),
        )],
    )
}

/// Derives a recommendation from an observational analysis; 422 when it found no harmful
/// association, when the request does not fit its statistic, or without production windows of
/// the SLI to read the baseline from.
pub fn derive_correlational(
    o: &ObservationalAnalysis,
    (sli, kpi): (&Metric, &Metric),
    req: &CreateRecommendation,
    production: Option<&Production>,
) -> AppResult<Derived> {
    usable(o)?;
    let req = fit_request(o, sli, req)?;
    let mut inputs = resolve(&req, &kpi.key)?;
    if inputs.evaluation == Evaluation::Windows && req.window_minutes.is_none() {
        // The regression's windows are the evidence's resolution.
        let w = (o.window_seconds / 60).max(1);
        if (inputs.window_days * 1440) % w == 0 {
            inputs.window_minutes = Some(w);
        }
    }
    let events = inputs.evaluation == Evaluation::Events;
    let mu = o.kpi_mean;
    let loss = inputs.max_relative_kpi_loss;
    let mut notes = caveats(o, kpi);
    let (period_units, value_per_budget) = pricing(&inputs, mu, &mut notes);
    let target = target(&inputs, value_per_budget, &mut notes);
    let governed = inputs.percentile;
    let (baseline, origin) = baseline_from(production, &inputs, governed, target, sli.direction)
        .ok_or_else(|| no_baseline(sli, &inputs))?;
    let estimate = slope_estimate(o);
    let slope = slope_threshold((&estimate, mu), baseline, loss, sli, kpi)?;
    if !events {
        notes.insert(0, shift_note(governed, target));
    }
    let observed = observed_shift(o, sli);
    check_observed(
        slope.degradation,
        observed,
        inputs.allow_extrapolation,
        &mut notes,
    )?;
    let comparison = Comparison::good_side(sli.direction);
    let (threshold, target) = settle(
        sli,
        production,
        (slope.range.conservative, baseline, target),
        events,
        &mut notes,
    )?;
    let text = if events {
        super::events::statement(sli, target, inputs.window_days)
    } else {
        statement(sli, &inputs, governed, comparison, threshold, target)
    };
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
            baseline_share: events.then_some(baseline),
            statement: format!("{text} {LABEL}"),
        },
        threshold_range: slope.range,
        error_budget: budget_of(
            &inputs,
            events,
            (target, baseline, slope.slope_used / mu),
            mu,
            (period_units, value_per_budget),
        ),
        derivation: Derivation {
            baseline_sli: baseline,
            baseline_source: Some(origin),
            control_kpi_mean: mu,
            slope_used: slope.slope_used,
            relative_slope_per_unit: slope.slope_used / mu,
            max_relative_kpi_loss: loss,
            degradation: slope.degradation,
            threshold_source: ThresholdSource::Slope,
            knee: None,
            max_tested_shift: observed,
            extrapolated: slope.degradation > observed,
            analysis_alpha: Some(o.parameters.alpha),
            analysis_correction: None,
            loose_evidence: false,
            detectable_relative_loss: None,
            window_noise: None,
            notes,
        },
        evidence: evidence_of(o, estimate),
        inputs,
    })
}

/// The evidence block: correlational, never validated.
fn evidence_of(o: &ObservationalAnalysis, slope: Estimate) -> RecommendationEvidence {
    let per_100 = |x: f64| 100.0 * x / o.kpi_mean;
    let relative_per_100 = Estimate {
        estimate: per_100(slope.estimate),
        std_error: per_100(slope.std_error),
        ci_low: per_100(slope.ci_low),
        ci_high: per_100(slope.ci_high),
        ..slope.clone()
    };
    RecommendationEvidence {
        kind: EvidenceBasis::Correlational,
        analysis_id: None,
        observational_analysis_id: Some(o.id),
        experiment: None,
        seed: None,
        fingerprint: None,
        validated: false,
        slope,
        relative_per_100,
        summary: o.summary.clone(),
    }
}
