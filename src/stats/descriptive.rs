//! Descriptive statistics.

use super::{check_finite, StatsError, StatsResult};

/// Count, mean and unbiased variance of a sample, accumulated in one pass (Welford 1962), so
/// large samples and large offsets do not lose precision. Matches `numpy.mean` and
/// `numpy.var(ddof=1)` to rounding.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub n: usize,
    pub mean: f64,
    m2: f64,
}

impl Moments {
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Combines two accumulators (Chan, Golub & LeVeque 1979).
    pub fn merge(self, other: Moments) -> Moments {
        if self.n == 0 {
            return other;
        }
        if other.n == 0 {
            return self;
        }
        let n = self.n + other.n;
        let d = other.mean - self.mean;
        let mean = self.mean + d * other.n as f64 / n as f64;
        let m2 = self.m2 + other.m2 + d * d * self.n as f64 * other.n as f64 / n as f64;
        Moments { n, mean, m2 }
    }

    pub fn of(xs: &[f64]) -> Moments {
        let mut m = Moments::default();
        xs.iter().for_each(|&x| m.push(x));
        m
    }

    /// Builds from known summaries (n, mean, unbiased variance).
    pub fn from_summary(n: usize, mean: f64, variance: f64) -> Moments {
        Moments {
            n,
            mean,
            m2: variance * n.saturating_sub(1) as f64,
        }
    }

    /// Unbiased sample variance Σ(x − x̄)²/(n − 1); needs n ≥ 2.
    pub fn variance(&self) -> StatsResult<f64> {
        if self.n < 2 {
            return Err(StatsError::TooFew {
                what: "a sample variance",
                need: 2,
                got: self.n,
            });
        }
        Ok(self.m2 / (self.n - 1) as f64)
    }

    /// Standard error of the mean, √(s²/n).
    pub fn std_error(&self) -> StatsResult<f64> {
        Ok((self.variance()? / self.n as f64).sqrt())
    }
}

/// Arithmetic mean; needs n ≥ 1.
pub fn mean(xs: &[f64]) -> StatsResult<f64> {
    check_finite("mean", xs)?;
    if xs.is_empty() {
        return Err(StatsError::TooFew {
            what: "a mean",
            need: 1,
            got: 0,
        });
    }
    Ok(Moments::of(xs).mean)
}

/// Unbiased sample variance (`numpy.var(ddof=1)`); needs n ≥ 2.
pub fn variance(xs: &[f64]) -> StatsResult<f64> {
    check_finite("variance", xs)?;
    Moments::of(xs).variance()
}

/// Standard error of the mean (`scipy.stats.sem`).
pub fn std_error(xs: &[f64]) -> StatsResult<f64> {
    check_finite("standard error", xs)?;
    Moments::of(xs).std_error()
}

/// The `q` quantile (0 ≤ q ≤ 1) of an ascending-sorted sample by linear interpolation between
/// order statistics: h = (n − 1)·q, Q = x₍⌊h⌋₎ + (h − ⌊h⌋)(x₍⌊h⌋+1₎ − x₍⌊h⌋₎). This is NumPy's
/// default (`method="linear"`, Hyndman & Fan type 7) and R's default `quantile(type = 7)`.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> StatsResult<f64> {
    if sorted.is_empty() {
        return Err(StatsError::TooFew {
            what: "a quantile",
            need: 1,
            got: 0,
        });
    }
    if !(0.0..=1.0).contains(&q) {
        return Err(StatsError::InvalidParameter(format!(
            "quantile level must be in [0, 1], got {q}"
        )));
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    Ok(sorted[lo] + frac * (sorted[hi] - sorted[lo]))
}

/// The CDF at `t` of a distribution known by its quantiles on an even grid of probabilities
/// (`grid[i]` is the i/(k−1) quantile, ascending): F(t) by linear interpolation between grid
/// points, the inverse of [`quantile_sorted`]'s interpolation on the same grid; 0 below the
/// first point, 1 at and above the last. On tied grid points F jumps to the highest tied level.
pub fn cdf_from_quantile_grid(grid: &[f64], t: f64) -> f64 {
    let k = grid.len();
    if k < 2 || t < grid[0] {
        return 0.0;
    }
    if t >= grid[k - 1] {
        return 1.0;
    }
    // The last grid point ≤ t; t < grid[k − 1], so i + 1 < k.
    let i = grid.partition_point(|g| *g <= t) - 1;
    let step = 1.0 / (k - 1) as f64;
    let width = grid[i + 1] - grid[i];
    let frac = if width > 0.0 {
        (t - grid[i]) / width
    } else {
        0.0
    };
    (i as f64 + frac) * step
}

/// Quantiles of an unsorted sample (see [`quantile_sorted`]); sorts a copy once.
pub fn quantiles(xs: &[f64], qs: &[f64]) -> StatsResult<Vec<f64>> {
    check_finite("quantiles", xs)?;
    let mut sorted = xs.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    qs.iter().map(|&q| quantile_sorted(&sorted, q)).collect()
}

/// The t interval of a mean: x̄ ± t_{1−α/2, n−1}·s/√n, as
/// `scipy.stats.t.interval(confidence, n − 1, loc=x̄, scale=s/√n)`. Needs n ≥ 2.
pub fn mean_interval(m: Moments, confidence: f64) -> StatsResult<(f64, f64)> {
    let alpha = super::alpha_of(confidence)?;
    let se = m.std_error()?;
    let q = super::dist::t_ppf(1.0 - alpha / 2.0, (m.n - 1) as f64)?;
    Ok((m.mean - q * se, m.mean + q * se))
}

/// Wilson's score interval of a proportion k/n: (p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) /
/// (1 + z²/n), as `statsmodels.stats.proportion.proportion_confint(k, n, method="wilson")`.
/// Unlike the Wald interval it stays inside [0, 1] and is not degenerate at 0 or n successes.
pub fn wilson_interval(k: u64, n: u64, confidence: f64) -> StatsResult<(f64, f64)> {
    let alpha = super::alpha_of(confidence)?;
    if n == 0 || k > n {
        return Err(StatsError::InvalidParameter(format!(
            "a proportion needs 0 ≤ k ≤ n and n > 0 (k = {k}, n = {n})"
        )));
    }
    let (k, n) = (k as f64, n as f64);
    let z = super::dist::norm_ppf(1.0 - alpha / 2.0);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    Ok(((centre - half).max(0.0), (centre + half).min(1.0)))
}
