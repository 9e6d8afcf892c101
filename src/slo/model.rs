//! Recommendation and SLO documents (API contract).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::analysis::report::{Correction, Estimate, Evidence as EvidenceKind};
pub use crate::domain::review::{Action, Decision, RecommendationStatus, SloStatus};
use crate::domain::text_enum;

text_enum! {
    /// How compliance is evaluated: share of good time windows (`windows`), share of requests
    /// whose SLI value is on the good side of a threshold (`requests`), or, for an SLI that is
    /// itself a share of good events (faithful answers, caught frauds), that share over the
    /// period (`events`: "≥ T% of answers faithful over 28 days"; the target is derived from
    /// the tolerated loss).
    Evaluation { Windows => "windows", Requests => "requests", Events => "events" }
}

text_enum! {
    /// Comparison that makes an SLI value good (OpenSLO `op`).
    Comparison { Lt => "lt", Gt => "gt" }
}

impl Comparison {
    /// The side of the threshold that is good: below for a lower-is-better SLI.
    pub fn good_side(direction: crate::domain::metric::Direction) -> Comparison {
        match direction {
            crate::domain::metric::Direction::LowerIsBetter => Comparison::Lt,
            crate::domain::metric::Direction::HigherIsBetter => Comparison::Gt,
        }
    }

    /// The operator as written in a statement: `<` or `>`.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Gt => ">",
        }
    }
}

text_enum! {
    /// Where the threshold came from.
    ThresholdSource { Slope => "slope", Knee => "knee" }
}

impl SloSpec {
    /// The error ratio an unchanged service runs at, which alerts do not count as burning:
    /// 1 − baseline share for an events SLO (below the budget `fraction`), else 0. An alert
    /// with burn factor f fires above floor + f × (fraction − floor): f times too fast a spend
    /// of the headroom the tolerated loss allows.
    pub fn error_floor(&self, fraction: f64) -> f64 {
        match (self.evaluation, self.baseline_share) {
            (Evaluation::Events, Some(b)) => (1.0 - b).clamp(0.0, fraction.max(0.0)),
            _ => 0.0,
        }
    }

    /// Share of a window's events that must be good for the window to be good (windows
    /// evaluation): 0.95 for "p95 < T" and for "p5 > T".
    pub fn window_good_share(&self) -> Option<f64> {
        self.percentile.map(|p| {
            let p = f64::from(p) / 100.0;
            match self.comparison {
                Comparison::Lt => p,
                Comparison::Gt => 1.0 - p,
            }
        })
    }
}

/// The objective itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SloSpec {
    pub sli: String,
    /// Human name of the SLI.
    pub sli_name: String,
    pub kpi: String,
    /// Percentile of the SLI governed per window (windows evaluation): the harmful tail, e.g. 95
    /// for a lower-is-better SLI ("p95 < T") and 5 for a higher-is-better one ("p5 > T"); null
    /// for requests.
    pub percentile: Option<u32>,
    /// Good when `SLI <op> threshold`.
    pub comparison: Comparison,
    /// In the SLI's unit, rounded to 3 significant digits on the conservative side.
    pub threshold: f64,
    pub unit: String,
    /// Share of windows (or requests) that must be good, e.g. 0.99.
    pub target: f64,
    pub window_days: u32,
    pub evaluation: Evaluation,
    /// Length of an evaluation window (windows evaluation).
    pub window_minutes: Option<u32>,
    /// The SLO in words.
    pub statement: String,
    /// Events SLOs: the good share the target was derived from (the baseline). Its error
    /// (1 − share) is spent by the unchanged service, so burn-rate alerts measure the
    /// headroom above it (see [`SloSpec::error_floor`]); null for other SLOs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_share: Option<f64>,
}

/// Thresholds implied by the two ends of the slope's CI and by its estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThresholdRange {
    /// From the most harmful end of the CI (the recommended threshold before rounding and the knee).
    pub conservative: f64,
    /// From the slope estimate.
    pub estimate: f64,
    /// From the least harmful end; null when that end is not harmful (no degradation costs the tolerated loss).
    pub optimistic: Option<f64>,
}

