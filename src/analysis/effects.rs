//! Per-variant summaries, the sample-ratio check, the first stage and arm × metric effects.

use super::data::UnitData;
use super::report::{
    ArmMean, BootstrapInterval, BootstrapMethod, DataQuality, Estimate, Exclusion, FirstStageArm,
    Interval, Method, MetricCoverage, MetricRole, MetricSummary, Parameters, SampleRatio,
    SliSummary, VariantCount, VariantSummary,
};
use super::{seed_for, stats_err};
use crate::error::AppResult;
use crate::stats::bootstrap::{self, IntervalMethod};
use crate::stats::descriptive::{mean_interval, quantile_sorted, wilson_interval, Moments};
use crate::stats::hypothesis::welch_from_moments;
use crate::stats::lift::{ratio_log_adjusted, relative_lift};
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

/// log₁₀ of a p-value, from the normal tail of the z statistic where the p-value underflows.
pub fn log10_p(p: f64, estimate: f64, std_error: f64) -> f64 {
    if p >= 1e-300 || std_error <= 0.0 {
        p.log10()
    } else {
        crate::stats::dist::log10_two_sided_normal_p(estimate / std_error)
    }
}

/// The relative change t/c − 1 of a comparison whose treatment − control is `primary`, with the
/// primary's p-values (the same null), and Fieller's interval where it exists. `counts` are
/// the arms' successes of a binary metric, (treatment, control).
///
/// By the delta method ([`relative_lift`]). Where its variance vanishes because the treatment's
/// values are all 0 (t/c − 1 = −1 exactly, and the treatment's first-order term is 0 too):
/// for a binary metric the log interval of the ratio of proportions with 0.5 added to counts
/// and sizes ([`ratio_log_adjusted`], `log_adjusted_ratio`; its standard error is the adjusted
/// ratio's by the delta method on the log scale), otherwise the primary's estimate and
/// interval divided by the control mean (`scaled`: the control mean taken as known). `None`
/// when the control mean is 0 to within rounding ([`is_zero_mean`]): a relative change is
/// undefined and the difference stands alone.
pub fn relative_change(
    t: Moments,
    c: Moments,
    primary: &Estimate,
    (confidence, counts): (f64, Option<(u64, u64)>),
    what: &str,
) -> AppResult<(Option<Estimate>, Option<Interval>)> {
    if is_zero_mean(c) {
        return Ok((None, None));
    }
    let (mut e, fieller) = match relative_lift(t, c, confidence) {
        Ok(lift) => (
            estimate(lift.delta, Method::DeltaMethod),
            lift.fieller.map(|(low, high)| Interval { low, high }),
        ),
        Err(stats::StatsError::ZeroVariance(_)) if t.mean == 0.0 && primary.std_error > 0.0 => (
            all_zero_treatment(t, c, primary, (confidence, counts), what)?,
            None,
        ),
        Err(err) => return Err(stats_err(what)(err)),
    };
    e.p_value = primary.p_value;
    e.log10_p_value = primary.log10_p_value;
    Ok((Some(e), fieller))
}

/// A mean that is 0 up to the rounding of its sum: |mean| ≤ 1e-12 of the values' root mean
/// square (1,000 values of +1 and 1,000 of −1 average to about 1e-16, not 0).
pub fn is_zero_mean(m: Moments) -> bool {
    let spread = m.variance().unwrap_or(0.0) * (m.n.saturating_sub(1)) as f64 / m.n.max(1) as f64;
    let rms = (m.mean * m.mean + spread).sqrt();
    m.mean.abs() <= 1e-12 * rms || m.mean == 0.0
}

