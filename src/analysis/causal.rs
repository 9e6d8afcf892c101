//! The causal SLI → KPI slope (2SLS with the arms as instruments), dose–response and thresholds.

use super::data::{MetricColumn, UnitData};
use super::effects::{bootstrap_interval, estimate};
use super::report::{
    AndersonRubinSet, ArShape, BootstrapInterval, CausalEffect, DosePoint, DoseResponse, Estimate,
    LinearityTest, Method, Parameters,
};
use super::{seed_for, stats_err};
use crate::error::AppResult;
use crate::stats::bootstrap;
use crate::stats::descriptive::Moments;
use crate::stats::iv::{two_sls_arms, IvCov, TwoSls};
use crate::stats::{StatsError, StatsResult};

/// First-stage F below which the instrument is weak (Staiger & Stock 1997).
pub const WEAK_INSTRUMENT_F: f64 = 10.0;

/// Units in a KPI's causal analysis: those with an SLI value and a KPI value (after the rule).
pub struct Population {
    pub arm: Vec<u32>,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub x_pre: Vec<f64>,
}

pub fn population(d: &UnitData, m: &MetricColumn, p: &Parameters) -> Population {
    if let Some(parts) = &m.parts {
        return ratio_population(d, parts);
    }
    let mut pop = Population {
        arm: Vec::new(),
        x: Vec::new(),
        y: Vec::new(),
        x_pre: Vec::new(),
    };
    for i in 0..d.len() {
        if d.sli[i].is_nan() {
            continue;
        }
        if let Some(y) = m.outcome(i, p.missing_outcomes) {
            pop.arm.push(d.arm[i]);
            pop.x.push(d.sli[i]);
            pop.y.push(y);
            pop.x_pre.push(d.sli_pre[i]);
        }
    }
    pop
}

/// A ratio KPI's causal population: units with an SLI value and a denominator, with values
/// linearized per arm within them (so each arm's mean is its ratio in this population).
fn ratio_population(d: &UnitData, parts: &super::data::RatioParts) -> Population {
    let idx: Vec<usize> = (0..d.len())
        .filter(|&i| !d.sli[i].is_nan() && !parts.den[i].is_nan())
        .collect();
    Population {
        arm: idx.iter().map(|&i| d.arm[i]).collect(),
        x: idx.iter().map(|&i| d.sli[i]).collect(),
        y: parts.linearized(&idx, &d.arm, d.arms.len()),
        x_pre: idx.iter().map(|&i| d.sli_pre[i]).collect(),
    }
}

