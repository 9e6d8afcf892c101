//! Leading indicators: does an upstream SLI move before a downstream one? For each candidate,
//! on the longest stretch of consecutive windows where both series have a value:
//!
//! 1. first differences of both (levels of persistent series correlate spuriously);
//! 2. Box–Jenkins pre-whitening: an AR(p) of the candidate's differences (p ≤ 24 by AIC) and
//!    the same filter applied to the target's, so the candidate's own autocorrelation cannot
//!    smear a correlation over many lags;
//! 3. the cross-correlations r_k = corr(candidate_t, target_{t+k}) at k = 0 … K and the best lead
//!    k* = argmax_{k ≥ 1} |r_k|;
//! 4. a single-lag Granger test at k* on the differences: does the candidate's change k*
//!    windows ago add to the target's own past (its own lags chosen by AIC, without looking at
//!    the candidate)? The coefficient's HC1 error keeps it valid when the changes' variance
//!    follows traffic, as percentiles' does; the classic F over lags 1 … k* is reported too;
//! 5. the lag was chosen by looking at the data, so its p-value is multiplied by K (Bonferroni
//!    over the lags looked at), then Holm-corrected across candidates;
//! 6. a significant candidate leads only when its correlation at k* beats the one at lag 0 and
//!    every one with the target moving first; otherwise it is `coincident` (a shared signal
//!    that the candidate measures with less noise predicts the target one window on without
//!    leading it).
//!
//! A lead is an association in time, not proof of cause: a common upstream cause that reaches
//! one SLI first also makes it "lead". It is what an early warning needs, not what an SLO
//! needs. Numbers are checked against statsmodels (`stats::lead`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::text_enum;
use crate::stats::dist::norm_ppf;
use crate::stats::lead::{ar_aic_order, ar_filter, ar_fit, ccf, granger, lag_wald};
use crate::stats::multiple::holm;

use super::summary::p_text_as;

/// Most lags looked at, in windows.
pub const MAX_LEAD_WINDOWS: usize = 120;
/// Highest AR order of the pre-whitening filter.
pub const MAX_AR_ORDER: usize = 24;
/// Fewest window-to-window changes a candidate needs (and at least 4K + 12 for the F test).
pub const MIN_CHANGES: usize = 200;

text_enum! {
    /// `leads`: the candidate's change k* windows ago predicts the target's (Holm-corrected p
    /// below alpha) and its correlation at k* beats every correlation at lag 0 and with the
    /// target first; `coincident`: significant, but it moves with the target or after it as
    /// much as before it; `not_significant`; `insufficient_data`: not compared — no series, windows that do not
    /// nest, too few consecutive windows in common, or a series that does not vary.
    LeadStatus { Leads => "leads", Coincident => "coincident", NotSignificant => "not_significant", InsufficientData => "insufficient_data" }
}

/// One series on the common grid: (window start, value), ascending.
#[derive(Debug, Clone)]
pub struct GridSeries {
    pub key: String,
    /// How each window's value is read: `p95`, `good_share`, …
    pub statistic: String,
    pub points: Vec<(i64, f64)>,
}

/// The test that decides: does the candidate's change k* windows ago add to the target's own
/// past (own lags by AIC, chosen without looking at the candidate)? HC1 errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LagTest {
    pub lag_windows: u32,
    pub own_lags: u32,
    pub estimate: f64,
    pub std_error: f64,
    pub z: f64,
    /// Before the corrections.
    pub p_value: f64,
}

/// The classic Granger-causality F test over lags 1 … k* (statsmodels'
/// `grangercausalitytests`), reported for comparison; it does not decide (it tests every lag up
/// to k*, and assumes constant variance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GrangerResult {
    pub lag_windows: u32,
    pub f: f64,
    pub df_num: f64,
    pub df_den: f64,
    /// Before the corrections.
    pub p_value: f64,
}

