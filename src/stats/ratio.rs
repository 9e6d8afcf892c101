//! Ratio metrics: per arm R = Σy / Σx over units (clicks / impressions), whose units are not
//! independent events, so the variance of R comes from the delta method over units, and
//! winsorization of heavy-tailed values.
//!
//! Reference: Deng, Knoblich & Lu (2018), "Applying the Delta Method in Metric Analytics: A
//! Practical Guide with Novel Ideas", KDD '18, §3 (ratio of means) and §4 (linearization).
//! Tested against statsmodels: R is the weighted least-squares mean of yᵢ/xᵢ with weights xᵢ,
//! and its HC1 sandwich variance equals the delta-method variance below
//! (`tests/stats_reference.rs`, fixture `ratio.json`), and by simulated coverage.

use super::descriptive::quantile_sorted;
use super::dist::{norm_ppf, two_sided_normal_p};
use super::{alpha_of, check_finite, Inference, StatsError, StatsResult};

/// A ratio of means in one arm with its delta-method variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioEstimate {
    /// Units (pairs).
    pub n: usize,
    /// R = Σy / Σx.
    pub ratio: f64,
    /// Var(R) ≈ Σ(yᵢ − R xᵢ)² / ((n − 1) · n · x̄²): the delta method's
    /// (s²_y − 2R s_xy + R² s²_x) / (n x̄²) with sample (n − 1) moments.
    pub variance: f64,
    /// x̄ = Σx / n.
    pub mean_denominator: f64,
}

/// R = Σy / Σx and its delta-method variance (see [`RatioEstimate::variance`]), from paired
/// per-unit numerators `y` and denominators `x`. Needs two units and Σx ≠ 0.
pub fn ratio_of_means(y: &[f64], x: &[f64]) -> StatsResult<RatioEstimate> {
    if y.len() != x.len() {
        return Err(StatsError::LengthMismatch(format!(
            "{} numerators and {} denominators",
            y.len(),
            x.len()
        )));
    }
    check_finite("ratio numerator", y)?;
    check_finite("ratio denominator", x)?;
    let n = y.len();
    if n < 2 {
        return Err(StatsError::TooFew {
            what: "a ratio's variance",
            need: 2,
            got: n,
        });
    }
    let (sy, sx): (f64, f64) = (y.iter().sum(), x.iter().sum());
    if sx == 0.0 {
        return Err(StatsError::Undefined(
            "the denominators sum to zero, so the ratio is undefined".into(),
        ));
    }
    let ratio = sy / sx;
    let xbar = sx / n as f64;
    let ss: f64 = y
        .iter()
        .zip(x)
        .map(|(yi, xi)| (yi - ratio * xi).powi(2))
        .sum();
    let variance = ss / ((n - 1) as f64 * n as f64 * xbar * xbar);
    Ok(RatioEstimate {
        n,
        ratio,
        variance,
        mean_denominator: xbar,
    })
}

/// The two-sided normal interval and test of R_t − R_c for independent arms:
/// se = √(Var R_t + Var R_c), z = (R_t − R_c)/se.
pub fn ratio_difference(
    t: RatioEstimate,
    c: RatioEstimate,
    confidence: f64,
) -> StatsResult<Inference> {
    let z = norm_ppf(1.0 - alpha_of(confidence)? / 2.0);
    let estimate = t.ratio - c.ratio;
    let std_error = (t.variance + c.variance).sqrt();
    if std_error == 0.0 {
        return Err(StatsError::ZeroVariance(
            "the ratio does not vary across units in either arm",
        ));
    }
    Ok(Inference {
        estimate,
        std_error,
        ci_low: estimate - z * std_error,
        ci_high: estimate + z * std_error,
        p_value: two_sided_normal_p(estimate / std_error),
    })
}

/// Leave-one-out ratios (Σy − yᵢ)/(Σx − xᵢ), for BCa's acceleration; NaN where the remaining
/// denominators sum to zero.
pub fn jackknife_ratios(y: &[f64], x: &[f64]) -> Vec<f64> {
    let (sy, sx): (f64, f64) = (y.iter().sum(), x.iter().sum());
    y.iter()
        .zip(x)
        .map(|(yi, xi)| {
            let d = sx - xi;
            if d == 0.0 {
                f64::NAN
            } else {
                (sy - yi) / d
            }
        })
        .collect()
}

/// Linearized per-unit values ℓᵢ = R + (yᵢ − R xᵢ)/x̄ with the pooled R = Σy/Σx and x̄ (Deng et
/// al. 2018 §4): their mean is R, and a difference of arm means of ℓ equals the difference of
/// arm ratios to first order, so methods for means (2SLS, power) apply to the ratio. `None`
/// when Σx = 0 or there are no units.
pub fn linearize(y: &[f64], x: &[f64]) -> Option<Vec<f64>> {
    let (sy, sx): (f64, f64) = (y.iter().sum(), x.iter().sum());
    if sx == 0.0 || x.is_empty() {
        return None;
    }
    let ratio = sy / sx;
    let xbar = sx / x.len() as f64;
    Some(
        y.iter()
            .zip(x)
            .map(|(yi, xi)| ratio + (yi - ratio * xi) / xbar)
            .collect(),
    )
}

/// The `percentile`-th percentile of the non-NaN `values` (linear interpolation between order
/// statistics, NumPy's default and R's type 7), for capping at it.
pub fn percentile_cap(values: &[f64], percentile: f64) -> StatsResult<f64> {
    if !(percentile > 0.0 && percentile < 100.0) {
        return Err(StatsError::InvalidParameter(format!(
            "the winsorizing percentile must be in (0, 100), got {percentile}"
        )));
    }
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    quantile_sorted(&sorted, percentile / 100.0)
}

/// Replaces every value above `cap` with `cap`; returns how many were capped (NaNs stay).
pub fn cap_above(values: &mut [f64], cap: f64) -> u64 {
    let mut capped = 0;
    for v in values.iter_mut().filter(|v| **v > cap) {
        *v = cap;
        capped += 1;
    }
    capped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_ratio_has_no_variance_and_cannot_be_tested() {
        let x = [1.0, 2.0, 4.0];
        let y = [0.5, 1.0, 2.0];
        let r = ratio_of_means(&y, &x).unwrap();
        assert_eq!(r.ratio, 0.5);
        assert_eq!(r.variance, 0.0);
        assert!(ratio_difference(r, r, 0.95).is_err());
    }

    #[test]
    fn zero_denominators_are_refused() {
        assert!(ratio_of_means(&[1.0, 2.0], &[0.0, 0.0]).is_err());
        assert!(linearize(&[1.0], &[0.0]).is_none());
    }

    #[test]
    fn linearized_values_average_to_the_ratio() {
        let y = [3.0, 0.0, 7.0, 1.0];
        let x = [10.0, 4.0, 20.0, 6.0];
        let l = linearize(&y, &x).unwrap();
        let mean = l.iter().sum::<f64>() / 4.0;
        assert!((mean - 11.0 / 40.0).abs() < 1e-15);
    }

    #[test]
    fn winsorizing_caps_only_above_the_percentile() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 1000.0, f64::NAN];
        let cap = percentile_cap(&v, 75.0).unwrap();
        let n = cap_above(&mut v, cap);
        assert_eq!(cap, 4.0);
        assert_eq!(n, 1);
        assert_eq!(&v[..5], &[1.0, 2.0, 3.0, 4.0, 4.0]);
        assert!(v[5].is_nan());
        assert!(percentile_cap(&v, 100.0).is_err());
    }
}
