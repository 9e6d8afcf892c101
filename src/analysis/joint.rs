//! Experiments whose arms change several SLIs on purpose (e.g. a 2×2 factorial of retrieval
//! quality × time to first token): per KPI, one 2SLS with every SLI as an endogenous regressor
//! and the arm indicators as instruments, so each SLI's slope holds the others fixed
//! ([`crate::stats::iv::two_sls_multi`], checked against linearmodels `IV2SLS`).
//!
//! Each SLI's strength is its own first stage (as in a one-SLI experiment) and the
//! Sanderson–Windmeijer conditional F, which says whether the arms move it apart from the
//! others; either below 10 marks the slope's instrument weak and voids its verdict. The slope's
//! bootstrap reweights units (Poisson) and refits the grouped 2SLS from per-arm sums.

use super::causal::{control_numerator_per_unit, WEAK_INSTRUMENT_F};
use super::data::{MetricColumn, UnitData};
use super::effects::{bootstrap_interval, estimate, log10_p};
use super::report::{
    BootstrapMethod, CausalEffect, DosePoint, DoseResponse, Estimate, LinearityTest, Method,
    Parameters,
};
use super::{seed_for, stats_err};
use crate::error::AppResult;
use crate::stats::bootstrap;
use crate::stats::iv::{two_sls_arms, two_sls_multi, IvCov};
use crate::stats::linalg::solve_normal;
use crate::stats::{StatsError, StatsResult};

/// Units in a KPI's joint analysis: those with a value of every SLI and of the KPI.
struct JointPopulation {
    arm: Vec<u32>,
    /// One column per SLI (the experiment's order).
    x: Vec<Vec<f64>>,
    y: Vec<f64>,
}

/// SLI `j`'s values (0 = the first SLI).
fn sli_column(d: &UnitData, j: usize) -> &[f64] {
    if j == 0 {
        &d.sli
    } else {
        &d.extra_slis[j - 1].post
    }
}

fn population(d: &UnitData, m: &MetricColumn, p: &Parameters) -> JointPopulation {
    let k = d.sli_count();
    let has_slis = |i: usize| (0..k).all(|j| !sli_column(d, j)[i].is_nan());
    let idx: Vec<usize> = match &m.parts {
        Some(parts) => (0..d.len())
            .filter(|&i| has_slis(i) && !parts.den[i].is_nan())
            .collect(),
        None => (0..d.len())
            .filter(|&i| has_slis(i) && m.outcome(i, p.missing_outcomes).is_some())
            .collect(),
    };
    let y = match &m.parts {
        // A ratio is linearized per arm within the units this analysis uses.
        Some(parts) => parts.linearized(&idx, &d.arm, d.arms.len()),
        None => idx
            .iter()
            .map(|&i| m.outcome(i, p.missing_outcomes).unwrap_or(f64::NAN))
            .collect(),
    };
    JointPopulation {
        arm: idx.iter().map(|&i| d.arm[i]).collect(),
        x: (0..k)
            .map(|j| idx.iter().map(|&i| sli_column(d, j)[i]).collect())
            .collect(),
        y,
    }
}

/// The grouped 2SLS slopes from per-arm sums [n, Σx₁, …, Σx_k, Σy]: with a constant and
/// saturated arm instruments, 2SLS equals the arm-size-weighted regression of the arms' KPI
/// means on their SLI means, β = (Σₐ nₐ dₐdₐᵀ)⁻¹ Σₐ nₐ dₐ(ȳₐ − ȳ) with dₐ = x̄ₐ − x̄.
/// None when the arms' SLI means do not separate the SLIs.
pub fn grouped_slopes(sums: &[Vec<f64>]) -> Option<Vec<f64>> {
    let k = sums.first()?.len().checked_sub(2)?;
    let n: f64 = sums.iter().map(|s| s[0]).sum();
    let total = |c: usize| sums.iter().map(|s| s[c]).sum::<f64>() / n;
    let xbar: Vec<f64> = (1..=k).map(total).collect();
    let ybar = total(k + 1);
    let mut a = vec![vec![0.0; k]; k];
    let mut b = vec![0.0; k];
    for s in sums.iter().filter(|s| s[0] > 0.0) {
        let dx: Vec<f64> = (0..k).map(|j| s[1 + j] / s[0] - xbar[j]).collect();
        let dy = s[k + 1] / s[0] - ybar;
        for r in 0..k {
            b[r] += s[0] * dx[r] * dy;
            for c in 0..k {
                a[r][c] += s[0] * dx[r] * dx[c];
            }
        }
    }
    let (beta, _) = solve_normal(&a, &b)?;
    beta.iter().all(|v| v.is_finite()).then_some(beta)
}

