//! Per-variant summaries, the sample-ratio check, the first stage and arm × metric effects.

use rayon::prelude::*;

use super::data::{MetricColumn, UnitData};
use super::report::{
    BootstrapInterval, BootstrapMethod, CupedEffect, DataQuality, Estimate, Exclusion,
    FirstStageArm, Interval, KpiEffect, MannWhitneyOut, Method, MetricCoverage, MetricRole,
    MetricSummary, Parameters, SampleRatio, SliSummary, VariantCount, VariantSummary,
};
use super::resample::SharedPass;
use super::{seed_for, stats_err};
use crate::error::AppResult;
use crate::stats::bootstrap::{self, IntervalMethod};
use crate::stats::cuped::cuped;
use crate::stats::descriptive::{quantile_sorted, Moments};
use crate::stats::hypothesis::{mann_whitney_sorted, two_proportion_z_test, welch_from_moments};
use crate::stats::lift::relative_lift;
use crate::stats::srm::{missingness_homogeneity, sample_ratio, SRM_ALPHA};
use crate::stats::{self, StatsResult};

/// Values of a column per arm, after the missing-outcome rule.
pub fn by_arm(d: &UnitData, value: impl Fn(usize) -> Option<f64>) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); d.arms.len()];
    for i in 0..d.len() {
        if let Some(v) = value(i) {
            out[d.arm[i] as usize].push(v);
        }
    }
    out
}

pub fn sli_value(d: &UnitData, i: usize) -> Option<f64> {
    let v = d.sli[i];
    (!v.is_nan()).then_some(v)
}

pub fn interval_method(m: BootstrapMethod) -> IntervalMethod {
    match m {
        BootstrapMethod::Bca => IntervalMethod::Bca,
        BootstrapMethod::Percentile => IntervalMethod::Percentile,
        BootstrapMethod::Basic => IntervalMethod::Basic,
    }
}

pub fn estimate(e: stats::Inference, method: Method) -> Estimate {
    Estimate {
        estimate: e.estimate,
        std_error: e.std_error,
        ci_low: e.ci_low,
        ci_high: e.ci_high,
        p_value: Some(e.p_value),
        adjusted_p_value: None,
        method,
    }
}

pub fn data_quality(d: &UnitData, p: &Parameters) -> DataQuality {
    let counts = d.arm_counts();
    let no_sli = d.sli.iter().filter(|v| v.is_nan()).count() as u64;
    let mut excluded = Vec::new();
    if no_sli > 0 {
        excluded.push(Exclusion {
            reason: "no_sli_value".into(),
            units: no_sli,
            description: format!(
                "{no_sli} units have no {} value and are left out of the first stage, causal slopes and thresholds",
                d.sli_metric.key
            ),
        });
    }
    for m in &d.metrics {
        let missing = d.len() as u64 - m.units_post();
        if missing > 0
            && m.missing_rule(p.missing_outcomes) == super::report::MissingOutcomes::Exclude
        {
            excluded.push(Exclusion {
                reason: format!("no_kpi_value:{}", m.metric.key),
                units: missing,
                description: format!(
                    "{missing} units have no {} value and are left out of its analyses",
                    m.metric.key
                ),
            });
        }
    }
    let sli_cov = MetricCoverage {
        metric: d.sli_metric.key.clone(),
        role: MetricRole::Sli,
        units: d.len() as u64 - no_sli,
        units_pre: d.sli_pre.iter().filter(|v| !v.is_nan()).count() as u64,
    };
    DataQuality {
        assigned_units: d
            .arms
            .iter()
            .zip(&counts)
            .map(|(a, c)| VariantCount {
                variant: a.key.clone(),
                units: *c,
            })
            .collect(),
        metrics: std::iter::once(sli_cov)
            .chain(d.metrics.iter().map(|m| MetricCoverage {
                metric: m.metric.key.clone(),
                role: m.role,
                units: m.units_post(),
                units_pre: m.units_pre(),
            }))
            .collect(),
        unassigned_observations: d.unassigned_observations,
        unassigned_units: d.unassigned_units,
        excluded,
    }
}

/// The sample-ratio check of the assignments against the planned weights, and the test that
/// the share of units with an SLI value is the same in every arm (given the realised
/// assignment counts).
pub fn srm(d: &UnitData) -> AppResult<SampleRatio> {
    let weights: Vec<f64> = d.arms.iter().map(|a| a.weight).collect();
    let r = sample_ratio(&d.arm_counts(), &weights).map_err(stats_err("sample-ratio check"))?;
    let mut analysed = vec![0u64; d.arms.len()];
    for (a, x) in d.arm.iter().zip(&d.sli) {
        if !x.is_nan() {
            analysed[*a as usize] += 1;
        }
    }
    let analysed_p = missingness_homogeneity(&analysed, &r.observed)
        .ok()
        .map(|t| t.1);
    Ok(SampleRatio {
        variants: d.arms.iter().map(|a| a.key.clone()).collect(),
        observed: r.observed,
        expected: r.expected,
        chi_square: r.chi_square,
        p_value: r.p_value,
        passed: r.p_value >= SRM_ALPHA,
        alarm_p_value: SRM_ALPHA,
        analysed,
        analysed_p_value: analysed_p,
        analysed_passed: analysed_p.is_none_or(|p| p >= SRM_ALPHA),
    })
}

