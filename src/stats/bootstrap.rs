//! Bootstrap confidence intervals (percentile, basic, BCa) with scipy's conventions, and
//! resampling engines that are deterministic for a seed whatever the thread count.
//!
//! Determinism: replicate b draws from its own generator seeded from (seed, b), replicates are
//! computed in parallel with rayon and collected in order, so the numbers never depend on how
//! replicates were spread over threads.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::descriptive::quantile_sorted;
use super::dist::{norm_cdf, norm_ppf};
pub use super::poisson::{binary_poisson, poisson_quantile, poisson_sums, PoissonOne};
use super::{alpha_of, StatsError, StatsResult};

/// How a bootstrap interval is formed from the replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalMethod {
    Percentile,
    Basic,
    Bca,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of replicate `b` under `seed`. The key splitmix64(splitmix64(seed) ⊕ b) is a
/// bijection of b for a given seed (SplitMix64 is invertible), so replicates never share a
/// stream; `seed_from_u64` expands it into the full 256-bit state with SplitMix64.
pub fn replicate_rng(seed: u64, b: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(splitmix64(splitmix64(seed) ^ b))
}

/// Replicates θ*_b = statistic(resampled samples) for b = 0..resamples, each sample resampled
/// with replacement to its own size (the ordinary multinomial bootstrap, as `scipy.stats.bootstrap`
/// with `paired=False`). O(n) per replicate.
pub fn resample<F>(
    samples: &[&[f64]],
    resamples: usize,
    seed: u64,
    statistic: F,
) -> StatsResult<Vec<f64>>
where
    F: Fn(&[&[f64]]) -> f64 + Sync,
{
    if samples.iter().any(|s| s.is_empty()) {
        return Err(StatsError::TooFew {
            what: "a bootstrap sample",
            need: 1,
            got: 0,
        });
    }
    let out: Vec<f64> = (0..resamples)
        .into_par_iter()
        .map_init(
            || {
                samples
                    .iter()
                    .map(|s| vec![0.0; s.len()])
                    .collect::<Vec<Vec<f64>>>()
            },
            |bufs, b| {
                let mut rng = replicate_rng(seed, b as u64);
                for (buf, s) in bufs.iter_mut().zip(samples) {
                    for v in buf.iter_mut() {
                        *v = s[rng.random_range(0..s.len())];
                    }
                }
                let views: Vec<&[f64]> = bufs.iter().map(Vec::as_slice).collect();
                statistic(&views)
            },
        )
        .collect();
    if out.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::Undefined(
            "a bootstrap replicate of the statistic is not finite".into(),
        ));
    }
    Ok(out)
}

fn sorted(replicates: &[f64]) -> StatsResult<Vec<f64>> {
    if replicates.len() < 2 {
        return Err(StatsError::TooFew {
            what: "a bootstrap interval",
            need: 2,
            got: replicates.len(),
        });
    }
    if replicates.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::Undefined(
            "a bootstrap replicate is not finite".into(),
        ));
    }
    let mut s = replicates.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    Ok(s)
}

/// Percentile interval: the α/2 and 1 − α/2 quantiles of the replicates with linear
/// interpolation, as `scipy.stats.bootstrap(method="percentile")`.
pub fn percentile_interval(replicates: &[f64], confidence: f64) -> StatsResult<(f64, f64)> {
    let alpha = alpha_of(confidence)?;
    let s = sorted(replicates)?;
    Ok((
        quantile_sorted(&s, alpha / 2.0)?,
        quantile_sorted(&s, 1.0 - alpha / 2.0)?,
    ))
}

/// Basic (reverse percentile) interval: (2θ̂ − q_{1−α/2}, 2θ̂ − q_{α/2}), as
/// `scipy.stats.bootstrap(method="basic")`.
pub fn basic_interval(
    theta_hat: f64,
    replicates: &[f64],
    confidence: f64,
) -> StatsResult<(f64, f64)> {
    let (lo, hi) = percentile_interval(replicates, confidence)?;
    Ok((2.0 * theta_hat - hi, 2.0 * theta_hat - lo))
}