/// The error budget, and what spending it costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBudget {
    /// 1 − target.
    pub fraction: f64,
    /// Windows per period (windows evaluation).
    pub total_windows: Option<u64>,
    /// Bad windows allowed per period (windows evaluation).
    pub allowed_bad_windows: Option<u64>,
    /// Bad requests allowed per period (requests evaluation, with `units_per_day`).
    pub allowed_bad_requests: Option<f64>,
    /// Relative KPI loss over the period when the budget is spent at the threshold: fraction × tolerated loss.
    pub expected_relative_kpi_loss: f64,
    /// KPI units lost over the period (with `units_per_day`).
    pub expected_kpi_units_lost: Option<f64>,
    /// Currency lost over the period if the whole budget is spent with the SLI exactly at the
    /// threshold, where each bad window or request costs the tolerated relative loss:
    /// fraction × loss × control KPI mean × units per period × value per KPI unit (with
    /// `units_per_day` and `value_per_kpi_unit`). Not an upper bound: a bad window further past
    /// the threshold costs more.
    pub value_at_risk: Option<f64>,
    /// ISO 4217 code of `value_at_risk` (the request's `currency`); null when not named.
    #[serde(default)]
    pub currency: Option<String>,
}

/// How an unchanged service fares against the SLO's threshold, window by window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WindowNoise {
    pub window_minutes: u32,
    /// Requests in a window: units_per_day × window_minutes / 1440 (one request per unit and
    /// day, evenly spread; more requests per unit make windows less noisy).
    pub requests_per_window: f64,
    /// Share of the control arm's SLI values on the bad side of the threshold.
    pub bad_request_share: f64,
    /// Share of windows an unchanged service would break: P(Binomial(n, bad_request_share) >
    /// ⌊n·(1 − good share)⌋) with n requests per window.
    pub expected_bad_window_share: f64,
    /// The error budget (1 − target); noise may spend at most a tenth of it.
    pub budget_fraction: f64,
}

/// A knee that lowered the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KneeUsed {
    pub estimate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub evidence: EvidenceKind,
}

/// How the threshold was derived (see the README's Methodology).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Derivation {
    /// The SLI the degradation is added to: production's per-window governed percentile when
    /// the SLI has a production series (see `baseline_source`), else the control arm's SLI at
    /// the governed percentile (its quantile at the target's share for requests evaluation).
    pub baseline_sli: f64,
    /// Where the baseline came from: `production` (with the range) or `experiment`.
    #[serde(default)]
    pub baseline_source: Option<crate::slo::live::baseline::BaselineSource>,
    pub control_kpi_mean: f64,
    /// The CI end of the causal slope used (KPI units per SLI unit).
    pub slope_used: f64,
    /// slope_used / control KPI mean: relative KPI change per SLI unit.
    pub relative_slope_per_unit: f64,
    pub max_relative_kpi_loss: f64,
    /// SLI degradation that costs exactly the tolerated loss: loss / |relative slope|.
    pub degradation: f64,
    pub threshold_source: ThresholdSource,
    pub knee: Option<KneeUsed>,
    /// Largest SLI shift an arm produced in the experiment (measured, in SLI units).
    #[serde(default)]
    pub max_tested_shift: f64,
    /// True when `degradation` lies beyond `max_tested_shift`: the slope is extrapolated past
    /// the doses tested (refused unless the request set `allow_extrapolation`).
    #[serde(default)]
    pub extrapolated: bool,
    /// The analysis's significance level and multiple-testing correction.
    #[serde(default)]
    pub analysis_alpha: Option<f64>,
    #[serde(default)]
    pub analysis_correction: Option<Correction>,
    /// True when the analysis used alpha above 0.05 or no correction: approving then needs the
    /// reviewer's explicit acknowledgement (`acknowledge_loose_evidence`).
    #[serde(default)]
    pub loose_evidence: bool,
    /// The smallest relative KPI loss the experiment could detect at this degradation (80%
    /// power), from the slope's MDE; above `max_relative_kpi_loss`, the experiment was too small
    /// to see the loss the SLO protects against.
    #[serde(default)]
    pub detectable_relative_loss: Option<f64>,
    /// The window-noise check (windows evaluation with `units_per_day`): null when it could not
    /// be made.
    #[serde(default)]
    pub window_noise: Option<WindowNoise>,
    /// Caveats in plain words.
    pub notes: Vec<String>,
}

