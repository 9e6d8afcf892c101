//! Re-validation: does a newer analysis of an SLO's SLI and KPI still support it? Confirmed
//! when the new verdict on the KPI is validated and the new causal slope's CI overlaps the one
//! the SLO was published on; otherwise stale, with reasons (`verdict_failed`,
//! `slope_changed`).

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
    /// `verdict_failed` or `slope_changed`.
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
}

/// Whether two intervals share a point.
fn overlap(a: &Estimate, b: &Estimate) -> bool {
    a.ci_low <= b.ci_high && b.ci_low <= a.ci_high
}

/// The outcome of re-validating evidence `published` (the causal slope the SLO was published
/// on) with analysis `a` of KPI `kpi`.
pub fn compare(
    published: &Estimate,
    a: &Analysis,
    kpi: &str,
) -> (ValidationState, Vec<ValidationReason>) {
    let mut reasons = Vec::new();
    match a.verdicts.iter().find(|v| v.kpi == kpi) {
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
    if let Some(e) = a.causal_effects.iter().find(|e| e.kpi == kpi) {
        if !overlap(&e.slope, published) {
            reasons.push(ValidationReason {
                code: "slope_changed".into(),
                message: format!(
                    "the causal slope's CI [{:.6}, {:.6}] no longer overlaps the published [{:.6}, {:.6}]",
                    e.slope.ci_low, e.slope.ci_high, published.ci_low, published.ci_high
                ),
            });
        }
    }
    let state = if reasons.is_empty() {
        ValidationState::Confirmed
    } else {
        ValidationState::Stale
    };
    (state, reasons)
}
