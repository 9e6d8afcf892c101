//! Poisson bootstrap engines for large samples: every unit gets an independent Poisson(1) weight
//! per replicate instead of a multinomial resample, so replicates reduce to weighted sums.
//! Replicate b draws from [`replicate_rng`]`(seed, b)`, so results do not depend on threads.

use rand::RngCore;
use rand_distr::{Distribution, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::bootstrap::{replicate_rng, resample};
use super::descriptive::quantile_sorted;
use super::{StatsError, StatsResult};

/// Poisson(1) weights quantised to 16-bit uniforms: entry u is the smallest k with
/// P(K ≤ k) > (u + ½)/65536. Each cell is off by at most 2⁻¹⁶ in probability.
fn poisson1_table() -> Vec<u8> {
    let mut cdf = Vec::new();
    let (mut p, mut c) = ((-1.0f64).exp(), 0.0);
    for k in 0..20 {
        c += p;
        cdf.push(c);
        p /= (k + 1) as f64;
    }
    (0..65536u32)
        .map(|u| {
            let x = (u as f64 + 0.5) / 65536.0;
            cdf.iter().position(|&f| f > x).unwrap_or(cdf.len() - 1) as u8
        })
        .collect()
}

/// Poisson(1) weights from 16-bit uniforms (see [`poisson1_table`]).
pub struct PoissonOne {
    table: Vec<u8>,
}

impl Default for PoissonOne {
    fn default() -> Self {
        PoissonOne {
            table: poisson1_table(),
        }
    }
}

impl PoissonOne {
    /// The Poisson(1) weight of one 16-bit uniform.
    pub fn weight(&self, uniform: u16) -> f64 {
        f64::from(self.table[uniform as usize])
    }

    /// Fills `out` with independent Poisson(1) weights, four per 64-bit draw.
    pub fn fill(&self, rng: &mut Xoshiro256PlusPlus, out: &mut [f64]) {
        for chunk in out.chunks_mut(4) {
            let bits = rng.next_u64();
            for (l, w) in chunk.iter_mut().enumerate() {
                *w = f64::from(self.table[((bits >> (16 * l)) & 0xFFFF) as usize]);
            }
        }
    }
}

/// Poisson-bootstrap replicates of the `q` quantile (linear interpolation, as NumPy) of a sample
/// given in ascending order. Exact without touching every unit: the resample's order statistics
/// near rank q·W only involve units near rank q·n, so weights are drawn individually in a window
/// of ±(8√n + 8) ranks, and the totals below and above the window as single Poisson(m) draws
/// (a sum of m independent Poisson(1) weights). If the target rank leaves the window (a > 8σ
/// event) the replicate is redrawn unit by unit. Samples under 1,000 use the ordinary bootstrap.
pub fn poisson_quantile(
    sorted: &[f64],
    q: f64,
    resamples: usize,
    seed: u64,
) -> StatsResult<Vec<f64>> {
    let n = sorted.len();
    if n < 2 {
        return Err(StatsError::TooFew {
            what: "a bootstrap quantile",
            need: 2,
            got: n,
        });
    }
    if !(0.0..=1.0).contains(&q) {
        return Err(StatsError::InvalidParameter(format!(
            "quantile level must be in [0, 1], got {q}"
        )));
    }
    if n < 1000 {
        return resample(&[sorted], resamples, seed, |s| {
            let mut v = s[0].to_vec();
            v.sort_unstable_by(f64::total_cmp);
            quantile_sorted(&v, q).unwrap_or(f64::NAN)
        });
    }
    let one = PoissonOne::default();
    let half = (8.0 * (n as f64).sqrt()).ceil() as usize + 8;
    let centre = (q * n as f64) as usize;
    let (m1, m2) = (centre.saturating_sub(half), (centre + half).min(n));
    let out: Vec<f64> = (0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = replicate_rng(seed, b as u64);
            let big = |lambda: usize, rng: &mut Xoshiro256PlusPlus| -> u64 {
                if lambda == 0 {
                    0
                } else {
                    Poisson::new(lambda as f64)
                        .map(|d| d.sample(rng) as u64)
                        .unwrap_or(lambda as u64)
                }
            };
            let below = big(m1, &mut rng);
            let mut window = vec![0.0; m2 - m1];
            one.fill(&mut rng, &mut window);
            let above = big(n - m2, &mut rng);
            let total = below + window.iter().sum::<f64>() as u64 + above;
            match weighted_quantile(&sorted[m1..m2], &window, below, total, q) {
                Some(v) => v,
                None => {
                    let mut all = vec![0.0; n];
                    one.fill(&mut rng, &mut all);
                    let total = all.iter().sum::<f64>() as u64;
                    weighted_quantile(sorted, &all, 0, total, q).unwrap_or(f64::NAN)
                }
            }
        })
        .collect();
    if out.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::Undefined(
            "a bootstrap replicate of the quantile is not finite".into(),
        ));
    }
    Ok(out)
}

