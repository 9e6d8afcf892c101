//! Power, verdicts and the plain-English summary.

use super::data::UnitData;
use super::report::{
    CausalEffect, Parameters, PowerSummary, Reason, ReasonCode, SampleRatio, VariantSummary,
    Verdict,
};
use super::summary::{conf_text, p_text, p_text_as};
use crate::stats::dist::norm_ppf;
use crate::stats::power::mde_difference;

/// Power the MDE is computed for.
pub const TARGET_POWER: f64 = 0.8;

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// Sensitivity per KPI: the highest-dose arm's minimum detectable lift, and the slope's.
pub fn power(
    d: &UnitData,
    p: &Parameters,
    variants: &[VariantSummary],
    causal: &[Option<CausalEffect>],
) -> Vec<PowerSummary> {
    let top = d
        .arms
        .iter()
        .enumerate()
        .filter(|(a, _)| *a != d.control)
        .max_by(|x, y| x.1.dose.abs().total_cmp(&y.1.dose.abs()))
        .map(|(a, _)| a);
    let z = norm_ppf(1.0 - p.alpha / 2.0) + norm_ppf(TARGET_POWER);
    // Mean, SD and n of a metric in an arm, from the variants section.
    let summary =
        |arm: usize, key: &str| variants.get(arm)?.metrics.iter().find(|m| m.metric == key);
    let mut out = Vec::new();
    for ((_, m), c) in d.kpis().zip(causal) {
        let (Some(top), Some(c)) = (top, c) else {
            continue;
        };
        let key = m.metric.key.as_str();
        let mde_relative = summary(top, key)
            .zip(summary(d.control, key))
            .and_then(|(t, ctl)| {
                let mde = mde_difference(
                    t.std_dev * t.std_dev,
                    t.units as f64,
                    ctl.std_dev * ctl.std_dev,
                    ctl.units as f64,
                    p.alpha,
                    TARGET_POWER,
                )
                .ok()?;
                (ctl.mean != 0.0).then(|| mde / ctl.mean.abs())
            });
        let mde_per_100 = Some(z * c.relative_per_100.std_error).filter(|v| v.is_finite());
        let observed = c.relative_per_100.estimate;
        let excludes_zero = c.slope.ci_low > 0.0 || c.slope.ci_high < 0.0;
        out.push(PowerSummary {
            kpi: m.metric.key.clone(),
            sli: Some(d.sli_metric.key.clone()),
            variant: d.arms[top].key.clone(),
            mde_relative,
            mde_relative_per_100: mde_per_100,
            observed_relative_per_100: observed,
            informative: excludes_zero || mde_per_100.is_some_and(|m| m <= observed.abs()),
        });
    }
    out
}

