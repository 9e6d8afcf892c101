//! Thin wrappers over statrs' distributions with the tail functions the tests need.
//! statrs is the reference for the distribution functions themselves.

use statrs::distribution::{
    Binomial, ChiSquared, ContinuousCDF, DiscreteCDF, FisherSnedecor, Normal, StudentsT,
};

use super::{StatsError, StatsResult};

fn std_normal() -> Normal {
    Normal::standard()
}

/// Φ(x), the standard normal CDF.
pub fn norm_cdf(x: f64) -> f64 {
    std_normal().cdf(x)
}

/// 1 − Φ(x), accurate in the upper tail.
pub fn norm_sf(x: f64) -> f64 {
    std_normal().sf(x)
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

/// P(T > t) for Student's t with `df` degrees of freedom.
pub fn t_sf(t: f64, df: f64) -> StatsResult<f64> {
    Ok(students_t(df)?.sf(not_nan(t, "t statistic")?))
}

/// The `p` quantile of Student's t with `df` degrees of freedom.
pub fn t_ppf(p: f64, df: f64) -> StatsResult<f64> {
    Ok(students_t(df)?.inverse_cdf(not_nan(p, "t quantile level")?))
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
