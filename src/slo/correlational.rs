//! Recommendations from correlational evidence: an observational analysis of production
//! history (`analysis::observational`) in place of a validated experiment, for SLIs that are
//! hard to experiment on. The derivation is the experiment's (docs/methodology.md) with the
//! history's slope: the conservative end of the best lag's interval, simultaneous over the lags
//! searched (as its Bonferroni p-value), relative to the KPI's mean over the range; the
//! baseline is production's; the support is the span of SLI values history saw. Everything it
//! yields is labelled `evidence: correlational` (statement, evidence, exports) and approving it
//! needs the reviewer's `acknowledge_correlational_evidence`.

use super::model::{
    Derivation, Evaluation, EvidenceBasis, RecommendationEvidence, ThresholdSource,
};
use super::recommend::{
    baseline_from, budget_of, fmt_num, pricing, settle, shift_note, spec_of, target, Derived,
    Production,
};
use super::request::{resolve, CreateRecommendation};
use super::threshold::{governed_percentile, slope_threshold};
use crate::analysis::observational::ObservationalAnalysis;
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
            if p == 90 {
                return refuse(
                    "percentile",
                    "the analysis regressed on p90 per window, and SLOs govern p50, p95 or p99: analyse one of those".to_owned(),
                );
            }
            let w = o.window_seconds / 60;
            if r.window_minutes.is_some_and(|m| m != w) {
                return refuse(
                    "window_minutes",
                    format!("the analysis's slope is about {statistic} over {w}-minute windows; a recommendation from it uses those windows"),
                );
            }
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

/// The long-run slope θ = Σ βⱼ of the joint distributed lag with its HAC interval: what a
/// sustained degradation costs once every lag has passed (one lag's slope is only the response
/// within that lag). 422 for analyses stored before it was computed, or when the joint fit
/// could not be made.
fn slope_estimate(o: &ObservationalAnalysis) -> AppResult<Estimate> {
    let l = o.long_run.as_ref().ok_or_else(|| {
        AppError::invalid(
            "the analysis has no long-run effect",
            vec![Issue::field(
                "id",
                format!("observational analysis {} has no joint fit of lags 0..{} (stored before it was computed, or too few complete windows): run the analysis again", o.id, o.parameters.max_lag_windows),
            )],
        )
    })?;
    if l.reliability.is_none() {
        return Err(AppError::invalid(
            "the SLI's per-window noise cannot be read",
            vec![Issue::field(
                "id",
                "too many windows have too few requests (or their quantile in the +Inf bucket) to read the sampling noise of the SLI's per-window value, so its attenuation of the slope cannot be bounded; analyse longer windows or a series with more requests per window",
            )],
        ));
    }
    if let Some(r) = l.reliability.filter(|r| *r < MIN_RELIABILITY) {
        return Err(AppError::invalid(
            "the SLI's per-window values are too noisy",
            vec![Issue::field(
                "id",
                format!("the reliability of the SLI's per-window {} is {r:.2} (below {MIN_RELIABILITY}): sampling noise would flatten the slope by that factor; analyse longer windows or a series with more requests per window", o.parameters.statistic),
            )],
        ));
    }
    // The verdict tests the best lag; what prices the SLO is θ, so θ itself must be
    // significant (its whole interval on one side of zero).
    if l.ci_low <= 0.0 && l.ci_high >= 0.0 {
        return Err(AppError::invalid(
            "the long-run effect is not significant",
            vec![Issue::field(
                "id",
                format!(
                    "the sum of the lag effects, {:.4e}, has a {:.0}% interval from {:.4e} to {:.4e}, which includes 0: history does not show a sustained effect to price",
                    l.slope,
                    100.0 * o.parameters.confidence,
                    l.ci_low,
                    l.ci_high
                ),
            )],
        ));
    }
    Ok(Estimate {
        estimate: l.slope,
        std_error: l.std_error,
        ci_low: l.ci_low,
        ci_high: l.ci_high,
        p_value: Some(l.p_value),
        log10_p_value: None,
        adjusted_p_value: None,
        method: Method::NeweyWestHac,
    })
}