/// Leave-one-out slopes per SLI and arm (for BCa's acceleration), O(arms·k²) per unit.
fn jackknife(pop: &JointPopulation, arms: usize) -> Vec<Vec<Vec<f64>>> {
    let k = pop.x.len();
    let mut sums = vec![vec![0.0; k + 2]; arms];
    for i in 0..pop.y.len() {
        let s = &mut sums[pop.arm[i] as usize];
        s[0] += 1.0;
        for j in 0..k {
            s[1 + j] += pop.x[j][i];
        }
        s[k + 1] += pop.y[i];
    }
    let mut out = vec![vec![Vec::new(); arms]; k];
    let mut s = sums.clone();
    for i in 0..pop.y.len() {
        let a = pop.arm[i] as usize;
        s[a][0] = sums[a][0] - 1.0;
        for j in 0..k {
            s[a][1 + j] = sums[a][1 + j] - pop.x[j][i];
        }
        s[a][k + 1] = sums[a][k + 1] - pop.y[i];
        if let Some(beta) = grouped_slopes(&s) {
            for (j, b) in beta.into_iter().enumerate() {
                out[j][a].push(b);
            }
        }
        s[a].clone_from(&sums[a]);
    }
    out.into_iter()
        .map(|per_arm| per_arm.into_iter().filter(|v| v.len() >= 2).collect())
        .collect()
}

/// Every SLI's bootstrap interval of its slope (`theta` the point estimates).
fn intervals(
    pop: &JointPopulation,
    arms: usize,
    p: &Parameters,
    seed: u64,
    theta: &[f64],
) -> StatsResult<Vec<super::report::BootstrapInterval>> {
    let mut cols: Vec<&[f64]> = pop.x.iter().map(Vec::as_slice).collect();
    cols.push(&pop.y);
    let reps =
        bootstrap::poisson_sums(&pop.arm, arms, &cols, p.bootstrap.resamples as usize, seed)?;
    let slopes: Vec<Vec<f64>> = reps
        .iter()
        .map(|r| {
            grouped_slopes(r).ok_or_else(|| {
                StatsError::Undefined("a bootstrap replicate did not separate the SLIs".into())
            })
        })
        .collect::<StatsResult<_>>()?;
    let loo = (p.bootstrap.method == BootstrapMethod::Bca).then(|| jackknife(pop, arms));
    (0..theta.len())
        .map(|j| {
            let reps: Vec<f64> = slopes.iter().map(|b| b[j]).collect();
            bootstrap_interval(p, theta[j], &reps, || {
                Ok(loo.as_ref().map(|l| l[j].clone()).unwrap_or_default())
            })
        })
        .collect()
}