/// The relative change −1 of a treatment whose values are all 0 (see [`relative_change`]).
fn all_zero_treatment(
    t: Moments,
    c: Moments,
    primary: &Estimate,
    (confidence, counts): (f64, Option<(u64, u64)>),
    what: &str,
) -> AppResult<Estimate> {
    let mut e = Estimate {
        estimate: t.mean / c.mean - 1.0,
        std_error: 0.0,
        ci_low: 0.0,
        ci_high: 0.0,
        p_value: None,
        log10_p_value: None,
        adjusted_p_value: None,
        method: Method::Scaled,
    };
    if let Some((kt, kc)) = counts {
        let (ratio, (low, high)) =
            ratio_log_adjusted((kt, t.n as u64), (kc, c.n as u64), confidence)
                .map_err(stats_err(what))?;
        let log_se = (low.ln() - high.ln()).abs() / (2.0 * z_of(confidence));
        (e.std_error, e.ci_low, e.ci_high) = (ratio * log_se, low - 1.0, high - 1.0);
        e.method = Method::LogAdjustedRatio;
    } else {
        let scale = 1.0 / c.mean;
        let (a, b) = (primary.ci_low * scale, primary.ci_high * scale);
        (e.std_error, e.ci_low, e.ci_high) = (primary.std_error * scale.abs(), a.min(b), a.max(b));
    }
    Ok(e)
}

/// The two-sided normal quantile z_{1−α/2} of a confidence level.
fn z_of(confidence: f64) -> f64 {
    crate::stats::dist::norm_ppf(0.5 + confidence / 2.0)
}