/// The `q` quantile (linear interpolation) of a resample of `total` units in which `values[j]`
/// occurs `weights[j]` times after `offset` units that sort below them; `None` when the ranks
/// needed fall outside `values`.
pub(super) fn weighted_quantile(
    values: &[f64],
    weights: &[f64],
    offset: u64,
    total: u64,
    q: f64,
) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let h = (total - 1) as f64 * q;
    let lo = h.floor() as u64;
    let frac = h - lo as f64;
    let at = |rank: u64| -> Option<f64> {
        if rank < offset {
            return None;
        }
        let mut cum = offset;
        for (v, w) in values.iter().zip(weights) {
            cum += *w as u64;
            if rank < cum {
                return Some(*v);
            }
        }
        None
    };
    let a = at(lo)?;
    let b = if frac > 0.0 {
        at((lo + 1).min(total - 1))?
    } else {
        a
    };
    Some(a + frac * (b - a))
}

/// Units per cache block of the Poisson bootstrap.
const BLOCK: usize = 4096;
/// Replicates carried together over each block.
const REPLICATES_PER_TASK: usize = 32;

/// Poisson bootstrap of grouped sums, for large n. Unit i of group gᵢ gets weight wᵢ ~ Poisson(1)
/// (independently per replicate); replicate b returns, per group, [Σwᵢ, Σwᵢ·vᵢ₁, Σwᵢ·vᵢ₂, …] over
/// the value columns (at most 4). Statistics built from these sums (means, differences, ratios,
/// grouped 2SLS) follow. Reference: Hanley & MacGibbon (2006); Chamandy et al. (2012),
/// "Estimating uncertainty for massive data streams". Weights come from the quantised table
/// above, four per 64-bit draw. Units are visited group by group in their original order within
/// a group, in cache blocks that a task's replicates pass over together; each replicate's
/// generator walks the units in the same order whatever the thread count, so results are
/// deterministic.
pub fn poisson_sums(
    groups: &[u32],
    n_groups: usize,
    values: &[&[f64]],
    resamples: usize,
    seed: u64,
) -> StatsResult<Vec<Vec<Vec<f64>>>> {
    let n = groups.len();
    if values.iter().any(|v| v.len() != n) {
        return Err(StatsError::LengthMismatch(
            "value columns differ in length from the groups".into(),
        ));
    }
    if groups.iter().any(|&g| g as usize >= n_groups) {
        return Err(StatsError::InvalidParameter(
            "group index out of range".into(),
        ));
    }
    // Columns gathered group by group: by_group[g][c] holds column c of group g's units.
    let by_group: Vec<Vec<Vec<f64>>> = (0..n_groups)
        .map(|g| {
            values
                .iter()
                .map(|col| {
                    groups
                        .iter()
                        .zip(col.iter())
                        .filter(|(gi, _)| **gi as usize == g)
                        .map(|(_, v)| *v)
                        .collect()
                })
                .collect()
        })
        .collect();
    let sizes: Vec<usize> = (0..n_groups)
        .map(|g| groups.iter().filter(|gi| **gi as usize == g).count())
        .collect();
    let table = poisson1_table();
    let out = match values.len() {
        0 => poisson_blocked::<0>(&by_group, &sizes, &table, resamples, seed),
        1 => poisson_blocked::<1>(&by_group, &sizes, &table, resamples, seed),
        2 => poisson_blocked::<2>(&by_group, &sizes, &table, resamples, seed),
        3 => poisson_blocked::<3>(&by_group, &sizes, &table, resamples, seed),
        4 => poisson_blocked::<4>(&by_group, &sizes, &table, resamples, seed),
        c => {
            return Err(StatsError::InvalidParameter(format!(
                "at most 4 value columns, got {c}"
            )))
        }
    };
    Ok(out)
}

