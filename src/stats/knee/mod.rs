//! Threshold (knee) detection: a continuous hinge ("broken-stick") regression
//! y = β₀ + β₁x + β₂(x − ψ)₊ + ε, where the slope is β₁ below ψ and β₁ + β₂ above.
//!
//! The sample comes as units, or as counted cells ([`hinge_analysis_cells`]: distinct (x, y)
//! rows with the units each stands for, `stats::cells`), as a summary collects it without
//! holding units: every sum then weights a row by its count, and quantiles and ranks are the
//! units'.

use rayon::prelude::*;

mod sample;

pub use sample::CountedSample;
use sample::Sorted;

use super::bootstrap::{percentile_interval, replicate_rng, PoissonOne};
use super::dist::{norm_cdf, t_ppf, two_sided_t_p};
use super::linalg::{solve_normal, Qr};
use super::{alpha_of, Inference, StatsError, StatsResult};

/// Candidate breakpoints on the first grid, between the 5th and 95th percentiles of x.
const GRID: usize = 100;

/// A fitted hinge model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hinge {
    /// ψ̂, the breakpoint minimising the residual sum of squares.
    pub breakpoint: f64,
    pub intercept: f64,
    /// β₁.
    pub slope_below: f64,
    /// β₁ + β₂.
    pub slope_above: f64,
    /// β₂ with its classical standard error, t-based CI and p-value, conditional on ψ̂.
    pub slope_change: Inference,
    pub ssr: f64,
    pub n: usize,
}

/// Weighted suffix sums of 1, x, x², y, xy over the sorted data, so that the least-squares fit at
/// any ψ costs O(log n).
struct Profile<'a> {
    x: &'a [f64],
    /// suffix[j] = sums over i ≥ j: [w, wx, wx², wy, wxy].
    suffix: Vec<[f64; 5]>,
    yy: f64,
}