pub fn estimate(e: stats::Inference, method: Method) -> Estimate {
    Estimate {
        estimate: e.estimate,
        std_error: e.std_error,
        ci_low: e.ci_low,
        ci_high: e.ci_high,
        p_value: Some(e.p_value),
        log10_p_value: Some(log10_p(e.p_value, e.estimate, e.std_error)),
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
    for c in &d.extra_slis {
        let missing = c.post.iter().filter(|v| v.is_nan()).count() as u64;
        if missing > 0 {
            excluded.push(Exclusion {
                reason: format!("no_sli_value:{}", c.metric.key),
                units: missing,
                description: format!(
                    "{missing} units have no {} value and are left out of the joint causal slopes",
                    c.metric.key
                ),
            });
        }
    }
    for m in &d.metrics {
        if let Some(parts) = m.parts.as_ref().filter(|r| r.orphans > 0) {
            excluded.push(Exclusion {
                reason: format!("ratio_numerator_without_denominator:{}", m.metric.key),
                units: parts.orphans,
                description: format!(
                    "{} units have a numerator but no (or a zero) denominator for {} and are left out of it",
                    parts.orphans, m.metric.key
                ),
            });
        }
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
            .chain(d.extra_slis.iter().map(|c| MetricCoverage {
                metric: c.metric.key.clone(),
                role: MetricRole::Sli,
                units: c.post.iter().filter(|v| !v.is_nan()).count() as u64,
                units_pre: c.pre.iter().filter(|v| !v.is_nan()).count() as u64,
            }))
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
    // A unit is analysed with a value of every SLI (the joint model of several SLIs needs all).
    let mut analysed = vec![0u64; d.arms.len()];
    for (i, a) in d.arm.iter().enumerate() {
        if !d.sli[i].is_nan() && d.extra_slis.iter().all(|c| !c.post[i].is_nan()) {
            analysed[*a as usize] += 1;
        }
    }
    let arms: Vec<(&str, f64)> = d.arms.iter().map(|a| (a.key.as_str(), a.weight)).collect();
    sample_ratio_report(&arms, &d.arm_counts(), analysed)
}

/// The sample-ratio check of assigned units per arm (key, planned weight) and the
/// homogeneity of the analysed share (`analysed` units per arm).
pub fn sample_ratio_report(
    arms: &[(&str, f64)],
    assigned: &[u64],
    analysed: Vec<u64>,
) -> AppResult<SampleRatio> {
    let weights: Vec<f64> = arms.iter().map(|a| a.1).collect();
    let r = sample_ratio(assigned, &weights).map_err(stats_err("sample-ratio check"))?;
    let analysed_p = missingness_homogeneity(&analysed, &r.observed)
        .ok()
        .map(|t| t.1);
    Ok(SampleRatio {
        variants: arms.iter().map(|a| a.0.to_owned()).collect(),
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

pub(crate) fn sli_summary(sorted: &[f64]) -> Option<SliSummary> {
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

/// One arm's level of a metric: n, x (binary), the mean and its interval (Wilson for a
/// binary metric, t otherwise).
pub fn arm_mean(values: &[f64], mo: Moments, binary: bool, confidence: f64) -> ArmMean {
    let successes = binary.then(|| values.iter().filter(|x| **x == 1.0).count() as u64);
    level(mo, successes, confidence)
}

/// An arm's level from its moments and, for a binary metric, its successes.
pub fn level(mo: Moments, successes: Option<u64>, confidence: f64) -> ArmMean {
    let ci = match successes {
        Some(k) => wilson_interval(k, mo.n as u64, confidence).ok(),
        None => mean_interval(mo, confidence).ok(),
    };
    ArmMean {
        units: mo.n as u64,
        successes,
        mean: if mo.n > 0 { mo.mean } else { 0.0 },
        ci: ci.map(|(low, high)| Interval { low, high }),
    }
}

pub fn variants(d: &UnitData, p: &Parameters, sli_sorted: &[Vec<f64>]) -> Vec<VariantSummary> {
    let counts = d.arm_counts();
    let per_metric: Vec<Vec<Vec<f64>>> = d
        .metrics
        .iter()
        .map(|m| by_arm(d, |i| m.outcome(i, p.missing_outcomes)))
        .collect();
    let ratios: Vec<Option<super::ratio::RatioArms>> = d
        .metrics
        .iter()
        .map(|m| m.parts.as_ref().map(|r| super::ratio::RatioArms::new(d, r)))
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
            extra_slis: Vec::new(),
            metrics: d
                .metrics
                .iter()
                .zip(&per_metric)
                .zip(&ratios)
                .map(|((m, vals), ratio)| {
                    let mo = Moments::of(&vals[a]);
                    let level = match ratio {
                        Some(r) => r.level(a, p.confidence),
                        None => arm_mean(&vals[a], mo, m.is_binary(), p.confidence),
                    };
                    MetricSummary {
                        metric: m.metric.key.clone(),
                        role: m.role,
                        units: level.units,
                        successes: level.successes,
                        mean: level.mean,
                        ci: level.ci,
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
        let (mt, mc) = (Moments::of(&sli_sorted[a]), Moments::of(&sli_sorted[c]));
        let mean_shift = match welch_from_moments(mt, mc, p.confidence) {
            Ok(w) => estimate(w.difference, Method::WelchT),
            // Both arms constant (an SLI the arms did not move, say): the shift is exact and
            // there is nothing to test (`exact`); the causal fit says why no slope follows.
            Err(stats::StatsError::ZeroVariance(_)) if mt.n > 1 && mc.n > 1 => {
                let shift = mt.mean - mc.mean;
                Estimate {
                    estimate: shift,
                    std_error: 0.0,
                    ci_low: shift,
                    ci_high: shift,
                    p_value: None,
                    log10_p_value: None,
                    adjusted_p_value: None,
                    method: Method::Exact,
                }
            }
            Err(e) => return Err(stats_err(&format!("SLI shift of {}", arm.key))(e)),
        };
        let t_reps =
            bootstrap::poisson_quantile(&sli_sorted[a], 0.95, resamples, seed_for(p, "p95", a))
                .map_err(stats_err("bootstrap of the p95"))?;
        let shift = quantile_sorted(&sli_sorted[a], 0.95).map_err(stats_err("p95"))? - c_p95;
        let p95_shift = shift_estimate(shift, &t_reps, &c_reps, p.confidence)
            .map_err(stats_err("p95 interval"))?;
        out.push(FirstStageArm {
            variant: arm.key.clone(),
            sli: Some(d.sli_metric.key.clone()),
            planned_dose: arm.dose,
            dose_ratio: (arm.dose != 0.0).then(|| mean_shift.estimate / arm.dose),
            mean_shift,
            p95_shift,
        });
    }
    Ok(out)
}

/// A shift between two arms' statistics with the bootstrap percentile interval and standard
/// deviation of the replicates' differences (replicate b of each arm paired).
pub fn shift_estimate(
    shift: f64,
    treatment: &[f64],
    control: &[f64],
    confidence: f64,
) -> StatsResult<Estimate> {
    let diffs: Vec<f64> = treatment.iter().zip(control).map(|(t, c)| t - c).collect();
    let (lo, hi) = bootstrap::percentile_interval(&diffs, confidence)?;
    Ok(Estimate {
        estimate: shift,
        std_error: Moments::of(&diffs).variance().map(f64::sqrt).unwrap_or(0.0),
        ci_low: lo,
        ci_high: hi,
        p_value: None,
        log10_p_value: None,
        adjusted_p_value: None,
        method: Method::BootstrapPercentile,
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