/// Jackknife acceleration â from leave-one-out values of the statistic, one vector per sample
/// (leaving out one unit of that sample at a time), as scipy: Uⱼᵢ = (nⱼ − 1)(θ̄ⱼ − θⱼᵢ),
/// â = (1/6)·Σⱼ ΣᵢUⱼᵢ³/nⱼ³ / (Σⱼ ΣᵢUⱼᵢ²/nⱼ²)^{3/2}. For one sample this is the classical
/// Σd³/(6(Σd²)^{3/2}) of Efron (1987).
pub fn jackknife_acceleration(leave_one_out: &[Vec<f64>]) -> StatsResult<f64> {
    let (mut num, mut den) = (0.0, 0.0);
    for theta_i in leave_one_out {
        let n = theta_i.len() as f64;
        if theta_i.len() < 2 {
            return Err(StatsError::TooFew {
                what: "a jackknife",
                need: 2,
                got: theta_i.len(),
            });
        }
        let dot = theta_i.iter().sum::<f64>() / n;
        for t in theta_i {
            let u = (n - 1.0) * (dot - t);
            num += u * u * u / (n * n * n);
            den += u * u / (n * n);
        }
    }
    if den <= 0.0 {
        return Err(StatsError::Undefined(
            "the jackknife values are all equal, so the BCa acceleration is undefined".into(),
        ));
    }
    Ok(num / 6.0 / den.powf(1.5))
}

/// Leave-one-out values of a statistic for each sample, by recomputation (O(n²) in all).
pub fn jackknife<F>(samples: &[&[f64]], statistic: F) -> Vec<Vec<f64>>
where
    F: Fn(&[&[f64]]) -> f64 + Sync,
{
    (0..samples.len())
        .map(|j| {
            (0..samples[j].len())
                .into_par_iter()
                .map(|i| {
                    let reduced: Vec<f64> = samples[j]
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| *k != i)
                        .map(|(_, v)| *v)
                        .collect();
                    let mut views: Vec<&[f64]> = samples.to_vec();
                    views[j] = &reduced;
                    statistic(&views)
                })
                .collect()
        })
        .collect()
}

/// Leave-one-out means of a sample in O(n): (Σx − xᵢ)/(n − 1).
pub fn jackknife_means(x: &[f64]) -> Vec<f64> {
    let s: f64 = x.iter().sum();
    let n = x.len() as f64;
    x.iter().map(|v| (s - v) / (n - 1.0)).collect()
}

/// BCa interval (Efron 1987) as `scipy.stats.bootstrap(method="BCa")`: ẑ₀ = Φ⁻¹(p̂) with p̂ the
/// mid-rank share of replicates below θ̂ ((#{θ* < θ̂} + #{θ* ≤ θ̂})/(2B)); αᵢ = Φ(ẑ₀ + (ẑ₀ + zᵢ)/(1 −
/// â(ẑ₀ + zᵢ))) for zᵢ = Φ⁻¹(α/2), Φ⁻¹(1 − α/2); the interval is the αᵢ quantiles of the replicates.
pub fn bca_interval(
    theta_hat: f64,
    replicates: &[f64],
    acceleration: f64,
    confidence: f64,
) -> StatsResult<(f64, f64)> {
    let alpha = alpha_of(confidence)?;
    let s = sorted(replicates)?;
    let b = s.len() as f64;
    let below = s.iter().filter(|v| **v < theta_hat).count() as f64;
    let at_or_below = s.iter().filter(|v| **v <= theta_hat).count() as f64;
    let p = (below + at_or_below) / (2.0 * b);
    if p <= 0.0 || p >= 1.0 {
        return Err(StatsError::Undefined(
            "the estimate lies outside the bootstrap distribution, so the BCa bias correction is infinite".into(),
        ));
    }
    let z0 = norm_ppf(p);
    let level = |z: f64| {
        let num = z0 + z;
        norm_cdf(z0 + num / (1.0 - acceleration * num))
    };
    let (a1, a2) = (
        level(norm_ppf(alpha / 2.0)),
        level(norm_ppf(1.0 - alpha / 2.0)),
    );
    if !(a1.is_finite() && a2.is_finite()) {
        return Err(StatsError::Undefined("BCa levels are not finite".into()));
    }
    Ok((
        quantile_sorted(&s, a1.clamp(0.0, 1.0))?,
        quantile_sorted(&s, a2.clamp(0.0, 1.0))?,
    ))
}

/// Forms the interval of the requested kind; `acceleration` is needed only for BCa.
pub fn interval(
    method: IntervalMethod,
    theta_hat: f64,
    replicates: &[f64],
    acceleration: Option<f64>,
    confidence: f64,
) -> StatsResult<(f64, f64)> {
    match method {
        IntervalMethod::Percentile => percentile_interval(replicates, confidence),
        IntervalMethod::Basic => basic_interval(theta_hat, replicates, confidence),
        IntervalMethod::Bca => {
            let a = acceleration.ok_or_else(|| {
                StatsError::InvalidParameter("BCa needs the jackknife acceleration".into())
            })?;
            bca_interval(theta_hat, replicates, a, confidence)
        }
    }
}
