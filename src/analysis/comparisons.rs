//! Arm × metric comparisons: each treatment arm against control for every KPI and guardrail,
//! with one primary estimate and its alternatives.

use rayon::prelude::*;

use super::data::{MetricColumn, UnitData};
use super::effects::{arm_mean, bootstrap_interval, by_arm, estimate, relative_change};
use super::ratio::{top_box, RatioArms};
use super::report::{
    ArmMean, BootstrapInterval, CupedAdjustment, EffectAlternatives, FailedComparison, KpiEffect,
    MannWhitneyOut, Method, Parameters,
};
use super::resample::SharedPass;
use super::{seed_for, stats_err};
use crate::domain::metric::ValueType;
use crate::error::AppResult;
use crate::stats::bootstrap;
use crate::stats::cuped::cuped;
use crate::stats::descriptive::Moments;
use crate::stats::hypothesis::{mann_whitney_sorted, two_proportion_z_test, welch_from_moments};
use crate::stats::StatsResult;

/// Bootstrap interval of mean(t) − mean(c) from Poisson-bootstrap sums: the analysis's shared
/// pass when there is one, else the exact binary shortcut or a pass over the two arms.
fn bootstrap_difference(
    t: &[f64],
    c: &[f64],
    binary: bool,
    p: &Parameters,
    seed: u64,
    shared: Option<Vec<f64>>,
) -> StatsResult<BootstrapInterval> {
    let resamples = p.bootstrap.resamples as usize;
    let reps: Vec<f64> = if let Some(reps) = shared {
        reps
    } else if binary {
        let k = |v: &[f64]| v.iter().filter(|x| **x == 1.0).count() as u64;
        bootstrap::binary_poisson(
            &[k(t), k(c)],
            &[t.len() as u64, c.len() as u64],
            resamples,
            seed,
        )?
        .iter()
        .map(|r| r[0].1 / r[0].0 - r[1].1 / r[1].0)
        .collect()
    } else {
        let values: Vec<f64> = t.iter().chain(c).copied().collect();
        let groups: Vec<u32> = (0..values.len()).map(|i| u32::from(i >= t.len())).collect();
        bootstrap::poisson_sums(&groups, 2, &[&values], resamples, seed)?
            .iter()
            .map(|r| r[0][1] / r[0][0] - r[1][1] / r[1][0])
            .collect()
    };
    let theta = Moments::of(t).mean - Moments::of(c).mean;
    bootstrap_interval(p, theta, &reps, || {
        let neg: Vec<f64> = bootstrap::jackknife_means(c).iter().map(|v| -v).collect();
        Ok(vec![bootstrap::jackknife_means(t), neg])
    })
}
/// CUPED with the metric's own pre-period value; units without one get the mean of the
/// assigned units' pre-period values (it does not use the assignment, so the adjusted
/// difference stays unbiased). `None` when there is no usable pre-period data.
fn cuped_effects(
    d: &UnitData,
    m: &MetricColumn,
    p: &Parameters,
) -> Option<(f64, f64, Vec<Moments>)> {
    let pre_present: Vec<f64> = m.pre.iter().copied().filter(|v| !v.is_nan()).collect();
    if pre_present.len() < 3 {
        return None;
    }
    let fill = Moments::of(&pre_present).mean;
    let mut ys = vec![Vec::new(); d.arms.len()];
    let mut xs = vec![Vec::new(); d.arms.len()];
    for i in 0..d.len() {
        if let Some(y) = m.outcome(i, p.missing_outcomes) {
            let a = d.arm[i] as usize;
            ys[a].push(y);
            xs[a].push(if m.pre[i].is_nan() { fill } else { m.pre[i] });
        }
    }
    let yr: Vec<&[f64]> = ys.iter().map(Vec::as_slice).collect();
    let xr: Vec<&[f64]> = xs.iter().map(Vec::as_slice).collect();
    let r = cuped(&yr, &xr).ok()?;
    Some((
        r.theta,
        r.variance_reduction,
        r.arms
            .iter()
            .map(|(n, mean, var)| Moments::from_summary(*n, *mean, *var))
            .collect(),
    ))
}
/// Every treatment arm × KPI/guardrail comparison (adjusted p-values are filled in later), and
/// the comparisons that could not be computed (a rare-event guardrail with no event in an arm,
/// an arm with no value): those are reported, and the rest of the analysis goes on.
pub fn kpi_effects(
    d: &UnitData,
    p: &Parameters,
    shared: Option<&SharedPass>,
) -> (Vec<KpiEffect>, Vec<FailedComparison>) {
    let per_metric: Vec<Vec<Result<KpiEffect, FailedComparison>>> = d
        .metrics
        .par_iter()
        .enumerate()
        .map(|(mi, m)| metric_effects(d, p, shared, mi, m))
        .collect();
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for r in per_metric.into_iter().flatten() {
        match r {
            Ok(e) => ok.push(e),
            Err(f) => failed.push(f),
        }
    }
    (ok, failed)
}

/// Every treatment arm's comparison with control for one KPI or guardrail. The primary is
/// CUPED's adjusted Welch difference when the metric has pre-period data and CUPED is on,
/// otherwise the unadjusted test (two-proportion z for binary metrics, Welch otherwise).
fn metric_effects(
    d: &UnitData,
    p: &Parameters,
    shared: Option<&SharedPass>,
    mi: usize,
    m: &MetricColumn,
) -> Vec<Result<KpiEffect, FailedComparison>> {
    let arms = MetricArms::new(d, p, m);
    let mut out = Vec::new();
    for (a, arm) in d.arms.iter().enumerate().filter(|(a, _)| *a != d.control) {
        out.push(
            compare(d, p, shared, mi, m, a, &arms).map_err(|e| FailedComparison {
                variant: arm.key.clone(),
                metric: m.metric.key.clone(),
                role: m.role,
                reason: e.to_string(),
            }),
        );
    }
    out
}

