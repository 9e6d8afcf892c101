//! Leading indicators: does an upstream SLI move before a downstream one? For each candidate,
//! on the longest stretch of consecutive windows where both series have a value:
//!
//! 1. first differences of both (levels of persistent series correlate spuriously);
//! 2. Box–Jenkins pre-whitening: an AR(p) of the candidate's differences (p ≤ 24 by AIC) and
//!    the same filter applied to the target's, so the candidate's own autocorrelation cannot
//!    smear a correlation over many lags;
//!    the cross-correlations r_k = corr(candidate_t, target_{t+k}) at k = 0 … K are reported;
//! 3. the decision, on the same pre-whitened pair: the heteroskedasticity-robust score z of
//!    each lag 1 … K (`stats::robust_ccf`) and the largest |z|, against its distribution over
//!    1,999 shuffles of the candidate's blocks (`stats::block_perm`; whole days when the
//!    stretch holds 8, so two independent daily profiles stay as aligned as in the data),
//!    Holm-corrected across candidates. The shuffles, not a normal approximation, carry skewed
//!    changes, and with day blocks (8 days or more) leftover daily autocorrelation. The best lead k* is where |z| peaks.
//!    (Whitening the target by its own AR instead pushes a shared signal's innovations into
//!    later lags, and a noisy target then "follows" a sharp candidate.);
//! 4. reported beside it, descriptive only (their p-values are at a lag chosen from the data):
//!    a single-lag Granger regression at k* (the candidate's change k* windows ago added to the
//!    target's own lags, HC1 errors) and the classic Granger F over lags 1 … k*;
//! 5. a significant candidate is `coincident` when the target also moves with it or first
//!    (`p_other` below alpha) and its lead side — the largest |z| at lags 1 … K — does not beat
//!    the other side by more than the shuffles do (`p_ahead`): a shared signal the candidate
//!    measures with less noise, or a candidate that follows the target. Otherwise it leads.
//!    The shuffles break every association, so `p_ahead` asks "ahead by more than no
//!    association shows", not "ahead of an equally strong simultaneous part".
//!
//! A lead is an association in time, not proof of cause: a common upstream cause that reaches
//! one SLI first also makes it "lead". It is what an early warning needs, not what an SLO
//! needs. Numbers are checked against statsmodels (`stats::lead`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::text_enum;
use crate::stats::block_perm::shuffles_for;
use crate::stats::dist::norm_ppf;
use crate::stats::lead::{ar_aic_order, ar_filter, ar_fit, ccf, granger, lag_wald};
use crate::stats::multiple::holm;
use crate::stats::robust_ccf::max_lag_test;

use super::summary::p_text_as;

/// Most lags looked at, in windows.
pub const MAX_LEAD_WINDOWS: usize = 120;
/// Highest AR order of the pre-whitening filter.
pub const MAX_AR_ORDER: usize = 24;
/// Fewest window-to-window changes a candidate needs (and at least 4K + 12 for the F test).
pub const MIN_CHANGES: usize = 200;

text_enum! {
    /// `leads`: the candidate's changes predict the target's at some lag 1 … K (max-test p,
    /// Holm-corrected, below alpha) and the target does not move with it or first as much;
    /// `coincident`: significant, but the target also significantly moves with it (lag 0) or
    /// before it, and the lead side does not beat that by more than chance — a shared signal,
    /// or a candidate that follows the target (the summary says which); `not_significant`; `insufficient_data`: not compared — no series, windows that
    /// do not nest, too few consecutive windows in common, or a series that does not vary.
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

/// The test that decides (`stats::robust_ccf`, `stats::block_perm`): robust score z's of the
/// candidate's whitened changes against the target's passed through the same filter, at each
/// lag; the largest over lags 1 … K against its distribution when the candidate's blocks are
/// shuffled (whole days when the stretch holds 8 or more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeadTest {
    /// Where |z| peaks in lags 1 … K windows: the reported lead.
    pub lead_windows: u32,
    /// The robust score at that lag (signed; ≈ N(0, 1) at any one lag without a lead).
    pub z: f64,
    /// The largest robust score at lag 0 or with the target first (signed).
    pub z_other: f64,
    /// Where `z_other` is: 0 (together) or the windows by which the target moves first.
    pub other_lag_windows: u32,
    /// The share of shuffles (counting the data's own order) whose largest |z| over lags
    /// 1 … K is as large: before the correction across candidates. At least 1/2000 (1/10,000
    /// when more than 10 candidates are compared).
    pub p_lead: f64,
    /// The same over lag 0 and the target first (K + 1 lags).
    pub p_other: f64,
    /// The share of shuffles whose lead side beats the other side by as much: below alpha,
    /// the candidate is ahead of the target by more than chance (the coincident gate).
    pub p_ahead: f64,
    /// `p_lead` as if the z's were normal (Šidák over K lags), for comparison.
    pub p_lead_sidak: f64,
    /// The shuffles drawn, the blocks, their length in windows, and whether they are whole
    /// days.
    pub permutations: u32,
    pub blocks: u32,
    pub block_windows: u32,
    pub day_blocks: bool,
}

