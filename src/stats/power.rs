//! Power and minimum detectable effect of two-sided tests, normal approximation.

use super::dist::{norm_cdf, norm_ppf};
use super::{StatsError, StatsResult};

fn check(alpha: f64, n1: f64, n2: f64) -> StatsResult<()> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(StatsError::InvalidParameter(format!(
            "alpha must be in (0, 1), got {alpha}"
        )));
    }
    if !(n1 >= 1.0 && n2 >= 1.0) {
        return Err(StatsError::TooFew {
            what: "a power calculation",
            need: 1,
            got: n1.min(n2).max(0.0) as usize,
        });
    }
    Ok(())
}

/// Power of a two-sided z-test for a true difference `effect` with standard error
/// se = √(σ₁²/n₁ + σ₂²/n₂): Φ(|δ|/se − z_{1−α/2}) + Φ(−|δ|/se − z_{1−α/2}).
/// With σ₁ = σ₂ = σ this matches `statsmodels.stats.power.NormalIndPower().power(δ/σ, n₁, α, n₂/n₁)`.
pub fn power_difference(
    effect: f64,
    var1: f64,
    n1: f64,
    var2: f64,
    n2: f64,
    alpha: f64,
) -> StatsResult<f64> {
    check(alpha, n1, n2)?;
    let se = (var1 / n1 + var2 / n2).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return Err(StatsError::ZeroVariance("power needs a positive variance"));
    }
    let z = norm_ppf(1.0 - alpha / 2.0);
    let d = effect.abs() / se;
    Ok(norm_cdf(d - z) + norm_cdf(-d - z))
}

/// Minimum detectable difference of means at the given power, two-sided level α: the δ > 0 at
/// which [`power_difference`] equals `power`. Starts from the one-tail solution
/// (z_{1−α/2} + z_{power})·se and solves the two-tail equation by bisection, matching
/// `statsmodels.stats.power.NormalIndPower().solve_power(power=…)` times σ.
pub fn mde_difference(
    var1: f64,
    n1: f64,
    var2: f64,
    n2: f64,
    alpha: f64,
    power: f64,
) -> StatsResult<f64> {
    check(alpha, n1, n2)?;
    if !(power > 0.0 && power < 1.0) {
        return Err(StatsError::InvalidParameter(format!(
            "power must be in (0, 1), got {power}"
        )));
    }
    let se = (var1 / n1 + var2 / n2).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return Err(StatsError::ZeroVariance("MDE needs a positive variance"));
    }
    let z = norm_ppf(1.0 - alpha / 2.0);
    if power <= alpha {
        return Ok(0.0);
    }
    let f = |d: f64| norm_cdf(d - z) + norm_cdf(-d - z) - power;
    // power(d) is increasing in d ≥ 0; the one-tail solution is an upper bound.
    let (mut lo, mut hi) = (0.0, z + norm_ppf(power) + 1.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid
        } else {
            hi = mid
        }
    }
    Ok(0.5 * (lo + hi) * se)
}

/// Minimum detectable difference of proportions from a baseline rate p, using the variance
/// p(1 − p) in both arms (the planning convention).
pub fn mde_proportion(baseline: f64, n1: f64, n2: f64, alpha: f64, power: f64) -> StatsResult<f64> {
    if !(baseline > 0.0 && baseline < 1.0) {
        return Err(StatsError::InvalidParameter(format!(
            "baseline rate must be in (0, 1), got {baseline}"
        )));
    }
    let v = baseline * (1.0 - baseline);
    mde_difference(v, n1, v, n2, alpha, power)
}