/// The reasons the experiment's design voids every verdict: a sample-ratio mismatch, and a
/// share of units with an SLI value that depends on the arm.
fn design_reasons(d: &UnitData, srm: &SampleRatio) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if !srm.passed {
        reasons.push(Reason {
            code: ReasonCode::SrmFailed,
            message: format!(
                "sample-ratio mismatch: units are not split as planned (χ² = {:.2}, {} < {})",
                srm.chi_square,
                p_text(srm.p_value),
                srm.alarm_p_value
            ),
        });
    }
    if !srm.analysed_passed {
        reasons.push(Reason {
            code: ReasonCode::DifferentialMissingness,
            message: format!(
                "the share of units with an SLI value ({}) differs between arms ({} with a value of those assigned, {}): whether the SLI is measured depends on the arm (timeouts, abandonment), which biases the slope",
                d.sli_keys(),
                srm.variants
                    .iter()
                    .zip(srm.analysed.iter().zip(&srm.observed))
                    .map(|(v, (a, o))| format!("{v} {a}/{o}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                p_text(srm.analysed_p_value.unwrap_or(f64::NAN))
            ),
        });
    }
    reasons
}

/// Why the slope's instrument is weak, when it is: with several SLIs, this SLI not moved apart
/// from the others, or another SLI it holds fixed not moved; otherwise a weak first stage.
fn weak_reason(d: &UnitData, m: &super::data::MetricColumn, c: &CausalEffect) -> Option<Reason> {
    if !c.weak_instrument {
        return None;
    }
    let own_ok = |cf: f64| {
        use super::causal::WEAK_INSTRUMENT_F;
        cf >= WEAK_INSTRUMENT_F
            && c.first_stage_effective_f
                .is_some_and(|f| f >= WEAK_INSTRUMENT_F)
    };
    let message = match c.conditional_first_stage_f {
        Some(cf) if own_ok(cf) => format!(
            "weak instrument: the arms move {} well (conditional first-stage F = {cf:.1}) but not {} enough, and this slope holds it fixed: with an SLI the design cannot separate, no slope of {} is identified; check the first stage",
            d.sli_metric.key,
            c.holding_fixed.join(" or "),
            m.metric.key,
        ),
        Some(cf) => format!(
            "weak instrument: the arms do not move {} independently of {} (conditional Sanderson–Windmeijer first-stage F = {cf:.1}; own effective F = {:.1}; both must reach 10): check that every SLI moved as planned in the first stage",
            d.sli_metric.key,
            c.holding_fixed.join(" and "),
            c.first_stage_effective_f.unwrap_or(f64::NAN),
        ),
        None => format!(
            "weak instrument: the arms barely moved {} (effective first-stage F = {:.1} < 10; classical F = {:.1})",
            d.sli_metric.key,
            c.first_stage_effective_f.unwrap_or(f64::NAN),
            c.first_stage_f
        ),
    };
    Some(Reason {
        code: ReasonCode::WeakInstrument,
        message,
    })
}

/// Verdict per KPI: validated only when SRM passes, the first stage is strong, the slope's
/// corrected p-value is below alpha (its CI excludes zero) and its sign is the harmful one.
pub fn verdicts(
    d: &UnitData,
    p: &Parameters,
    srm: &SampleRatio,
    causal: &[Option<CausalEffect>],
    failures: &[Option<String>],
    power: &[PowerSummary],
) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (((_, m), c), failure) in d.kpis().zip(causal).zip(failures) {
        let mut reasons = design_reasons(d, srm);
        let Some(c) = c else {
            reasons.push(Reason {
                code: ReasonCode::EstimationFailed,
                message: failure
                    .clone()
                    .unwrap_or_else(|| "the causal slope could not be estimated".into()),
            });
            out.push(Verdict {
                kpi: m.metric.key.clone(),
                sli: Some(d.sli_metric.key.clone()),
                validated: false,
                reasons,
            });
            continue;
        };
        reasons.extend(weak_reason(d, m, c));
        let adjusted = c.slope.adjusted_p_value.or(c.slope.p_value).unwrap_or(1.0);
        let significant = adjusted < p.alpha;
        // Effects per the summary's SLI step (+100 ms, +0.01 share), not per +100 units.
        let step = super::summary::step(d);
        let (per, k) = (
            format!("+{} {}", super::summary::step_text(step), d.sli_metric.unit),
            step / 100.0,
        );
        if !significant {
            reasons.push(Reason {
                code: ReasonCode::CiIncludesZero,
                message: format!(
                    "the effect is not significant at alpha = {}: {} relative per {per} ({}% CI {} to {}), {}",
                    p.alpha,
                    pct(k * c.relative_per_100.estimate),
                    conf_text(p.confidence),
                    pct(k * c.relative_per_100.ci_low),
                    pct(k * c.relative_per_100.ci_high),
                    p_text_as("corrected p", adjusted)
                ),
            });
            if let Some(pw) = power.iter().find(|pw| pw.kpi == m.metric.key) {
                let mde = pw.mde_relative_per_100.unwrap_or(f64::INFINITY);
                if mde > pw.observed_relative_per_100.abs() {
                    reasons.push(Reason {
                        code: ReasonCode::Underpowered,
                        message: format!(
                            "underpowered: the minimum detectable relative effect, {} per {per}, exceeds the observed {}",
                            pct(k * mde),
                            pct(k * pw.observed_relative_per_100.abs())
                        ),
                    });
                }
            }
        }
        let harmful = d
            .sli_metric
            .direction
            .harmful_slope_sign(m.metric.direction);
        if significant && c.slope.estimate * harmful < 0.0 {
            reasons.push(Reason {
                code: ReasonCode::DirectionMismatch,
                message: format!(
                    "direction mismatch: a worse {} appears to improve {}, contrary to the metrics' directions",
                    d.sli_metric.key, m.metric.key
                ),
            });
        }
        out.push(Verdict {
            kpi: m.metric.key.clone(),
            sli: Some(d.sli_metric.key.clone()),
            validated: reasons.is_empty(),
            reasons,
        });
    }
    out
}
