//! Lead–lag statistics of two regularly spaced series: autoregressive fits chosen by AIC, the
//! Box–Jenkins pre-whitened cross-correlation function and the Granger-causality F test.
//!
//! References (tested in `tests/stats_reference.rs` against fixtures from
//! `scripts/reference/generate.py lead_lag`): `statsmodels.tsa.ar_model.ar_select_order`
//! (`ic="aic"`, `trend="c"`) and `AutoReg`, `statsmodels.tsa.stattools.ccf` (`adjusted=False`)
//! and `grangercausalitytests` (`ssr_ftest`); the filter of the second series is checked
//! against `scipy.signal.lfilter`.

use super::dist::f_sf;
use super::ols::ols;
use super::{check_finite, StatsError, StatsResult};

/// An autoregression xₜ = c + φ₁xₜ₋₁ + … + φₚxₜ₋ₚ + eₜ fitted by least squares.
#[derive(Debug, Clone, PartialEq)]
pub struct ArFit {
    pub constant: f64,
    /// φ₁ … φₚ.
    pub phi: Vec<f64>,
    /// The residuals eₜ for t = p … n − 1: the pre-whitened series.
    pub residuals: Vec<f64>,
}

/// The regressors of an autoregression on the sample t = hold … n − 1: a constant and
/// the lags 1 … p of each series in `lagged`.
fn lag_columns(lagged: &[&[f64]], p: usize, hold: usize, n: usize) -> Vec<Vec<f64>> {
    let mut cols = vec![vec![1.0; n - hold]];
    for s in lagged {
        for lag in 1..=p {
            cols.push((hold..n).map(|t| s[t - lag]).collect());
        }
    }
    cols
}

