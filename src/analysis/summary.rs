//! The headline (can the experiment be called?) and the plain-English summary.
//!
//! The summary leads with what decides how to read everything else: a sample-ratio mismatch,
//! differential missingness or a weak instrument come first and no effect is stated as a
//! finding; otherwise the headline KPI's effect per SLI step (the largest power of ten within
//! the doses tested), relative to its control
//! level and in absolute terms (percentage points for a binary KPI), with its interval and
//! verdict, then what qualifies it (an arm not significant on its own, a linearity test that
//! fails or is borderline), the first stage, and the other KPIs.

use super::data::{MetricColumn, UnitData};
use super::report::{
    CallStatus, CausalEffect, DoseResponse, Evidence, FirstStageArm, Headline, KpiEffect,
    MetricRole, Parameters, PowerSummary, ReasonCode, SampleRatio, Threshold, Verdict,
};

/// A linearity p-value below this (but at or above alpha) is called borderline.
const BORDERLINE_P: f64 = 0.1;

/// " ms" after a number, or nothing for a unitless metric.
fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// A fraction as a percentage: 2 decimals, or 2 significant digits below 0.01% (a KPI of
/// 1e6 ± 5 moves by millionths: "0.00012%", not "0.00%").
fn pct(x: f64) -> String {
    let v = 100.0 * x;
    if v == 0.0 || !v.is_finite() || v.abs() >= 0.01 {
        return format!("{v:.2}%");
    }
    let decimals = (1 - v.abs().log10().floor() as i32).clamp(2, 15) as usize;
    format!("{v:.decimals$}%")
}

/// A confidence level as a percentage without false rounding: 0.95 → "95", 0.999 → "99.9".
pub fn conf_text(confidence: f64) -> String {
    let t = format!("{:.4}", 100.0 * confidence);
    t.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The SLI step the summary speaks of: the largest power of ten not above the largest dose
/// tested (+100 ms for doses of 100–250 ms, +1 s for 0.5–1 s), so it never extrapolates.
pub fn step(d: &UnitData) -> f64 {
    let top = d.arms.iter().map(|a| a.dose.abs()).fold(0.0, f64::max);
    if top > 0.0 && top.is_finite() {
        10f64.powi(top.log10().floor() as i32)
    } else {
        100.0
    }
}

pub(crate) fn step_text(step: f64) -> String {
    if step >= 1.0 {
        format!("{step:.0}")
    } else {
        format!("{step}")
    }
}

/// "p" or "corrected p", as the analysis's correction says.
fn p_label(p: &Parameters) -> &'static str {
    if p.correction == super::report::Correction::None {
        "p"
    } else {
        "corrected p"
    }
}

/// A p-value as text: three decimals, scientific below 0.001, a bound below 1e-300 (where a
/// double's p-value has underflowed or lost all meaning).
pub fn p_text(p: f64) -> String {
    p_text_as("p", p)
}

/// [`p_text`] with another name for the p-value, e.g. "corrected p".
pub fn p_text_as(label: &str, p: f64) -> String {
    if p < 1e-300 {
        format!("{label} < 1e-300")
    } else if p < 0.001 {
        format!("{label} = {p:.1e}")
    } else {
        format!("{label} = {p:.3}")
    }
}

/// Whether the headline KPI can be called, and why.
pub fn headline(d: &UnitData, verdicts: &[Verdict], power: &[PowerSummary]) -> Option<Headline> {
    let v = verdicts.first()?;
    let has = |c: ReasonCode| v.reasons.iter().any(|r| r.code == c);
    let invalid = [
        ReasonCode::SrmFailed,
        ReasonCode::DifferentialMissingness,
        ReasonCode::WeakInstrument,
        ReasonCode::EstimationFailed,
    ];
    let (status, reason) = if let Some(r) = v.reasons.iter().find(|r| invalid.contains(&r.code)) {
        (
            CallStatus::Invalid,
            format!("fix the experiment before reading it: {}", r.message),
        )
    } else if has(ReasonCode::DirectionMismatch) {
        (
            CallStatus::Invalid,
            format!(
                "a worse {} appears to improve {}: check the metrics' directions and the data before calling it",
                d.sli_metric.key, v.kpi
            ),
        )
    } else if v.validated {
        (
            CallStatus::ReadyToCall,
            format!(
                "the effect of {} on {} is established",
                d.sli_metric.key, v.kpi
            ),
        )
    } else {
        let step = step(d);
        let mde = power
            .iter()
            .find(|p| p.kpi == v.kpi)
            .and_then(|p| p.mde_relative_per_100)
            .map_or_else(|| "unknown".to_owned(), |m| pct(m * step / 100.0));
        (
            CallStatus::KeepRunning,
            format!(
                "not significant: relative effects up to {mde} per +{} {} cannot be ruled out (80% power); run longer or with larger doses, or call it as no effect larger than that",
                step_text(step),
                d.sli_metric.unit
            ),
        )
    };
    Some(Headline {
        kpi: v.kpi.clone(),
        status,
        reason,
    })
}

