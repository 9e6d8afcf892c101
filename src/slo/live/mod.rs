//! Live SLOs: an SLO evaluated on the production series of its SLI, with the rules of its
//! Prometheus export (`slo::prometheus`): error ratios, burn rates and the multiwindow
//! multi-burn-rate alerts come from the same tables ([`WINDOWS`], [`ALERT_WINDOWS`]).

pub mod baseline;
pub mod replay;
pub mod service;
pub mod status;
pub mod timeline;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::prometheus::{minutes, ALERT_WINDOWS, WINDOWS};
use crate::domain::text_enum;
pub use timeline::{CostModel, Timeline};

text_enum! {
    /// Alert state of an SLO: the most severe multiwindow burn-rate alert firing.
    AlertLevel { Page => "page", Ticket => "ticket", None => "none" }
}

/// The alert rule that fired: both its windows burn faster than its factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FiredRule {
    pub severity: AlertLevel,
    /// Long window (e.g. `1h`) and its burn rate.
    pub long_window: String,
    pub long_burn_rate: f64,
    /// Short window (e.g. `5m`) and its burn rate.
    pub short_window: String,
    pub short_burn_rate: f64,
    /// Burn rate both must exceed: budget share × period hours / long-window hours; for an
    /// events SLO, the burn rate at which the headroom above the baseline's error is spent that
    /// many times too fast ((floor + f·(budget − floor)) / budget).
    pub factor: f64,
}

/// Burn rate over one range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BurnRate {
    /// `5m`, `30m`, `1h`, `2h`, `6h`, `1d`, `3d`, or the period (`28d`).
    pub window: String,
    /// Error ratio / budget; null without data in the range.
    pub burn_rate: Option<f64>,
}

/// Seconds of a range written like `5m`, `2h` or `3d`.
pub fn seconds(window: &str) -> i64 {
    i64::from(minutes(window)) * 60
}

/// Burn rate at `at` over `window`: the error ratio over the budget.
pub fn burn_rate(tl: &Timeline, at: i64, window: &str, budget: f64) -> Option<f64> {
    tl.error_ratio(at, seconds(window)).map(|r| r / budget)
}

/// Burn rates over [`WINDOWS`] and the period.
pub fn burn_rates(tl: &Timeline, at: i64, period_days: u32, budget: f64) -> Vec<BurnRate> {
    let period = format!("{period_days}d");
    WINDOWS
        .iter()
        .copied()
        .chain([period.as_str()])
        .map(|w| BurnRate {
            window: w.to_owned(),
            burn_rate: burn_rate(tl, at, w, budget),
        })
        .collect()
}

/// Every alert rule firing at `at`, page rules first: a rule fires when both its long and
/// short windows burn faster than `budget share × period hours / long hours`
/// ([`ALERT_WINDOWS`], as exported), times the business calendar's budget `multiplier` in
/// force (1 outside its periods; 0.5 on a sale fires at half the usual burn).
pub fn alerts(
    tl: &Timeline,
    at: i64,
    (period_days, budget): (u32, f64),
    multiplier: f64,
) -> Vec<FiredRule> {
    let period_hours = f64::from(period_days) * 24.0;
    ALERT_WINDOWS
        .iter()
        .filter_map(|&(severity, share, long, long_hours, short)| {
            let f = multiplier * share * period_hours / long_hours;
            let factor = (tl.error_floor + f * (budget - tl.error_floor)) / budget;
            let l = burn_rate(tl, at, long, budget)?;
            let s = burn_rate(tl, at, short, budget)?;
            (l > factor && s > factor).then(|| FiredRule {
                severity: if severity == "page" {
                    AlertLevel::Page
                } else {
                    AlertLevel::Ticket
                },
                long_window: long.to_owned(),
                long_burn_rate: l,
                short_window: short.to_owned(),
                short_burn_rate: s,
                factor,
            })
        })
        .collect()
}

/// The most severe alert level firing at `at` (with the calendar's budget multiplier).
pub fn level(
    tl: &Timeline,
    at: i64,
    (period_days, budget): (u32, f64),
    multiplier: f64,
) -> AlertLevel {
    alerts(tl, at, (period_days, budget), multiplier)
        .first()
        .map_or(AlertLevel::None, |f| f.severity)
}

/// A duration in words: `4 h 10 min`, `3 d 2 h`, `45 s`.
pub fn words(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "never at this rate".to_owned();
    }
    let s = seconds.max(0.0).round() as u64;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(words(15_000.0), "4 h 10 min");
        assert_eq!(words(45.0), "45 s");
        assert_eq!(words(90_000.0), "1 d 1 h");
        assert_eq!(words(f64::INFINITY), "never at this rate");
    }
}
