//! Correlational evidence from production history, for SLIs that are hard to experiment on: the
//! KPI's windows regressed on the SLI's windows (at lags 0..L), with hour-of-week effects and
//! Newey–West errors (`stats::hac`). Its verdict is at most `correlational`: history cannot
//! tell an SLI that hurts the KPI from a third cause (traffic mix, incidents, campaigns) that
//! moves both, so it never validates an effect.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::report::{Reason, ReasonCode};
use super::summary::p_text;
use crate::domain::metric::Metric;
use crate::domain::text_enum;
use crate::error::{AppError, AppResult, Issue};
use crate::stats::dist::norm_ppf;
use crate::stats::hac::{first_differences, newey_west_lags, within_slope_hac};

text_enum! {
    /// The per-window value of the SLI: a percentile of a histogram window (Prometheus
    /// `histogram_quantile`) or the good share of an events window.
    SliStatistic { P50 => "p50", P90 => "p90", P95 => "p95", P99 => "p99", GoodShare => "good_share" }
}

text_enum! {
    /// Fixed effects of the regression: one intercept per hour of the week (UTC), or none.
    Controls { HourOfWeek => "hour_of_week", None => "none" }
}

text_enum! {
    /// What is regressed: changes from one window to the next (`differences`, the default), or
    /// the values themselves (`levels`), which find associations between unrelated but
    /// persistent series far more often than the test's level says.
    Transform { Differences => "differences", Levels => "levels" }
}

text_enum! {
    /// The strongest claim history supports: `correlational` (a significant association in the
    /// harmful direction), `not_significant` or `opposite_direction`. Never validated.
    ObservationalStatus { Correlational => "correlational", NotSignificant => "not_significant", OppositeDirection => "opposite_direction" }
}

impl SliStatistic {
    /// The quantile of a percentile statistic.
    pub fn quantile(self) -> Option<f64> {
        match self {
            SliStatistic::P50 => Some(0.5),
            SliStatistic::P90 => Some(0.9),
            SliStatistic::P95 => Some(0.95),
            SliStatistic::P99 => Some(0.99),
            SliStatistic::GoodShare => None,
        }
    }
}

fn differences() -> Transform {
    Transform::Differences
}

/// Most lags searched, in windows.
pub const MAX_LAG_WINDOWS: u32 = 48;
/// Fewest window pairs a lag needs: HAC errors are asymptotic, and a few hours of windows say
/// little about a relationship that varies by hour of the week.
pub const MIN_WINDOWS: usize = 100;
/// Most aligned windows one analysis reads (about 139 days of 1-minute windows).
pub const MAX_WINDOWS: i64 = 200_000;

/// The analysis's resolved settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObservationalParameters {
    pub statistic: SliStatistic,
    pub controls: Controls,
    /// `differences` unless asked otherwise (see [`Transform`]).
    #[serde(default = "differences")]
    pub transform: Transform,
    pub max_lag_windows: u32,
    pub confidence: f64,
    pub alpha: f64,
}

/// The regression at one lag: KPI at window t on the SLI at window t − lag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LagFit {
    pub lag_windows: u32,
    pub lag_minutes: f64,
    /// Window pairs used.
    pub windows: u64,
    /// KPI change per unit of the SLI (in the metrics' units).
    pub slope: f64,
    /// Newey–West (HAC) standard error, Bartlett kernel.
    pub std_error: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Two-sided p-value of this lag alone (normal, as statsmodels' HAC).
    pub p_value: f64,
    /// Bartlett truncation L = ⌊4(n/100)^{2/9}⌋.
    pub hac_lags: u32,
}

/// The verdict: never `validated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObservationalVerdict {
    /// Always `correlational` evidence.
    pub evidence: String,
    pub status: ObservationalStatus,
    /// Always false: only an experiment validates an effect.
    pub validated: bool,
    pub reasons: Vec<Reason>,
}