fn poisson_blocked<const C: usize>(
    by_group: &[Vec<Vec<f64>>],
    sizes: &[usize],
    table: &[u8],
    resamples: usize,
    seed: u64,
) -> Vec<Vec<Vec<f64>>> {
    let tasks: Vec<usize> = (0..resamples).step_by(REPLICATES_PER_TASK).collect();
    tasks
        .into_par_iter()
        .flat_map_iter(|first| {
            let count = REPLICATES_PER_TASK.min(resamples - first);
            let mut rngs: Vec<Xoshiro256PlusPlus> = (first..first + count)
                .map(|b| replicate_rng(seed, b as u64))
                .collect();
            let mut acc = vec![vec![vec![0.0; C + 1]; sizes.len()]; count];
            for (g, cols) in by_group.iter().enumerate() {
                for start in (0..sizes[g]).step_by(BLOCK) {
                    let end = (start + BLOCK).min(sizes[g]);
                    let block: [&[f64]; C] = std::array::from_fn(|c| &cols[c][start..end]);
                    for (rng, a) in rngs.iter_mut().zip(acc.iter_mut()) {
                        let (w, s) = weigh_block::<C>(rng, table, &block, end - start);
                        a[g][0] += w as f64;
                        for c in 0..C {
                            a[g][c + 1] += s[c];
                        }
                    }
                }
            }
            acc
        })
        .collect()
}

/// Σw and Σw·v over one block with fresh Poisson(1) weights; four lanes of partial sums keep the
/// floating-point adds independent.
#[inline]
fn weigh_block<const C: usize>(
    rng: &mut Xoshiro256PlusPlus,
    table: &[u8],
    cols: &[&[f64]; C],
    len: usize,
) -> (u64, [f64; C]) {
    let mut wsum = 0u64;
    let mut lanes = [[0.0f64; 4]; C];
    let full = len / 4 * 4;
    let mut i = 0;
    while i < full {
        let bits = rng.next_u64();
        let w: [u8; 4] = std::array::from_fn(|l| table[((bits >> (16 * l)) & 0xFFFF) as usize]);
        for l in 0..4 {
            wsum += u64::from(w[l]);
            for c in 0..C {
                lanes[c][l] += f64::from(w[l]) * cols[c][i + l];
            }
        }
        i += 4;
    }
    if i < len {
        let bits = rng.next_u64();
        for l in 0..(len - i) {
            let w = table[((bits >> (16 * l)) & 0xFFFF) as usize];
            wsum += u64::from(w);
            for c in 0..C {
                lanes[c][l] += f64::from(w) * cols[c][i + l];
            }
        }
    }
    (wsum, std::array::from_fn(|c| lanes[c].iter().sum()))
}

/// Exact O(1)-per-replicate Poisson bootstrap of binary outcomes: with k successes of n in a
/// group, the weighted successes and failures are P₁ ~ Poisson(k) and P₀ ~ Poisson(n − k)
/// (sums of independent Poisson(1) weights). Returns per replicate, per group, (P₀ + P₁, P₁).
pub fn binary_poisson(
    successes: &[u64],
    trials: &[u64],
    resamples: usize,
    seed: u64,
) -> StatsResult<Vec<Vec<(f64, f64)>>> {
    if successes.len() != trials.len() || successes.iter().zip(trials).any(|(k, n)| k > n) {
        return Err(StatsError::InvalidParameter(
            "successes must not exceed trials".into(),
        ));
    }
    let draw = |lambda: u64, rng: &mut Xoshiro256PlusPlus| -> f64 {
        if lambda == 0 {
            0.0
        } else {
            Poisson::new(lambda as f64)
                .map(|d| d.sample(rng))
                .unwrap_or(0.0)
        }
    };
    Ok((0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = replicate_rng(seed, b as u64);
            successes
                .iter()
                .zip(trials)
                .map(|(&k, &n)| {
                    let p1 = draw(k, &mut rng);
                    let p0 = draw(n - k, &mut rng);
                    (p0 + p1, p1)
                })
                .collect()
        })
        .collect())
}
