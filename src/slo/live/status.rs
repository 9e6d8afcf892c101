//! The live status of a published SLO at a moment: attainment over the rolling period, error
//! budget, burn rates, the alert in force, time to exhaustion, and what the burn cost.
//!
//! **Cost.** A bad evaluation costs the relative KPI loss the validated slope assigns to its
//! degradation: `|r| · d` per unit of traffic, where `r` is the relative slope per SLI unit the
//! threshold used (its conservative CI end) and `d` how far the SLI was from the baseline —
//! for windows evaluation the trailing window's governed percentile minus the baseline, for
//! requests evaluation the bad share times (degradation at the threshold + the mean excess of
//! bad events beyond it). At the threshold `|r| · d` is the tolerated loss, so spending the whole
//! budget at the threshold costs exactly the budgeted value at risk; windows twice as far past
//! the baseline cost twice as much. Summed over evaluations as loss × duration (days):
//! KPI units lost = Σ loss·days × control KPI mean × units per day; currency = × value per KPI
//! unit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    alerts, burn_rate, burn_rates, level, words, AlertLevel, BurnRate, FiredRule, Timeline,
};
use crate::domain::calendar::Calendar;
use crate::domain::document::round_significant;
use crate::domain::series::SeriesWindow;
use crate::slo::calendars::CalendarInForce;
use crate::slo::model::{Evaluation, Slo};

/// Coverage below which a status says its data is too thin to trust.
pub const MIN_COVERAGE: f64 = 0.9;

/// The error budget over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BudgetStatus {
    /// 1 − target.
    pub fraction: f64,
    /// Share of the budget spent: error ratio over the period / fraction (may exceed 1); null
    /// without data.
    pub consumed: Option<f64>,
    /// 1 − consumed (negative once overspent); null without data.
    pub remaining: Option<f64>,
    /// `windows` (SLO windows) or `events`.
    pub unit: String,
    /// Bad windows or events allowed among those evaluated: fraction × evaluated.
    pub allowed_bad: f64,
    /// Bad windows or events so far. Windows are evaluated sliding, once per data window, and
    /// each evaluation counts as (data window / SLO window) of an SLO window, so the count can
    /// be fractional (e.g. 95.6 five-minute windows from 478 one-minute evaluations).
    pub bad: f64,
}

/// How long the remaining budget lasts at a burn rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Exhaustion {
    /// `1h` or `1d`: the range whose burn rate is assumed to continue.
    pub at_rate_of: String,
    pub burn_rate: Option<f64>,
    /// remaining × period / burn rate; 0 when spent; null when not burning or without data.
    pub seconds: Option<f64>,
    pub text: String,
}

/// What the budget spent so far cost the business (see the module doc for the formula).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CostSoFar {
    /// Mean relative KPI loss over the period (Σ loss × days / period days).
    pub relative_kpi_loss: f64,
    /// KPI units lost (with the recommendation's `units_per_day`).
    pub kpi_units_lost: Option<f64>,
    /// Currency lost (with `value_per_kpi_unit`).
    pub value_lost: Option<f64>,
    /// The value at risk the budget was priced at, for comparison.
    pub budgeted_value_at_risk: Option<f64>,
    /// ISO 4217 code of the amounts; null when not named.
    pub currency: Option<String>,
    pub formula: String,
}

/// The status of an SLO at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SloLiveStatus {
    pub slo_id: i64,
    pub statement: String,
    pub at: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub evaluation: Evaluation,
    pub target: f64,
    /// Data windows present / windows the period holds; missing windows count neither good nor bad.
    pub coverage: f64,
    pub data_windows: u64,
    pub expected_windows: u64,
    /// Good share of the evaluated windows (or events); null without data.
    pub attainment: Option<f64>,
    pub error_budget: BudgetStatus,
    pub burn_rates: Vec<BurnRate>,
    /// The most severe alert firing: `page`, `ticket` or `none`.
    pub alert: AlertLevel,
    /// Every multiwindow rule firing, page rules first (as the exported alerts would).
    pub alert_rules: Vec<FiredRule>,
    pub exhaustion: Vec<Exhaustion>,
    pub cost: CostSoFar,
    /// Days since the analysis behind the SLO.
    pub evidence_age_days: f64,
    /// True when the evidence is older than `SLOPROOF_EVIDENCE_MAX_AGE_DAYS` (default 90).
    pub revalidation_due: bool,
    /// The latest re-validation's outcome (`confirmed` or `stale`); null when never re-validated.
    pub validation: Option<crate::slo::revalidate::ValidationState>,
    /// The business calendar the SLO follows and what holds at `at` (its budget multiplier
    /// scales the alerts' factors); null when the SLO follows none.
    pub calendar: Option<CalendarInForce>,
    pub notes: Vec<String>,
}

