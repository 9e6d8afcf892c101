//! A causal threshold: the hinge model y = β₀ + β₁x + β₂(x − ψ)₊ + ε fitted by two-stage least
//! squares with x endogenous, instrumented by arm × stratum indicators (strata: baseline
//! buckets of the units' pre-period SLI, fixed before treatment), stratum fixed effects as
//! exogenous regressors, and ψ profiled.
//!
//! With saturated cell instruments (every arm × stratum cell has its own indicator) the
//! projection onto the instruments replaces each unit's row by its cell mean, so for a given ψ
//! 2SLS equals weighted least squares of the cell means ȳ_c on x̄_c and ū_c(ψ) = mean of
//! (x − ψ)₊ in the cell, with stratum fixed effects and weights n_c; its objective
//! Q(ψ) = Σ_c n_c(ȳ_c − fitted_c)² is the 2SLS criterion, and ψ̂ = argmin Q (nonlinear 2SLS,
//! Amemiya 1974). Identification comes from how the arms' effect on y changes with the
//! baseline: within a stratum the arms differ only by their dose, so the contrast of ȳ is the
//! contrast of β₁x̄ + β₂ū(ψ). With continuous x inside each cell, ū is smooth in ψ, so ψ is
//! located below the strata's width, but by the assumed hinge shape within a cell rather than by
//! randomisation alone. Assumption: one curve for all units (heterogeneous sensitivity by
//! baseline, or a second bend such as a saturation floor, is absorbed into ψ̂; with a floor
//! ψ̂ converges to a pseudo-true value below the knee). Inference on ψ and the slopes: Poisson bootstrap of
//! units, percentile intervals (a continuous hinge is a regular, √n-consistent problem,
//! Feder 1975, so the bootstrap is valid). Checked by simulated coverage in
//! `tests/stats_simulation.rs`.
//!
//! The data may also come as counted cells ([`IvHingeData::from_cells`]: each arm × stratum
//! cell's distinct (x, y) rows with counts, `stats::cells`), as a summary computed without
//! units reads them. A row of count c enters every sum with weight c, and in a bootstrap
//! replicate with weight Poisson(c), the total of c independent Poisson(1) weights
//! (`stats::compressed`): with exact cells the fit is the per-unit one and the replicates have
//! the per-unit bootstrap's distribution. With binned cells each unit stands at its cell's
//! centroid: Σw, Σwx and Σwy are unchanged, and ū(ψ) moves only through units whose cell
//! straddles ψ, each by less than its cell's width (2⁻ᵏ·|x|).

use rayon::prelude::*;

use super::super::bootstrap::{percentile_interval, replicate_rng, PoissonOne};
use super::super::cells::Cells;
use super::super::compressed::Weights;
use super::super::descriptive::quantile_sorted;
use super::super::knee::profile_argmin;
use super::super::linalg::solve_normal;
use super::super::poisson::weighted_quantile;
use super::super::{check_finite, StatsError, StatsResult};

/// One arm × stratum cell: x sorted ascending, y in the same order, and how many units each
/// (x, y) row stands for (`None`: one each).
struct Cell {
    stratum: usize,
    x: Vec<f64>,
    y: Vec<f64>,
    counts: Option<(Vec<f64>, Weights)>,
}

impl Cell {
    /// The rows' weights in the point estimate: their counts.
    fn counts(&self) -> Option<&[f64]> {
        self.counts.as_ref().map(|(c, _)| c.as_slice())
    }

    /// One bootstrap replicate's weights: Poisson(1) per unit, Poisson(count) per counted row.
    fn draw(&self, one: &PoissonOne, rng: &mut rand_xoshiro::Xoshiro256PlusPlus) -> Vec<f64> {
        let mut w = vec![0.0; self.x.len()];
        match &self.counts {
            None => one.fill(rng, &mut w),
            Some((_, weights)) => weights.fill(rng, &mut w),
        }
        w
    }
}

/// Weighted sums of one cell: suffix[j] = [Σw, Σwx] over sorted positions ≥ j, and Σwy.
struct CellSums<'a> {
    x: &'a [f64],
    suffix: Vec<[f64; 2]>,
    wy: f64,
}

