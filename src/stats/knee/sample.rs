//! The sample a hinge is fitted on: units, or counted cells (`stats::cells`), sorted by x and
//! centred, with the quantiles, ranks and bootstrap weights of its units.

use super::super::bootstrap::PoissonOne;
use super::super::cells::Cells;
use super::super::compressed::Weights;
use super::super::descriptive::quantile_sorted;
use super::super::poisson::weighted_quantile;
use super::super::{check_finite, StatsError, StatsResult};

/// x sorted ascending with y carried along, centred for numerical stability; a row stands for
/// one unit, or for `counts` units when the sample comes as counted cells.
pub(super) struct Sorted {
    pub(super) x: Vec<f64>,
    pub(super) y: Vec<f64>,
    pub(super) x_mean: f64,
    pub(super) y_mean: f64,
    /// Units per row and their bootstrap draws (Poisson(count) each); `None`: one unit a row.
    pub(super) counts: Option<(Vec<f64>, Weights)>,
    /// Units in the sample.
    pub(super) units: u64,
    /// Σ count·(y − cell's ȳ)² over counted cells whose units' y differ (binned): the residual
    /// sum of squares no fit over the cells can see, added to every SSR (0 for units).
    pub(super) within: f64,
}

/// A sample counted into cells (`stats::cells`): rows (x − `offsets.0`, y − `offsets.1`) with
/// the units each stands for, and the units' exact Σ(y − `offsets.1`) and Σ(y − `offsets.1`)²,
/// which carry the spread of y within binned cells. Counting values less central ones makes
/// the cells' resolution follow the spread, not the level.
#[derive(Debug, Clone, Copy)]
pub struct CountedSample<'a> {
    pub cells: &'a Cells<2>,
    pub offsets: (f64, f64),
    pub y_sums: [f64; 2],
}

impl Sorted {
    pub(super) fn new(x: &[f64], y: &[f64]) -> StatsResult<Sorted> {
        check_finite("hinge x", x)?;
        check_finite("hinge y", y)?;
        if x.len() != y.len() {
            return Err(StatsError::LengthMismatch(
                "x and y differ in length".into(),
            ));
        }
        if x.len() < 10 {
            return Err(StatsError::TooFew {
                what: "a hinge regression",
                need: 10,
                got: x.len(),
            });
        }
        let n = x.len() as f64;
        let x_mean = x.iter().sum::<f64>() / n;
        let y_mean = y.iter().sum::<f64>() / n;
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_unstable_by(|&a, &b| x[a].total_cmp(&x[b]));
        Ok(Sorted {
            x: idx.iter().map(|&i| x[i] - x_mean).collect(),
            y: idx.iter().map(|&i| y[i] - y_mean).collect(),
            x_mean,
            y_mean,
            counts: None,
            units: x.len() as u64,
            within: 0.0,
        })
    }

    /// The rows of a counted sample (ascending by x, as [`Cells`] keeps them), back on x's and
    /// y's scales. Each unit stands at its cell's centroid; what that hides of y's spread, the
    /// units' total Σ(y − ȳ)² less the cells' Σ count·(ȳ_cell − ȳ)², is kept in `within`: a
    /// fit's fitted value is one per cell, so a unit's residual is its cell's plus its distance
    /// from the cell's ȳ, and SSR = SSR over cells + `within` (exactly, when a cell's units
    /// share their x; to the x-binning otherwise).
    pub(super) fn from_cells(sample: CountedSample) -> StatsResult<Sorted> {
        let CountedSample {
            cells,
            offsets: (x_offset, y_offset),
            y_sums: [sy, syy],
        } = sample;
        let x: Vec<f64> = cells.rows.iter().map(|r| r[0]).collect();
        let y: Vec<f64> = cells.rows.iter().map(|r| r[1]).collect();
        check_finite("hinge x", &x)?;
        check_finite("hinge y", &y)?;
        let units = cells.units();
        if units < 10 {
            return Err(StatsError::TooFew {
                what: "a hinge regression",
                need: 10,
                got: units as usize,
            });
        }
        let counts: Vec<f64> = cells.counts.iter().map(|c| *c as f64).collect();
        let n = units as f64;
        let mean = |v: &[f64]| v.iter().zip(&counts).map(|(v, c)| v * c).sum::<f64>() / n;
        let (x_mean, y_mean) = (mean(&x), mean(&y));
        let y: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
        let between: f64 = y.iter().zip(&counts).map(|(y, c)| c * y * y).sum();
        let total = syy - sy * sy / n;
        Ok(Sorted {
            x: x.iter().map(|v| v - x_mean).collect(),
            y,
            x_mean: x_mean + x_offset,
            y_mean: y_mean + y_offset,
            counts: Some((counts, Weights::new(&cells.counts)?)),
            units,
            within: (total - between).max(0.0),
        })
    }

    pub(super) fn counts(&self) -> Option<&[f64]> {
        self.counts.as_ref().map(|(c, _)| c.as_slice())
    }

    /// The `q` quantile of the units' x (linear interpolation, as NumPy), centred.
    pub(super) fn quantile(&self, q: f64) -> StatsResult<f64> {
        match self.counts() {
            None => quantile_sorted(&self.x, q),
            Some(c) => weighted_quantile(&self.x, c, 0, self.units, q).ok_or(StatsError::TooFew {
                what: "a quantile",
                need: 1,
                got: 0,
            }),
        }
    }

    /// The x of the unit of 0-based `rank` in ascending order, centred.
    pub(super) fn at_rank(&self, rank: u64) -> f64 {
        let Some(c) = self.counts() else {
            return self.x[rank as usize];
        };
        let mut cum = 0u64;
        for (x, c) in self.x.iter().zip(c) {
            cum += *c as u64;
            if rank < cum {
                return *x;
            }
        }
        self.x[self.x.len() - 1]
    }

    /// One bootstrap replicate's weights per row: Poisson(1) per unit, Poisson(count) per
    /// counted row (`stats::compressed`).
    pub(super) fn draw(
        &self,
        one: &PoissonOne,
        rng: &mut rand_xoshiro::Xoshiro256PlusPlus,
    ) -> Vec<f64> {
        let mut w = vec![0.0; self.x.len()];
        match &self.counts {
            None => one.fill(rng, &mut w),
            Some((_, weights)) => weights.fill(rng, &mut w),
        }
        w
    }
}