/// What a status needs besides the timeline.
pub struct StatusContext<'a> {
    pub slo: &'a Slo,
    pub control_kpi_mean: f64,
    pub units_per_day: Option<f64>,
    pub value_per_kpi_unit: Option<f64>,
    pub evidence_at: DateTime<Utc>,
    pub max_evidence_age_days: f64,
    pub calendar: Option<&'a Calendar>,
}

fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// Data windows ending in (from, to].
pub fn present(windows: &[SeriesWindow], step: i64, from: i64, to: i64) -> u64 {
    windows
        .iter()
        .filter(|w| w.start + step > from && w.start + step <= to)
        .count() as u64
}

/// The budget over evaluations ending in (from, to].
pub fn budget(tl: &Timeline, from: i64, to: i64, fraction: f64, eval: Evaluation) -> BudgetStatus {
    let s = tl.sums(from, to);
    let ratio = s.error_ratio();
    let (unit, scale) = match eval {
        Evaluation::Windows => ("windows", tl.step as f64 / tl.span as f64),
        Evaluation::Requests | Evaluation::Events => ("events", 1.0),
    };
    BudgetStatus {
        fraction,
        consumed: ratio.map(|r| r / fraction),
        remaining: ratio.map(|r| 1.0 - r / fraction),
        unit: unit.to_owned(),
        allowed_bad: fraction * s.weight * scale,
        bad: s.bad * scale,
    }
}

fn exhaustion(
    tl: &Timeline,
    at: i64,
    window: &str,
    remaining: Option<f64>,
    period: i64,
    budget: f64,
) -> Exhaustion {
    let rate = burn_rate(tl, at, window, budget);
    let seconds = match (remaining, rate) {
        (None, _) => None,
        (Some(r), _) if r <= 0.0 => Some(0.0),
        (Some(r), Some(b)) if b > 0.0 => Some(r * period as f64 / b),
        _ => None,
    };
    let text = match (seconds, rate) {
        (Some(0.0), _) => "the budget is spent".to_owned(),
        (Some(s), _) => format!(
            "at the last {window}'s rate the budget is gone in {}",
            words(s)
        ),
        (None, Some(_)) => format!("not burning over the last {window}"),
        (None, None) => format!("no data over the last {window}"),
    };
    Exhaustion {
        at_rate_of: window.to_owned(),
        burn_rate: rate,
        seconds,
        text,
    }
}

/// The status of the SLO at `at` from its timeline and the windows it was built from.
pub fn status(
    cx: &StatusContext,
    tl: &Timeline,
    windows: &[SeriesWindow],
    at: i64,
) -> SloLiveStatus {
    let spec = &cx.slo.slo;
    let days = spec.window_days;
    let period = i64::from(days) * 86_400;
    let from = at - period;
    let fraction = round_significant(1.0 - spec.target);
    let expected = (period / tl.step.max(1)) as u64;
    let data_windows = present(windows, tl.step, from, at);
    let coverage = data_windows as f64 / expected.max(1) as f64;
    let sums = tl.sums(from, at);
    let budget = budget(tl, from, at, fraction, spec.evaluation);
    let in_force = cx.calendar.map(|c| CalendarInForce {
        calendar: c.key.to_string(),
        in_force: c.in_force(at),
    });
    let multiplier = in_force
        .as_ref()
        .map_or(1.0, |c| c.in_force.budget_multiplier);
    let fired = alerts(tl, at, (days, fraction), multiplier);
    let mut notes = tl.notes.clone();
    let currency = cx.slo.error_budget.currency.as_deref();
    notes.extend(in_force.as_ref().and_then(|c| calendar_note(c, currency)));
    if tl.step > 300 {
        notes.push(format!(
            "The series' windows are {} s long: burn rates over shorter ranges (5m, 30m) read the latest window, so the fast page rule reacts more slowly than the exported one.",
            tl.step
        ));
    }
    if coverage < MIN_COVERAGE {
        notes.push(format!(
            "Only {:.1}% of the period's windows have data (below {:.0}%): attainment and budget describe the windows present.",
            coverage * 100.0,
            MIN_COVERAGE * 100.0
        ));
    }
    if let Some(v) = cx.slo.validation.as_ref().filter(|v| !v.reasons.is_empty()) {
        let why: Vec<&str> = v.reasons.iter().map(|r| r.message.as_str()).collect();
        notes.push(format!("The SLO is stale: {}.", why.join("; ")));
    }
    let period_days = f64::from(days);
    let kpi_units = cx
        .units_per_day
        .map(|u| sums.loss_days.max(0.0) * cx.control_kpi_mean * u);
    let value_lost = cx.value_per_kpi_unit.and_then(|v| {
        let valued = valued_loss_days(tl, (from, at), v, cx.calendar);
        cx.units_per_day
            .map(|u| valued.max(0.0) * cx.control_kpi_mean * u)
    });
    let age = ((at - cx.evidence_at.timestamp()) as f64 / 86_400.0).max(0.0);
    SloLiveStatus {
        slo_id: cx.slo.id,
        statement: spec.statement.clone(),
        at: time(at),
        period_start: time(from),
        evaluation: spec.evaluation,
        target: spec.target,
        coverage,
        data_windows,
        expected_windows: expected,
        attainment: sums.error_ratio().map(|r| 1.0 - r),
        burn_rates: burn_rates(tl, at, days, fraction),
        alert: fired.first().map_or(AlertLevel::None, |f| f.severity),
        alert_rules: fired,
        exhaustion: ["1h", "1d"]
            .iter()
            .map(|w| exhaustion(tl, at, w, budget.remaining, period, fraction))
            .collect(),
        error_budget: budget,
        cost: CostSoFar {
            // An events SLO's windows carry signed losses: the range's sum is clipped.
            relative_kpi_loss: sums.loss_days.max(0.0) / period_days,
            kpi_units_lost: kpi_units,
            value_lost,
            budgeted_value_at_risk: cx.slo.error_budget.value_at_risk,
            currency: cx.slo.error_budget.currency.clone(),
            formula: if cx.slo.slo.evaluation == Evaluation::Events {
                "max(0, Σ over windows of |relative slope| × (baseline share × events − good events) / mean events per window × days), × control KPI mean × units per day (× value per KPI unit)"
            } else {
                "Σ over bad evaluations of |relative slope| × (SLI − baseline) × days, × control KPI mean × units per day (× value per KPI unit)"
            }
            .to_owned(),
        },
        evidence_age_days: age,
        revalidation_due: age > cx.max_evidence_age_days,
        validation: cx.slo.validation.as_ref().map(|v| v.outcome),
        calendar: in_force,
        notes,
    }
}

