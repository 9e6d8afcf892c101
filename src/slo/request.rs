//! The parameters of a recommendation request, checked and completed with defaults.

use super::model::{Evaluation, RecommendationInputs};
use crate::error::{AppError, AppResult, Issue};

/// Parameters of a recommendation.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRecommendation {
    /// KPI key (default: the experiment's primary KPI).
    pub kpi: Option<String>,
    /// SLI key, for an experiment whose arms changed several SLIs: each SLI gets its own SLO
    /// from its own slope (default: the experiment's first SLI).
    pub sli: Option<String>,
    /// Largest tolerated relative KPI loss, e.g. 0.01 for "lose at most 1% conversion".
    #[schema(example = 0.01, exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    pub max_relative_kpi_loss: f64,
    /// Percentile of the SLI governed per window: 50, 95 (default) or 99.
    #[schema(schema_with = percentile_schema)]
    pub percentile: Option<u32>,
    /// Share of good windows or requests, in (0, 1) (default 0.99); or give
    /// `max_budget_value_at_risk`.
    #[schema(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    pub target: Option<f64>,
    /// Largest currency at risk when the budget is spent; sets the target (needs
    /// `value_per_kpi_unit` and `units_per_day`).
    #[schema(exclusive_minimum = 0.0, maximum = 1e15)]
    pub max_budget_value_at_risk: Option<f64>,
    /// Compliance period in days, 1 to 366 (default 28).
    #[schema(minimum = 1, maximum = 366)]
    pub window_days: Option<u32>,
    /// `windows` (default), `requests`, or `events` for an SLI that is a share of good events
    /// (values in [0, 1], higher is better): the target is then derived, not given.
    pub evaluation: Option<Evaluation>,
    /// Window length for `windows` evaluation, 1 to 1,440 minutes, dividing the period evenly
    /// (default 5).
    #[schema(minimum = 1, maximum = 1440)]
    pub window_minutes: Option<u32>,
    /// Currency per KPI unit (e.g. per conversion; 1 for revenue).
    #[schema(exclusive_minimum = 0.0, maximum = 1e9)]
    pub value_per_kpi_unit: Option<f64>,
    /// ISO 4217 code of the currency of `value_per_kpi_unit` and of every amount derived from
    /// it, e.g. "USD" or "EUR" (amounts are unnamed without it).
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: Option<String>,
    /// Units (users, sessions) per day exposed to the SLI.
    #[schema(exclusive_minimum = 0.0, maximum = 1e12)]
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

/// The percentiles an analysis reports, the only ones a recommendation can govern.
pub const PERCENTILES: [u32; 3] = [50, 95, 99];
/// Most units per day a recommendation prices (a trillion): products of money and traffic stay
/// finite in every document.
pub const MAX_UNITS_PER_DAY: f64 = 1e12;
/// Most currency per KPI unit.
pub const MAX_VALUE_PER_KPI_UNIT: f64 = 1e9;
/// Most currency at risk per period.
pub const MAX_VALUE_AT_RISK: f64 = 1e15;
/// Longest compliance period, days.
pub const MAX_WINDOW_DAYS: u32 = 366;
/// Longest evaluation window, minutes.
pub const MAX_WINDOW_MINUTES: u32 = 1440;

fn percentile_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .enum_values(Some(PERCENTILES))
        .description(Some(
            "Percentile of the SLI governed per window: 50, 95 (default) or 99.",
        ))
        .build()
}

/// An events SLO derives its target: the parameters of the other evaluations do not apply.
fn check_events(req: &CreateRecommendation, evaluation: Evaluation, issues: &mut Vec<Issue>) {
    if evaluation == Evaluation::Events {
        for (field, given) in [
            ("target", req.target.is_some()),
            (
                "max_budget_value_at_risk",
                req.max_budget_value_at_risk.is_some(),
            ),
            ("percentile", req.percentile.is_some()),
            ("window_minutes", req.window_minutes.is_some()),
        ] {
            if given {
                issues.push(Issue::field(
                    field,
                    "does not apply to events evaluation: the target is the share of good events the tolerated loss allows",
                ));
            }
        }
    }
}

/// The amounts that price the budget: positive, bounded, in a named currency.
fn check_pricing(req: &CreateRecommendation, issues: &mut Vec<Issue>) {
    for (field, v, most) in [
        (
            "value_per_kpi_unit",
            req.value_per_kpi_unit,
            MAX_VALUE_PER_KPI_UNIT,
        ),
        ("units_per_day", req.units_per_day, MAX_UNITS_PER_DAY),
    ] {
        if v.is_some_and(|v| !(v > 0.0 && v <= most)) {
            issues.push(Issue::field(
                field,
                format!("must be positive and at most {most:e}"),
            ));
        }
    }
    if let Some(c) = &req.currency {
        if !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())) {
            issues.push(Issue::field(
                "currency",
                "must be an ISO 4217 code of three capital letters, e.g. USD",
            ));
        }
        if req.value_per_kpi_unit.is_none() {
            issues.push(Issue::field(
                "currency",
                "names the currency of value_per_kpi_unit, which is missing",
            ));
        }
    }
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
        Evaluation::Requests | Evaluation::Events => None,
    };
    check_events(req, evaluation, &mut issues);
    if let Some(p) = percentile {
        if !PERCENTILES.contains(&p) {
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
        if !(v > 0.0 && v <= MAX_VALUE_AT_RISK) {
            issues.push(Issue::field(
                "max_budget_value_at_risk",
                format!("must be positive and at most {MAX_VALUE_AT_RISK:e}"),
            ));
        }
        if req.units_per_day.is_none() || req.value_per_kpi_unit.is_none() {
            issues.push(Issue::field(
                "max_budget_value_at_risk",
                "needs units_per_day and value_per_kpi_unit to price the budget",
            ));
        }
    }
    let window_days = req.window_days.unwrap_or(28);
    if !(1..=MAX_WINDOW_DAYS).contains(&window_days) {
        issues.push(Issue::field(
            "window_days",
            format!("must be between 1 and {MAX_WINDOW_DAYS}"),
        ));
    }
    let window_minutes = match evaluation {
        Evaluation::Windows => Some(req.window_minutes.unwrap_or(5)),
        Evaluation::Requests | Evaluation::Events => None,
    };
    if let Some(w) = window_minutes {
        if !(1..=MAX_WINDOW_MINUTES).contains(&w) || (window_days * 1440) % w != 0 {
            issues.push(Issue::field(
                "window_minutes",
                "must be between 1 and 1440 and divide the period evenly",
            ));
        }
    }
    check_pricing(req, &mut issues);
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
        currency: req.currency.clone(),
        units_per_day: req.units_per_day,
        allow_extrapolation: req.allow_extrapolation,
        allow_nonlinear: req.allow_nonlinear,
    })
}