/// Least reliability of the SLI's per-window values (see `analysis::long_run::LongRun`).
pub const MIN_RELIABILITY: f64 = 0.8;

/// Fewest windows of history at or beyond a threshold for it to count as supported.
pub const MIN_WINDOWS_BEYOND: f64 = 20.0;

/// Windows of history at or beyond `threshold` on the harmful side, from the stored percentiles
/// of the SLI's window values (linear between them); None in analyses stored without them.
fn windows_beyond(o: &ObservationalAnalysis, sli: &Metric, threshold: f64) -> Option<f64> {
    let q = &o.sli_percentiles;
    let n = o.sli_windows? as f64;
    if q.len() < 2 {
        return None;
    }
    // Share of windows at or below the threshold.
    let below = match q.iter().position(|v| *v > threshold) {
        None => 1.0,
        Some(0) => 0.0,
        Some(i) => {
            let (lo, hi) = (q[i - 1], q[i]);
            let frac = if hi > lo {
                (threshold - lo) / (hi - lo)
            } else {
                1.0
            };
            ((i - 1) as f64 + frac) / (q.len() - 1) as f64
        }
    };
    Some(match sli.direction {
        Direction::LowerIsBetter => n * (1.0 - below),
        Direction::HigherIsBetter => n * below,
    })
}

/// Refuses a threshold history did not reach: at least [`MIN_WINDOWS_BEYOND`] windows must lie
/// at or beyond it, unless the request accepts extrapolation. Returns whether it extrapolates.
fn check_support(
    o: &ObservationalAnalysis,
    sli: &Metric,
    threshold: f64,
    allow: bool,
    notes: &mut Vec<String>,
) -> AppResult<bool> {
    let beyond = windows_beyond(o, sli, threshold);
    if beyond.is_some_and(|b| b >= MIN_WINDOWS_BEYOND) {
        return Ok(false);
    }
    let msg = match beyond {
        Some(b) => format!(
            "about {} of history's {} windows reached the threshold {}: too few (fewer than {}) to support a linear effect there",
            b.round(),
            o.sli_windows.unwrap_or(0),
            fmt_num(threshold),
            MIN_WINDOWS_BEYOND
        ),
        None => "the analysis predates the SLI's window percentiles, so its support cannot be checked".to_owned(),
    };
    if allow {
        notes.push(format!("Extrapolated (accepted by the request): {msg}."));
        return Ok(true);
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
        "Correlational evidence: the slope is the long-run effect of the SLI on the KPI in production history (the sum of the responses at lags 0..{}, {} windows), not an experiment; a common cause (traffic mix, incidents, campaigns) may drive both series, and one that raises both hides harm. Approving needs the reviewer to acknowledge it. Re-validating with an experiment records whether it confirms the slope but does not change the threshold: recommend again from the experiment to replace it.",
        o.parameters.max_lag_windows,
        o.long_run.as_ref().map_or(0, |l| l.windows)
    )];
    if let Some(r) = o.long_run.as_ref().and_then(|l| l.reliability) {
        notes.push(format!("The SLI's per-window values measure it with sampling noise (reliability {r:.3}); the slope and its interval were divided by that (a first-order correction, exact for one lag)."));
    }
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
    let estimate = slope_estimate(o)?;
    let slope = slope_threshold((&estimate, mu), baseline, loss, sli, kpi)?;
    if !events {
        notes.insert(0, shift_note(governed, target));
    }
    let extrapolated = check_support(
        o,
        sli,
        slope.range.conservative,
        inputs.allow_extrapolation,
        &mut notes,
    )?;
    let (threshold, target) = settle(
        sli,
        production,
        (slope.range.conservative, baseline, target),
        events,
        &mut notes,
    )?;
    Ok(Derived {
        slo: spec_of(
            (sli, kpi),
            &inputs,
            (governed, threshold, target),
            baseline,
            |text| format!("{text} {LABEL}"),
        ),
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
            max_tested_shift: 0.0,
            extrapolated,
            analysis_alpha: Some(o.parameters.alpha),
            analysis_correction: None,
            loose_evidence: o.parameters.alpha > 0.05 || o.parameters.confidence < 0.95,
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