text_enum! {
    /// How strong the evidence is: `causal` (a randomized experiment validated the effect) or
    /// `correlational` (production history only: a common cause may drive both series).
    EvidenceBasis { Causal => "causal", Correlational => "correlational" }
}

fn causal() -> EvidenceBasis {
    EvidenceBasis::Causal
}

/// The analysis behind a recommendation: an experiment's (`kind` causal, with `analysis_id`,
/// `experiment`, `seed` and `fingerprint`) or an observational analysis of production history
/// (`kind` correlational, with `observational_analysis_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecommendationEvidence {
    #[serde(default = "causal")]
    pub kind: EvidenceBasis,
    pub analysis_id: Option<i64>,
    #[serde(default)]
    pub observational_analysis_id: Option<i64>,
    pub experiment: Option<String>,
    pub seed: Option<u64>,
    pub fingerprint: Option<String>,
    /// True only for causal evidence (a validated effect); correlational evidence never is.
    pub validated: bool,
    pub slope: Estimate,
    pub relative_per_100: Estimate,
    pub summary: String,
}

/// The request as resolved (defaults filled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecommendationInputs {
    pub kpi: String,
    pub max_relative_kpi_loss: f64,
    pub percentile: Option<u32>,
    pub target: Option<f64>,
    pub max_budget_value_at_risk: Option<f64>,
    pub window_days: u32,
    pub evaluation: Evaluation,
    pub window_minutes: Option<u32>,
    pub value_per_kpi_unit: Option<f64>,
    /// ISO 4217 code of the amounts; null when not named.
    #[serde(default)]
    pub currency: Option<String>,
    pub units_per_day: Option<f64>,
    #[serde(default)]
    pub allow_extrapolation: bool,
    #[serde(default)]
    pub allow_nonlinear: bool,
}

/// A recommended SLO awaiting, or after, review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub id: i64,
    pub status: RecommendationStatus,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub slo: SloSpec,
    pub threshold_range: ThresholdRange,
    pub error_budget: ErrorBudget,
    pub derivation: Derivation,
    pub evidence: RecommendationEvidence,
    pub inputs: RecommendationInputs,
    /// The published SLO, once approved.
    pub slo_id: Option<i64>,
    /// The SLO replayed on the last period of production data, when the SLI has a series.
    pub replay: Option<crate::slo::live::replay::Replay>,
}

/// A page of recommendations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecommendationList {
    pub items: Vec<Recommendation>,
    pub next_cursor: Option<String>,
}

/// One recorded transition of a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEvent {
    pub at: DateTime<Utc>,
    /// Who acted (the API token's name).
    pub actor: String,
    pub action: Action,
    pub comment: Option<String>,
}

/// A published SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Slo {
    pub id: i64,
    /// OpenSLO-safe name.
    pub name: String,
    pub status: SloStatus,
    pub recommendation_id: i64,
    pub published_at: DateTime<Utc>,
    pub superseded_at: Option<DateTime<Utc>>,
    pub superseded_by: Option<i64>,
    pub slo: SloSpec,
    pub error_budget: ErrorBudget,
    pub evidence: RecommendationEvidence,
    pub threshold_source: ThresholdSource,
    /// The latest re-validation of the evidence (`confirmed` or `stale`, with reasons); null
    /// when never re-validated.
    pub validation: Option<crate::slo::revalidate::Revalidation>,
    /// Key of the business calendar the SLO follows (`PUT /api/v1/slos/{id}/calendar`); null
    /// when none.
    #[serde(default)]
    pub calendar: Option<String>,
}

/// A page of SLOs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SloList {
    pub items: Vec<Slo>,
    pub next_cursor: Option<String>,
}
