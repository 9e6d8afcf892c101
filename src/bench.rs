//! `sloproof bench-stats`: times the statistics core on a simulated latency-injection
//! experiment (a benchmark, not a test). `scripts/bench_stats.py` runs it beside the same
//! computations in scipy, statsmodels and linearmodels.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::stats::bootstrap::{percentile_interval, poisson_sums};
use crate::stats::hypothesis::welch_t_test;
use crate::stats::iv::{two_sls, two_sls_arms, IvCov};
use crate::stats::ols::{ols, CovType};
use crate::stats::{StatsError, StatsResult};

/// One timed step.
#[derive(Debug, serde::Serialize)]
pub struct Step {
    pub name: &'static str,
    pub seconds: f64,
    pub result: f64,
}

/// Simulates `units` units in 3 arms (+0/+100/+200 ms) and times Welch, OLS with HC1, 2SLS and a
/// `resamples`-replicate Poisson bootstrap of the treatment − control difference in means.
pub fn run(units: usize, resamples: usize, seed: u64) -> StatsResult<Vec<Step>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let invalid = |e: rand_distr::NormalError| StatsError::InvalidParameter(e.to_string());
    let base = LogNormal::new(5.6, 0.3).map_err(invalid)?;
    let noise = Normal::new(0.0, 1.0).map_err(invalid)?;
    let mut arm = Vec::with_capacity(units);
    let mut latency = Vec::with_capacity(units);
    let mut revenue = Vec::with_capacity(units);
    for _ in 0..units {
        let a: u32 = rng.random_range(0..3);
        let l = base.sample(&mut rng) + 100.0 * a as f64;
        arm.push(a);
        latency.push(l);
        revenue.push(20.0 - 0.01 * l + 5.0 * noise.sample(&mut rng));
    }
    let d1: Vec<f64> = arm.iter().map(|&a| f64::from(u8::from(a == 1))).collect();
    let d2: Vec<f64> = arm.iter().map(|&a| f64::from(u8::from(a == 2))).collect();
    let ones = vec![1.0; units];
    let mut steps = Vec::new();

    // Split by arm outside the timing, as the Python reference does.
    let treat: Vec<f64> = revenue
        .iter()
        .zip(&arm)
        .filter(|(_, &a)| a == 1)
        .map(|(v, _)| *v)
        .collect();
    let ctrl: Vec<f64> = revenue
        .iter()
        .zip(&arm)
        .filter(|(_, &a)| a == 0)
        .map(|(v, _)| *v)
        .collect();
    let t = Instant::now();
    let w = welch_t_test(&treat, &ctrl, 0.95)?;
    steps.push(Step {
        name: "welch",
        seconds: t.elapsed().as_secs_f64(),
        result: w.difference.estimate,
    });

    let t = Instant::now();
    let fit = ols(&[&ones, &d1, &d2], &["const", "d1", "d2"], &revenue)?;
    let table = fit.table(CovType::Hc1, 0.95)?;
    steps.push(Step {
        name: "ols_hc1",
        seconds: t.elapsed().as_secs_f64(),
        result: table[1].std_error,
    });

    let t = Instant::now();
    let iv = two_sls(
        &revenue,
        &[&ones],
        &["const"],
        &latency,
        "latency",
        &[&d1, &d2],
        true,
    )?;
    let slope = iv.slope(IvCov::Robust, 0.95)?;
    steps.push(Step {
        name: "two_sls_robust",
        seconds: t.elapsed().as_secs_f64(),
        result: slope.estimate,
    });

    // The same fit as analyses compute it: from per-arm moments.
    let t = Instant::now();
    let iv = two_sls_arms(&revenue, &latency, "latency", &arm, 3, 0, true)?;
    let slope = iv.slope(IvCov::Robust, 0.95)?;
    steps.push(Step {
        name: "two_sls_arms_robust",
        seconds: t.elapsed().as_secs_f64(),
        result: slope.estimate,
    });

    let t = Instant::now();
    let sums = poisson_sums(&arm, 3, &[&revenue], resamples, seed)?;
    let diffs: Vec<f64> = sums
        .iter()
        .map(|s| s[1][1] / s[1][0] - s[0][1] / s[0][0])
        .collect();
    let (lo, _) = percentile_interval(&diffs, 0.95)?;
    steps.push(Step {
        name: "bootstrap_poisson_percentile",
        seconds: t.elapsed().as_secs_f64(),
        result: lo,
    });
    Ok(steps)
}