fn sli_summary(sorted: &[f64]) -> Option<SliSummary> {
    if sorted.is_empty() {
        return None;
    }
    let q = |p: f64| quantile_sorted(sorted, p).unwrap_or(f64::NAN);
    Some(SliSummary {
        units: sorted.len() as u64,
        mean: Moments::of(sorted).mean,
        p1: Some(q(0.01)),
        p5: Some(q(0.05)),
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
        quantiles: (0..=200).map(|i| q(f64::from(i) / 200.0)).collect(),
    })
}

/// SLI values per arm, sorted ascending.
pub fn sorted_sli(d: &UnitData) -> Vec<Vec<f64>> {
    let mut s = by_arm(d, |i| sli_value(d, i));
    s.iter_mut()
        .for_each(|v| v.sort_unstable_by(f64::total_cmp));
    s
}

pub fn variants(d: &UnitData, p: &Parameters, sli_sorted: &[Vec<f64>]) -> Vec<VariantSummary> {
    let counts = d.arm_counts();
    let per_metric: Vec<Vec<Vec<f64>>> = d
        .metrics
        .iter()
        .map(|m| by_arm(d, |i| m.outcome(i, p.missing_outcomes)))
        .collect();
    d.arms
        .iter()
        .enumerate()
        .map(|(a, arm)| VariantSummary {
            variant: arm.key.clone(),
            control: arm.control,
            dose: arm.dose,
            units: counts[a],
            sli: sli_summary(&sli_sorted[a]),
            metrics: d
                .metrics
                .iter()
                .zip(&per_metric)
                .map(|(m, vals)| {
                    let mo = Moments::of(&vals[a]);
                    MetricSummary {
                        metric: m.metric.key.clone(),
                        role: m.role,
                        units: mo.n as u64,
                        mean: if mo.n > 0 { mo.mean } else { 0.0 },
                        std_dev: mo.variance().map(f64::sqrt).unwrap_or(0.0),
                    }
                })
                .collect(),
        })
        .collect()
}

/// Treatment − control shift of the SLI mean (Welch) and p95 (Poisson bootstrap) per arm.
pub fn first_stage(
    d: &UnitData,
    p: &Parameters,
    sli_sorted: &[Vec<f64>],
) -> AppResult<Vec<FirstStageArm>> {
    let c = d.control;
    let resamples = p.bootstrap.resamples as usize;
    let c_reps =
        bootstrap::poisson_quantile(&sli_sorted[c], 0.95, resamples, seed_for(p, "p95", c))
            .map_err(stats_err("bootstrap of the control p95"))?;
    let c_p95 = quantile_sorted(&sli_sorted[c], 0.95).map_err(stats_err("control p95"))?;
    let mut out = Vec::new();
    for (a, arm) in d.arms.iter().enumerate().filter(|(a, _)| *a != c) {
        let w = welch_from_moments(
            Moments::of(&sli_sorted[a]),
            Moments::of(&sli_sorted[c]),
            p.confidence,
        )
        .map_err(stats_err(&format!("SLI shift of {}", arm.key)))?;
        let t_reps =
            bootstrap::poisson_quantile(&sli_sorted[a], 0.95, resamples, seed_for(p, "p95", a))
                .map_err(stats_err("bootstrap of the p95"))?;
        let diffs: Vec<f64> = t_reps.iter().zip(&c_reps).map(|(t, c)| t - c).collect();
        let shift = quantile_sorted(&sli_sorted[a], 0.95).map_err(stats_err("p95"))? - c_p95;
        let (lo, hi) = bootstrap::percentile_interval(&diffs, p.confidence)
            .map_err(stats_err("p95 interval"))?;
        let sd = Moments::of(&diffs).variance().map(f64::sqrt).unwrap_or(0.0);
        out.push(FirstStageArm {
            variant: arm.key.clone(),
            planned_dose: arm.dose,
            mean_shift: estimate(w.difference, Method::WelchT),
            p95_shift: Estimate {
                estimate: shift,
                std_error: sd,
                ci_low: lo,
                ci_high: hi,
                p_value: None,
                adjusted_p_value: None,
                method: Method::BootstrapPercentile,
            },
            dose_ratio: (arm.dose != 0.0).then(|| w.difference.estimate / arm.dose),
        });
    }
    Ok(out)
}

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

