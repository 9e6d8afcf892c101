//! Early warnings: an upstream SLI that leads an SLO's SLI, turned into an alert on the upstream
//! SLI. The side that warns follows the sign of the least-squares line target_{t+L} on
//! indicator_t. The level is learned on the first two thirds of the history the lead was found
//! on: of the indicator's percentiles 1 … 99 there, the one whose warnings best anticipate the
//! SLO's bad windows (largest F1 of recall — bad windows with a warning in the lead before them
//! — and precision — warnings followed by a bad window within the lead). A straight line
//! through a saturating response (nothing happens until the cache is cold enough) would put
//! the level far off; counting what each level would have caught does not assume a shape. The
//! rule is then replayed on the last third, which the level never saw, and on all of it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{Comparison, Slo};
use super::prometheus::{histogram_name, labels, num, render, Group, Rule};
use crate::analysis::leading::{common_stretch, duration_text};
use crate::domain::metric::Metric;
use crate::domain::text_enum;

text_enum! {
    /// The side of the level on which the indicator warns.
    WarnWhen { Above => "above", Below => "below" }
}

text_enum! {
    /// Where the level came from: `learned` from history, or `given` by the caller.
    LevelSource { Learned => "learned", Given => "given" }
}

/// An early warning to attach: the lead is found again on the SLO's SLI as the SLO governs it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyWarningRequest {
    /// Longest lead looked for, e.g. `60m` (see leading indicators).
    #[schema(example = "60m", max_length = 40)]
    pub max_lag: String,
    /// Range of history (RFC 3339; default the 7 days up to the SLI's latest window).
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// Family-wise significance level across the SLI's candidates, in (0, 0.5] (default 0.05).
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    pub alpha: Option<f64>,
    /// The indicator's level that warns, in its reading's unit; default: learned from history.
    #[serde(default)]
    pub level: Option<f64>,
}

/// The rule replayed on the history it was derived from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WarningReplay {
    /// Windows of the SLO's SLI that broke the threshold (after the first lead).
    pub bad_windows: u64,
    /// Of those, how many had a warning in the lead before them.
    pub warned_bad_windows: u64,
    /// Windows in which the indicator was past the level (before the last lead).
    pub warnings: u64,
    /// Of those, how many were followed by a bad window within the lead.
    pub warnings_followed: u64,
    /// Windows replayed; `base_rate` is bad_windows over those after the first lead (the
    /// windows a warning could have come before).
    pub windows: u64,
    pub base_rate: Option<f64>,
    /// Share of windows followed by a bad window within the lead: the precision a rule that
    /// warns at random (or always) reaches. A useful warning beats it.
    pub chance_precision: Option<f64>,
    /// warned_bad_windows / bad_windows; null without bad windows.
    pub recall: Option<f64>,
    /// warnings_followed / warnings; null without warnings.
    pub precision: Option<f64>,
    /// Bad episodes (runs of consecutive bad windows) that began after the first lead, and
    /// how many had a warning in the lead before their first bad window: a long episode
    /// counts once here, where `recall` counts each of its windows.
    #[serde(default)]
    #[schema(required = true)]
    pub episodes: u64,
    #[serde(default)]
    #[schema(required = true)]
    pub episodes_warned: u64,
    /// episodes_warned / episodes: the share of incidents warned before they began; null
    /// without episodes.
    #[serde(default)]
    pub onset_recall: Option<f64>,
}

/// An early-warning rule attached to an SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EarlyWarning {
    pub slo_id: i64,
    /// The upstream SLI and how its windows are read (`p95`, `good_share`).
    pub indicator: String,
    pub statistic: String,
    /// The SLO's SLI as the SLO governs it (`p95`).
    pub target_statistic: String,
    pub window_seconds: i64,
    pub lead_seconds: i64,
    /// Pre-whitened cross-correlation at the lead and the corrected p-value (see leading
    /// indicators).
    pub r: f64,
    pub p_holm: f64,
    pub level: f64,
    pub when: WarnWhen,
    pub level_source: LevelSource,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The rule on the last third of the history, which the learned level never saw.
    pub held_out: WarningReplay,
    /// The rule on the whole history.
    pub replay: WarningReplay,
    pub statement: String,
    /// Who derived this level and when (a replacing PUT derives it again).
    pub derived_by: String,
    pub derived_at: DateTime<Utc>,
}

/// What the derivation needs of the SLO: its threshold and which side is good.
#[derive(Debug, Clone, Copy)]
pub struct Objective {
    pub threshold: f64,
    pub comparison: Comparison,
}

