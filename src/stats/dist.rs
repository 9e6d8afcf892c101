//! Thin wrappers over statrs' distributions with the tail functions the tests need. Student's t
//! quantile and tail are checked against scipy and mended where statrs loses digits (large df,
//! its quantile inversion stopping early); the others are statrs' own.

use statrs::distribution::{
    Binomial, ChiSquared, Continuous, ContinuousCDF, DiscreteCDF, FisherSnedecor, Normal, StudentsT,
};

use super::{StatsError, StatsResult};

fn std_normal() -> Normal {
    Normal::standard()
}

/// Φ(x) = ½·erfc(−x/√2), the standard normal CDF, with libm's erfc (musl's, within an ulp or
/// so; statrs' normal CDF and tail are 1e-10 relative off, e.g. 8.6e-11 at x = 1). Matches
/// `scipy.stats.norm.cdf` to 1e-14 relative.
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// 1 − Φ(x) = ½·erfc(x/√2), accurate in the upper tail (`scipy.stats.norm.sf`).
pub fn norm_sf(x: f64) -> f64 {
    0.5 * libm::erfc(x / std::f64::consts::SQRT_2)
}

/// Φ⁻¹(p).
pub fn norm_ppf(p: f64) -> f64 {
    std_normal().inverse_cdf(p)
}

fn students_t(df: f64) -> StatsResult<StudentsT> {
    StudentsT::new(0.0, 1.0, df)
        .map_err(|e| StatsError::InvalidParameter(format!("t distribution with df {df}: {e}")))
}

/// statrs panics on a NaN argument (its incomplete beta function asserts 0 ≤ x ≤ 1): a NaN
/// statistic, e.g. from a zero standard error, is an error here instead.
fn not_nan(x: f64, what: &'static str) -> StatsResult<f64> {
    if x.is_nan() {
        Err(StatsError::NonFinite(what))
    } else {
        Ok(x)
    }
}

/// Degrees of freedom above which Student's t quantile and tail come from the Cornish–Fisher
/// expansion around the normal ([`cornish_fisher`]) instead of statrs. statrs inverts the
/// incomplete beta function, which loses digits as df grows: its 97.5% quantile is 7e-6 off at
/// df = 1e5, 1.2e-4 at 1e6 and 0.13 at 1e7 (a 10M-unit Welch test's interval 7% too narrow),
/// and it does not return at 3e7 or 1e8; its tail at t = 1.96 is 1.6e-8 off at 1e7. At and
/// below 1e4 statrs' tail is good to about 1e-11, and its quantile is polished on it.
const LARGE_DF: f64 = 1e4;

/// The t quantile of the normal quantile `z` for `df` degrees of freedom and its derivative
/// in z: t = z + g₁/ν + g₂/ν² + g₃/ν³ + g₄/ν⁴ with (Abramowitz & Stegun 26.7.5)
/// g₁ = (z³ + z)/4, g₂ = (5z⁵ + 16z³ + 3z)/96, g₃ = (3z⁷ + 19z⁵ + 17z³ − 15z)/384,
/// g₄ = (79z⁹ + 776z⁷ + 1482z⁵ − 1920z³ − 945z)/92160. The k-th term is of order (z²/ν)ᵏ;
/// used where z² ≤ √ν and ν > 1e4, the first term left out is below 1e-13 relative
/// (checked against `scipy.stats.t.ppf` and `t.sf` up to df = 1e12 in tests).
fn cornish_fisher(z: f64, df: f64) -> (f64, f64) {
    let z2 = z * z;
    let poly = |c: &[f64]| c.iter().rev().fold(0.0, |acc, c| acc * z2 + c);
    let g = [
        z * poly(&[1.0, 1.0]) / 4.0,
        z * poly(&[3.0, 16.0, 5.0]) / 96.0,
        z * poly(&[-15.0, 17.0, 19.0, 3.0]) / 384.0,
        z * poly(&[-945.0, -1920.0, 1482.0, 776.0, 79.0]) / 92160.0,
    ];
    let dg = [
        poly(&[1.0, 3.0]) / 4.0,
        poly(&[3.0, 48.0, 25.0]) / 96.0,
        poly(&[-15.0, 51.0, 95.0, 21.0]) / 384.0,
        poly(&[-945.0, -5760.0, 7410.0, 5432.0, 711.0]) / 92160.0,
    ];
    let series = |terms: [f64; 4]| terms.iter().rev().fold(0.0, |acc, t| (acc + t) / df);
    (z + series(g), 1.0 + series(dg))
}

