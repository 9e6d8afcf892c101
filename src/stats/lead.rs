//! Lead–lag statistics of two regularly spaced series: autoregressive fits chosen by AIC, the
//! Box–Jenkins pre-whitened cross-correlation function and the Granger-causality F test.
//!
//! References (tested in `tests/stats_reference.rs` against fixtures from
//! `scripts/reference/generate.py lead_lag`): `statsmodels.tsa.ar_model.ar_select_order`
//! (`ic="aic"`, `trend="c"`) and `AutoReg`, `statsmodels.tsa.stattools.ccf` (`adjusted=False`)
//! and `grangercausalitytests` (`ssr_ftest`); the filter of the second series is checked
//! against `scipy.signal.lfilter`.

use super::dist::f_sf;
use super::linalg::solve_normal;
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

/// The regressors of an autoregression on the sample t = hold … n − 1: a constant and the lags
/// 1 … p of each series in `series` (column 1 + s·p + (lag − 1) for series s). The columns are
/// never built: their cross products follow from the series (see [`LagDesign::gram`]).
struct LagDesign<'a> {
    series: Vec<&'a [f64]>,
    p: usize,
    hold: usize,
    n: usize,
}

impl LagDesign<'_> {
    fn columns(&self) -> usize {
        1 + self.series.len() * self.p
    }

    /// XᵀX and Xᵀy (y is the outcome on t = hold … n − 1). Within a block of lags of series a
    /// and b, S(i, j) = Σₜ a[t − i]·b[t − j] satisfies S(i + 1, j + 1) = S(i, j) +
    /// a[hold − 1 − i]·b[hold − 1 − j] − a[n − 1 − i]·b[n − 1 − j]: only the first row and
    /// column of each block are summed over the sample, so XᵀX costs O(n·p + p²), not O(n·p²).
    fn gram(&self, y: &[f64]) -> (Vec<Vec<f64>>, Vec<f64>) {
        let (p, hold, n) = (self.p, self.hold, self.n);
        let k = self.columns();
        let col = |s: usize, lag: usize| 1 + s * p + (lag - 1);
        let sum_lag = |a: &[f64], i: usize| a[hold - i..n - i].iter().sum::<f64>();
        let cross = |a: &[f64], i: usize, b: &[f64], j: usize| {
            dot(&a[hold - i..n - i], &b[hold - j..n - j])
        };
        let mut xtx = vec![vec![0.0; k]; k];
        let mut xty = vec![0.0; k];
        xtx[0][0] = (n - hold) as f64;
        xty[0] = y.iter().sum();
        for (s, a) in self.series.iter().enumerate() {
            for lag in 1..=p {
                let v = sum_lag(a, lag);
                xtx[0][col(s, lag)] = v;
                xtx[col(s, lag)][0] = v;
                xty[col(s, lag)] = dot(&a[hold - lag..n - lag], y);
            }
        }
        let pairs = if p == 0 { 0 } else { self.series.len() };
        for (sa, a) in self.series.iter().enumerate().take(pairs) {
            for (sb, b) in self.series.iter().enumerate() {
                let mut block = vec![vec![0.0; p + 1]; p + 1];
                for (j, v) in block[1].iter_mut().enumerate().skip(1) {
                    *v = cross(a, 1, b, j);
                }
                for (i, row) in block.iter_mut().enumerate().skip(2) {
                    row[1] = cross(a, i, b, 1);
                }
                for i in 1..p {
                    for j in 1..p {
                        block[i + 1][j + 1] = block[i][j] + a[hold - 1 - i] * b[hold - 1 - j]
                            - a[n - 1 - i] * b[n - 1 - j];
                    }
                }
                for i in 1..=p {
                    for j in 1..=p {
                        xtx[col(sa, i)][col(sb, j)] = block[i][j];
                    }
                }
            }
        }
        (xtx, xty)
    }

    /// Least squares of y on the first `k` columns by the normal equations (Cholesky of the
    /// scaled XᵀX, `linalg::solve_normal`): the coefficients and the sum of squared residuals,
    /// computed from the residuals. Lag designs of differenced series are well conditioned.
    fn fit(
        &self,
        (xtx, xty): (&[Vec<f64>], &[f64]),
        y: &[f64],
        k: usize,
    ) -> StatsResult<(Vec<f64>, f64)> {
        let a: Vec<Vec<f64>> = xtx[..k].iter().map(|r| r[..k].to_vec()).collect();
        let (beta, _) = solve_normal(&a, &xty[..k])
            .ok_or_else(|| StatsError::Singular("the lag design is collinear".into()))?;
        let mut resid: Vec<f64> = y.iter().map(|v| v - beta[0]).collect();
        for (c, b) in beta.iter().enumerate().skip(1) {
            let (s, lag) = ((c - 1) / self.p, (c - 1) % self.p + 1);
            let x = &self.series[s][self.hold - lag..self.n - lag];
            for (e, v) in resid.iter_mut().zip(x) {
                *e -= b * v;
            }
        }
        Ok((beta, resid.iter().map(|e| e * e).sum()))
    }

    /// [`LagDesign::fit`] on every column.
    fn ols(&self, y: &[f64]) -> StatsResult<(Vec<f64>, f64)> {
        let (xtx, xty) = self.gram(y);
        self.fit((&xtx, &xty), y, self.columns())
    }
}

