//! Event-based SLOs, for an SLI that is itself a share of good events: faithful answers,
//! frauds caught, correct moderation flags. The SLO reads "≥ T% of answers faithful over 28
//! days": good events / all events over the period, against T.
//!
//! Derivation (docs/methodology.md): with the control arm's (or production's) good share b and
//! the tolerated relative KPI loss L, the share may fall by d = L / |relative slope| (the
//! slope's harmful CI end, as for every threshold) before the KPI loses L, so T = b − d, rounded
//! up. The error budget is 1 − T of the period's events; spending all of it means the share
//! sits at T, which costs exactly the tolerated loss (so the value at risk is L × control KPI
//! mean × units × value per unit, not a fraction of it).

use super::model::{ErrorBudget, RecommendationInputs};
use crate::analysis::report::SliSummary;
use crate::domain::metric::{Direction, Metric};
use crate::domain::series::{SeriesKind, SeriesLayout, SeriesWindow, WindowData};
use crate::error::{AppError, AppResult, Issue};

/// Ok when `sli` can be governed by an events SLO: higher is better and every value the
/// control arm saw lies in [0, 1] (a share); otherwise a 422 naming `evaluation`.
pub(crate) fn check_share_sli(sli: &Metric, control: &SliSummary) -> AppResult<()> {
    let refuse = |why: String| {
        Err(AppError::invalid(
            "events evaluation needs an SLI that is a share of good events",
            vec![Issue::field("evaluation", why)],
        ))
    };
    if sli.direction != Direction::HigherIsBetter {
        return refuse(format!(
            "'{}' is lower-is-better; an events SLO counts good events, so declare the SLI as the good share (higher is better)",
            sli.key
        ));
    }
    let (lo, hi) = match (control.quantiles.first(), control.quantiles.last()) {
        (Some(lo), Some(hi)) => (*lo, *hi),
        _ => return refuse("the analysis predates the SLI's quantiles; run it again".into()),
    };
    if lo < 0.0 || hi > 1.0 {
        return refuse(format!(
            "'{}' takes values from {lo} to {hi} in the control arm; a share of good events lies in [0, 1]",
            sli.key
        ));
    }
    Ok(())
}

/// The good share of the production event series over `windows`, and how many windows had
/// events; None for a histogram series or without events.
pub(crate) fn production_share(
    layout: &SeriesLayout,
    windows: &[SeriesWindow],
) -> Option<(f64, u64)> {
    if layout.kind != SeriesKind::Events {
        return None;
    }
    let (mut good, mut total, mut n) = (0.0, 0.0, 0);
    for w in windows {
        if let WindowData::Events { good: g, total: t } = w.data {
            if t > 0.0 {
                n += 1;
            }
            good += g;
            total += t;
        }
    }
    (total > 0.0).then(|| (good / total, n))
}

/// The target of an events SLO: the share floor, which must leave a budget (T < 1) and be a
/// share worth promising (T > 0); otherwise a 422 naming the tolerated loss.
pub(crate) fn check_target(share: f64) -> AppResult<f64> {
    if share > 0.0 && share < 1.0 {
        Ok(share)
    } else {
        Err(AppError::invalid(
            "no events SLO fits this tolerance",
            vec![Issue::field(
                "max_relative_kpi_loss",
                format!("the good share the tolerated loss allows is {share}, outside (0, 1); tolerate a smaller loss"),
            )],
        ))
    }
}

/// The error budget of an events SLO with target `target` (see the module doc): spending it
/// costs `loss`, |relative slope| × (baseline − T), at most the tolerated loss (T is rounded
/// up, and a knee can only tighten it).
pub(crate) fn error_budget(
    inputs: &RecommendationInputs,
    (target, loss): (f64, f64),
    mu: f64,
    period_units: Option<f64>,
) -> ErrorBudget {
    let fraction = 1.0 - target;
    let value_per_budget = period_units
        .zip(inputs.value_per_kpi_unit)
        .map(|(u, v)| loss * mu * u * v);
    ErrorBudget {
        fraction,
        total_windows: None,
        allowed_bad_windows: None,
        allowed_bad_requests: period_units.map(|u| fraction * u),
        expected_relative_kpi_loss: loss,
        expected_kpi_units_lost: period_units.map(|u| loss * mu * u),
        value_at_risk: value_per_budget,
        currency: inputs.currency.clone(),
    }
}

/// "answer faithfulness: ≥ 93.2% of events good over 28 days".
pub(crate) fn statement(sli: &Metric, target: f64, window_days: u32) -> String {
    format!(
        "{}: ≥ {}% of events good over {window_days} days",
        sli.name,
        super::recommend::fmt_num(100.0 * target)
    )
}