/// An observational analysis of an SLI and a KPI over a range of production windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObservationalAnalysis {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub sli: String,
    pub kpi: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The common window length both series were read at.
    pub window_seconds: u32,
    pub parameters: ObservationalParameters,
    /// Mean of the KPI's windows (weighted by units) and of the SLI's statistic, at lag 0.
    pub kpi_mean: f64,
    pub sli_mean: f64,
    /// Smallest and largest window value of the SLI's statistic over the range: the span a
    /// recommendation from this analysis can claim support for (null in analyses stored before
    /// they were recorded).
    #[serde(default)]
    pub sli_min: Option<f64>,
    #[serde(default)]
    pub sli_max: Option<f64>,
    /// Percentiles 0, 1, …, 100 of the SLI's window values over the range: how many windows
    /// reached a threshold (a recommendation's support). Empty in analyses stored before.
    #[serde(default)]
    pub sli_percentiles: Vec<f64>,
    /// Windows with an SLI value over the range.
    #[serde(default)]
    pub sli_windows: Option<u64>,
    pub lags: Vec<LagFit>,
    /// The lag with the largest |z|.
    pub best: LagFit,
    /// The best lag's p-value × the number of lags fitted (Bonferroni), at most 1.
    pub best_p_adjusted: f64,
    /// Lags asked for but not fitted: fewer than 100 window pairs.
    pub lags_skipped: u32,
    /// The long-run effect of a sustained SLI change: the KPI on the SLI at lags 0..J jointly,
    /// θ = Σ βⱼ with its HAC interval (what a correlational SLO is priced with); null when the
    /// joint fit could not be made, or in analyses stored before it was.
    #[serde(default)]
    pub long_run: Option<super::long_run::LongRun>,
    /// The best lag's slope relative to the KPI's mean; null when that mean is not positive
    /// (a relative change of a KPI around zero means nothing).
    pub relative_slope: Option<f64>,
    pub verdict: ObservationalVerdict,
    pub summary: String,
}

/// The two series on a common grid: per window start, the SLI's statistic and the KPI's mean.
pub struct AlignedSeries {
    pub window_seconds: u32,
    /// (start, SLI value); windows without events are absent.
    pub sli: Vec<(i64, f64)>,
    /// Sampling variance of each SLI value (same order): a percentile's q(1 − q)/(n·f²), a good
    /// share's p(1 − p)/n; NaN when it cannot be read.
    pub sli_variance: Vec<f64>,
    /// (start, KPI mean, units); windows without units are absent.
    pub kpi: Vec<(i64, f64, f64)>,
}

/// Hour of the week (0 = Monday 00:00 UTC) of a window start.
pub(crate) fn hour_of_week(start: i64) -> u32 {
    let t = DateTime::from_timestamp(start, 0).unwrap_or_default();
    t.weekday().num_days_from_monday() * 24 + t.hour()
}

/// The pairs (KPI at t, SLI at t − lag, group of t) of one lag, in time order, as first
/// differences between consecutive windows unless `levels`.
fn pairs(
    s: &AlignedSeries,
    sli: &std::collections::HashMap<i64, f64>,
    lag: u32,
    p: &ObservationalParameters,
) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let step = i64::from(s.window_seconds);
    let shift = i64::from(lag) * step;
    let (mut times, mut y, mut x, mut g) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (start, value, _) in &s.kpi {
        if let Some(v) = sli.get(&(start - shift)) {
            times.push(*start);
            y.push(*value);
            x.push(*v);
            g.push(match p.controls {
                Controls::HourOfWeek => hour_of_week(*start),
                Controls::None => 0,
            });
        }
    }
    match p.transform {
        Transform::Levels => (y, x, g),
        Transform::Differences => first_differences(&times, step, &y, &x, &g),
    }
}