/// What the calendar's periods in force change, in words.
fn calendar_note(c: &CalendarInForce, currency: Option<&str>) -> Option<String> {
    let f = &c.in_force;
    if f.periods.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    if f.budget_multiplier != 1.0 {
        what.push(format!(
            "the alerts fire at {}× the usual burn rates",
            round_significant(f.budget_multiplier)
        ));
    }
    if let Some(v) = f.value_per_kpi_unit {
        what.push(format!(
            "a KPI unit is worth {}{} (when the SLO is priced)",
            round_significant(v),
            currency.map_or(String::new(), |c| format!(" {c}"))
        ));
    }
    if f.freeze {
        what.push("deploys are frozen (all but critical changes are denied)".to_owned());
    }
    Some(format!(
        "Calendar '{}': {} in force; {}.",
        c.calendar,
        f.periods.join(", "),
        what.join("; ")
    ))
}

/// Loss × days over (from, to] with each stretch valued at the calendar's value per KPI unit
/// in force at its start (`default` outside override periods): Σ value × loss·days, split at
/// the overrides' boundaries.
fn valued_loss_days(
    tl: &Timeline,
    (from, to): (i64, i64),
    default: f64,
    calendar: Option<&Calendar>,
) -> f64 {
    let mut cuts = vec![from, to];
    if let Some(c) = calendar {
        for p in &c.periods {
            if let crate::domain::calendar::Policy::ValuePerKpiUnit { .. } = p.policy {
                for t in [p.start.timestamp(), p.end.timestamp()] {
                    if from < t && t < to {
                        cuts.push(t);
                    }
                }
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| {
            let value = calendar
                .and_then(|c| c.in_force(w[0]).value_per_kpi_unit)
                .unwrap_or(default);
            value * tl.sums(w[0], w[1]).loss_days
        })
        .sum()
}

/// One point of the status series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusPoint {
    pub at: DateTime<Utc>,
    /// Budget remaining over the period ending here (null without data).
    pub budget_remaining: Option<f64>,
    /// Burn rate over the last hour.
    pub burn_rate_1h: Option<f64>,
    pub alert: AlertLevel,
}

/// Budget remaining and burn rate at `from`, `from + step`, … ≤ `to`.
pub fn series(
    tl: &Timeline,
    (spec_days, target): (u32, f64),
    calendar: Option<&Calendar>,
    (from, to): (i64, i64),
    step: i64,
) -> Vec<StatusPoint> {
    let period = i64::from(spec_days) * 86_400;
    let fraction = round_significant(1.0 - target);
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        let ratio = tl.sums(t - period, t).error_ratio();
        out.push(StatusPoint {
            at: time(t),
            budget_remaining: ratio.map(|r| 1.0 - r / fraction),
            burn_rate_1h: burn_rate(tl, t, "1h", fraction),
            alert: level(
                tl,
                t,
                (spec_days, fraction),
                calendar.map_or(1.0, |c| c.in_force(t).budget_multiplier),
            ),
        });
        t += step;
    }
    out
}
