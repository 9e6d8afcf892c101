//! The Poisson bootstrap run on a compressed sample ([`Cells`]: distinct values with counts)
//! instead of on units.
//!
//! In the Poisson bootstrap each unit gets an independent Poisson(1) weight per replicate
//! (Hanley & MacGibbon 2006; Chamandy et al. 2012, "Estimating uncertainty for massive data
//! streams"). Units with the same values enter any weighted sum only through the total weight
//! of their cell, and the sum of c independent Poisson(1) weights is Poisson(c). Drawing one
//! Poisson(count) weight per cell therefore gives replicates with exactly the distribution of
//! the (ideal) per-unit Poisson bootstrap when the cells are exact: for a binary outcome, the
//! cells are the converters and the others, i.e. the exact binary bootstrap of
//! `poisson::binary_poisson`. (`poisson::poisson_sums` draws its Poisson(1) weights from a
//! 16-bit table, variance 0.99997; `poisson_quantile` resamples arms under 1,000 units by the
//! multinomial bootstrap.) For binned cells the replicates are those of the per-unit
//! bootstrap of the cells' centroids, within the bounds stated in `stats::cells`. Each
//! replicate costs one draw per cell, not per unit.
//!
//! Determinism: replicate b draws from [`replicate_rng`]`(seed, b)` and visits cells in their
//! sorted order, so the numbers depend on neither threads nor the order rows were counted in.

use rand::RngCore;
use rand_distr::{Distribution, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::bootstrap::replicate_rng;
use super::cells::Cells;
use super::poisson::{weighted_quantile, PoissonOne};
use super::{StatsError, StatsResult};

/// One cell's weight distribution: Poisson(count).
enum Draw {
    Zero,
    /// Poisson(1), from the quantised table (`PoissonOne`).
    One,
    Many(Poisson<f64>),
}

/// Draws Poisson(count) weights for a list of counts.
pub(crate) struct Weights {
    one: PoissonOne,
    draws: Vec<Draw>,
}

impl Weights {
    pub(crate) fn new(counts: &[u64]) -> StatsResult<Weights> {
        let draws = counts
            .iter()
            .map(|&c| match c {
                0 => Ok(Draw::Zero),
                1 => Ok(Draw::One),
                c => Poisson::new(c as f64)
                    .map(Draw::Many)
                    .map_err(|e| StatsError::InvalidParameter(format!("Poisson({c}): {e}"))),
            })
            .collect::<StatsResult<Vec<Draw>>>()?;
        Ok(Weights {
            one: PoissonOne::default(),
            draws,
        })
    }

    /// One replicate's weights, in cell order.
    pub(crate) fn fill(&self, rng: &mut Xoshiro256PlusPlus, out: &mut [f64]) {
        let (mut bits, mut left) = (0u64, 0u32);
        for (w, d) in out.iter_mut().zip(&self.draws) {
            *w = match d {
                Draw::Zero => 0.0,
                Draw::One => {
                    if left == 0 {
                        bits = rng.next_u64();
                        left = 4;
                    }
                    left -= 1;
                    let u = (bits & 0xFFFF) as u16;
                    bits >>= 16;
                    self.one.weight(u)
                }
                Draw::Many(p) => p.sample(rng),
            };
        }
    }
}

fn check_finite<const C: usize>(cells: &Cells<C>) -> StatsResult<()> {
    if cells.rows.iter().flatten().any(|v| !v.is_finite()) {
        return Err(StatsError::InvalidParameter(
            "a bootstrap cell has a value that is not finite".into(),
        ));
    }
    Ok(())
}

/// Poisson-bootstrap sums from cells: replicate b gives, per group, [ΣW, ΣW·v₁, …, ΣW·v_C]
/// over the group's cells with W ~ Poisson(count) (the shape of `poisson::poisson_sums`).
pub fn compressed_sums<const C: usize>(
    groups: &[&Cells<C>],
    resamples: usize,
    seed: u64,
) -> StatsResult<Vec<Vec<Vec<f64>>>> {
    for g in groups {
        check_finite(g)?;
    }
    let weights = groups
        .iter()
        .map(|g| Weights::new(&g.counts))
        .collect::<StatsResult<Vec<Weights>>>()?;
    Ok((0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = replicate_rng(seed, b as u64);
            groups
                .iter()
                .zip(&weights)
                .map(|(g, w)| {
                    let mut buf = vec![0.0; g.counts.len()];
                    w.fill(&mut rng, &mut buf);
                    let mut acc = vec![0.0; C + 1];
                    for (row, wi) in g.rows.iter().zip(&buf) {
                        acc[0] += wi;
                        for c in 0..C {
                            acc[c + 1] += wi * row[c];
                        }
                    }
                    acc
                })
                .collect()
        })
        .collect())
}