/// Fits every lag; an error names what is missing (422).
pub fn fit_lags(s: &AlignedSeries, p: &ObservationalParameters) -> AppResult<Vec<LagFit>> {
    let mut fits = Vec::new();
    let sli = s.sli.iter().copied().collect();
    for lag in 0..=p.max_lag_windows {
        let (y, x, g) = pairs(s, &sli, lag, p);
        let maxlags = newey_west_lags(y.len());
        let fit = if y.len() < MIN_WINDOWS {
            Err(crate::stats::StatsError::TooFew {
                what: "a regression on production windows",
                need: MIN_WINDOWS,
                got: y.len(),
            })
        } else {
            within_slope_hac(&y, &x, &g, maxlags, p.confidence)
        };
        match fit {
            Ok(r) => fits.push(LagFit {
                lag_windows: lag,
                lag_minutes: f64::from(lag) * f64::from(s.window_seconds) / 60.0,
                windows: r.n as u64,
                slope: r.slope,
                std_error: r.std_error,
                ci_low: r.ci_low,
                ci_high: r.ci_high,
                p_value: r.p_value,
                hac_lags: maxlags as u32,
            }),
            Err(e) if lag == 0 => {
                return Err(AppError::invalid(
                    "the series cannot be regressed on each other",
                    vec![Issue::field(
                        "from",
                        format!(
                            "over this range: {e} ({} windows where both series have data)",
                            y.len()
                        ),
                    )],
                ))
            }
            Err(_) => {}
        }
    }
    Ok(fits)
}

/// The verdict and its reasons: correlational when the best lag is significant after
/// Bonferroni and its sign is the harmful one (a worse SLI goes with a worse KPI).
fn verdict(
    best: &LagFit,
    p_adjusted: f64,
    alpha: f64,
    sli: &Metric,
    kpi: &Metric,
) -> ObservationalVerdict {
    let harmful = sli.direction.harmful_slope_sign(kpi.direction);
    let mut reasons = vec![Reason {
        code: ReasonCode::Observational,
        message: "history alone cannot separate an SLI that hurts the KPI from a common cause \
                  (traffic mix, incidents, campaigns); run an experiment to validate"
            .into(),
    }];
    let status = if p_adjusted >= alpha {
        reasons.push(Reason {
            code: ReasonCode::CiIncludesZero,
            message: format!(
                "no lag is significant ({} after Bonferroni over the lags searched)",
                p_text(p_adjusted)
            ),
        });
        ObservationalStatus::NotSignificant
    } else if best.slope * harmful < 0.0 {
        reasons.push(Reason {
            code: ReasonCode::DirectionMismatch,
            message: "a worse SLI goes with a better KPI: not the harm an SLO guards against"
                .into(),
        });
        ObservationalStatus::OppositeDirection
    } else {
        ObservationalStatus::Correlational
    };
    ObservationalVerdict {
        evidence: "correlational".into(),
        status,
        validated: false,
        reasons,
    }
}

/// The best lag's interval, simultaneous over the `fitted` lags searched like its Bonferroni
/// p-value: slope ± z_{1−(1−confidence)/(2·fitted)} · HAC standard error.
pub fn simultaneous(best: &LagFit, confidence: f64, fitted: usize) -> (f64, f64) {
    let q = norm_ppf(1.0 - (1.0 - confidence) / (2.0 * fitted.max(1) as f64));
    (
        best.slope - q * best.std_error,
        best.slope + q * best.std_error,
    )
}

