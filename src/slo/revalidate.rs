//! Re-validation: does a newer analysis of an SLO's SLI and KPI still support it? Confirmed
//! when the new verdict on the KPI is validated and the CI of the new relative slope (KPI change
//! per +100 SLI units relative to the control mean, which is what the threshold rests on)
//! overlaps the one the SLO was published on; otherwise stale, with reasons (`verdict_failed`,
//! `slope_changed`). Relative, so a KPI whose level moved with the season but whose sensitivity
//! did not is not called stale. Non-overlapping 95% intervals are a strict test of a change
//! (roughly p < 0.006 for equal widths); overlap does not prove the slopes equal.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::analysis::report::{Analysis, Estimate};
use crate::domain::text_enum;

text_enum! {
    /// Whether an SLO's evidence still holds.
    ValidationState { Confirmed => "confirmed", Stale => "stale" }
}

/// Why an SLO is stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidationReason {
    /// `verdict_failed`, `slope_changed` or (correlational SLOs) `slope_steeper`.
    pub code: String,
    pub message: String,
}

/// One re-validation of a published SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Revalidation {
    pub id: i64,
    pub slo_id: i64,
    /// The new analysis.
    pub analysis_id: i64,
    pub at: DateTime<Utc>,
    /// Who asked (the API token's name).
    pub actor: String,
    pub outcome: ValidationState,
    pub reasons: Vec<ValidationReason>,
}

/// The re-validations of an SLO, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevalidationList {
    pub items: Vec<Revalidation>,
    /// Cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Whether two intervals share a point.
fn overlap(a: &Estimate, b: &Estimate) -> bool {
    a.ci_low <= b.ci_high && b.ci_low <= a.ci_high
}

/// `slope_steeper` when the experiment's relative slope `now` is more harmful than the end of
/// the published correlational interval on the harmful side (`harmful` < 0: falling KPI).
fn steeper(
    now: f64,
    published: &Estimate,
    harmful: f64,
    (kpi, unit): (&str, &str),
) -> Option<ValidationReason> {
    let end = if harmful < 0.0 {
        published.ci_low
    } else {
        published.ci_high
    };
    (now * harmful > end * harmful).then(|| ValidationReason {
        code: "slope_steeper".into(),
        message: format!(
            "the experiment's effect on {kpi} per +100 {unit} ({:.4}%) is steeper than the correlational slope the threshold rests on ({:.4}%): recommend again from the experiment",
            100.0 * now,
            100.0 * end,
        ),
    })
}

/// The outcome of re-validating evidence `published` (the relative causal slope per +100 SLI
/// units the SLO was published on) with analysis `a` of KPI `kpi`.
pub fn compare(
    published: &Estimate,
    a: &Analysis,
    (sli, kpi): (&str, &str),
    unit: &str,
    correlational: Option<f64>,
) -> (ValidationState, Vec<ValidationReason>) {
    let mut reasons = Vec::new();
    let about = |tag: Option<&str>| crate::analysis::report::is_about(tag, sli);
    match a
        .verdicts
        .iter()
        .find(|v| v.kpi == kpi && about(v.sli.as_deref()))
    {
        Some(v) if v.validated => {}
        Some(v) => reasons.push(ValidationReason {
            code: "verdict_failed".into(),
            message: format!(
                "analysis {} does not validate the effect on {kpi}: {}",
                a.id,
                v.reasons
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }),
        None => reasons.push(ValidationReason {
            code: "verdict_failed".into(),
            message: format!("analysis {} has no verdict on {kpi}", a.id),
        }),
    }
    if let Some(e) = a
        .causal_effects
        .iter()
        .find(|e| e.kpi == kpi && e.sli == sli)
    {
        let now = &e.relative_per_100;
        if !overlap(now, published) {
            reasons.push(ValidationReason {
                code: "slope_changed".into(),
                message: format!(
                    "the relative effect on {kpi} per +100 {unit}, CI [{:.4}%, {:.4}%], no longer overlaps the published [{:.4}%, {:.4}%]",
                    100.0 * now.ci_low,
                    100.0 * now.ci_high,
                    100.0 * published.ci_low,
                    100.0 * published.ci_high
                ),
            });
        }
    }
    // A correlational SLO's threshold rests on the harmful end of history's slope
    // (`correlational` = the harmful sign from the metrics' directions): an experiment confirms
    // it only when its estimate is no steeper, else the threshold may be too loose. The
    // estimate, not the experiment's interval end, so that a noisy experiment alone does not
    // mark it stale.
    if let Some((e, harmful)) = correlational.and_then(|h| {
        a.causal_effects
            .iter()
            .find(|e| e.kpi == kpi && e.sli == sli)
            .map(|e| (e, h))
    }) {
        reasons.extend(steeper(
            e.relative_per_100.estimate,
            published,
            harmful,
            (kpi, unit),
        ));
    }
    let state = if reasons.is_empty() {
        ValidationState::Confirmed
    } else {
        ValidationState::Stale
    };
    (state, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(estimate: f64, ci_low: f64, ci_high: f64) -> Estimate {
        Estimate {
            estimate,
            std_error: (ci_high - ci_low) / 3.92,
            ci_low,
            ci_high,
            p_value: None,
            log10_p_value: None,
            adjusted_p_value: None,
            method: crate::analysis::report::Method::DeltaMethod,
        }
    }

    #[test]
    fn an_experiment_steeper_than_the_harmful_end_makes_a_correlational_slo_stale() {
        // History: conversion −0.5% per +100 ms, CI [−0.8%, −0.2%]; harm is a fall.
        let published = interval(-0.005, -0.008, -0.002);
        let at = |now: f64, harmful: f64| steeper(now, &published, harmful, ("conversion", "ms"));
        let r = at(-0.009, -1.0).unwrap();
        assert_eq!(r.code, "slope_steeper");
        assert!(
            r.message.contains("(-0.9000%)") && r.message.contains("(-0.8000%)"),
            "{}",
            r.message
        );
        // Within the interval, or milder than it, confirms.
        assert!(at(-0.008, -1.0).is_none());
        assert!(at(-0.003, -1.0).is_none());
        assert!(at(0.001, -1.0).is_none());
        // A KPI whose rise is harm (complaints): the upper end is the harmful one.
        let published = interval(0.005, 0.002, 0.008);
        let at = |now: f64| steeper(now, &published, 1.0, ("complaints", "ms"));
        assert!(at(0.009).is_some());
        assert!(at(0.007).is_none());
    }
}