/// Poisson-bootstrap replicates of the `q` quantile (linear interpolation, as NumPy) of a
/// sample given as ascending cells.
pub fn compressed_quantile(
    cells: &Cells<1>,
    q: f64,
    resamples: usize,
    seed: u64,
) -> StatsResult<Vec<f64>> {
    check_finite(cells)?;
    if cells.units() < 2 {
        return Err(StatsError::TooFew {
            what: "a bootstrap quantile",
            need: 2,
            got: cells.units() as usize,
        });
    }
    if !(0.0..=1.0).contains(&q) {
        return Err(StatsError::InvalidParameter(format!(
            "quantile level must be in [0, 1], got {q}"
        )));
    }
    let values: Vec<f64> = cells.rows.iter().map(|r| r[0]).collect();
    let weights = Weights::new(&cells.counts)?;
    let out: Vec<f64> = (0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = replicate_rng(seed, b as u64);
            let mut w = vec![0.0; values.len()];
            weights.fill(&mut rng, &mut w);
            let total = w.iter().sum::<f64>() as u64;
            weighted_quantile(&values, &w, 0, total, q).unwrap_or(f64::NAN)
        })
        .collect();
    if out.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::Undefined(
            "a bootstrap replicate of the quantile is empty".into(),
        ));
    }
    Ok(out)
}

/// The `q` quantile (linear interpolation, as NumPy) of the sample the cells hold.
pub fn cells_quantile(cells: &Cells<1>, q: f64) -> StatsResult<f64> {
    let values: Vec<f64> = cells.rows.iter().map(|r| r[0]).collect();
    let w: Vec<f64> = cells.counts.iter().map(|c| *c as f64).collect();
    weighted_quantile(&values, &w, 0, cells.units(), q).ok_or(StatsError::TooFew {
        what: "a quantile",
        need: 1,
        got: 0,
    })
}