/// A single-lag Granger regression at k* (reported): does the candidate's change k* windows
/// ago add to the target's own past (own lags by AIC, chosen without looking at the
/// candidate)? HC1 errors.
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
    pub lead_test: Option<LeadTest>,
    pub lag_test: Option<LagTest>,
    /// `lead_test.p_lead`, Holm-corrected across the candidates.
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
    decision: LeadTest,
    granger: GrangerResult,
    test: LagTest,
}

fn fit(
    y: &[f64],
    x: &[f64],
    max_lag: usize,
    calibration: (Option<usize>, usize),
) -> Result<Fit, String> {
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
    // The decision reads the same pre-whitened pair as the ccf: the robust z needs only the
    // candidate's residuals white, and the target's own filter would push a shared signal's
    // innovations into later lags.
    let s = max_lag_test(&ey, &ar.residuals, max_lag, calibration).map_err(why)?;
    let own = ar_aic_order(&dy, max_p).map_err(why)?;
    let lead = s.lead;
    let back = ccf(&ar.residuals, &ey, max_lag).map_err(why)?;
    let reverse = back[1..]
        .iter()
        .copied()
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or(0.0);
    let g = granger(&dy, &dx, lead).map_err(why)?;
    let w = lag_wald(&dy, &dx, lead, own).map_err(why)?;
    Ok(Fit {
        ar_order: p,
        ccf: r,
        reverse,
        lead,
        decision: LeadTest {
            lead_windows: lead as u32,
            z: s.z,
            z_other: s.z_other,
            other_lag_windows: s.other_lag as u32,
            p_lead: s.p_lead,
            p_other: s.p_other,
            p_ahead: s.p_ahead,
            p_lead_sidak: s.p_lead_sidak,
            permutations: s.calibration.permutations as u32,
            blocks: s.calibration.blocks.count as u32,
            block_windows: s.calibration.blocks.len as u32,
            day_blocks: s.calibration.blocks.seasonal,
        },
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
        lead_test: None,
        lag_test: None,
        p_holm: None,
        summary: format!("{key}: {why}"),
    }
}

/// One candidate of a family of `family` against the target on a grid of `step` seconds, lags
/// 1 … `max_lag` windows (before the correction across candidates, [`correct`]).
pub fn evaluate(
    target: &GridSeries,
    c: &GridSeries,
    step: i64,
    max_lag: usize,
    (alpha, family): (f64, usize),
) -> LeadingIndicator {
    let (starts, y, x) = common_stretch(&target.points, &c.points, step);
    let mut li = unavailable(&c.key, &c.statistic, "");
    li.window_seconds = Some(step);
    li.max_lag_windows = Some(max_lag as u32);
    li.from = starts.first().and_then(|s| at(*s));
    li.to = starts.last().and_then(|s| at(s + step));
    li.changes = starts.len().saturating_sub(1) as u64;
    let period = (step > 0 && 86_400 % step == 0).then(|| (86_400 / step) as usize);
    match fit(&y, &x, max_lag, (period, shuffles_for(family))) {
        Ok(f) => {
            let n_filtered = (li.changes as usize).saturating_sub(f.ar_order).max(1);
            li.ar_order = Some(f.ar_order as u32);
            li.lead_windows = Some(f.lead as u32);
            li.lead_seconds = Some(f.lead as i64 * step);
            li.r = Some(f.ccf[f.lead]);
            // z_{1−α/2} from the lower tail, exact for tiny alpha.
            li.band = Some(-norm_ppf(alpha / 2.0) / (n_filtered as f64).sqrt());
            li.r_lag0 = Some(f.ccf[0]);
            li.r_reverse = Some(f.reverse);
            li.ccf = f.ccf;
            li.granger = Some(f.granger);
            li.lag_test = Some(f.test);
            li.lead_test = Some(f.decision);
        }
        Err(why) => li.summary = format!("{}: {why}", c.key),
    }
    li
}

/// Holm across the candidates that were tested, the status and summary of each, and the
/// order: by corrected p-value (then key), the ones without a test last.
pub fn correct(out: &mut [LeadingIndicator], target: &GridSeries, alpha: f64) {
    let tested: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].lead_test.is_some())
        .collect();
    let raw: Vec<f64> = tested
        .iter()
        .filter_map(|&i| out[i].lead_test.as_ref().map(|s| s.p_lead))
        .collect();
    let adjusted = holm(&raw).unwrap_or(raw);
    for (&i, p) in tested.iter().zip(adjusted) {
        let li = &mut out[i];
        li.p_holm = Some(p);
        // Coincident only when the target also moves with the candidate or first (p_other)
        // and the lead side does not beat that by more than the shuffles do (p_ahead).
        let ahead = li
            .lead_test
            .as_ref()
            .is_some_and(|s| s.p_ahead < alpha || s.p_other >= alpha);
        li.status = match (p < alpha, ahead) {
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
        .map(|c| evaluate(target, c, step, max_lag, (alpha, candidates.len())))
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
        LeadStatus::Coincident => {
            let (z, z_other, other) = li.lead_test.as_ref().map_or((f64::NAN, f64::NAN, 0), |s| {
                (s.z, s.z_other, s.other_lag_windows)
            });
            let step = li.window_seconds.unwrap_or(0);
            match other {
                0 => format!(
                    "{candidate} moves with {} at the same time rather than before it (robust z = {z_other:.1} at lag 0, {z:.1} with the candidate {lead} ahead; {p})",
                    what(target)
                ),
                k => format!(
                    "{candidate} follows {} by {} rather than leading it (robust z = {z_other:.1} with the target {} ahead, {z:.1} with the candidate {lead} ahead; {p})",
                    what(target),
                    duration_text(i64::from(k) * step),
                    duration_text(i64::from(k) * step)
                ),
            }
        }
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

    fn grid(key: &str, v: &[f64]) -> GridSeries {
        GridSeries {
            key: key.to_owned(),
            statistic: "p95".to_owned(),
            points: v
                .iter()
                .enumerate()
                .map(|(i, x)| (60 * i as i64, *x))
                .collect(),
        }
    }

    /// A fixed pseudo-random walk (xorshift steps, centred).
    fn walk(n: usize, seed: u64) -> Vec<f64> {
        let (mut s, mut level) = (seed, 0.0);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                level += (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                level
            })
            .collect()
    }

    #[test]
    fn a_candidate_that_moves_with_the_target_is_coincident_and_one_ahead_leads() {
        let n = 800;
        let (x, e) = (walk(n, 5), walk(n, 9));
        // Together: the target takes the candidate's change now and, weaker, a window later.
        let together: Vec<f64> = (0..n)
            .map(|t| x[t] + if t > 0 { 0.6 * x[t - 1] } else { 0.0 } + e[t])
            .collect();
        let out = analyse(&grid("y", &together), &[grid("x", &x)], 60, 10, 0.05);
        let d = out[0].lead_test.clone().unwrap();
        assert_eq!(out[0].status, LeadStatus::Coincident, "{:?}", out[0]);
        assert_eq!((d.lead_windows, d.other_lag_windows), (1, 0), "{d:?}");
        // Both sides as significant as the shuffles can say; the lead side does not beat the
        // other.
        assert!(
            d.p_lead <= 5e-4 && d.p_other <= 5e-4 && d.p_ahead > 0.5,
            "{d:?}"
        );
        assert!(
            out[0].summary.contains("at the same time"),
            "{}",
            out[0].summary
        );
        // Ahead: the same change three windows before the target, nothing at lag 0.
        let ahead: Vec<f64> = (0..n)
            .map(|t| if t >= 3 { x[t - 3] } else { 0.0 } + 0.3 * e[t])
            .collect();
        let out = analyse(&grid("y", &ahead), &[grid("x", &x)], 60, 10, 0.05);
        assert_eq!(out[0].status, LeadStatus::Leads, "{:?}", out[0]);
        assert_eq!(out[0].lead_windows, Some(3));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(600), "10 min");
        assert_eq!(duration_text(5400), "1 h 30 min");
        assert_eq!(duration_text(7200), "2 h");
        assert_eq!(duration_text(45), "45 s");
    }
}
