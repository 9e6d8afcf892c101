//! The causal SLI → KPI slope (2SLS with the arms as instruments), dose–response and thresholds.

use super::data::{MetricColumn, UnitData};
use super::effects::{bootstrap_interval, estimate};
use super::report::{
    AndersonRubinSet, ArShape, BaselineBucket, BootstrapInterval, Breakpoint, CausalEffect,
    DosePoint, DoseResponse, Estimate, Evidence, LinearityTest, Method, Parameters, Threshold,
};
use super::{seed_for, stats_err};
use crate::error::AppResult;
use crate::stats::bootstrap;
use crate::stats::descriptive::{quantile_sorted, Moments};
use crate::stats::iv::{two_sls_arms, IvCov, TwoSls};
use crate::stats::knee::hinge_analysis;
use crate::stats::{StatsError, StatsResult};

/// First-stage F below which the instrument is weak (Staiger & Stock 1997).
pub const WEAK_INSTRUMENT_F: f64 = 10.0;
/// Bootstrap replicates for a breakpoint (each refits the hinge profile over all units).
const KNEE_RESAMPLES: u32 = 100;

/// Units in a KPI's causal analysis: those with an SLI value and a KPI value (after the rule).
pub struct Population {
    pub arm: Vec<u32>,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub x_pre: Vec<f64>,
}

pub fn population(d: &UnitData, m: &MetricColumn, p: &Parameters) -> Population {
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

/// 2SLS of y on x with a constant and treatment-arm indicators as instruments (computed from
/// per-arm moments; see [`two_sls_arms`]).
pub fn fit(pop: &Population, arms: usize, control: usize) -> StatsResult<TwoSls> {
    two_sls_arms(&pop.y, &pop.x, "sli", &pop.arm, arms, control, true)
}

/// The grouped 2SLS slope from per-arm sums [Σw, Σwx, Σwy]: with saturated arm instruments,
/// 2SLS equals Σₐ nₐ(x̄ₐ − x̄)(ȳₐ − ȳ) / Σₐ nₐ(x̄ₐ − x̄)².
fn grouped_slope(sums: &[[f64; 3]]) -> f64 {
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
    let control_mean = Moments::of(&control_y).mean;
    let scale = 100.0 / control_mean;
    if !scale.is_finite() {
        return Err(stats_err(&what)(StatsError::Undefined(
            "the control KPI mean is zero".into(),
        )));
    }
    let relative = Estimate {
        estimate: slope.estimate * scale,
        std_error: slope.std_error * scale.abs(),
        ci_low: (slope.ci_low * scale).min(slope.ci_high * scale),
        ci_high: (slope.ci_low * scale).max(slope.ci_high * scale),
        p_value: Some(slope.p_value),
        adjusted_p_value: None,
        method: Method::Scaled,
    };
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
                control_kpi_mean: self.control_mean,
            },
            dose: self.dose,
        })
    }
}

fn to_stats(c: &crate::stats::ols::Coefficient) -> crate::stats::Inference {
    crate::stats::Inference {
        estimate: c.estimate,
        std_error: c.std_error,
        ci_low: c.ci_low,
        ci_high: c.ci_high,
        p_value: c.p_value,
    }
}

/// The observational knee of the KPI against per-unit SLI.
pub fn observational_threshold(
    d: &UnitData,
    m: &MetricColumn,
    pop: &Population,
    p: &Parameters,
) -> Threshold {
    let mut t = Threshold {
        kpi: m.metric.key.clone(),
        sli: d.sli_metric.key.clone(),
        evidence: Evidence::Observational,
        breakpoint: None,
        slope_below: None,
        slope_above: None,
        davies_p_value: None,
        reason: None,
        buckets: Vec::new(),
    };
    let resamples = p.bootstrap.resamples.min(KNEE_RESAMPLES) as usize;
    let seed = seed_for(p, &format!("knee:{}", m.metric.key), 0);
    match hinge_analysis(&pop.x, &pop.y, p.alpha, p.confidence, resamples, seed) {
        Err(e) => t.reason = Some(format!("no threshold can be fitted: {e}")),
        Ok(h) => {
            let davies = h.davies_p_value.min(1.0);
            t.davies_p_value = Some(davies);
            match h.fit {
                None => {
                    t.reason = Some(format!(
                        "no evidence of a slope change (Davies test p = {davies:.3})"
                    ))
                }
                Some((fit, (lo, hi))) => {
                    t.breakpoint = Some(Breakpoint {
                        estimate: fit.breakpoint,
                        ci_low: lo,
                        ci_high: hi,
                    });
                    t.slope_below = Some(fit.slope_below);
                    t.slope_above = Some(fit.slope_above);
                }
            }
        }
    }
    t
}