/// How one upstream SLI relates in time to the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeadingIndicator {
    pub sli: String,
    pub statistic: String,
    pub status: LeadStatus,
    /// This candidate's grid: the longer of its windows and the target's (null when not
    /// compared), and the lags looked at on it (`max_lag` rounded down to whole windows).
    pub window_seconds: Option<i64>,
    pub max_lag_windows: Option<u32>,
    /// The stretch of consecutive windows used (null without one).
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Window-to-window changes used.
    pub changes: u64,
    /// AR order of the pre-whitening filter (chosen by AIC).
    pub ar_order: Option<u32>,
    /// The best lead k* in 1 … K windows, and in seconds.
    pub lead_windows: Option<u32>,
    pub lead_seconds: Option<i64>,
    /// Pre-whitened cross-correlation at the best lead: positive when a rise of the candidate
    /// is followed by a rise of the target.
    pub r: Option<f64>,
    /// Pre-whitened cross-correlations at lags 0 … K (r_k = corr(candidate_t, target_{t+k})).
    pub ccf: Vec<f64>,
    /// |r| beyond which a single lag's correlation is significant at alpha (z / √n).
    pub band: Option<f64>,
    pub granger: Option<GrangerResult>,
    /// Pre-whitened correlation at lag 0, and the strongest with the target moving first
    /// (corr(target_t, candidate_{t+k}), k = 1 … K).
    pub r_lag0: Option<f64>,
    pub r_reverse: Option<f64>,
    pub lag_test: Option<LagTest>,
    /// The lag test's p-value × K (the lags looked at), at most 1.
    pub p_lag_adjusted: Option<f64>,
    /// `p_lag_adjusted`, Holm-corrected across the candidates.
    pub p_holm: Option<f64>,
    pub summary: String,
}

/// A duration in words: `45 s`, `10 min`, `2 h`, `1 h 30 min`.
pub fn duration_text(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (h, 0, 0) => format!("{h} h"),
        (h, m, 0) => format!("{h} h {m} min"),
        _ => format!("{seconds} s"),
    }
}