impl<'a> Profile<'a> {
    /// The sums with each row weighted by `weights`, or by its count when `None`.
    /// The point estimate's sums (`weights` `None`) carry the spread within binned cells
    /// in `yy`; a replicate's need none (ψ̂ minimises SSR, and `yy` is a constant of it).
    fn new(s: &'a Sorted, weights: Option<&[f64]>) -> Profile<'a> {
        let within = if weights.is_none() { s.within } else { 0.0 };
        let weights = weights.or_else(|| s.counts());
        let n = s.x.len();
        let mut suffix = vec![[0.0; 5]; n + 1];
        let mut yy = within;
        for i in (0..n).rev() {
            let w = weights.map_or(1.0, |w| w[i]);
            let (x, y) = (s.x[i], s.y[i]);
            let next = suffix[i + 1];
            suffix[i] = [
                next[0] + w,
                next[1] + w * x,
                next[2] + w * x * x,
                next[3] + w * y,
                next[4] + w * x * y,
            ];
            yy += w * y * y;
        }
        Profile {
            x: &s.x,
            suffix,
            yy,
        }
    }

    /// (β, SSR) of the hinge fit at ψ.
    fn fit(&self, psi: f64) -> Option<(Vec<f64>, f64)> {
        let t = self.suffix[0];
        let j = self.x.partition_point(|&v| v <= psi);
        let s = self.suffix[j];
        let u1 = s[1] - psi * s[0];
        let uu = s[2] - 2.0 * psi * s[1] + psi * psi * s[0];
        let ux = s[2] - psi * s[1];
        let uy = s[4] - psi * s[3];
        let a = vec![vec![t[0], t[1], u1], vec![t[1], t[2], ux], vec![u1, ux, uu]];
        let b = [t[3], t[4], uy];
        let (beta, _) = solve_normal(&a, &b)?;
        let ssr = self.yy - (0..3).map(|r| beta[r] * b[r]).sum::<f64>();
        Some((beta, ssr.max(0.0)))
    }

    /// ψ̂ over [lo, hi] (see [`profile_argmin`]).
    fn argmin(&self, lo: f64, hi: f64) -> StatsResult<f64> {
        profile_argmin(lo, hi, |psi| self.fit(psi).map_or(f64::INFINITY, |f| f.1))
    }
}

/// The minimiser of a profile criterion over [lo, hi]: a 100-point grid, refined by
/// golden-section search between the best grid point's neighbours (degenerate candidates
/// return +∞ and are never chosen over a finite one).
pub(crate) fn profile_argmin(lo: f64, hi: f64, ssr: impl Fn(f64) -> f64) -> StatsResult<f64> {
    let grid: Vec<f64> = (0..GRID)
        .map(|g| lo + (hi - lo) * g as f64 / (GRID - 1) as f64)
        .collect();
    let (best, best_ssr) = grid
        .iter()
        .enumerate()
        .map(|(g, &p)| (g, ssr(p)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| StatsError::Undefined("empty grid".into()))?;
    if !best_ssr.is_finite() {
        return Err(StatsError::Undefined(
            "no candidate breakpoint has a non-degenerate design".into(),
        ));
    }
    let (mut a, mut b) = (grid[best.saturating_sub(1)], grid[(best + 1).min(GRID - 1)]);
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - phi * (b - a), a + phi * (b - a));
    let (mut fc, mut fd) = (ssr(c), ssr(d));
    for _ in 0..100 {
        if (b - a).abs() <= 1e-12 * (hi - lo).abs().max(1e-300) {
            break;
        }
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = ssr(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = ssr(d);
        }
    }
    let refined = 0.5 * (a + b);
    Ok(if ssr(refined) <= best_ssr {
        refined
    } else {
        grid[best]
    })
}

fn search_range(s: &Sorted) -> StatsResult<(f64, f64)> {
    let lo = s.quantile(0.05)?;
    let hi = s.quantile(0.95)?;
    if hi <= lo {
        return Err(StatsError::ZeroVariance(
            "x has no spread between its 5th and 95th percentiles",
        ));
    }
    Ok((lo, hi))
}

/// Fits the continuous hinge model by profile least squares: for each candidate ψ the model is
/// linear, so ψ̂ = argmin SSR(ψ) over a 100-point grid between the 5th and 95th percentiles of x,
/// refined by golden-section search. The slope change's SE is the classical OLS one at ψ̂ (it
/// ignores the uncertainty in ψ̂; use [`hinge_bootstrap`] for ψ's interval). Tested against
/// `piecewise_regression.Fit(x, y, n_breakpoints=1)` (Muggeo's algorithm converges to the same
/// least-squares optimum) and by simulated coverage of a known ψ.
pub fn hinge_fit(x: &[f64], y: &[f64], confidence: f64) -> StatsResult<Hinge> {
    hinge_fit_sorted(&Sorted::new(x, y)?, confidence)
}

fn hinge_fit_sorted(s: &Sorted, confidence: f64) -> StatsResult<Hinge> {
    let alpha = alpha_of(confidence)?;
    let (lo, hi) = search_range(s)?;
    let profile = Profile::new(s, None);
    let psi = profile.argmin(lo, hi)?;
    let psi_raw = psi + s.x_mean;
    // Conditional inference on β₂ at ψ̂ with the ordinary design, in centred coordinates (which
    // leave the slopes and their errors unchanged); a counted row enters as its count of
    // identical units (rows and y scaled by √count: weighted least squares).
    let n = s.x.len();
    let root: Vec<f64> = s
        .counts()
        .map_or_else(|| vec![1.0; n], |c| c.iter().map(|c| c.sqrt()).collect());
    let x: Vec<f64> = s.x.iter().zip(&root).map(|(x, r)| x * r).collect();
    let u: Vec<f64> = (s.x.iter().zip(&root))
        .map(|(v, r)| (v - psi).max(0.0) * r)
        .collect();
    let y: Vec<f64> = s.y.iter().zip(&root).map(|(y, r)| y * r).collect();
    let cols: [&[f64]; 3] = [&root, &x, &u];
    let qr = Qr::new(&cols, &["const", "x", "(x - psi)+"])?;
    let beta = qr.solve(&y)?;
    let ssr: f64 = s.within
        + (0..n)
            .map(|i| (y[i] - beta[0] * root[i] - beta[1] * x[i] - beta[2] * u[i]).powi(2))
            .sum::<f64>();
    let df = (s.units - 3) as f64;
    let se = (qr.xtx_inverse()[2][2] * ssr / df).sqrt();
    let q = t_ppf(1.0 - alpha / 2.0, df)?;
    Ok(Hinge {
        breakpoint: psi_raw,
        // Back to raw coordinates: y = ȳ + β₀ + β₁(x − x̄) + β₂(x − ψ)₊.
        intercept: s.y_mean + beta[0] - beta[1] * s.x_mean,
        slope_below: beta[1],
        slope_above: beta[1] + beta[2],
        slope_change: Inference {
            estimate: beta[2],
            std_error: se,
            ci_low: beta[2] - q * se,
            ci_high: beta[2] + q * se,
            p_value: two_sided_t_p(beta[2] / se, df)?,
        },
        ssr,
        n: s.units as usize,
    })
}

/// Bootstrap replicates of ψ̂ (Poisson(1) weights per unit from [`PoissonOne`], replicate b
/// seeded from (seed, b)) and their percentile interval.
pub fn hinge_bootstrap(
    x: &[f64],
    y: &[f64],
    resamples: usize,
    seed: u64,
    confidence: f64,
) -> StatsResult<(Vec<f64>, (f64, f64))> {
    bootstrap_sorted(&Sorted::new(x, y)?, resamples, seed, confidence)
}

/// [`hinge_bootstrap`] of counted cells (see [`hinge_analysis_cells`]): Poisson(count) weights
/// per row, the replicates back on x's scale.
pub fn hinge_bootstrap_cells(
    sample: CountedSample,
    resamples: usize,
    seed: u64,
    confidence: f64,
) -> StatsResult<(Vec<f64>, (f64, f64))> {
    bootstrap_sorted(&Sorted::from_cells(sample)?, resamples, seed, confidence)
}

/// The replicates of ψ̂ and their percentile interval.
fn bootstrap_sorted(
    s: &Sorted,
    resamples: usize,
    seed: u64,
    confidence: f64,
) -> StatsResult<(Vec<f64>, (f64, f64))> {
    let reps = hinge_replicates(s, resamples, seed)?;
    let ci = percentile_interval(&reps, confidence)?;
    Ok((reps, ci))
}

fn hinge_replicates(s: &Sorted, resamples: usize, seed: u64) -> StatsResult<Vec<f64>> {
    let (lo, hi) = search_range(s)?;
    let one = PoissonOne::default();
    (0..resamples)
        .into_par_iter()
        .map(|b| {
            let w = s.draw(&one, &mut replicate_rng(seed, b as u64));
            let profile = Profile::new(s, Some(&w));
            profile.argmin(lo, hi).map(|p| p + s.x_mean)
        })
        .collect::<StatsResult<Vec<f64>>>()
}

/// Davies (1987) test that a breakpoint exists (slope change ≠ 0), as
/// `piecewise_regression.davies.davies_test(x, y, k, "two_sided")`: on x centred and sorted, for k
/// values θ spread evenly from the third-smallest to the third-largest x, the t statistic Sθ of
/// the (x − θ)₊ coefficient in OLS of y on [1, x, (x − θ)₊, 1{x ≥ θ}]; M = max|Sθ|,
/// V = Σ|Sθₖ₊₁ − Sθₖ|, p = 2·(Φ(−M) + V·e^{−M²/2}/√(8π)), an upper bound that may exceed 1.
/// Each θ's regression is solved from suffix sums of the sorted data (normal equations in
/// centred coordinates, scaled and factorised by [`solve_normal`]), so the test costs one sort
/// and O(k) after it. A θ whose design is collinear to working precision is skipped (it has no
/// statistic of its own); the test fails when fewer than half of the k θ remain.
pub fn davies_test(x: &[f64], y: &[f64], k: usize) -> StatsResult<f64> {
    davies_sorted(&Sorted::new(x, y)?, k)
}

fn davies_sorted(s: &Sorted, k: usize) -> StatsResult<f64> {
    if k < 2 {
        return Err(StatsError::InvalidParameter(
            "the Davies test needs k ≥ 2".into(),
        ));
    }
    let n = s.units as usize;
    // Suffix sums over i ≥ j of [1, x, x², y, xy] and the totals including y².
    let profile = Profile::new(s, None);
    let yy = profile.yy;
    let (lo, hi) = (s.at_rank(2), s.at_rank(s.units - 3));
    let step = (hi - lo) / (k - 1) as f64;
    let mut stats = Vec::with_capacity(k);
    for g in 0..k {
        // A θ whose design is collinear to working precision (ties at the ends, or one side
        // holding a handful of points) has no t statistic of its own: it is skipped.
        // As numpy.linspace: the last point is exactly the third-largest x, not a rounded sum.
        let theta = if g == k - 1 { hi } else { lo + step * g as f64 };
        let j = s.x.partition_point(|&v| v < theta);
        let t = profile.suffix[0];
        let u = profile.suffix[j];
        // Columns: 1, x, u = (x − θ)·1{x ≥ θ}, v = 1{x ≥ θ}.
        let su = u[1] - theta * u[0];
        let suu = u[2] - 2.0 * theta * u[1] + theta * theta * u[0];
        let sxu = u[2] - theta * u[1];
        let a = vec![
            vec![t[0], t[1], su, u[0]],
            vec![t[1], t[2], sxu, u[1]],
            vec![su, sxu, suu, su],
            vec![u[0], u[1], su, u[0]],
        ];
        let b = [t[3], t[4], u[4] - theta * u[3], u[3]];
        let sol = solve_normal(&a, &b);
        let Some((beta, inv)) = sol else {
            continue;
        };
        let ssr = (yy - (0..4).map(|r| beta[r] * b[r]).sum::<f64>()).max(0.0);
        let se = (inv[2][2] * ssr / (n - 4) as f64).sqrt();
        if se > 0.0 && se.is_finite() {
            stats.push(beta[2] / se);
        }
    }
    // Davies' bound sums the statistic's variation along the grid: with most candidates
    // skipped it would describe a different, sparser path.
    if stats.len() < k.div_ceil(2).max(2) {
        return Err(StatsError::Undefined(format!(
            "only {} of {k} candidate breakpoints have a non-degenerate design",
            stats.len()
        )));
    }
    let m = stats.iter().fold(0.0f64, |a, t| a.max(t.abs()));
    let v: f64 = stats.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
    let p = norm_cdf(-m) + v * (-0.5 * m * m).exp() / (8.0 * std::f64::consts::PI).sqrt();
    Ok(2.0 * p)
}

/// A hinge analysis of one (x, y) sample: the fit, the Davies test and, when requested, the
/// bootstrap interval of ψ, sharing one sort of the data.
pub struct HingeAnalysis {
    pub davies_p_value: f64,
    pub fit: Option<(Hinge, (f64, f64))>,
}

/// Runs the Davies test and, when p < `alpha`, the hinge fit and its bootstrap interval.
pub fn hinge_analysis(
    x: &[f64],
    y: &[f64],
    alpha: f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> StatsResult<HingeAnalysis> {
    analyse(&Sorted::new(x, y)?, alpha, confidence, resamples, seed)
}

/// [`hinge_analysis`] of a sample counted into cells ([`CountedSample`]), as a summary
/// collects it without holding units. Every sum weights a row by its count and a bootstrap
/// replicate by Poisson(count), the total of its units' Poisson(1) weights
/// (`stats::compressed`); quantiles and the Davies test's grid are the units', and the
/// residual sums of squares include the spread of y within cells (`sample::Sorted::from_cells`).
/// With exact cells (each row its units' values) the fit and the test are the per-unit ones to
/// rounding and the replicates have the per-unit bootstrap's distribution; binned cells move
/// each unit's x to its cell's centroid, within 2⁻ᵏ of its distance from the x offset.
pub fn hinge_analysis_cells(
    sample: CountedSample,
    alpha: f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> StatsResult<HingeAnalysis> {
    analyse(
        &Sorted::from_cells(sample)?,
        alpha,
        confidence,
        resamples,
        seed,
    )
}

fn analyse(
    s: &Sorted,
    alpha: f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> StatsResult<HingeAnalysis> {
    let davies_p_value = davies_sorted(s, 10)?;
    if davies_p_value >= alpha {
        return Ok(HingeAnalysis {
            davies_p_value,
            fit: None,
        });
    }
    let fit = hinge_fit_sorted(s, confidence)?;
    let (_, ci) = bootstrap_sorted(s, resamples, seed, confidence)?;
    Ok(HingeAnalysis {
        davies_p_value,
        fit: Some((fit, ci)),
    })
}