fn ssr_of(cols: &[Vec<f64>], y: &[f64]) -> StatsResult<(Vec<f64>, f64)> {
    let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
    let names: Vec<String> = (0..cols.len()).map(|i| format!("x{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let fit = ols(&refs, &names, y)?;
    Ok((fit.coefficients, fit.ssr))
}

/// The AR order in 0 … `max_p` with the smallest AIC, every order fitted (with a constant) on
/// the same sample t = max_p … n − 1: AIC(p) = −2·log L + 2(p + 2) with the Gaussian
/// likelihood at σ̂² = SSR/nobs, as `ar_select_order(x, max_p, ic="aic", trend="c")` ranks
/// them (its AIC differs by a constant). Ties go to the smaller order.
pub fn ar_aic_order(x: &[f64], max_p: usize) -> StatsResult<usize> {
    check_finite("autoregression series", x)?;
    let n = x.len();
    if n < max_p + max_p + 10 {
        return Err(StatsError::TooFew {
            what: "autoregressive order selection",
            need: 2 * max_p + 10,
            got: n,
        });
    }
    let nobs = (n - max_p) as f64;
    let y = &x[max_p..];
    let mut best = (f64::INFINITY, 0);
    for p in 0..=max_p {
        let (_, ssr) = ssr_of(&lag_columns(&[x], p, max_p, n), y)?;
        if ssr.is_nan() || ssr <= 0.0 {
            return Err(StatsError::ZeroVariance("autoregression residuals"));
        }
        let aic = nobs * (ssr / nobs).ln() + 2.0 * p as f64;
        if aic < best.0 {
            best = (aic, p);
        }
    }
    Ok(best.1)
}

/// Fits AR(p) with a constant on t = p … n − 1, as `AutoReg(x, lags=p, trend="c").fit()`.
pub fn ar_fit(x: &[f64], p: usize) -> StatsResult<ArFit> {
    check_finite("autoregression series", x)?;
    let n = x.len();
    if n < 2 * p + 3 {
        return Err(StatsError::TooFew {
            what: "autoregression",
            need: 2 * p + 3,
            got: n,
        });
    }
    let cols = lag_columns(&[x], p, p, n);
    let (coefficients, _) = ssr_of(&cols, &x[p..])?;
    let residuals = (p..n)
        .map(|t| {
            x[t] - coefficients[0]
                - (1..=p)
                    .map(|lag| coefficients[lag] * x[t - lag])
                    .sum::<f64>()
        })
        .collect();
    Ok(ArFit {
        constant: coefficients[0],
        phi: coefficients[1..].to_vec(),
        residuals,
    })
}

/// The series passed through the filter 1 − φ₁B − … − φₚBᵖ: yₜ − Σ φᵢyₜ₋ᵢ for t = p … n − 1
/// (`scipy.signal.lfilter([1, −φ₁, …, −φₚ], [1], y)[p:]`).
pub fn ar_filter(y: &[f64], phi: &[f64]) -> Vec<f64> {
    let p = phi.len();
    (p..y.len())
        .map(|t| {
            y[t] - phi
                .iter()
                .enumerate()
                .map(|(i, f)| f * y[t - 1 - i])
                .sum::<f64>()
        })
        .collect()
}

/// Cross-correlations r_k = corr(y_{t+k}, x_t) for k = 0 … `max_lag`: how x today relates to y
/// k steps later (x leads y when r_k stands out at k > 0). r_k = Σₜ (y_{t+k} − ȳ)(xₜ − x̄) /
/// (n·s_y·s_x) with population standard deviations, as `ccf(y, x, adjusted=False)[:max_lag+1]`.
pub fn ccf(y: &[f64], x: &[f64], max_lag: usize) -> StatsResult<Vec<f64>> {
    check_finite("cross-correlation y", y)?;
    check_finite("cross-correlation x", x)?;
    let n = y.len();
    if x.len() != n {
        return Err(StatsError::LengthMismatch(format!(
            "y has {n} values, x has {}",
            x.len()
        )));
    }
    if n <= max_lag + 2 {
        return Err(StatsError::TooFew {
            what: "cross-correlation",
            need: max_lag + 3,
            got: n,
        });
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
    let (my, mx) = (mean(y), mean(x));
    let sd =
        |v: &[f64], m: f64| (v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n as f64).sqrt();
    let (sy, sx) = (sd(y, my), sd(x, mx));
    if !(sy > 0.0 && sx > 0.0) {
        return Err(StatsError::ZeroVariance("cross-correlation series"));
    }
    Ok((0..=max_lag)
        .map(|k| {
            (0..n - k)
                .map(|t| (y[t + k] - my) * (x[t] - mx))
                .sum::<f64>()
                / (n as f64 * sy * sx)
        })
        .collect())
}

/// A Granger-causality F test.
#[derive(Debug, Clone, PartialEq)]
pub struct GrangerTest {
    pub f: f64,
    pub df_num: f64,
    pub df_den: f64,
    pub p_value: f64,
}

/// Does x help predict y beyond y's own past? On t = lag … n − 1, the restricted model regresses
/// yₜ on a constant and yₜ₋₁ … yₜ₋ₗ, the unrestricted one adds xₜ₋₁ … xₜ₋ₗ;
/// F = ((SSR_r − SSR_u)/L) / (SSR_u/(nobs − 2L − 1)) on (L, nobs − 2L − 1) degrees of freedom,
/// `grangercausalitytests(np.column_stack([y, x]), [L])[L][0]["ssr_ftest"]`.
pub fn granger(y: &[f64], x: &[f64], lag: usize) -> StatsResult<GrangerTest> {
    check_finite("Granger y", y)?;
    check_finite("Granger x", x)?;
    let n = y.len();
    if x.len() != n {
        return Err(StatsError::LengthMismatch(format!(
            "y has {n} values, x has {}",
            x.len()
        )));
    }
    if lag == 0 {
        return Err(StatsError::InvalidParameter(
            "a Granger test needs a lag of at least 1".into(),
        ));
    }
    let need = 4 * lag + 12;
    if n < need {
        return Err(StatsError::TooFew {
            what: "Granger test",
            need,
            got: n,
        });
    }
    let yt = &y[lag..];
    let (_, ssr_r) = ssr_of(&lag_columns(&[y], lag, lag, n), yt)?;
    let (_, ssr_u) = ssr_of(&lag_columns(&[y, x], lag, lag, n), yt)?;
    if ssr_u.is_nan() || ssr_u <= 0.0 {
        return Err(StatsError::ZeroVariance("Granger residuals"));
    }
    let df_num = lag as f64;
    let df_den = (n - lag - 2 * lag - 1) as f64;
    let f = ((ssr_r - ssr_u) / df_num) / (ssr_u / df_den);
    let f = f.max(0.0);
    Ok(GrangerTest {
        f,
        df_num,
        df_den,
        p_value: f_sf(f, df_num, df_den)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_inverts_the_autoregression_it_came_from() {
        // x_t = 0.6 x_{t-1} + e_t with e known: the filter 1 − 0.6B gives e back.
        let e: Vec<f64> = (0..50).map(|i| ((i * 37 % 11) as f64) - 5.0).collect();
        let mut x = vec![e[0]];
        for t in 1..50 {
            x.push(0.6 * x[t - 1] + e[t]);
        }
        let f = ar_filter(&x, &[0.6]);
        for (a, b) in f.iter().zip(&e[1..]) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn a_shifted_copy_peaks_at_its_shift() {
        let x: Vec<f64> = (0..300)
            .map(|i| ((i * 7919 % 101) as f64 / 101.0) - 0.5)
            .collect();
        let y: Vec<f64> = (0..300)
            .map(|t| if t >= 4 { x[t - 4] } else { 0.0 })
            .collect();
        let r = ccf(&y, &x, 10).unwrap();
        let best = (0..=10).max_by(|&a, &b| r[a].abs().total_cmp(&r[b].abs()));
        assert_eq!(best, Some(4));
        assert!(r[4] > 0.95, "{}", r[4]);
    }
}