/// A ratio KPI's numerator per control unit (Σ numerator / units with a denominator), which
/// prices a relative loss of the ratio in numerator units (clicks, not click-through rate).
pub(crate) fn control_numerator_per_unit(d: &UnitData, m: &MetricColumn) -> Option<f64> {
    let parts = m.parts.as_ref()?;
    let (mut sum, mut n) = (0.0, 0usize);
    for i in (0..d.len()).filter(|&i| d.arm[i] as usize == d.control && !parts.den[i].is_nan()) {
        sum += parts.num[i];
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// 2SLS of y on x with a constant and treatment-arm indicators as instruments (computed from
/// per-arm moments; see [`two_sls_arms`]).
pub fn fit(pop: &Population, arms: usize, control: usize) -> StatsResult<TwoSls> {
    two_sls_arms(&pop.y, &pop.x, "sli", &pop.arm, arms, control, true)
}

/// The grouped 2SLS slope from per-arm sums [Σw, Σwx, Σwy]: with saturated arm instruments,
/// 2SLS equals Σₐ nₐ(x̄ₐ − x̄)(ȳₐ − ȳ) / Σₐ nₐ(x̄ₐ − x̄)².
pub(super) fn grouped_slope(sums: &[[f64; 3]]) -> f64 {
    let (n, sx, sy) = sums
        .iter()
        .fold((0.0, 0.0, 0.0), |a, s| (a.0 + s[0], a.1 + s[1], a.2 + s[2]));
    let (xbar, ybar) = (sx / n, sy / n);
    let (mut num, mut den) = (0.0, 0.0);
    for s in sums.iter().filter(|s| s[0] > 0.0) {
        let (xa, ya) = (s[1] / s[0], s[2] / s[0]);
        num += s[0] * (xa - xbar) * (ya - ybar);
        den += s[0] * (xa - xbar) * (xa - xbar);
    }
    num / den
}

fn slope_bootstrap(
    pop: &Population,
    arms: usize,
    p: &Parameters,
    seed: u64,
    theta: f64,
    shared: Option<Vec<Vec<[f64; 3]>>>,
) -> StatsResult<BootstrapInterval> {
    let sums: Vec<Vec<[f64; 3]>> = match shared {
        Some(s) => s,
        None => bootstrap::poisson_sums(
            &pop.arm,
            arms,
            &[&pop.x, &pop.y],
            p.bootstrap.resamples as usize,
            seed,
        )?
        .iter()
        .map(|r| r.iter().map(|g| [g[0], g[1], g[2]]).collect())
        .collect(),
    };
    let slopes: Vec<f64> = sums.iter().map(|r| grouped_slope(r)).collect();
    if slopes.iter().any(|s| !s.is_finite()) {
        return Err(StatsError::Undefined(
            "a bootstrap replicate had no first stage".into(),
        ));
    }
    bootstrap_interval(p, theta, &slopes, || {
        // Leave-one-out slopes from the group sums, O(1) per unit.
        let mut sums = vec![[0.0; 3]; arms];
        for i in 0..pop.x.len() {
            let s = &mut sums[pop.arm[i] as usize];
            s[0] += 1.0;
            s[1] += pop.x[i];
            s[2] += pop.y[i];
        }
        let loo: Vec<Vec<f64>> = (0..arms)
            .map(|a| {
                let mut s = sums.clone();
                (0..pop.x.len())
                    .filter(|i| pop.arm[*i] as usize == a)
                    .map(|i| {
                        s[a] = [
                            sums[a][0] - 1.0,
                            sums[a][1] - pop.x[i],
                            sums[a][2] - pop.y[i],
                        ];
                        grouped_slope(&s)
                    })
                    .collect()
            })
            .filter(|v: &Vec<f64>| v.len() >= 2)
            .collect();
        Ok(loo)
    })
}

/// Causal effect and dose–response of one KPI.
pub struct KpiCausal {
    pub effect: CausalEffect,
    pub dose: DoseResponse,
}

/// A KPI's causal analysis without the slope's bootstrap interval, which needs the shared
/// resampling pass: fitting runs while that pass is computed, [`CausalFit::finish`] after.
pub struct CausalFit {
    what: String,
    pub population: Population,
    slope: crate::stats::ols::Coefficient,
    relative: Estimate,
    control_mean: f64,
    first_stage_f: f64,
    first_stage_robust_f: f64,
    first_stage_effective_f: f64,
    anderson_rubin: Option<AndersonRubinSet>,
    dose: DoseResponse,
}

/// The Anderson–Rubin set of a population, in the report's form (None when it cannot be formed).
fn ar_set(pop: &Population, arms: usize, confidence: f64) -> Option<AndersonRubinSet> {
    use crate::stats::iv::{anderson_rubin_arms, ArSet};
    let finite = |v: f64| v.is_finite().then_some(v);
    let set = anderson_rubin_arms(&pop.y, &pop.x, &pop.arm, arms, confidence).ok()?;
    let (shape, lower, upper) = match set {
        ArSet::Interval(lo, hi) => (ArShape::Interval, finite(lo), finite(hi)),
        ArSet::TwoRays(lo, hi) => (ArShape::TwoRays, finite(lo), finite(hi)),
        ArSet::WholeLine => (ArShape::WholeLine, None, None),
        ArSet::Empty => (ArShape::Empty, None, None),
    };
    Some(AndersonRubinSet {
        shape,
        lower,
        upper,
        confidence,
    })
}

/// 2SLS slope, its relative form, first-stage strength and the dose–response of one KPI.
pub fn fit_kpi(d: &UnitData, m: &MetricColumn, p: &Parameters) -> AppResult<CausalFit> {
    let what = format!("causal slope of {} on {}", m.metric.key, d.sli_metric.key);
    if let Some((arm, got)) = m
        .parts
        .as_ref()
        .and_then(|r| r.thin_arm(d, |i| !d.sli[i].is_nan()))
    {
        return Err(stats_err(&what)(StatsError::Undefined(format!(
            "arm '{arm}' has {got} units with an SLI value and a positive denominator; a ratio needs at least {}",
            super::data::MIN_RATIO_UNITS
        ))));
    }
    let pop = population(d, m, p);
    let f = fit(&pop, d.arms.len(), d.control).map_err(stats_err(&what))?;
    let slope = f
        .slope(IvCov::Robust, p.confidence)
        .map_err(stats_err(&what))?;
    let control_y: Vec<f64> = pop
        .y
        .iter()
        .zip(&pop.arm)
        .filter(|(_, a)| **a as usize == d.control)
        .map(|(y, _)| *y)
        .collect();
    let control = Moments::of(&control_y);
    let control_mean = control.mean;
    let relative = relative_per_100(&slope, control).map_err(stats_err(&what))?;
    let mut points = Vec::new();
    for (a, arm) in d.arms.iter().enumerate() {
        let idx: Vec<usize> = (0..pop.x.len())
            .filter(|i| pop.arm[*i] as usize == a)
            .collect();
        let n = idx.len() as f64;
        points.push(DosePoint {
            variant: arm.key.clone(),
            dose: arm.dose,
            units: idx.len() as u64,
            sli_mean: idx.iter().map(|i| pop.x[*i]).sum::<f64>() / n,
            kpi_mean: idx.iter().map(|i| pop.y[*i]).sum::<f64>() / n,
        });
    }
    let linearity = f.sargan.map(|s| LinearityTest {
        statistic: s.statistic,
        df: s.df as u32,
        p_value: s.p_value,
        linear: s.p_value >= p.alpha,
    });
    let anderson_rubin = ar_set(&pop, d.arms.len(), p.confidence);
    Ok(CausalFit {
        what,
        population: pop,
        slope,
        relative,
        control_mean,
        first_stage_f: f.first_stage.f_stat,
        first_stage_robust_f: f.first_stage.robust_f_stat,
        first_stage_effective_f: f.first_stage.effective_f,
        anderson_rubin,
        dose: DoseResponse {
            kpi: m.metric.key.clone(),
            sli: d.sli_metric.key.clone(),
            points,
            intercept: f.coefficients[0],
            slope: f.coefficients[1],
            linearity,
        },
    })
}

impl CausalFit {
    /// Adds the slope's bootstrap interval: from the shared pass's per-arm sums when given,
    /// otherwise from a resampling pass of this KPI's population.
    pub fn finish(
        self,
        d: &UnitData,
        m: &MetricColumn,
        p: &Parameters,
        shared: Option<Vec<Vec<[f64; 3]>>>,
    ) -> AppResult<KpiCausal> {
        let seed = seed_for(p, &format!("slope:{}", m.metric.key), 0);
        let boot = slope_bootstrap(
            &self.population,
            d.arms.len(),
            p,
            seed,
            self.slope.estimate,
            shared,
        )
        .map_err(stats_err(&self.what))?;
        Ok(KpiCausal {
            effect: CausalEffect {
                kpi: m.metric.key.clone(),
                sli: d.sli_metric.key.clone(),
                units: self.population.x.len() as u64,
                slope: estimate(to_stats(&self.slope), Method::TwoSlsRobust),
                relative_per_100: self.relative,
                bootstrap: boot,
                first_stage_f: self.first_stage_f,
                first_stage_robust_f: self.first_stage_robust_f,
                first_stage_effective_f: Some(self.first_stage_effective_f),
                anderson_rubin: self.anderson_rubin,
                // The heteroskedasticity-robust effective F (binary KPIs are heteroskedastic).
                weak_instrument: self.first_stage_effective_f.is_nan()
                    || self.first_stage_effective_f < WEAK_INSTRUMENT_F,
                conditional_first_stage_f: None,
                holding_fixed: Vec::new(),
                control_kpi_mean: self.control_mean,
                control_numerator_per_unit: control_numerator_per_unit(d, m),
            },
            dose: self.dose,
        })
    }
}

/// The slope as a relative KPI change per +100 SLI units: 100·slope/control mean; undefined
/// when the control mean is 0 to within rounding (`effects::is_zero_mean`).
pub(crate) fn relative_per_100(
    slope: &crate::stats::ols::Coefficient,
    control: Moments,
) -> StatsResult<Estimate> {
    let scale = 100.0 / control.mean;
    if !scale.is_finite() || super::effects::is_zero_mean(control) {
        return Err(StatsError::Undefined("the control KPI mean is zero".into()));
    }
    Ok(Estimate {
        estimate: slope.estimate * scale,
        std_error: slope.std_error * scale.abs(),
        ci_low: (slope.ci_low * scale).min(slope.ci_high * scale),
        ci_high: (slope.ci_low * scale).max(slope.ci_high * scale),
        p_value: Some(slope.p_value),
        log10_p_value: Some(super::effects::log10_p(
            slope.p_value,
            slope.estimate,
            slope.std_error,
        )),
        adjusted_p_value: None,
        method: Method::Scaled,
    })
}

pub(crate) fn to_stats(c: &crate::stats::ols::Coefficient) -> crate::stats::Inference {
    crate::stats::Inference {
        estimate: c.estimate,
        std_error: c.std_error,
        ci_low: c.ci_low,
        ci_high: c.ci_high,
        p_value: c.p_value,
    }
}