/// Causal evidence: the injection's slope within quintiles of the units' pre-period SLI. For
/// each split k = 1..4 the inverse-variance pooled slopes of quintiles ≥ k and < k are compared
/// (z = (s_hi − s_lo)/√(se_hi² + se_lo²) in the harmful direction, Bonferroni over the 4 splits);
/// a threshold is the baseline edge of the most significant split when the upper group is
/// significantly more harmful and the lower group is not significantly harmful itself. Its
/// interval spans the neighbouring quintile edges (quintile resolution).
pub fn causal_threshold(
    d: &UnitData,
    m: &MetricColumn,
    pop: &Population,
    p: &Parameters,
) -> Option<Threshold> {
    let pre: Vec<f64> = pop.x_pre.iter().copied().filter(|v| !v.is_nan()).collect();
    if pre.len() < 50 || pre.len() * 2 < pop.x.len() {
        return None;
    }
    let mut sorted = pre;
    sorted.sort_unstable_by(f64::total_cmp);
    let edges: Vec<f64> = (0..=5)
        .map(|k| quantile_sorted(&sorted, k as f64 / 5.0).unwrap_or(f64::NAN))
        .collect();
    let harmful = d
        .sli_metric
        .direction
        .harmful_slope_sign(m.metric.direction);
    let mut buckets = Vec::new();
    for b in 0..5 {
        let (lo, hi) = (edges[b], edges[b + 1]);
        let idx: Vec<usize> = (0..pop.x.len())
            .filter(|&i| {
                let v = pop.x_pre[i];
                !v.is_nan() && v >= lo && (v < hi || (b == 4 && v <= hi))
            })
            .collect();
        let sub = Population {
            arm: idx.iter().map(|&i| pop.arm[i]).collect(),
            x: idx.iter().map(|&i| pop.x[i]).collect(),
            y: idx.iter().map(|&i| pop.y[i]).collect(),
            x_pre: Vec::new(),
        };
        let slope = fit(&sub, d.arms.len(), d.control)
            .and_then(|f| f.slope(IvCov::Robust, p.confidence))
            .ok();
        buckets.push(BaselineBucket {
            bucket: b as u32 + 1,
            baseline_low: lo,
            baseline_high: hi,
            units: idx.len() as u64,
            slope: slope.map(|s| estimate(to_stats(&s), Method::TwoSlsRobust)),
        });
    }
    let pooled = |bs: &[BaselineBucket]| -> Option<(f64, f64)> {
        let (mut w, mut ws) = (0.0, 0.0);
        for b in bs {
            let s = b.slope.as_ref()?;
            let wi = 1.0 / (s.std_error * s.std_error);
            w += wi;
            ws += wi * s.estimate;
        }
        (w > 0.0).then(|| (ws / w, 1.0 / w.sqrt()))
    };
    let z_split = crate::stats::dist::norm_ppf(1.0 - p.alpha / 2.0 / 4.0);
    let z_one = crate::stats::dist::norm_ppf(1.0 - p.alpha / 2.0);
    let mut best: Option<(usize, f64)> = None;
    for k in 1..5 {
        let (Some((s_lo, se_lo)), Some((s_hi, se_hi))) =
            (pooled(&buckets[..k]), pooled(&buckets[k..]))
        else {
            continue;
        };
        let z = harmful * (s_hi - s_lo) / (se_lo * se_lo + se_hi * se_hi).sqrt();
        let lower_harmless = harmful * s_lo / se_lo < z_one;
        if z > z_split && lower_harmless && best.is_none_or(|(_, bz)| z > bz) {
            best = Some((k, z));
        }
    }
    let (breakpoint, reason) = match best {
        Some((k, _)) => (Some(Breakpoint { estimate: edges[k], ci_low: edges[k - 1], ci_high: edges[k + 1] }), None),
        None => (
            None,
            Some("the injected SLI has a similar effect at every baseline level: no threshold in the observed range".to_owned()),
        ),
    };
    Some(Threshold {
        kpi: m.metric.key.clone(),
        sli: d.sli_metric.key.clone(),
        evidence: Evidence::Causal,
        breakpoint,
        slope_below: None,
        slope_above: None,
        davies_p_value: None,
        reason,
        buckets,
    })
}