/// Whether the expansion serves `df` at a normal quantile of about `z` (|z| ≤ 1000 also keeps
/// its powers finite).
fn expanded(z: f64, df: f64) -> bool {
    df > LARGE_DF && z * z <= df.sqrt().min(1e6)
}

/// P(T > t) for Student's t with `df` degrees of freedom (statrs; for large df, Φ̄(z) where z
/// solves [`cornish_fisher`]`(z) = t` by Newton's method).
pub fn t_sf(t: f64, df: f64) -> StatsResult<f64> {
    let dist = students_t(df)?;
    let t = not_nan(t, "t statistic")?;
    if df == f64::INFINITY {
        return Ok(norm_sf(t));
    }
    if !expanded(t, df) {
        return Ok(dist.sf(t));
    }
    // t(z) is increasing with t(z) ≥ z for z ≥ 0 and t'(z) ≈ 1, so Newton from z = t
    // converges in a few steps.
    let mut z = t;
    for _ in 0..20 {
        let (value, slope) = cornish_fisher(z, df);
        let step = (value - t) / slope;
        z -= step;
        if step.abs() <= 1e-16 * z.abs().max(1.0) {
            break;
        }
    }
    Ok(norm_sf(z))
}

/// The `p` quantile of Student's t with `df` degrees of freedom: for large df the
/// Cornish–Fisher expansion of Φ⁻¹(p); otherwise statrs' quantile polished by Newton steps on
/// statrs' tail (statrs' own inversion stops early: 3e-9 off at p = 0.8, df = 1000).
pub fn t_ppf(p: f64, df: f64) -> StatsResult<f64> {
    let dist = students_t(df)?;
    let p = not_nan(p, "t quantile level")?;
    if !(0.0..=1.0).contains(&p) {
        return Err(StatsError::InvalidParameter(format!(
            "a t quantile's level must be in [0, 1], got {p}"
        )));
    }
    let z = norm_ppf(p);
    if !z.is_finite() || df == f64::INFINITY {
        return Ok(z);
    }
    if expanded(z, df) {
        return Ok(cornish_fisher(z, df).0);
    }
    // Solve in the tail the level is in (P(T > x) = 1 − p above the median, P(T ≤ x) = p
    // below it), so a small tail keeps its relative precision.
    let (upper, target) = if p > 0.5 { (true, 1.0 - p) } else { (false, p) };
    let mut x = dist.inverse_cdf(p);
    for _ in 0..8 {
        let density = dist.pdf(x);
        if !(density > 0.0 && x.is_finite()) {
            break;
        }
        let step = if upper {
            (dist.sf(x) - target) / density
        } else {
            (target - dist.cdf(x)) / density
        };
        x += step;
        if step.abs() <= 1e-15 * x.abs().max(1.0) {
            break;
        }
    }
    Ok(x)
}

/// P(χ²_df > x).
pub fn chi2_sf(x: f64, df: f64) -> StatsResult<f64> {
    let d = ChiSquared::new(df)
        .map_err(|e| StatsError::InvalidParameter(format!("chi-square df {df}: {e}")))?;
    Ok(d.sf(not_nan(x, "chi-square statistic")?))
}