impl<'a> CellSums<'a> {
    fn new(cell: &'a Cell, w: Option<&[f64]>) -> CellSums<'a> {
        let n = cell.x.len();
        let mut suffix = vec![[0.0; 2]; n + 1];
        let mut wy = 0.0;
        for i in (0..n).rev() {
            let wi = w.map_or(1.0, |w| w[i]);
            suffix[i] = [suffix[i + 1][0] + wi, suffix[i + 1][1] + wi * cell.x[i]];
            wy += wi * cell.y[i];
        }
        CellSums {
            x: &cell.x,
            suffix,
            wy,
        }
    }

    /// (n_c, x̄_c, ū_c(ψ), ȳ_c), or None for an empty cell.
    fn means(&self, psi: f64) -> Option<[f64; 4]> {
        let [n, sx] = self.suffix[0];
        if n <= 0.0 {
            return None;
        }
        let j = self.x.partition_point(|&v| v <= psi);
        let [m, mx] = self.suffix[j];
        Some([n, sx / n, (mx - psi * m) / n, self.wy / n])
    }
}

/// The fitted causal hinge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IvHinge {
    /// ψ̂, minimising the 2SLS criterion.
    pub breakpoint: f64,
    /// β₁: the causal slope below ψ̂.
    pub slope_below: f64,
    /// β₁ + β₂: the causal slope above ψ̂.
    pub slope_above: f64,
    /// Q(ψ̂).
    pub criterion: f64,
}

/// Units grouped into arm × stratum cells, ready for repeated fits.
pub struct IvHingeData {
    cells: Vec<Cell>,
    strata: usize,
    /// The search range of ψ: the 5th to 95th percentiles of x over all units.
    range: (f64, f64),
}