/// Σ aᵢbᵢ with four running sums (the adds overlap; a fixed order, so the same bits on
/// every machine).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            s[k] += x[k] * y[k];
        }
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
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
        let design = LagDesign {
            series: vec![x],
            p,
            hold: max_p,
            n,
        };
        let (_, ssr) = design.ols(y)?;
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
    let design = LagDesign {
        series: vec![x],
        p,
        hold: p,
        n,
    };
    let (coefficients, _) = design.ols(&x[p..])?;
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
    // Columns [1, y lags, x lags]: the restricted model is the first 1 + L of them.
    let design = LagDesign {
        series: vec![y, x],
        p: lag,
        hold: lag,
        n,
    };
    let (xtx, xty) = design.gram(yt);
    let (_, ssr_r) = design.fit((&xtx, &xty), yt, lag + 1)?;
    let (_, ssr_u) = design.fit((&xtx, &xty), yt, design.columns())?;
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

/// The test at one lag: does x_{t−k} add to the prediction of yₜ from y's own past?
#[derive(Debug, Clone, PartialEq)]
pub struct LagWald {
    pub estimate: f64,
    pub std_error: f64,
    pub z: f64,
    pub p_value: f64,
}

/// A single-lag Granger test with heteroskedasticity-robust errors: on t = h … n − 1,
/// h = max(own, k), yₜ = c + Σ_{i=1}^{own} aᵢyₜ₋ᵢ + b·xₜ₋ₖ + eₜ by least squares; b, its HC1
/// standard error (White's, × n/(n − p)), z = b/SE and the two-sided normal p-value, as
/// `OLS(y, X).fit(cov_type="HC1")`. Unlike the classic F over lags 1 … k it tests the one lag
/// reported, and its errors stay valid when the changes' variance follows traffic.
pub fn lag_wald(y: &[f64], x: &[f64], k: usize, own: usize) -> StatsResult<LagWald> {
    check_finite("lag test y", y)?;
    check_finite("lag test x", x)?;
    let n = y.len();
    let h = own.max(k);
    if x.len() != n || k == 0 || n < h + own + 12 {
        return Err(StatsError::TooFew {
            what: "single-lag test",
            need: h + own + 12,
            got: n,
        });
    }
    let mut cols: Vec<Vec<f64>> = vec![vec![1.0; n - h]];
    for i in 1..=own {
        cols.push((h..n).map(|t| y[t - i]).collect());
    }
    cols.push((h..n).map(|t| x[t - k]).collect());
    let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
    let names: Vec<String> = (0..cols.len()).map(|i| format!("x{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let fit = super::ols::ols(&refs, &names, &y[h..])?;
    let row = fit
        .table(super::ols::CovType::Hc1, 0.95)?
        .pop()
        .ok_or_else(|| StatsError::Singular("no coefficient".into()))?;
    Ok(LagWald {
        estimate: row.estimate,
        std_error: row.std_error,
        z: row.estimate / row.std_error,
        p_value: row.p_value,
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
