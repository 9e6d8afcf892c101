//! The parameters of a recommendation request, checked and completed with defaults.

use super::model::{Evaluation, RecommendationInputs};
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
    /// Accept a threshold whose degradation lies beyond the largest SLI shift the experiment
    /// tested (a linear extrapolation); refused otherwise.
    #[serde(default)]
    pub allow_extrapolation: bool,
    /// Accept a slope-based threshold although the dose-response departs from a line
    /// (over-identification test p < alpha); refused otherwise.
    #[serde(default)]
    pub allow_nonlinear: bool,
}

pub(crate) fn resolve(req: &CreateRecommendation, kpi: &str) -> AppResult<RecommendationInputs> {
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
        allow_extrapolation: req.allow_extrapolation,
        allow_nonlinear: req.allow_nonlinear,
    })
}