/// The KPI's level before and after +`step` SLI units, and the absolute change: percentage
/// points for a binary KPI, the metric's unit otherwise. The level after is left out when it
/// would leave a proportion's [0, 1] (a straight line taken too far).
fn levels(m: &MetricColumn, c: &CausalEffect, step: f64) -> String {
    let before = c.control_kpi_mean;
    let change = step * c.slope.estimate;
    if m.is_binary() {
        let after = before + change;
        let to = if (0.0..=1.0).contains(&after) {
            format!(" to {}", pct(after))
        } else {
            String::new()
        };
        format!(
            "from {}{to}, {:+.2} percentage points",
            pct(before),
            100.0 * change
        )
    } else {
        let unit = unit_suffix(&m.metric.unit);
        format!(
            "from {before:.4}{unit} to {:.4}{unit}, {change:+.4}{unit}",
            before + change
        )
    }
}

/// The headline KPI's effect sentence, per +`step` SLI units; a result that is not significant
/// is stated as such, not as a change.
fn effect_sentence(
    d: &UnitData,
    p: &Parameters,
    m: &MetricColumn,
    c: &CausalEffect,
    significant: bool,
) -> String {
    let sli = &d.sli_metric;
    let unit = unit_suffix(&sli.unit);
    let step = step(d);
    let r = &c.relative_per_100;
    let k = step / 100.0;
    let ci = format!(
        "{}% CI {} to {} relative, {}",
        conf_text(p.confidence),
        pct(k * r.ci_low),
        pct(k * r.ci_high),
        p_text_as(p_label(p), r.adjusted_p_value.or(r.p_value).unwrap_or(1.0))
    );
    if !significant {
        return format!(
            "No significant effect of +{}{unit} of {} on {} was found: the estimate is {} relative ({})",
            step_text(step),
            sli.name,
            c.kpi,
            pct(k * r.estimate),
            ci
        );
    }
    let verb = if r.estimate < 0.0 { "lowers" } else { "raises" };
    format!(
        "Each +{}{unit} of {} {verb} {} by {} relative ({}; {ci})",
        step_text(step),
        sli.name,
        c.kpi,
        pct((k * r.estimate).abs()),
        levels(m, c, step),
    )
}

/// The headline KPI's causal threshold, when one was found.
fn knee_sentence(d: &UnitData, p: &Parameters, kpi: &str, thresholds: &[Threshold]) -> String {
    let found = thresholds
        .iter()
        .find(|t| t.kpi == kpi && t.evidence == Evidence::Causal)
        .and_then(|t| t.breakpoint.as_ref());
    match found {
        Some(b) => {
            let unit = unit_suffix(&d.sli_metric.unit);
            let side = if d.sli_metric.direction.worse_sign() > 0.0 {
                "above"
            } else {
                "below"
            };
            // Enough decimals to tell the interval's ends apart (none for a latency in ms; five
            // for an availability knee between 0.99896 and 0.99949).
            let width = (b.ci_high - b.ci_low).abs();
            let decimals = if width > 0.0 && width.is_finite() {
                (1 - width.log10().floor() as i32).clamp(0, 12) as usize
            } else {
                0
            };
            let v = |x: f64| format!("{x:.decimals$}");
            format!(
                " The harm grows {side} {}{unit} of {} ({}% CI {}–{}{unit}): a causal threshold.",
                v(b.estimate),
                d.sli_metric.name,
                conf_text(p.confidence),
                v(b.ci_low),
                v(b.ci_high)
            )
        }
        None => String::new(),
    }
}

/// What qualifies the headline effect: arms not significant on their own, and linearity.
fn caveats(p: &Parameters, kpi: &str, effects: &[KpiEffect], dose: &[DoseResponse]) -> String {
    let mut s = String::new();
    for e in effects
        .iter()
        .filter(|e| e.metric == kpi && e.role == MetricRole::Kpi)
    {
        let q = e
            .primary
            .adjusted_p_value
            .or(e.primary.p_value)
            .unwrap_or(1.0);
        if q >= p.alpha {
            s.push_str(&format!(
                " On its own, the {} arm's change in {kpi} is not significant ({}).",
                e.variant,
                p_text_as(p_label(p), q)
            ));
        }
    }
    if let Some(l) = dose
        .iter()
        .find(|r| r.kpi == kpi)
        .and_then(|r| r.linearity.as_ref())
    {
        if !l.linear {
            s.push_str(&format!(
                " The arms do not lie on a line (Sargan {}): the figure above averages a curve.",
                p_text(l.p_value)
            ));
        } else if l.p_value < BORDERLINE_P {
            s.push_str(&format!(
                " Linearity is borderline (Sargan {}).",
                p_text(l.p_value)
            ));
        }
    }
    s
}