/// Each SLI's dose–response of the KPI: per arm that SLI's dose and mean and the KPI's mean,
/// the joint fit's intercept and this SLI's slope, and Sargan's over-identification test of the
/// joint fit (with several SLIs: whether their effects add up across the arms).
fn dose_responses(
    d: &UnitData,
    m: &MetricColumn,
    pop: &JointPopulation,
    fit: &crate::stats::iv::TwoSlsMulti,
    p: &Parameters,
) -> Vec<DoseResponse> {
    let linearity = fit.sargan.map(|s| LinearityTest {
        statistic: s.statistic,
        df: s.df as u32,
        p_value: s.p_value,
        linear: s.p_value >= p.alpha,
    });
    (0..pop.x.len())
        .map(|j| DoseResponse {
            kpi: m.metric.key.clone(),
            sli: fit.names[1 + j].clone(),
            points: d
                .arms
                .iter()
                .enumerate()
                .map(|(a, arm)| {
                    let idx: Vec<usize> = (0..pop.y.len())
                        .filter(|i| pop.arm[*i] as usize == a)
                        .collect();
                    let n = idx.len() as f64;
                    DosePoint {
                        variant: arm.key.clone(),
                        dose: if j == 0 {
                            arm.dose
                        } else {
                            arm.extra_doses[j - 1]
                        },
                        units: idx.len() as u64,
                        sli_mean: idx.iter().map(|i| pop.x[j][*i]).sum::<f64>() / n,
                        kpi_mean: idx.iter().map(|i| pop.y[*i]).sum::<f64>() / n,
                    }
                })
                .collect(),
            intercept: fit.coefficients[0],
            slope: fit.coefficients[1 + j],
            linearity: linearity.clone(),
        })
        .collect()
}

