//! Comparisons of ratio metrics (Σ numerator / Σ denominator per arm, e.g. click-through rate)
//! and of ordinal metrics' top-box shares.

use super::data::{MetricColumn, RatioParts, UnitData, MIN_RATIO_UNITS};
use super::effects::{bootstrap_interval, estimate, relative_change};
use super::report::{
    ArmMean, BootstrapInterval, EffectAlternatives, Estimate, Interval, KpiEffect, Method,
    Parameters, TopBoxEffect,
};
use super::{seed_for, stats_err};
use crate::domain::metric::OrdinalScale;
use crate::error::AppResult;
use crate::stats::descriptive::{wilson_interval, Moments};
use crate::stats::dist::norm_ppf;
use crate::stats::hypothesis::two_proportion_z_test;
use crate::stats::ratio::{jackknife_ratios, ratio_difference, ratio_of_means, RatioEstimate};
use crate::stats::{bootstrap, StatsError, StatsResult};

/// A ratio metric's per-arm parts and estimates, computed once per metric.
pub struct RatioArms {
    parts: Vec<(Vec<f64>, Vec<f64>)>,
    estimates: Vec<StatsResult<RatioEstimate>>,
}

impl RatioArms {
    /// Per arm: the parts and R with its variance; an arm with fewer than
    /// [`MIN_RATIO_UNITS`] units with a positive denominator has no estimate.
    pub fn new(d: &UnitData, parts: &RatioParts) -> RatioArms {
        let parts = parts.by_arm(d);
        let estimates = parts
            .iter()
            .zip(&d.arms)
            .map(|((y, x), arm)| {
                let got = x.iter().filter(|v| **v > 0.0).count();
                if got < MIN_RATIO_UNITS {
                    return Err(StatsError::Undefined(format!(
                        "arm '{}' has {got} units with a positive denominator; a ratio needs at least {MIN_RATIO_UNITS}",
                        arm.key
                    )));
                }
                ratio_of_means(y, x)
            })
            .collect();
        RatioArms { parts, estimates }
    }

    /// One arm's level: R with its delta-method normal interval.
    pub fn level(&self, a: usize, confidence: f64) -> ArmMean {
        let units = self.parts[a].0.len() as u64;
        match &self.estimates[a] {
            Ok(r) => {
                let half = norm_ppf(0.5 + confidence / 2.0) * r.variance.sqrt();
                ArmMean {
                    units,
                    successes: None,
                    mean: r.ratio,
                    ci: Some(Interval {
                        low: r.ratio - half,
                        high: r.ratio + half,
                    }),
                }
            }
            Err(_) => ArmMean {
                units,
                successes: None,
                mean: 0.0,
                ci: None,
            },
        }
    }
}

/// R as moments whose mean is R and whose variance of the mean (variance / n) is Var(R), so
/// the delta method and Fieller's interval for the relative change apply to independent arms.
fn as_moments(r: RatioEstimate) -> Moments {
    Moments::from_summary(r.n, r.ratio, r.variance * r.n as f64)
}

/// Treatment arm `a` against control for ratio metric `m`: the difference of ratios by the
/// delta method (normal test), its relative change by the delta method with Fieller's
/// interval, and a Poisson bootstrap of Σw·y / Σw·x per arm.
pub fn compare(
    d: &UnitData,
    p: &Parameters,
    m: &MetricColumn,
    a: usize,
    arms: &RatioArms,
) -> AppResult<KpiEffect> {
    let c = d.control;
    let what = format!("{} in {}", m.metric.key, d.arms[a].key);
    let err = stats_err(&what);
    let rt = arms.estimates[a].clone().map_err(&err)?;
    let rc = arms.estimates[c].clone().map_err(&err)?;
    let primary = estimate(
        ratio_difference(rt, rc, p.confidence).map_err(&err)?,
        Method::RatioDeltaZ,
    );
    let (relative, fieller) = relative_change(
        as_moments(rt),
        as_moments(rc),
        &primary,
        (p.confidence, None),
        &what,
    )?;
    let seed = seed_for(p, &format!("metric:{}", m.metric.key), a);
    let boot = bootstrap_ratio(&arms.parts[a], &arms.parts[c], rt.ratio - rc.ratio, p, seed)
        .map_err(&err)?;
    Ok(KpiEffect {
        variant: d.arms[a].key.clone(),
        metric: m.metric.key.clone(),
        role: m.role,
        control: arms.level(c, p.confidence),
        treatment: arms.level(a, p.confidence),
        primary,
        relative,
        alternatives: EffectAlternatives {
            unadjusted: None,
            unadjusted_relative: None,
            fieller,
            bootstrap: boot,
            cuped: None,
            mann_whitney: None,
            top_box: None,
        },
    })
}

/// Poisson bootstrap of R_t − R_c: each replicate reweights units with Poisson(1) weights and
/// takes Σw·y / Σw·x per arm; BCa's acceleration from leave-one-out ratios.
fn bootstrap_ratio(
    t: &(Vec<f64>, Vec<f64>),
    c: &(Vec<f64>, Vec<f64>),
    theta: f64,
    p: &Parameters,
    seed: u64,
) -> StatsResult<BootstrapInterval> {
    let ys: Vec<f64> = t.0.iter().chain(&c.0).copied().collect();
    let xs: Vec<f64> = t.1.iter().chain(&c.1).copied().collect();
    let groups: Vec<u32> = (0..ys.len()).map(|i| u32::from(i >= t.0.len())).collect();
    let reps: Vec<f64> = bootstrap::poisson_sums(
        &groups,
        2,
        &[&ys, &xs],
        p.bootstrap.resamples as usize,
        seed,
    )?
    .iter()
    .map(|r| r[0][1] / r[0][2] - r[1][1] / r[1][2])
    .filter(|v| v.is_finite())
    .collect();
    bootstrap_interval(p, theta, &reps, || {
        let neg: Vec<f64> = jackknife_ratios(&c.0, &c.1).iter().map(|v| -v).collect();
        Ok(vec![jackknife_ratios(&t.0, &t.1), neg])
    })
}

/// The top-box share per arm of an ordinal metric and its two-proportion z difference.
pub fn top_box(t: &[f64], c: &[f64], scale: OrdinalScale, p: &Parameters) -> Option<TopBoxEffect> {
    let from = f64::from(scale.top_from());
    let k = |v: &[f64]| v.iter().filter(|x| **x >= from).count() as u64;
    let share = |v: &[f64]| {
        let (kv, n) = (k(v), v.len() as u64);
        ArmMean {
            units: n,
            successes: Some(kv),
            mean: if n == 0 { 0.0 } else { kv as f64 / n as f64 },
            ci: wilson_interval(kv, n, p.confidence)
                .ok()
                .map(|(low, high)| Interval { low, high }),
        }
    };
    let z = two_proportion_z_test(k(t), t.len() as u64, k(c), c.len() as u64, p.confidence).ok()?;
    let difference: Estimate = estimate(z.difference, Method::TwoProportionZ);
    Some(TopBoxEffect {
        from_score: scale.top_from(),
        control: share(c),
        treatment: share(t),
        difference,
    })
}