type Cuped = (f64, f64, Vec<Moments>);

/// One metric's values per arm and what every comparison with control reuses, computed once.
struct MetricArms {
    vals: Vec<Vec<f64>>,
    moments: Vec<Moments>,
    levels: Vec<ArmMean>,
    /// Values sorted per arm, for Mann–Whitney (continuous metrics only, else empty).
    sorted: Vec<Vec<f64>>,
    cuped: Option<Cuped>,
    /// A ratio metric's per-arm parts and estimates.
    ratio: Option<RatioArms>,
}

impl MetricArms {
    fn new(d: &UnitData, p: &Parameters, m: &MetricColumn) -> MetricArms {
        let vals = by_arm(d, |i| m.outcome(i, p.missing_outcomes));
        let moments: Vec<Moments> = vals.iter().map(|v| Moments::of(v)).collect();
        let levels = vals
            .iter()
            .zip(&moments)
            .map(|(v, mo)| arm_mean(v, *mo, m.is_binary(), p.confidence))
            .collect();
        let sorted = if matches!(
            m.metric.value_type,
            ValueType::Continuous | ValueType::Ordinal
        ) {
            vals.iter()
                .map(|v| {
                    let mut s = v.clone();
                    s.sort_unstable_by(f64::total_cmp);
                    s
                })
                .collect()
        } else {
            Vec::new()
        };
        let cuped = if p.cuped && m.parts.is_none() {
            cuped_effects(d, m, p)
        } else {
            None
        };
        MetricArms {
            ratio: m.parts.as_ref().map(|parts| RatioArms::new(d, parts)),
            vals,
            moments,
            levels,
            sorted,
            cuped,
        }
    }
}

/// Treatment arm `a` against control for metric `m`.
fn compare(
    d: &UnitData,
    p: &Parameters,
    shared: Option<&SharedPass>,
    mi: usize,
    m: &MetricColumn,
    a: usize,
    arms: &MetricArms,
) -> AppResult<KpiEffect> {
    if let Some(r) = &arms.ratio {
        return super::ratio::compare(d, p, m, a, r);
    }
    let (c, arm) = (d.control, &d.arms[a]);
    let what = format!("{} in {}", m.metric.key, arm.key);
    let (t, cv) = (&arms.vals[a], &arms.vals[c]);
    let (mt, mc) = (arms.moments[a], arms.moments[c]);
    let (lt, lc) = (&arms.levels[a], &arms.levels[c]);
    let unadjusted = if let (Some(kt), Some(kc)) = (lt.successes, lc.successes) {
        let z = two_proportion_z_test(kt, lt.units, kc, lc.units, p.confidence)
            .map_err(stats_err(&what))?;
        estimate(z.difference, Method::TwoProportionZ)
    } else {
        let w = welch_from_moments(mt, mc, p.confidence).map_err(stats_err(&what))?;
        estimate(w.difference, Method::WelchT)
    };
    let (unadjusted_relative, unadjusted_fieller) = relative_change(
        mt,
        mc,
        &unadjusted,
        (p.confidence, lt.successes.zip(lc.successes)),
        &what,
    )?;
    let shared_reps = shared.and_then(|s| s.difference(mi, a, c));
    let boot = bootstrap_difference(
        t,
        cv,
        m.is_binary(),
        p,
        seed_for(p, &format!("metric:{}", m.metric.key), a),
        shared_reps,
    )
    .map_err(stats_err(&what))?;
    let mann_whitney = if arms.sorted.is_empty() {
        None
    } else {
        mann_whitney_sorted(&arms.sorted[a], &arms.sorted[c])
            .ok()
            .map(|r| MannWhitneyOut {
                u: r.u,
                p_value: r.p_value,
                prob_superiority: r.prob_superiority,
            })
    };
    let mut alternatives = EffectAlternatives {
        unadjusted: None,
        unadjusted_relative: None,
        fieller: unadjusted_fieller,
        bootstrap: boot,
        cuped: None,
        mann_whitney,
        top_box: m.metric.scale.and_then(|scale| top_box(t, cv, scale, p)),
    };
    let (primary, rel) = match &arms.cuped {
        Some((theta, reduction, arms)) => {
            let w = welch_from_moments(arms[a], arms[c], p.confidence).map_err(stats_err(&what))?;
            let primary = estimate(w.difference, Method::CupedWelchT);
            let (rel, fieller) =
                relative_change(arms[a], arms[c], &primary, (p.confidence, None), &what)?;
            alternatives.unadjusted = Some(unadjusted);
            alternatives.unadjusted_relative = unadjusted_relative;
            alternatives.fieller = fieller;
            alternatives.cuped = Some(CupedAdjustment {
                theta: *theta,
                variance_reduction: *reduction,
            });
            (primary, rel)
        }
        None => (unadjusted, unadjusted_relative),
    };
    Ok(KpiEffect {
        variant: arm.key.clone(),
        metric: m.metric.key.clone(),
        role: m.role,
        control: lc.clone(),
        treatment: lt.clone(),
        primary,
        relative: rel,
        alternatives,
    })
}