/// The design problem that voids the headline, as the summary's opening sentence.
fn design_problem(d: &UnitData, srm: &SampleRatio, v: &Verdict) -> Option<String> {
    let has = |c: ReasonCode| v.reasons.iter().any(|r| r.code == c);
    if has(ReasonCode::SrmFailed) {
        return Some(format!(
            "Sample-ratio mismatch: units are not split between the arms as planned (χ² = {:.2}, {}), so no estimate of this experiment can be trusted, not even how far the arms moved the SLI; fix the assignment before reading it.",
            srm.chi_square,
            p_text(srm.p_value)
        ));
    }
    if has(ReasonCode::DifferentialMissingness) {
        return Some(format!(
            "Whether a unit has an SLI value ({}) depends on its arm ({}), which biases every slope: no effect is stated until that is explained.",
            d.sli_keys(),
            p_text(srm.analysed_p_value.unwrap_or(f64::NAN))
        ));
    }
    None
}

/// The analysis's summary (see the module documentation).
#[allow(clippy::too_many_arguments)]
pub fn summary(
    d: &UnitData,
    p: &Parameters,
    srm: &SampleRatio,
    causal: &[Option<CausalEffect>],
    verdicts: &[Verdict],
    first: &[FirstStageArm],
    effects: &[KpiEffect],
    dose: &[DoseResponse],
    thresholds: &[Threshold],
) -> String {
    let sli = &d.sli_metric;
    let unit = unit_suffix(&sli.unit);
    let kpi = d.kpis().next().map(|(_, m)| m);
    let problem = verdicts.first().and_then(|v| design_problem(d, srm, v));
    let problem_free = problem.is_none();
    let mut s = match (causal.first().and_then(Option::as_ref), verdicts.first(), kpi) {
        _ if problem.is_some() => problem.unwrap_or_default(),
        (Some(c), Some(v), _) if c.weak_instrument && c.conditional_first_stage_f.is_some() => format!(
            "The arms did not move {} independently of {} (conditional first-stage F = {:.1} < 10), so its own effect on {} cannot be estimated; not validated ({}).",
            sli.name,
            c.holding_fixed.join(" and "),
            c.conditional_first_stage_f.unwrap_or(f64::NAN),
            c.kpi,
            codes(v)
        ),
        (Some(c), Some(v), _) if c.weak_instrument => format!(
            "The arms barely moved {} (effective first-stage F = {:.1} < 10), so its effect on {} cannot be estimated reliably; not validated ({}).",
            sli.name,
            c.first_stage_effective_f.unwrap_or(f64::NAN),
            c.kpi,
            codes(v)
        ),
        (Some(c), Some(v), Some(m)) => {
            let status = if v.validated {
                "validated".to_owned()
            } else {
                format!("not validated ({})", codes(v))
            };
            let significant = !v.reasons.iter().any(|r| r.code == ReasonCode::CiIncludesZero);
            format!(
                "{}; {status}.{}{}",
                effect_sentence(d, p, m, c, significant),
                caveats(p, &c.kpi, effects, dose),
                knee_sentence(d, p, &c.kpi, thresholds)
            )
        }
        (_, Some(v), _) => format!(
            "The effect of {} on {} could not be estimated: {}.",
            sli.name,
            v.kpi,
            v.reasons
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        _ => "No KPI could be analysed.".to_owned(),
    };
    let arm = first
        .iter()
        .max_by(|a, b| a.planned_dose.abs().total_cmp(&b.planned_dose.abs()));
    if let Some(arm) = arm.filter(|_| problem_free) {
        // About three significant digits of the dose (+197.1 ms, −0.0497 share), at least one
        // decimal.
        let d = arm.planned_dose.abs();
        let decimals = if d > 0.0 {
            (2 - d.log10().floor() as i64).clamp(1, 6) as usize
        } else {
            1
        };
        s.push_str(&format!(
            " The {} arm moved mean {} by {:+.decimals$}{unit} (planned {:+.decimals$}{unit}).",
            arm.variant, sli.name, arm.mean_shift.estimate, arm.planned_dose
        ));
    }
    // The other KPIs by name, with the reason codes of those not validated.
    let (ok, not): (Vec<&Verdict>, Vec<&Verdict>) =
        verdicts.iter().skip(1).partition(|v| v.validated);
    // With several SLIs each paragraph speaks of one: say which.
    let of_sli = if d.extra_slis.is_empty() {
        String::new()
    } else {
        format!(" for {}", sli.name)
    };
    if !ok.is_empty() {
        let names: Vec<&str> = ok.iter().map(|v| v.kpi.as_str()).collect();
        s.push_str(&format!(" Also validated{of_sli}: {}.", names.join(", ")));
    }
    if !not.is_empty() {
        let names: Vec<String> = not
            .iter()
            .map(|v| format!("{} ({})", v.kpi, codes(v)))
            .collect();
        s.push_str(&format!(" Not validated{of_sli}: {}.", names.join("; ")));
    }
    s
}

fn codes(v: &Verdict) -> String {
    v.reasons
        .iter()
        .map(|r| r.code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::pct;

    #[test]
    fn small_relative_changes_keep_two_significant_digits() {
        assert_eq!(pct(-0.2509), "-25.09%");
        assert_eq!(pct(0.0001), "0.01%");
        assert_eq!(pct(0.0), "0.00%");
        // A KPI of 1e6 moved by 0.2 per +100 ms: not "0.00%".
        assert_eq!(pct(-1.973e-7), "-0.000020%");
        assert_eq!(pct(2.4e-9), "0.00000024%");
    }
}