impl IvHingeData {
    /// Groups units (y, x, arm in 0..arms, stratum in 0..strata) into cells. Needs at least
    /// three arm contrasts ((arms − 1) × strata ≥ 3: two slopes and ψ) and a spread in x.
    pub fn new(
        y: &[f64],
        x: &[f64],
        arm: &[u32],
        stratum: &[u32],
        arms: usize,
        strata: usize,
    ) -> StatsResult<IvHingeData> {
        check_finite("threshold y", y)?;
        check_finite("threshold x", x)?;
        if y.len() != x.len() || arm.len() != x.len() || stratum.len() != x.len() {
            return Err(StatsError::LengthMismatch(
                "y, x, arm and stratum differ in length".into(),
            ));
        }
        check_design(arms, strata)?;
        let mut idx: Vec<Vec<usize>> = vec![Vec::new(); arms * strata];
        for i in 0..x.len() {
            let (a, s) = (arm[i] as usize, stratum[i] as usize);
            if a >= arms || s >= strata {
                return Err(StatsError::InvalidParameter(format!(
                    "unit {i} has arm {a} or stratum {s} out of range"
                )));
            }
            idx[s * arms + a].push(i);
        }
        let cells = idx
            .into_iter()
            .enumerate()
            .map(|(c, mut ix)| {
                ix.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(a.cmp(&b)));
                Cell {
                    stratum: c / arms,
                    x: ix.iter().map(|&i| x[i]).collect(),
                    y: ix.iter().map(|&i| y[i]).collect(),
                    counts: None,
                }
            })
            .collect();
        let mut sorted = x.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let range = (
            quantile_sorted(&sorted, 0.05)?,
            quantile_sorted(&sorted, 0.95)?,
        );
        IvHingeData::checked(cells, strata, range)
    }

    /// The data as counted cells: `cells[s * arms + a]` holds arm a's units of stratum s as
    /// distinct (x, y) rows with counts (ascending by x, as [`Cells`] are). The search range
    /// is the 5th to 95th percentiles of the rows' x over all cells, weighted by their counts
    /// (the per-unit percentiles when the cells are exact).
    pub fn from_cells(cells: &[Cells<2>], arms: usize, strata: usize) -> StatsResult<IvHingeData> {
        check_design(arms, strata)?;
        if cells.len() != arms * strata {
            return Err(StatsError::LengthMismatch(format!(
                "{} cells for {arms} arms × {strata} strata",
                cells.len()
            )));
        }
        let mut all: Vec<(f64, f64)> = Vec::new();
        let mut out = Vec::with_capacity(cells.len());
        for (c, cell) in cells.iter().enumerate() {
            let x: Vec<f64> = cell.rows.iter().map(|r| r[0]).collect();
            let y: Vec<f64> = cell.rows.iter().map(|r| r[1]).collect();
            check_finite("threshold x", &x)?;
            check_finite("threshold y", &y)?;
            let counts: Vec<f64> = cell.counts.iter().map(|&n| n as f64).collect();
            all.extend(x.iter().copied().zip(counts.iter().copied()));
            let weights = Weights::new(&cell.counts)?;
            out.push(Cell {
                stratum: c / arms,
                x,
                y,
                counts: Some((counts, weights)),
            });
        }
        all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let (values, w): (Vec<f64>, Vec<f64>) = all.into_iter().unzip();
        let total = w.iter().sum::<f64>() as u64;
        let at = |q: f64| {
            weighted_quantile(&values, &w, 0, total, q).ok_or(StatsError::TooFew {
                what: "a causal threshold",
                need: 1,
                got: 0,
            })
        };
        let range = (at(0.05)?, at(0.95)?);
        IvHingeData::checked(out, strata, range)
    }

    /// Checks what the data identify: per stratum, its non-empty arms less one are the arm
    /// contrasts there (a heavily tied baseline may leave strata empty), and two slopes and ψ
    /// need three; and x must spread.
    fn checked(cells: Vec<Cell>, strata: usize, range: (f64, f64)) -> StatsResult<IvHingeData> {
        let mut arms_in = vec![0usize; strata];
        for c in cells.iter().filter(|c| !c.x.is_empty()) {
            arms_in[c.stratum] += 1;
        }
        let contrasts: usize = arms_in.iter().map(|a| a.saturating_sub(1)).sum();
        if contrasts < 3 {
            return Err(StatsError::InvalidParameter(format!(
                "a causal threshold needs three arm contrasts within strata (two slopes and the \
                 breakpoint); the non-empty arm × stratum cells give {contrasts}"
            )));
        }
        if range.1 <= range.0 {
            return Err(StatsError::ZeroVariance(
                "x has no spread between its 5th and 95th percentiles",
            ));
        }
        Ok(IvHingeData {
            cells,
            strata,
            range,
        })
    }

    /// The point estimate.
    pub fn fit(&self) -> StatsResult<IvHinge> {
        let sums: Vec<CellSums> = self
            .cells
            .iter()
            .map(|c| CellSums::new(c, c.counts()))
            .collect();
        self.fit_sums(&sums)
    }

    fn fit_sums(&self, sums: &[CellSums]) -> StatsResult<IvHinge> {
        let (lo, hi) = self.range;
        let psi = profile_argmin(lo, hi, |psi| {
            self.at(sums, psi).map_or(f64::INFINITY, |f| f.2)
        })?;
        let (b1, b2, criterion) = self
            .at(sums, psi)
            .ok_or_else(|| StatsError::Singular("the hinge design at ψ̂ is collinear".into()))?;
        Ok(IvHinge {
            breakpoint: psi,
            slope_below: b1,
            slope_above: b1 + b2,
            criterion,
        })
    }

    /// (β₁, β₂, Q(ψ)) at ψ: weighted least squares of the cell means, within strata.
    fn at(&self, sums: &[CellSums], psi: f64) -> Option<(f64, f64, f64)> {
        let means: Vec<Option<[f64; 4]>> = sums.iter().map(|s| s.means(psi)).collect();
        // Weighted stratum means of x̄, ū, ȳ (the fixed effects, partialled out).
        let mut centre = vec![[0.0; 4]; self.strata];
        for (cell, m) in self.cells.iter().zip(&means) {
            if let Some([n, x, u, y]) = m {
                let c = &mut centre[cell.stratum];
                c[0] += n;
                c[1] += n * x;
                c[2] += n * u;
                c[3] += n * y;
            }
        }
        let (mut a, mut b, mut yy) = ([[0.0; 2]; 2], [0.0; 2], 0.0);
        for (cell, m) in self.cells.iter().zip(&means) {
            let Some([n, x, u, y]) = m else { continue };
            let c = centre[cell.stratum];
            let (x, u, y) = (x - c[1] / c[0], u - c[2] / c[0], y - c[3] / c[0]);
            a[0][0] += n * x * x;
            a[0][1] += n * x * u;
            a[1][1] += n * u * u;
            b[0] += n * x * y;
            b[1] += n * u * y;
            yy += n * y * y;
        }
        let m = vec![vec![a[0][0], a[0][1]], vec![a[0][1], a[1][1]]];
        let (beta, _) = solve_normal(&m, &b)?;
        let q = (yy - beta[0] * b[0] - beta[1] * b[1]).max(0.0);
        Some((beta[0], beta[1], q))
    }

    /// `resamples` Poisson-bootstrap refits (replicate r seeded from (seed, r)); replicates whose
    /// design is degenerate are dropped, and their count is returned with the others.
    pub fn bootstrap(&self, resamples: usize, seed: u64) -> (Vec<IvHinge>, usize) {
        let one = PoissonOne::default();
        let fits: Vec<Option<IvHinge>> = (0..resamples)
            .into_par_iter()
            .map(|r| {
                let mut rng = replicate_rng(seed, r as u64);
                let sums: Vec<CellSums> = self
                    .cells
                    .iter()
                    .map(|c| {
                        // Weights drawn in the cell's sorted order: a fixed order of the data,
                        // so the replicate does not depend on how units were submitted.
                        let w = c.draw(&one, &mut rng);
                        CellSums::new(c, Some(&w))
                    })
                    .collect();
                self.fit_sums(&sums).ok()
            })
            .collect();
        let dropped = fits.iter().filter(|f| f.is_none()).count();
        (fits.into_iter().flatten().collect(), dropped)
    }
}