/// The requested kind of interval of `replicates` around `theta`. `jackknife` gives the
/// leave-one-out values per sample and is only evaluated for BCa.
pub fn bootstrap_interval(
    p: &Parameters,
    theta: f64,
    replicates: &[f64],
    jackknife: impl FnOnce() -> StatsResult<Vec<Vec<f64>>>,
) -> StatsResult<BootstrapInterval> {
    let accel = match p.bootstrap.method {
        BootstrapMethod::Bca => Some(bootstrap::jackknife_acceleration(&jackknife()?)?),
        _ => None,
    };
    let (lo, hi) = bootstrap::interval(
        interval_method(p.bootstrap.method),
        theta,
        replicates,
        accel,
        p.confidence,
    )?;
    Ok(BootstrapInterval {
        method: p.bootstrap.method,
        resamples: p.bootstrap.resamples,
        ci_low: lo,
        ci_high: hi,
    })
}

/// CUPED with the metric's own pre-period value; units without one get the grand mean (no
/// adjustment). `None` when there is no usable pre-period data.
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

/// Every treatment arm × KPI/guardrail comparison (adjusted p-values are filled in later).
pub fn kpi_effects(
    d: &UnitData,
    p: &Parameters,
    shared: Option<&SharedPass>,
) -> AppResult<Vec<KpiEffect>> {
    let per_metric: Vec<AppResult<Vec<KpiEffect>>> = d
        .metrics
        .par_iter()
        .enumerate()
        .map(|(mi, m)| metric_effects(d, p, shared, mi, m))
        .collect();
    let mut out = Vec::new();
    for effects in per_metric {
        out.extend(effects?);
    }
    Ok(out)
}

/// Every treatment arm's comparison with control for one KPI or guardrail.
fn metric_effects(
    d: &UnitData,
    p: &Parameters,
    shared: Option<&SharedPass>,
    mi: usize,
    m: &MetricColumn,
) -> AppResult<Vec<KpiEffect>> {
    let c = d.control;
    let mut out = Vec::new();
    let sorted = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_unstable_by(f64::total_cmp);
        s
    };
    {
        let continuous = m.metric.value_type == crate::domain::metric::ValueType::Continuous;
        let vals = by_arm(d, |i| m.outcome(i, p.missing_outcomes));
        let cu = if p.cuped {
            cuped_effects(d, m, p)
        } else {
            None
        };
        let sorted_vals: Vec<Vec<f64>> = if continuous {
            vals.iter().map(|v| sorted(v)).collect()
        } else {
            Vec::new()
        };
        for (a, arm) in d.arms.iter().enumerate().filter(|(a, _)| *a != c) {
            let what = format!("{} in {}", m.metric.key, arm.key);
            let (t, cv) = (&vals[a], &vals[c]);
            let (mt, mc) = (Moments::of(t), Moments::of(cv));
            let difference = if m.is_binary() {
                let k = |v: &[f64]| v.iter().filter(|x| **x == 1.0).count() as u64;
                let z = two_proportion_z_test(
                    k(t),
                    t.len() as u64,
                    k(cv),
                    cv.len() as u64,
                    p.confidence,
                )
                .map_err(stats_err(&what))?;
                estimate(z.difference, Method::TwoProportionZ)
            } else {
                estimate(
                    welch_from_moments(mt, mc, p.confidence)
                        .map_err(stats_err(&what))?
                        .difference,
                    Method::WelchT,
                )
            };
            let lift = relative_lift(mt, mc, p.confidence).map_err(stats_err(&what))?;
            let shared_reps = shared.map(|s| s.difference(mi, a, c));
            let boot = bootstrap_difference(
                t,
                cv,
                m.is_binary(),
                p,
                seed_for(p, &format!("metric:{}", m.metric.key), a),
                shared_reps,
            )
            .map_err(stats_err(&what))?;
            let cuped = match &cu {
                Some((theta, reduction, arms)) => Some(CupedEffect {
                    theta: *theta,
                    variance_reduction: *reduction,
                    difference: estimate(
                        welch_from_moments(arms[a], arms[c], p.confidence)
                            .map_err(stats_err(&what))?
                            .difference,
                        Method::CupedWelchT,
                    ),
                }),
                None => None,
            };
            let mann_whitney = if continuous {
                mann_whitney_sorted(&sorted_vals[a], &sorted_vals[c])
                    .ok()
                    .map(|r| MannWhitneyOut {
                        u: r.u,
                        p_value: r.p_value,
                        prob_superiority: r.prob_superiority,
                    })
            } else {
                None
            };
            out.push(KpiEffect {
                variant: arm.key.clone(),
                metric: m.metric.key.clone(),
                role: m.role,
                control_mean: mc.mean,
                treatment_mean: mt.mean,
                difference,
                relative_lift: estimate(lift.delta, Method::DeltaMethod),
                fieller: lift.fieller.map(|(low, high)| Interval { low, high }),
                bootstrap: boot,
                cuped,
                mann_whitney,
            });
        }
    }
    Ok(out)
}