/// P(F_{d1,d2} > x).
pub fn f_sf(x: f64, d1: f64, d2: f64) -> StatsResult<f64> {
    let d = FisherSnedecor::new(d1, d2)
        .map_err(|e| StatsError::InvalidParameter(format!("F distribution ({d1}, {d2}): {e}")))?;
    Ok(d.sf(not_nan(x, "F statistic")?))
}

/// Two-sided p-value of a z statistic: 2·(1 − Φ(|z|)), at most 1.
pub fn two_sided_normal_p(z: f64) -> f64 {
    (2.0 * norm_sf(z.abs())).min(1.0)
}

/// log₁₀ of the two-sided normal p-value 2·(1 − Φ(|z|)), finite far beyond where the p-value
/// itself underflows (|z| > 38): there it uses the asymptotic series of Mills' ratio,
/// ln(1 − Φ(z)) = −z²/2 − ln z − ½ln 2π + ln(1 − z⁻² + 3z⁻⁴ − 15z⁻⁶ + 105z⁻⁸), whose truncation
/// error is below 1e-12 relative for z ≥ 20. Matches `log10(2) + scipy.stats.norm.logsf(|z|)/ln 10`.
pub fn log10_two_sided_normal_p(z: f64) -> f64 {
    let z = z.abs();
    if z < 20.0 {
        return two_sided_normal_p(z).log10();
    }
    let z2 = z * z;
    let series =
        1.0 - 1.0 / z2 + 3.0 / (z2 * z2) - 15.0 / (z2 * z2 * z2) + 105.0 / (z2 * z2 * z2 * z2);
    let ln_sf = -z2 / 2.0 - z.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() + series.ln();
    (std::f64::consts::LN_2 + ln_sf) / std::f64::consts::LN_10
}

/// Two-sided p-value of a t statistic with `df` degrees of freedom.
pub fn two_sided_t_p(t: f64, df: f64) -> StatsResult<f64> {
    Ok((2.0 * t_sf(t.abs(), df)?).min(1.0))
}

/// P(X > k) for X ~ Binomial(n, p) (statrs, through the regularized incomplete beta function;
/// matches `scipy.stats.binom.sf(k, n, p)`).
pub fn binom_sf(k: u64, n: u64, p: f64) -> StatsResult<f64> {
    let d = Binomial::new(p, n)
        .map_err(|e| StatsError::InvalidParameter(format!("binomial ({n}, {p}): {e}")))?;
    Ok(d.sf(k))
}

/// The `p` quantile of F(d1, d2) (statrs; `scipy.stats.f.ppf`).
pub fn f_ppf(p: f64, d1: f64, d2: f64) -> StatsResult<f64> {
    let d = FisherSnedecor::new(d1, d2)
        .map_err(|e| StatsError::InvalidParameter(format!("F distribution ({d1}, {d2}): {e}")))?;
    let p = not_nan(p, "F quantile level")?;
    if !(0.0..=1.0).contains(&p) {
        return Err(StatsError::InvalidParameter(format!(
            "F quantile level {p} outside [0, 1]"
        )));
    }
    Ok(d.inverse_cdf(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// statrs panics on these; the wrappers answer with an error the analysis can report.
    #[test]
    fn nan_statistics_are_errors_not_panics() {
        assert!(matches!(
            t_sf(f64::NAN, 10.0),
            Err(StatsError::NonFinite(_))
        ));
        assert!(matches!(
            two_sided_t_p(f64::NAN, 3.0),
            Err(StatsError::NonFinite(_))
        ));
        assert!(matches!(
            chi2_sf(f64::NAN, 2.0),
            Err(StatsError::NonFinite(_))
        ));
        assert!(matches!(
            f_sf(f64::NAN, 2.0, 9.0),
            Err(StatsError::NonFinite(_))
        ));
        assert!(f_ppf(1.5, 2.0, 9.0).is_err());
        assert_eq!(t_sf(f64::INFINITY, 10.0).unwrap(), 0.0);
    }
}