/// Two slopes and ψ need at least three arm contrasts.
fn check_design(arms: usize, strata: usize) -> StatsResult<()> {
    if arms < 2 || (arms - 1) * strata < 3 {
        return Err(StatsError::InvalidParameter(
            "a causal threshold needs (arms − 1) × strata ≥ 3".into(),
        ));
    }
    Ok(())
}

/// A causal threshold with percentile intervals for ψ and both slopes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IvHingeAnalysis {
    pub fit: IvHinge,
    pub breakpoint_ci: (f64, f64),
    pub slope_below_ci: (f64, f64),
    pub slope_above_ci: (f64, f64),
    /// β₂ = slope above − slope below: the slope change at ψ.
    pub slope_change_ci: (f64, f64),
    /// Replicates dropped for a degenerate design.
    pub dropped: usize,
}

/// Fits the causal hinge and bootstraps it; fails when more than a tenth of the replicates
/// are degenerate (the interval would describe a selected subset).
pub fn iv_hinge(
    data: &IvHingeData,
    resamples: usize,
    seed: u64,
    confidence: f64,
) -> StatsResult<IvHingeAnalysis> {
    let fit = data.fit()?;
    let (reps, dropped) = data.bootstrap(resamples, seed);
    if dropped * 10 > resamples {
        return Err(StatsError::Undefined(format!(
            "{dropped} of {resamples} bootstrap replicates had a degenerate hinge design"
        )));
    }
    let ci = |f: fn(&IvHinge) -> f64| {
        percentile_interval(&reps.iter().map(f).collect::<Vec<f64>>(), confidence)
    };
    Ok(IvHingeAnalysis {
        fit,
        breakpoint_ci: ci(|h| h.breakpoint)?,
        slope_below_ci: ci(|h| h.slope_below)?,
        slope_above_ci: ci(|h| h.slope_above)?,
        slope_change_ci: ci(|h| h.slope_above - h.slope_below)?,
        dropped,
    })
}