/// BCa acceleration from leave-one-out values given with multiplicities: per sample, each
/// (θ₍ᵢ₎, c) stands for c units whose removal gives θ₍ᵢ₎. The same sums as
/// `bootstrap::jackknife_acceleration` over the expanded list: nⱼ = Σc, θ̄ⱼ = Σc·θ₍ᵢ₎/nⱼ,
/// Uᵢ = (nⱼ − 1)(θ̄ⱼ − θ₍ᵢ₎), â = Σⱼ Σ c·Uᵢ³/nⱼ³ / (6 (Σⱼ Σ c·Uᵢ²/nⱼ²)^{3/2}).
pub fn counted_acceleration(leave_one_out: &[Vec<(f64, u64)>]) -> StatsResult<f64> {
    let (mut num, mut den) = (0.0, 0.0);
    for sample in leave_one_out {
        let n: u64 = sample.iter().map(|s| s.1).sum();
        if n < 2 {
            return Err(StatsError::TooFew {
                what: "a jackknife",
                need: 2,
                got: n as usize,
            });
        }
        let nf = n as f64;
        let dot = sample.iter().map(|(t, c)| t * *c as f64).sum::<f64>() / nf;
        for (t, c) in sample {
            let u = (nf - 1.0) * (dot - t);
            num += *c as f64 * u * u * u / (nf * nf * nf);
            den += *c as f64 * u * u / (nf * nf);
        }
    }
    if den <= 0.0 {
        return Err(StatsError::Undefined(
            "the jackknife values are all equal, so the BCa acceleration is undefined".into(),
        ));
    }
    Ok(num / 6.0 / den.powf(1.5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::bootstrap::{jackknife_acceleration, percentile_interval, poisson_sums};
    use crate::stats::cells::{CellCounter, Resolution};
    use crate::stats::descriptive::Moments;
    use crate::stats::poisson::poisson_quantile;
    use rand::SeedableRng;
    use rand_distr::LogNormal;

    fn lognormal(n: usize, mu: f64, seed: u64) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let d = LogNormal::new(mu, 0.8).unwrap();
        (0..n).map(|_| d.sample(&mut rng)).collect()
    }

    fn counted(x: &[f64], cap: usize) -> Cells<1> {
        let mut c = CellCounter::<1>::new(cap);
        x.iter().for_each(|v| c.add([*v], 1));
        c.finish()
    }

    fn sd(v: &[f64]) -> f64 {
        Moments::of(v).variance().unwrap().sqrt()
    }

    #[test]
    fn binary_cells_give_the_binomial_spread() {
        // 300 converters of 1,000: the replicate rate's sd is √(p(1 − p)/n) = 0.01449.
        let mut c = CellCounter::<1>::new(16);
        c.add([1.0], 300);
        c.add([0.0], 700);
        let cells = c.finish();
        assert_eq!(cells.rows.len(), 2);
        let reps = compressed_sums(&[&cells], 4000, 7).unwrap();
        let rates: Vec<f64> = reps.iter().map(|r| r[0][1] / r[0][0]).collect();
        let expected = (0.3f64 * 0.7 / 1000.0).sqrt();
        // The sd of a sample sd over 4,000 replicates is ~1.1%: 5% is > 4 of them.
        assert!((sd(&rates) / expected - 1.0).abs() < 0.05, "{}", sd(&rates));
        assert!((Moments::of(&rates).mean - 0.3).abs() < 4.0 * expected / 63.0);
    }

    #[test]
    fn counted_acceleration_is_the_expanded_one() {
        let x: Vec<f64> = lognormal(400, 1.0, 5).iter().map(|v| v.round()).collect();
        let loo = crate::stats::bootstrap::jackknife_means(&x);
        let expanded = jackknife_acceleration(std::slice::from_ref(&loo)).unwrap();
        let cells = counted(&x, 1000);
        assert_eq!(cells.resolution, Resolution::Exact);
        let (n, s) = (x.len() as f64, x.iter().sum::<f64>());
        let per_cell: Vec<(f64, u64)> = (cells.rows.iter().zip(&cells.counts))
            .map(|(r, c)| ((s - r[0]) / (n - 1.0), *c))
            .collect();
        let a = counted_acceleration(&[per_cell]).unwrap();
        assert!(
            (a - expanded).abs() <= 1e-12 * expanded.abs(),
            "{a} {expanded}"
        );
    }

    /// Percentile interval endpoints and the replicates' mean from `b` replicates: two
    /// independent runs differ by ~0.15 se (endpoints) and ~0.045 se (means) at b = 1,000.
    #[track_caller]
    fn agree(per_unit: &[f64], cells: &[f64]) {
        let se = sd(per_unit);
        let (a, z) = (
            percentile_interval(per_unit, 0.95).unwrap(),
            percentile_interval(cells, 0.95).unwrap(),
        );
        assert!((a.0 - z.0).abs() < 0.5 * se, "{a:?} {z:?} se {se}");
        assert!((a.1 - z.1).abs() < 0.5 * se, "{a:?} {z:?} se {se}");
        let (m, n) = (Moments::of(per_unit).mean, Moments::of(cells).mean);
        assert!((m - n).abs() < 0.2 * se, "mean {m} vs {n}, se {se}");
        assert!((sd(cells) / se - 1.0).abs() < 0.1, "{} {se}", sd(cells));
    }

    /// The difference of means on one million heavy-tailed units (log-normal σ = 0.8), by
    /// the per-unit Poisson bootstrap and from ≤ 4,096 binned cells per arm.
    #[test]
    fn million_units_binned_agree_with_per_unit_within_monte_carlo_error() {
        let (t, c) = (lognormal(500_000, 5.52, 1), lognormal(500_000, 5.5, 2));
        let b = 1000;
        let arm: Vec<u32> = (0..t.len())
            .map(|_| 0)
            .chain((0..c.len()).map(|_| 1))
            .collect();
        let all: Vec<f64> = t.iter().chain(&c).copied().collect();
        let diff = |r: &Vec<Vec<f64>>| r[0][1] / r[0][0] - r[1][1] / r[1][0];
        let per_unit: Vec<f64> = poisson_sums(&arm, 2, &[&all], b, 11)
            .unwrap()
            .iter()
            .map(diff)
            .collect();
        let (ct, cc) = (counted(&t, 4096), counted(&c, 4096));
        assert!(matches!(ct.resolution, Resolution::Binned { .. }));
        let cells: Vec<f64> = compressed_sums(&[&ct, &cc], b, 12)
            .unwrap()
            .iter()
            .map(diff)
            .collect();
        agree(&per_unit, &cells);
    }

    /// The grouped 2SLS slope Σₐ Wₐ(x̄ₐ − x̄)(ȳₐ − ȳ)/Σₐ Wₐ(x̄ₐ − x̄)² from per-arm [W, Σwx, Σwy].
    fn slope(r: &[Vec<f64>]) -> f64 {
        let w: f64 = r.iter().map(|g| g[0]).sum();
        let (x, y) = (
            r.iter().map(|g| g[1]).sum::<f64>() / w,
            r.iter().map(|g| g[2]).sum::<f64>() / w,
        );
        let (mut num, mut den) = (0.0, 0.0);
        for g in r {
            let (xa, ya) = (g[1] / g[0], g[2] / g[0]);
            num += g[0] * (xa - x) * (ya - y);
            den += g[0] * (xa - x) * (xa - x);
        }
        num / den
    }

    /// The causal slope of a zero-inflated heavy-tailed KPI (revenue) on a continuous SLI over
    /// one million units in three arms, its (SLI, KPI) pairs squeezed into 512 cells per arm
    /// (one mantissa bit: a bin spans up to half of its values): the cells' centroids keep
    /// the arm means, so the replicates still agree with the per-unit ones, where bin
    /// midpoints as the cells' values shift the interval by ~3 se (tried).
    #[test]
    fn million_unit_slope_from_binned_pairs_agrees_with_per_unit() {
        const CAP: usize = 512;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
        let (latency, basket) = (
            LogNormal::new(5.5, 0.7).unwrap(),
            LogNormal::new(3.2, 1.0).unwrap(),
        );
        let n = 1_000_000;
        let (mut arm, mut x, mut y) = (Vec::new(), Vec::new(), Vec::new());
        let mut counters = vec![CellCounter::<2>::new(CAP); 3];
        for i in 0..n {
            let a = (i % 3) as u32;
            let s: f64 = latency.sample(&mut rng) + [0.0, 100.0, 250.0][a as usize];
            let u: f64 = rand::Rng::random(&mut rng);
            let v = if u < 0.06 + 0.3 * (-s / 500.0).exp() {
                basket.sample(&mut rng)
            } else {
                0.0
            };
            counters[a as usize].add([s, v], 1);
            arm.push(a);
            x.push(s);
            y.push(v);
        }
        let cells: Vec<Cells<2>> = counters.into_iter().map(CellCounter::finish).collect();
        assert!(cells.iter().all(|c| c.rows.len() <= CAP));
        assert!(
            matches!(cells[0].resolution, Resolution::Binned { bits: 1, .. }),
            "{:?}",
            cells[0].resolution
        );
        let b = 1000;
        let per_unit: Vec<f64> = poisson_sums(&arm, 3, &[&x, &y], b, 21)
            .unwrap()
            .iter()
            .map(|r| slope(r))
            .collect();
        let groups: Vec<&Cells<2>> = cells.iter().collect();
        let from_cells: Vec<f64> = compressed_sums(&groups, b, 22)
            .unwrap()
            .iter()
            .map(|r| slope(r))
            .collect();
        agree(&per_unit, &from_cells);
    }

    #[test]
    fn quantile_from_cells_agrees_with_per_unit() {
        // Latencies in whole milliseconds repeat: the cells are exact.
        let mut x: Vec<f64> = lognormal(200_000, 5.5, 4)
            .iter()
            .map(|v| v.round())
            .collect();
        x.sort_unstable_by(f64::total_cmp);
        let cells = counted(&x, 1 << 14);
        assert_eq!(cells.resolution, Resolution::Exact);
        assert_eq!(
            cells_quantile(&cells, 0.95).unwrap(),
            crate::stats::descriptive::quantile_sorted(&x, 0.95).unwrap()
        );
        let per_unit = poisson_quantile(&x, 0.95, 1000, 3).unwrap();
        let from_cells = compressed_quantile(&cells, 0.95, 1000, 4).unwrap();
        let se = sd(&per_unit);
        assert!(
            (sd(&from_cells) / se - 1.0).abs() < 0.15,
            "{} {se}",
            sd(&from_cells)
        );
        let (a, z) = (
            percentile_interval(&per_unit, 0.9).unwrap(),
            percentile_interval(&from_cells, 0.9).unwrap(),
        );
        assert!(
            (a.0 - z.0).abs() < 0.8 * se && (a.1 - z.1).abs() < 0.8 * se,
            "{a:?} {z:?}"
        );
    }
}