/// The longest run of consecutive grid windows (`step` apart) where both series have a value:
/// (starts, target values, candidate values).
pub fn common_stretch(
    target: &[(i64, f64)],
    candidate: &[(i64, f64)],
    step: i64,
) -> (Vec<i64>, Vec<f64>, Vec<f64>) {
    let mut best: (usize, usize) = (0, 0);
    let mut both: Vec<(i64, f64, f64)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < target.len() && j < candidate.len() {
        match target[i].0.cmp(&candidate[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both.push((target[i].0, target[i].1, candidate[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    let mut run_start = 0;
    for k in 0..both.len() {
        if k > 0 && both[k].0 - both[k - 1].0 != step {
            run_start = k;
        }
        if k + 1 - run_start > best.1 - best.0 {
            best = (run_start, k + 1);
        }
    }
    let run = &both[best.0..best.1];
    (
        run.iter().map(|r| r.0).collect(),
        run.iter().map(|r| r.1).collect(),
        run.iter().map(|r| r.2).collect(),
    )
}

struct Fit {
    ar_order: usize,
    ccf: Vec<f64>,
    reverse: f64,
    lead: usize,
    granger: GrangerResult,
    test: LagTest,
}

fn fit(y: &[f64], x: &[f64], max_lag: usize) -> Result<Fit, String> {
    let diff = |v: &[f64]| v.windows(2).map(|w| w[1] - w[0]).collect::<Vec<f64>>();
    let (dy, dx) = (diff(y), diff(x));
    let need = MIN_CHANGES.max(4 * max_lag + 12);
    if dy.len() < need {
        return Err(format!(
            "{} window-to-window changes in common without a gap; {need} are needed",
            dy.len()
        ));
    }
    let max_p = MAX_AR_ORDER.min(dx.len() / 20);
    let flat = |v: &[f64]| v.iter().all(|a| *a == v[0]);
    if flat(&dx) {
        return Err("the candidate's series does not change over the stretch".to_owned());
    }
    if flat(&dy) {
        return Err("the target's series does not change over the stretch".to_owned());
    }
    let why = |e: crate::stats::StatsError| match e {
        crate::stats::StatsError::Singular(_) => {
            "the candidate's changes are collinear with the target's own past (a copy of it?)"
                .to_owned()
        }
        crate::stats::StatsError::ZeroVariance(_) => {
            "a series is perfectly predictable from its own past".to_owned()
        }
        other => other.to_string(),
    };
    let p = ar_aic_order(&dx, max_p).map_err(why)?;
    let ar = ar_fit(&dx, p).map_err(why)?;
    let ey = ar_filter(&dy, &ar.phi);
    let r = ccf(&ey, &ar.residuals, max_lag).map_err(why)?;
    let lead = (1..=max_lag)
        .max_by(|&a, &b| r[a].abs().total_cmp(&r[b].abs()).then(b.cmp(&a)))
        .unwrap_or(1);
    let back = ccf(&ar.residuals, &ey, max_lag).map_err(why)?;
    let reverse = back[1..]
        .iter()
        .copied()
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or(0.0);
    let g = granger(&dy, &dx, lead).map_err(why)?;
    let own = ar_aic_order(&dy, max_p).map_err(why)?;
    let w = lag_wald(&dy, &dx, lead, own).map_err(why)?;
    Ok(Fit {
        ar_order: p,
        ccf: r,
        reverse,
        lead,
        test: LagTest {
            lag_windows: lead as u32,
            own_lags: own as u32,
            estimate: w.estimate,
            std_error: w.std_error,
            z: w.z,
            p_value: w.p_value,
        },
        granger: GrangerResult {
            lag_windows: lead as u32,
            f: g.f,
            df_num: g.df_num,
            df_den: g.df_den,
            p_value: g.p_value,
        },
    })
}

fn at(t: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t, 0)
}

/// A candidate that could not be compared, and why.
pub fn unavailable(key: &str, statistic: &str, why: &str) -> LeadingIndicator {
    LeadingIndicator {
        sli: key.to_owned(),
        statistic: statistic.to_owned(),
        status: LeadStatus::InsufficientData,
        window_seconds: None,
        max_lag_windows: None,
        from: None,
        to: None,
        changes: 0,
        ar_order: None,
        lead_windows: None,
        lead_seconds: None,
        r: None,
        ccf: Vec::new(),
        band: None,
        granger: None,
        r_lag0: None,
        r_reverse: None,
        lag_test: None,
        p_lag_adjusted: None,
        p_holm: None,
        summary: format!("{key}: {why}"),
    }
}

/// One candidate against the target on a grid of `step` seconds, lags 1 … `max_lag` windows
/// (before the correction across candidates, [`correct`]).
pub fn evaluate(
    target: &GridSeries,
    c: &GridSeries,
    step: i64,
    max_lag: usize,
    alpha: f64,
) -> LeadingIndicator {
    let (starts, y, x) = common_stretch(&target.points, &c.points, step);
    let mut li = unavailable(&c.key, &c.statistic, "");
    li.window_seconds = Some(step);
    li.max_lag_windows = Some(max_lag as u32);
    li.from = starts.first().and_then(|s| at(*s));
    li.to = starts.last().and_then(|s| at(s + step));
    li.changes = starts.len().saturating_sub(1) as u64;
    match fit(&y, &x, max_lag) {
        Ok(f) => {
            let n_filtered = (li.changes as usize).saturating_sub(f.ar_order).max(1);
            li.ar_order = Some(f.ar_order as u32);
            li.lead_windows = Some(f.lead as u32);
            li.lead_seconds = Some(f.lead as i64 * step);
            li.r = Some(f.ccf[f.lead]);
            // z_{1−α/2} from the lower tail, exact for tiny alpha.
            li.band = Some(-norm_ppf(alpha / 2.0) / (n_filtered as f64).sqrt());
            li.p_lag_adjusted = Some((f.test.p_value * max_lag as f64).min(1.0));
            li.r_lag0 = Some(f.ccf[0]);
            li.r_reverse = Some(f.reverse);
            li.ccf = f.ccf;
            li.granger = Some(f.granger);
            li.lag_test = Some(f.test);
        }
        Err(why) => li.summary = format!("{}: {why}", c.key),
    }
    li
}

/// Holm across the candidates that were tested, the status and summary of each, and the
/// order: by corrected p-value (then key), the ones without a test last.
pub fn correct(out: &mut [LeadingIndicator], target: &GridSeries, alpha: f64) {
    let tested: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].p_lag_adjusted.is_some())
        .collect();
    let raw: Vec<f64> = tested
        .iter()
        .filter_map(|&i| out[i].p_lag_adjusted)
        .collect();
    let adjusted = holm(&raw).unwrap_or(raw);
    for (&i, p) in tested.iter().zip(adjusted) {
        let li = &mut out[i];
        li.p_holm = Some(p);
        let lead = li.r.unwrap_or(0.0).abs();
        let other = li
            .r_lag0
            .unwrap_or(0.0)
            .abs()
            .max(li.r_reverse.unwrap_or(0.0).abs());
        li.status = match (p < alpha, lead > other) {
            (true, true) => LeadStatus::Leads,
            (true, false) => LeadStatus::Coincident,
            _ => LeadStatus::NotSignificant,
        };
        li.summary = summary(li, target);
    }
    out.sort_by(|a, b| {
        let key = |l: &LeadingIndicator| l.p_holm.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b)).then_with(|| a.sli.cmp(&b.sli))
    });
}

/// Every candidate against the target on one grid ([`evaluate`], then [`correct`]).
pub fn analyse(
    target: &GridSeries,
    candidates: &[GridSeries],
    step: i64,
    max_lag: usize,
    alpha: f64,
) -> Vec<LeadingIndicator> {
    let mut out: Vec<LeadingIndicator> = candidates
        .iter()
        .map(|c| evaluate(target, c, step, max_lag, alpha))
        .collect();
    correct(&mut out, target, alpha);
    out
}

fn summary(li: &LeadingIndicator, target: &GridSeries) -> String {
    let (lead, r, p) = (
        duration_text(li.lead_seconds.unwrap_or(0)),
        li.r.unwrap_or(f64::NAN),
        p_text_as("Holm p", li.p_holm.unwrap_or(1.0)),
    );
    let what = |s: &GridSeries| s.key.clone() + " " + &s.statistic;
    let candidate = format!("{} {}", li.sli, li.statistic);
    match li.status {
        LeadStatus::Leads => format!(
            "{candidate} leads {} by {lead} (r = {r:.2}, {p})",
            what(target)
        ),
        LeadStatus::Coincident => format!(
            "{candidate} moves with {} rather than before it (r = {r:.2} at {lead}, but {:.2} at lag 0 and {:.2} with the target first; {p})",
            what(target),
            li.r_lag0.unwrap_or(f64::NAN),
            li.r_reverse.unwrap_or(f64::NAN)
        ),
        _ => format!(
            "{candidate} does not significantly lead {} (strongest at {lead}: r = {r:.2}, {p})",
            what(target)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stretch_is_the_longest_gap_free_run_in_common() {
        let t: Vec<(i64, f64)> = [0, 60, 120, 240, 300, 360, 420]
            .iter()
            .map(|&s| (s, s as f64))
            .collect();
        let c: Vec<(i64, f64)> = [60, 120, 180, 240, 300, 360, 480]
            .iter()
            .map(|&s| (s, -(s as f64)))
            .collect();
        let (starts, y, x) = common_stretch(&t, &c, 60);
        assert_eq!(starts, vec![240, 300, 360]);
        assert_eq!(y, vec![240.0, 300.0, 360.0]);
        assert_eq!(x, vec![-240.0, -300.0, -360.0]);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(600), "10 min");
        assert_eq!(duration_text(5400), "1 h 30 min");
        assert_eq!(duration_text(7200), "2 h");
        assert_eq!(duration_text(45), "45 s");
    }
}