/// The whole analysis from aligned series (no I/O).
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    s: &AlignedSeries,
    p: ObservationalParameters,
    (sli, kpi): (&Metric, &Metric),
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    id: i64,
    created_at: DateTime<Utc>,
) -> AppResult<ObservationalAnalysis> {
    let lags = fit_lags(s, &p)?;
    let best = lags
        .iter()
        .max_by(|a, b| {
            (a.slope / a.std_error)
                .abs()
                .total_cmp(&(b.slope / b.std_error).abs())
        })
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no lag was fitted")))?;
    let p_adjusted = (best.p_value * lags.len() as f64).min(1.0);
    let lags_skipped = p.max_lag_windows + 1 - lags.len() as u32;
    let units: f64 = s.kpi.iter().map(|k| k.2).sum();
    let kpi_mean = s.kpi.iter().map(|k| k.1 * k.2).sum::<f64>() / units;
    let sli_mean = s.sli.iter().map(|x| x.1).sum::<f64>() / s.sli.len().max(1) as f64;
    let sli_min = s.sli.iter().map(|x| x.1).reduce(f64::min);
    let sli_max = s.sli.iter().map(|x| x.1).reduce(f64::max);
    let mut sorted: Vec<f64> = s.sli.iter().map(|x| x.1).collect();
    sorted.sort_by(f64::total_cmp);
    let sli_percentiles: Vec<f64> = if sorted.is_empty() {
        Vec::new()
    } else {
        (0..=100)
            .filter_map(|k| {
                crate::stats::descriptive::quantile_sorted(&sorted, f64::from(k) / 100.0).ok()
            })
            .collect()
    };
    let verdict = verdict(&best, p_adjusted, p.alpha, sli, kpi);
    let relative_slope = (kpi_mean > 0.0).then(|| best.slope / kpi_mean);
    let long_run = super::long_run::fit(s, &p, MIN_WINDOWS);
    let summary = summary(
        (sli, kpi),
        &p,
        (&best, lags.len()),
        p_adjusted,
        relative_slope,
        &verdict,
    );
    Ok(ObservationalAnalysis {
        id,
        created_at,
        sli: sli.key.clone(),
        kpi: kpi.key.clone(),
        from,
        to,
        window_seconds: s.window_seconds,
        parameters: p,
        kpi_mean,
        sli_mean,
        sli_min,
        sli_max,
        sli_percentiles,
        sli_windows: Some(s.sli.len() as u64),
        lags,
        best,
        best_p_adjusted: p_adjusted,
        lags_skipped,
        long_run,
        relative_slope,
        verdict,
        summary,
    })
}

/// The summary in words, e.g. "Over 1,344 15-minute windows, each +1 ms of checkout latency
/// p95 goes with −0.04% relative checkout conversion 30 minutes later (…). Correlational: …".
fn summary(
    (sli, kpi): (&Metric, &Metric),
    p: &ObservationalParameters,
    (best, fitted): (&LagFit, usize),
    p_adjusted: f64,
    relative: Option<f64>,
    v: &ObservationalVerdict,
) -> String {
    let when = if best.lag_windows == 0 {
        "in the same window".to_owned()
    } else {
        format!("{} minutes later", best.lag_minutes)
    };
    let unit = if sli.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", sli.unit)
    };
    let change = match relative {
        Some(r) => format!("{:+.3}% relative {}", r * 100.0, kpi.name),
        None => format!("{:+.4e} in {}", best.slope, kpi.name),
    };
    let lags = if fitted == 1 {
        "1 lag".to_owned()
    } else {
        format!("{fitted} lags")
    };
    let (lo, hi) = simultaneous(best, p.confidence, fitted);
    let lead = match p.transform {
        Transform::Differences => format!(
            "a rise of 1{unit} in {} {} from one window to the next",
            sli.name, p.statistic
        ),
        Transform::Levels => format!("each +1{unit} of {} {}", sli.name, p.statistic),
    };
    let numbers = format!(
        "slope {:.4e}, HAC {:.0}% CI simultaneous over {lags} {lo:.4e} to {hi:.4e}; {} after Bonferroni",
        best.slope,
        p.confidence * 100.0,
        p_text(p_adjusted),
    );
    match v.status {
        ObservationalStatus::NotSignificant => format!(
            "Over {} windows, no significant association of {} {} with {} was found at any of {lags} ({numbers}, at the strongest lag, {when}).",
            best.windows, sli.name, p.statistic, kpi.name
        ),
        status => {
            let tail = if status == ObservationalStatus::Correlational {
                "Correlational: a common cause may drive both, and neighbouring lags are hard to tell apart; an experiment is needed to validate it."
            } else {
                "The association runs the other way (a worse SLI with a better KPI)."
            };
            format!(
                "Over {} windows, {lead} goes with {change} {when} ({numbers}). {tail}",
                best.windows
            )
        }
    }
}