impl Objective {
    fn bad(self, v: f64) -> bool {
        match self.comparison {
            Comparison::Lt => v >= self.threshold,
            Comparison::Gt => v <= self.threshold,
        }
    }
}

/// The level, its side, and the rule replayed.
pub struct Derived {
    pub level: f64,
    pub when: WarnWhen,
    pub source: LevelSource,
    pub held_out: WarningReplay,
    pub replay: WarningReplay,
}

/// The slope of the least-squares line of y on x; None when x does not vary.
fn slope(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Warnings and bad windows on one stretch: a bad window s is warned when a warning falls in
/// [s − lead, s − 1]; a warning at t is followed when a bad window falls in [t + 1, t + lead].
fn replay(warn: &[bool], broke: &[bool], lead: usize) -> WarningReplay {
    let n = warn.len();
    let bad_idx: Vec<usize> = (lead..n).filter(|&s| broke[s]).collect();
    let warned = bad_idx
        .iter()
        .filter(|&&s| warn[s - lead..s].iter().any(|w| *w))
        .count();
    let warn_idx: Vec<usize> = (0..n.saturating_sub(lead)).filter(|&t| warn[t]).collect();
    let followed = warn_idx
        .iter()
        .filter(|&&t| broke[t + 1..=t + lead].iter().any(|b| *b))
        .count();
    let share = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    let onsets: Vec<usize> = (lead.max(1)..n)
        .filter(|&s| broke[s] && !broke[s - 1])
        .collect();
    let onsets_warned = onsets
        .iter()
        .filter(|&&s| warn[s - lead..s].iter().any(|w| *w))
        .count();
    let horizon = n.saturating_sub(lead);
    let ahead = (0..horizon)
        .filter(|&t| broke[t + 1..=t + lead].iter().any(|b| *b))
        .count();
    WarningReplay {
        windows: n as u64,
        base_rate: share(bad_idx.len(), n.saturating_sub(lead)),
        chance_precision: share(ahead, horizon),
        bad_windows: bad_idx.len() as u64,
        warned_bad_windows: warned as u64,
        warnings: warn_idx.len() as u64,
        warnings_followed: followed as u64,
        recall: share(warned, bad_idx.len()),
        precision: share(followed, warn_idx.len()),
        episodes: onsets.len() as u64,
        episodes_warned: onsets_warned as u64,
        onset_recall: share(onsets_warned, onsets.len()),
    }
}

fn f1(r: &WarningReplay) -> f64 {
    match (r.recall, r.precision) {
        (Some(a), Some(b)) if a + b > 0.0 => 2.0 * a * b / (a + b),
        _ => 0.0,
    }
}

/// Fewest bad windows in the training part to learn a level from.
pub const MIN_BAD: usize = 5;

/// A series on the grid: (window start, value), ascending.
type Points<'a> = &'a [(i64, f64)];

/// The level that warns `lead` windows ahead of a bad window of the target, from the two
/// series on a grid of `step` seconds; Err((field, why)) when history cannot give one.
pub fn derive(
    (target, indicator): (Points, Points),
    step: i64,
    lead: usize,
    objective: Objective,
    given: Option<f64>,
) -> Result<Derived, (&'static str, String)> {
    let (_, y, x) = common_stretch(target, indicator, step);
    let n = x.len();
    let split = n * 2 / 3;
    if split <= 3 * lead + 10 {
        return Err(("indicator", "too few windows in common".to_owned()));
    }
    // The side is learned on the training part only, like the level.
    let b = slope(&x[..split - lead], &y[lead..split]).ok_or((
        "indicator",
        "the indicator does not vary over the history".to_owned(),
    ))?;
    // Past the level, the target tends to the bad side of the threshold.
    let when = match (objective.comparison, b > 0.0) {
        (Comparison::Lt, true) | (Comparison::Gt, false) => WarnWhen::Above,
        _ => WarnWhen::Below,
    };
    let warns = |level: f64, v: &[f64]| -> Vec<bool> {
        v.iter()
            .map(|x| match when {
                WarnWhen::Above => *x >= level,
                WarnWhen::Below => *x <= level,
            })
            .collect()
    };
    let broke: Vec<bool> = y.iter().map(|v| objective.bad(*v)).collect();
    let bad_in_training = broke[..split].iter().filter(|b| **b).count();
    if given.is_none() && !(MIN_BAD..=split / 2).contains(&bad_in_training) {
        return Err((
            "level",
            format!(
                "the first two thirds of the history hold {bad_in_training} bad windows of {split}; learning a level needs {MIN_BAD} to half of them — give a level"
            ),
        ));
    }
    let (level, source) = match given {
        Some(l) if l.is_finite() && l.abs() <= 1e15 => (l, LevelSource::Given),
        Some(_) => {
            return Err((
                "level",
                "must be a number of magnitude at most 1e15".to_owned(),
            ))
        }
        None => {
            let mut sorted = x[..split].to_vec();
            sorted.sort_by(f64::total_cmp);
            let mut best: Option<(f64, f64)> = None;
            for pct in 1..100 {
                let level = sorted[(pct * (split - 1)) / 100];
                let score = f1(&replay(&warns(level, &x[..split]), &broke[..split], lead));
                if score > best.map_or(0.0, |b| b.1) {
                    best = Some((level, score));
                }
            }
            let Some((level, _)) = best else {
                return Err((
                    "level",
                    "no level of the indicator anticipated a bad window in the first two thirds of the history; give a level".to_owned(),
                ));
            };
            // 3 significant digits, rounded to the side that warns a little earlier.
            let level = super::threshold::round_conservative(level, when == WarnWhen::Above);
            (level, LevelSource::Learned)
        }
    };
    let warn = warns(level, &x);
    Ok(Derived {
        level,
        when,
        source,
        held_out: replay(&warn[split..], &broke[split..], lead),
        replay: replay(&warn, &broke, lead),
    })
}

/// The statement of a warning; `unit` is the indicator's reading's unit ("" for a share).
pub fn statement(w: &EarlyWarning, slo: &Slo, unit: &str) -> String {
    let side = match w.when {
        WarnWhen::Above => "rises to",
        WarnWhen::Below => "falls to",
    };
    let op = match slo.slo.comparison {
        Comparison::Lt => "reach",
        Comparison::Gt => "fall to",
    };
    let pct = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{:.0}%", v * 100.0));
    format!(
        "Warn when {} {} {side} {}{}: {} {} tends to {op} {} {} about {} later (r = {:.2}; on the held-out last third of history {} of bad windows were warned, {} of {} bad episodes before they began, and {} of warnings were followed by one)",
        w.indicator,
        w.statistic,
        level_text(w.level),
        if unit.is_empty() { String::new() } else { format!(" {unit}") },
        slo.slo.sli,
        w.target_statistic,
        num(slo.slo.threshold),
        slo.slo.unit,
        duration_text(w.lead_seconds),
        w.r,
        pct(w.held_out.recall),
        w.held_out.episodes_warned,
        w.held_out.episodes,
        pct(w.held_out.precision),
    )
}

/// A level as PromQL and the statement write it: the stored value to 12 significant digits,
/// in exponent form outside [1e-4, 1e15) (`1e-300`, never a rounded `0`).
pub fn level_text(x: f64) -> String {
    let x = crate::domain::document::round_significant(x);
    if x == 0.0 || (1e-4..1e15).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// A Prometheus duration of whole seconds: `1m`, `90s`.
fn prom_duration(seconds: i64) -> String {
    if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// The indicator's reading over a window as PromQL, in the unit of its level: a histogram's
/// quantile (`histogram_quantile` over `<name>_bucket`, a millisecond SLI recorded in
/// seconds scaled back), or good / total events from the metric's templates (or the default
/// counters `<name>_good_total` and `<name>_events_total`).
fn reading_expr(m: &Metric, statistic: &str, window: &str) -> String {
    let name = histogram_name(m);
    if let Some(p) = statistic
        .strip_prefix('p')
        .and_then(|p| p.parse::<f64>().ok())
    {
        let scale = if m.unit == "ms" { " * 1000" } else { "" };
        return format!(
            "histogram_quantile({}, sum by (le) (rate({name}_bucket[{window}]))){scale}",
            num(p / 100.0)
        );
    }
    let good = m
        .prometheus
        .good_events
        .clone()
        .unwrap_or_else(|| format!("sum(rate({name}_good_total[{{{{window}}}}]))"));
    let total = m
        .prometheus
        .total_events
        .clone()
        .unwrap_or_else(|| format!("sum(rate({name}_events_total[{{{{window}}}}]))"));
    format!(
        "({}) / ({})",
        render(&good, window, 0.0),
        render(&total, window, 0.0)
    )
}

/// The early-warning alerts of an SLO, one per indicator: the indicator's reading over one
/// grid window (at least a minute, so a rate has several scrapes) past the level.
pub fn group(slo: &Slo, warnings: &[(EarlyWarning, Metric)]) -> Option<Group> {
    if warnings.is_empty() {
        return None;
    }
    let name = slo.name.as_str();
    let rules = warnings
        .iter()
        .map(|(w, m)| {
            let window = prom_duration(w.window_seconds.max(60));
            let op = match w.when {
                WarnWhen::Above => ">=",
                WarnWhen::Below => "<=",
            };
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".to_owned(), w.statement.clone());
            annotations.insert("lead".to_owned(), duration_text(w.lead_seconds));
            Rule {
                record: None,
                alert: Some("SloproofEarlyWarning".to_owned()),
                expr: format!(
                    "{} {op} {}",
                    reading_expr(m, &w.statistic, &window),
                    level_text(w.level)
                ),
                // No `for`: the rate window already spans one grid window, and a `for` of another
                // would spend a window of the lead.
                for_duration: None,
                labels: labels(&[
                    ("severity", "warning"),
                    ("sloproof_slo", name),
                    ("sloproof_indicator", &w.indicator),
                ]),
                annotations,
            }
        })
        .collect();
    Some(Group {
        name: format!("sloproof-{name}-early-warnings"),
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(v: &[f64]) -> Vec<(i64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, x)| (60 * i as i64, *x))
            .collect()
    }

    #[test]
    fn the_learned_level_catches_the_bad_windows_a_hinge_makes() {
        // target_{t+1} = 100 + 2000·max(0, 0.5 − x_t): bad (≥ 290) exactly when x_t ≤ 0.4.
        let x: Vec<f64> = (0..300).map(|i| f64::from((i * 7) % 11) / 10.0).collect();
        let mut y = vec![100.0];
        y.extend(x[..299].iter().map(|v| 100.0 + 2000.0 * (0.5 - v).max(0.0)));
        let obj = Objective {
            threshold: 290.0,
            comparison: Comparison::Lt,
        };
        let d = derive((&grid(&y), &grid(&x)), 60, 1, obj, None)
            .unwrap_or_else(|(f, m)| panic!("{f}: {m}"));
        assert_eq!(d.when, WarnWhen::Below);
        assert_eq!(d.level, 0.4);
        assert_eq!(d.held_out.recall, Some(1.0));
        assert_eq!(d.held_out.precision, Some(1.0));
        assert_eq!(d.held_out.onset_recall, Some(1.0));
        assert!(d.held_out.episodes > 0 && d.held_out.episodes <= d.held_out.bad_windows);
        // Good above the threshold instead: the side flips. Most windows are bad then (at or
        // below 300), too many to learn from; a given level is replayed.
        let obj = Objective {
            threshold: 300.0,
            comparison: Comparison::Gt,
        };
        let e = derive((&grid(&y), &grid(&x)), 60, 1, obj, None).err();
        assert_eq!(e.map(|e| e.0), Some("level"));
        let d = derive((&grid(&y), &grid(&x)), 60, 1, obj, Some(0.5))
            .unwrap_or_else(|(f, m)| panic!("{f}: {m}"));
        assert_eq!(d.when, WarnWhen::Above);
        assert_eq!(d.source, LevelSource::Given);
        // A threshold history never breaks gives no level to learn.
        let obj = Objective {
            threshold: 9000.0,
            comparison: Comparison::Lt,
        };
        let e = derive((&grid(&y), &grid(&x)), 60, 1, obj, None).err();
        assert_eq!(e.map(|e| e.0), Some("level"));
    }

    #[test]
    fn an_episode_counts_once_at_its_onset() {
        // Bad at 5–9 (one episode) and 15 (another); warnings at 3 (before the first onset) and
        // 11 (two windows after the first episode, not before the second within a lead of 2).
        let mut broke = vec![false; 20];
        for s in [5, 6, 7, 8, 9, 15] {
            broke[s] = true;
        }
        let mut warn = vec![false; 20];
        warn[3] = true;
        warn[11] = true;
        let r = replay(&warn, &broke, 2);
        assert_eq!((r.bad_windows, r.warned_bad_windows), (6, 1));
        assert_eq!((r.episodes, r.episodes_warned), (2, 1));
        assert_eq!(r.onset_recall, Some(0.5));
        assert_eq!((r.warnings, r.warnings_followed), (2, 1));
    }
}
