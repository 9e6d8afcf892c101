//! Replay: a proposed SLO evaluated on past production data before anyone approves it (after
//! Nobl9's Replay). Same timeline and alert rules as the live status; over the replayed range it
//! reports attainment, bad windows, budget consumed, when a period's budget would have run out,
//! how often it would have paged and ticketed, and week by week whether the target was met.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::status::present;
use super::{level, AlertLevel, Timeline};
use crate::domain::document::round_significant;
use crate::domain::series::SeriesWindow;
use crate::slo::model::{Evaluation, SloSpec};

/// One week of a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplayWeek {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Null without data.
    pub attainment: Option<f64>,
    /// attainment ≥ target; null without data.
    pub met: Option<bool>,
}

/// The SLO replayed on production data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Replay {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub statement: String,
    pub target: f64,
    /// Data windows present / windows in the range.
    pub coverage: f64,
    pub attainment: Option<f64>,
    /// `windows` or `events`.
    pub unit: String,
    /// Bad windows (sliding evaluations counted in SLO windows) or bad events.
    pub bad: f64,
    /// Error ratio over the range / budget: the share of the budget a period spent this way consumes.
    pub budget_consumed: f64,
    /// First moment a period's budget (counted from the range's start or over the trailing
    /// period) was spent; null if never.
    pub budget_exhausted_at: Option<DateTime<Utc>>,
    /// Times a page (ticket) alert would have started firing.
    pub pages: u32,
    pub tickets: u32,
    pub weeks: Vec<ReplayWeek>,
    /// Weeks with data whose attainment fell short of the target.
    pub weeks_missed: u32,
    pub weeks_with_data: u32,
    /// The replay in one sentence.
    pub summary: String,
    pub notes: Vec<String>,
}

fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// First evaluation at which the bad weight over the trailing period (from `from` on) exceeds
/// the budget of a full period: fraction × the period's expected weight (its evaluations, or
/// the range's mean events per evaluation times the period's evaluations).
fn exhausted_at(tl: &Timeline, from: i64, to: i64, period: i64, fraction: f64) -> Option<i64> {
    let whole = tl.sums(from, to);
    if whole.evaluations == 0 {
        return None;
    }
    let per_eval = whole.weight / whole.evaluations as f64;
    let allowed = fraction * per_eval * (period / tl.step.max(1)) as f64;
    tl.t.iter()
        .copied()
        .filter(|&t| t > from && t <= to)
        .find(|&t| tl.sums((t - period).max(from), t).bad > allowed)
}

/// "1 day", "2.5 days", "6 hours" (under a day).
fn day_words(days: f64) -> String {
    if days < 1.0 {
        let hours = (days * 24.0 * 10.0).round() / 10.0;
        format!(
            "{} hour{}",
            crate::slo::recommend::fmt_num(hours),
            if hours == 1.0 { "" } else { "s" }
        )
    } else {
        let d = (days * 10.0).round() / 10.0;
        format!(
            "{} day{}",
            crate::slo::recommend::fmt_num(d),
            if d == 1.0 { "" } else { "s" }
        )
    }
}

/// Replays `spec` over windows ending in (from, to].
pub fn replay(
    spec: &SloSpec,
    tl: &Timeline,
    windows: &[SeriesWindow],
    from: i64,
    to: i64,
) -> Replay {
    let fraction = round_significant(1.0 - spec.target);
    let period = i64::from(spec.window_days) * 86_400;
    let sums = tl.sums(from, to);
    let ratio = sums.error_ratio();
    let scale = match spec.evaluation {
        Evaluation::Windows => tl.step as f64 / tl.span as f64,
        Evaluation::Requests | Evaluation::Events => 1.0,
    };
    let (mut pages, mut tickets) = (0, 0);
    let mut last = AlertLevel::None;
    for &t in tl.t.iter().filter(|&&t| t > from && t <= to) {
        let now = level(tl, t, (spec.window_days, fraction), 1.0);
        match (last, now) {
            (AlertLevel::Page, _) | (_, AlertLevel::None) => {}
            (_, AlertLevel::Page) => pages += 1,
            (AlertLevel::Ticket, AlertLevel::Ticket) => {}
            (_, AlertLevel::Ticket) => tickets += 1,
        }
        last = now;
    }
    let week = 7 * 86_400;
    let mut weeks = Vec::new();
    let mut start = from;
    while start < to {
        let end = (start + week).min(to);
        let a = tl.sums(start, end).error_ratio().map(|r| 1.0 - r);
        weeks.push(ReplayWeek {
            from: time(start),
            to: time(end),
            attainment: a,
            met: a.map(|a| a >= spec.target),
        });
        start = end;
    }
    let with_data = weeks.iter().filter(|w| w.met.is_some()).count() as u32;
    let missed = weeks.iter().filter(|w| w.met == Some(false)).count() as u32;
    let expected = ((to - from) / tl.step.max(1)).max(1) as f64;
    let coverage = present(windows, tl.step, from, to) as f64 / expected;
    let days = (to - from) as f64 / 86_400.0;
    let outcome = |m: u32| if m == 0 { "met" } else { "missed" };
    let attained = 100.0 * ratio.map_or(1.0, |r| 1.0 - r);
    let summary = match (with_data, missed) {
        (0, _) => "No production data in the replayed range.".to_owned(),
        (1, m) if days < 7.0 => format!(
            "This target would have been {} over the {} replayed (attainment {attained:.2}%).",
            outcome(m),
            day_words(days),
        ),
        (1, m) if coverage * days >= 6.9 => format!(
            "This target would have been {} in the one week with data (attainment {attained:.2}%).",
            outcome(m)
        ),
        // One week of the range has data, but only part of it: say how much.
        (1, m) => format!(
            "This target would have been {} over the {} of data, all in one week of the {} replayed (attainment {attained:.2}%).",
            outcome(m),
            day_words((coverage * days * 10.0).round() / 10.0),
            day_words(days.round()),
        ),
        (n, 0) => format!("This target would have been met in all {n} weeks with data."),
        (n, m) => format!("This target would have been missed in {m} of the last {n} weeks."),
    };
    let mut notes = tl.notes.clone();
    if coverage < super::status::MIN_COVERAGE {
        notes.push(format!(
            "Only {:.1}% of the range's windows have data.",
            coverage * 100.0
        ));
    }
    Replay {
        from: time(from),
        to: time(to),
        statement: spec.statement.clone(),
        target: spec.target,
        coverage,
        attainment: ratio.map(|r| 1.0 - r),
        unit: match spec.evaluation {
            Evaluation::Windows => "windows",
            Evaluation::Requests | Evaluation::Events => "events",
        }
        .to_owned(),
        bad: sums.bad * scale,
        budget_consumed: ratio.unwrap_or(0.0) / fraction,
        budget_exhausted_at: exhausted_at(tl, from, to, period, fraction).map(time),
        pages,
        tickets,
        weeks,
        weeks_missed: missed,
        weeks_with_data: with_data,
        summary,
        notes,
    }
}