/// One KPI's slopes on every SLI, each holding the others fixed, and each SLI's dose–response.
/// When any SLI's instruments are weak, every slope of the KPI is marked weak: holding an SLI
/// fixed that the design does not move identifies nothing.
pub fn fit_kpi(
    d: &UnitData,
    m: &MetricColumn,
    p: &Parameters,
) -> AppResult<(Vec<CausalEffect>, Vec<DoseResponse>)> {
    let names: Vec<&str> = std::iter::once(d.sli_metric.key.as_str())
        .chain(d.extra_slis.iter().map(|c| c.metric.key.as_str()))
        .collect();
    let what = format!(
        "causal slopes of {} on {}",
        m.metric.key,
        names.join(" and ")
    );
    let err = stats_err(&what);
    let pop = population(d, m, p);
    if let Some((arm, got)) = m.parts.as_ref().and_then(|r| {
        let has = |i: usize| (0..names.len()).all(|j| !sli_column(d, j)[i].is_nan());
        r.thin_arm(d, has)
    }) {
        return Err(err(StatsError::Undefined(format!(
            "arm '{arm}' has {got} units with every SLI and a positive denominator; a ratio needs at least {}",
            super::data::MIN_RATIO_UNITS
        ))));
    }
    let arms = d.arms.len();
    let dummies: Vec<Vec<f64>> = (0..arms)
        .filter(|a| *a != d.control)
        .map(|a| {
            pop.arm
                .iter()
                .map(|x| f64::from(*x as usize == a))
                .collect()
        })
        .collect();
    let ones = vec![1.0; pop.y.len()];
    let endog: Vec<&[f64]> = pop.x.iter().map(Vec::as_slice).collect();
    let z: Vec<&[f64]> = dummies.iter().map(Vec::as_slice).collect();
    let fit =
        two_sls_multi(&pop.y, &[&ones], &["const"], &endog, &names, &z, true).map_err(&err)?;
    let table = fit.table(IvCov::Robust, p.confidence).map_err(&err)?;
    let control_y: Vec<f64> = (0..pop.y.len())
        .filter(|i| pop.arm[*i] as usize == d.control)
        .map(|i| pop.y[i])
        .collect();
    let control_mean = control_y.iter().sum::<f64>() / control_y.len() as f64;
    let scale = 100.0 / control_mean;
    if !scale.is_finite() {
        return Err(err(StatsError::Undefined(
            "the control KPI mean is zero".into(),
        )));
    }
    let theta: Vec<f64> = table[1..].iter().map(|c| c.estimate).collect();
    let seed = seed_for(p, &format!("joint-slopes:{}", m.metric.key), 0);
    let boot = intervals(&pop, arms, p, seed, &theta).map_err(&err)?;
    let mut out = Vec::new();
    for (j, name) in names.iter().enumerate() {
        let c = &table[1 + j];
        let own = two_sls_arms(&pop.y, &pop.x[j], name, &pop.arm, arms, d.control, true)
            .map_err(&err)?
            .first_stage;
        let conditional = fit.first_stages[j].sw_f;
        let (lo, hi) = (c.ci_low * scale, c.ci_high * scale);
        out.push(CausalEffect {
            kpi: m.metric.key.clone(),
            sli: name.to_string(),
            units: pop.y.len() as u64,
            slope: estimate(super::causal::to_stats(c), Method::TwoSlsRobust),
            relative_per_100: Estimate {
                estimate: c.estimate * scale,
                std_error: c.std_error * scale.abs(),
                ci_low: lo.min(hi),
                ci_high: lo.max(hi),
                p_value: Some(c.p_value),
                log10_p_value: Some(log10_p(c.p_value, c.estimate, c.std_error)),
                adjusted_p_value: None,
                method: Method::Scaled,
            },
            bootstrap: boot[j].clone(),
            first_stage_f: own.f_stat,
            first_stage_robust_f: own.robust_f_stat,
            first_stage_effective_f: Some(own.effective_f),
            weak_instrument: !(own.effective_f >= WEAK_INSTRUMENT_F
                && conditional >= WEAK_INSTRUMENT_F),
            conditional_first_stage_f: Some(conditional),
            holding_fixed: names
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != j)
                .map(|(_, n)| n.to_string())
                .collect(),
            anderson_rubin: None,
            control_kpi_mean: control_mean,
            control_numerator_per_unit: control_numerator_per_unit(d, m),
        });
    }
    if out.iter().any(|e| e.weak_instrument) {
        out.iter_mut().for_each(|e| e.weak_instrument = true);
    }
    Ok((out, dose_responses(d, m, &pop, &fit, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_slopes_equal_two_sls_with_arm_instruments() {
        // 2×2 factorial, 4 arms of 50 units, y = 1 + 0.5·x₁ − 0.2·x₂ + noise.
        let mut arm = Vec::new();
        let (mut x1, mut x2, mut y) = (Vec::new(), Vec::new(), Vec::new());
        let mut state = 7u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for a in 0..4u32 {
            for _ in 0..50 {
                let (d1, d2) = (f64::from(a & 1) * 2.0, f64::from(a >> 1) * 3.0);
                let (v1, v2) = (d1 + noise(), d2 + noise());
                arm.push(a);
                x1.push(v1);
                x2.push(v2);
                y.push(1.0 + 0.5 * v1 - 0.2 * v2 + noise());
            }
        }
        let dummies: Vec<Vec<f64>> = (1..4)
            .map(|a| arm.iter().map(|x| f64::from(*x == a)).collect())
            .collect();
        let ones = vec![1.0; y.len()];
        let z: Vec<&[f64]> = dummies.iter().map(Vec::as_slice).collect();
        let fit = two_sls_multi(&y, &[&ones], &["c"], &[&x1, &x2], &["a", "b"], &z, true).unwrap();
        let mut sums = vec![vec![0.0; 4]; 4];
        for i in 0..y.len() {
            let s = &mut sums[arm[i] as usize];
            s[0] += 1.0;
            s[1] += x1[i];
            s[2] += x2[i];
            s[3] += y[i];
        }
        let g = grouped_slopes(&sums).unwrap();
        assert!(
            (g[0] - fit.coefficients[1]).abs() < 1e-10,
            "{g:?} {:?}",
            fit.coefficients
        );
        assert!(
            (g[1] - fit.coefficients[2]).abs() < 1e-10,
            "{g:?} {:?}",
            fit.coefficients
        );
        // Arms that move both SLIs in proportion cannot separate them.
        let collinear = vec![vec![10.0, 0.0, 0.0, 1.0], vec![10.0, 10.0, 20.0, 2.0]];
        assert_eq!(grouped_slopes(&collinear), None);
    }
}
