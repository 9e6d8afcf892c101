//! Two-stage least squares: the causal slope of an outcome on an endogenous regressor, with the
//! randomized arm indicators as instruments.

use super::dist::f_sf;
use super::linalg::{sandwich, wald_quadratic, weighted_cross, Qr, Square};
use super::ols::{coefficient_table, Coefficient};
use super::{check_finite, StatsError, StatsResult};

mod arms;
mod hinge;
mod multi;
pub use arms::{anderson_rubin_arms, two_sls_arms, two_sls_from_arm_moments, ArSet, ArmMoments};
pub use hinge::{iv_hinge, IvHinge, IvHingeAnalysis, IvHingeData};
pub use multi::{two_sls_multi, EndogenousStrength, TwoSlsMulti};

/// Covariance estimator of a 2SLS fit (linearmodels' `IV2SLS.fit(cov_type=…)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IvCov {
    /// `cov_type="unadjusted"`: σ̂²(X̂ᵀX̂)⁻¹, σ̂² = e'e/n.
    Unadjusted,
    /// `cov_type="robust"`: (X̂ᵀX̂)⁻¹(Σ eᵢ²x̂ᵢx̂ᵢᵀ)(X̂ᵀX̂)⁻¹.
    Robust,
}

/// Strength of the first stage: does the instrument set move the endogenous regressor?
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirstStage {
    /// Number of excluded instruments q.
    pub instruments: usize,
    /// Classical F = ((RSSᵣ − RSSᵤ)/q)/(RSSᵤ/(n − k_z)) for the excluded instruments.
    pub f_stat: f64,
    pub f_p_value: f64,
    /// Heteroskedasticity-robust Wald statistic (HC0 covariance, × n/(n − k_z) when debiased)
    /// divided by q, so it reads on the F scale.
    pub robust_f_stat: f64,
    pub robust_f_p_value: f64,
    /// Partial R² of the excluded instruments.
    pub partial_r_squared: f64,
    /// Montiel Olea & Pflueger's (2013) effective F: π̂ᵀSπ̂ / tr(V̂S), with π̂ the excluded
    /// instruments' first-stage coefficients, V̂ their robust covariance and S = Z̃ᵀZ̃ the
    /// instruments after partialling out the exogenous regressors. Robust to
    /// heteroskedasticity; equals the robust F with one instrument and the classical F under
    /// a homoskedastic V̂.
    pub effective_f: f64,
}

/// The effective F from π̂ᵀSπ̂ (the instruments' explained sum of squares), V̂ and S.
pub(crate) fn effective_f(explained: f64, v: &Square, s: &Square) -> f64 {
    let trace: f64 = (0..v.len())
        .map(|i| (0..v.len()).map(|j| v[i][j] * s[j][i]).sum::<f64>())
        .sum();
    explained / trace
}

/// The first stage needs variation left after the exogenous regressors (RSSᵣ > 0) and not all of
/// it explained by the instruments (RSSᵤ > 0).
pub(crate) fn check_first_stage_rss(rss_r: f64, rss_u: f64) -> StatsResult<()> {
    if rss_r <= 0.0 {
        return Err(StatsError::ZeroVariance(
            "the endogenous regressor does not vary beyond the exogenous ones (with an intercept alone: it has the same value for every unit)",
        ));
    }
    if rss_u <= 0.0 {
        return Err(StatsError::ZeroVariance(
            "the instruments explain the endogenous regressor exactly",
        ));
    }
    Ok(())
}

impl FirstStage {
    /// With p-values from F(q, `df`) for both statistics.
    fn new(
        q: usize,
        (f_stat, robust_f_stat, effective_f): (f64, f64, f64),
        df: f64,
        partial_r_squared: f64,
    ) -> StatsResult<FirstStage> {
        Ok(FirstStage {
            instruments: q,
            f_stat,
            f_p_value: f_sf(f_stat, q as f64, df)?,
            robust_f_stat,
            robust_f_p_value: f_sf(robust_f_stat, q as f64, df)?,
            partial_r_squared,
            effective_f,
        })
    }
}

/// A fit's errors and Sargan's statistic divide by the residual sum of squares eᵀe: with no
/// residual spread there is nothing to estimate them from (`constant`, an outcome with one
/// value for every unit, is the usual reason; tested exactly, as a constant such as 0.3 has a
/// sum of squares of rounding size about its computed mean).
fn check_residuals(ee: f64, constant: bool) -> StatsResult<()> {
    if constant {
        return Err(StatsError::ZeroVariance(
            "the outcome has the same value for every unit",
        ));
    }
    if ee.is_nan() || ee <= 0.0 {
        return Err(StatsError::ZeroVariance(
            "the outcome is an exact linear function of the regressors (no residual spread)",
        ));
    }
    Ok(())
}

/// Sargan's test of the over-identifying restrictions (more instruments than endogenous
/// regressors). With arm indicators as instruments it tests that the arms' mean outcomes lie on
/// one line in their mean exposures: a departure from a linear dose-response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sargan {
    /// n·(1 − uᵀu/eᵀe) with e the 2SLS residuals and u = e − P_Z e.
    pub statistic: f64,
    /// Excluded instruments minus endogenous regressors.
    pub df: usize,
    /// P(χ²_df > statistic).
    pub p_value: f64,
}

impl Sargan {
    /// With its p-value from χ²(`df`).
    fn new(statistic: f64, df: usize) -> StatsResult<Sargan> {
        Ok(Sargan {
            statistic,
            df,
            p_value: super::dist::chi2_sf(statistic, df as f64)?,
        })
    }
}

/// A 2SLS fit's coefficients (exogenous first, endogenous last) and their covariances, with one
/// or several endogenous regressors.
#[derive(Debug, Clone)]
pub struct IvEstimates {
    pub names: Vec<String>,
    pub coefficients: Vec<f64>,
    pub n: usize,
    pub k: usize,
    /// Small-sample adjustment (Stata's `small`, linearmodels' `debiased=True`): covariances
    /// scaled by n/(n − k) and inference with t(n − k) instead of the normal.
    pub debiased: bool,
    unadjusted: Square,
    robust: Square,
}

impl IvEstimates {
    pub fn covariance(&self, cov: IvCov) -> &Square {
        match cov {
            IvCov::Unadjusted => &self.unadjusted,
            IvCov::Robust => &self.robust,
        }
    }

    /// Coefficient table; t(n − k) inference when debiased, normal otherwise (as linearmodels).
    pub fn table(&self, cov: IvCov, confidence: f64) -> StatsResult<Vec<Coefficient>> {
        let df = self.debiased.then_some((self.n - self.k) as f64);
        coefficient_table(
            &self.names,
            &self.coefficients,
            self.covariance(cov),
            df,
            confidence,
        )
    }
}

/// A fitted 2SLS model with one endogenous regressor (its coefficient is last); its estimates
/// are reached through `Deref` (`fit.coefficients`, `fit.table(…)`).
#[derive(Debug, Clone)]
pub struct TwoSls {
    pub estimates: IvEstimates,
    pub first_stage: FirstStage,
    /// Present when there are more excluded instruments than endogenous regressors; matches
    /// `linearmodels` `IVResults.sargan`.
    pub sargan: Option<Sargan>,
}

impl std::ops::Deref for TwoSls {
    type Target = IvEstimates;
    fn deref(&self) -> &IvEstimates {
        &self.estimates
    }
}

/// The first-stage regressors Z = [W, instruments] and their QR factorization.
fn instrument_basis<'a>(
    exog: &[&'a [f64]],
    exog_names: &[&str],
    instruments: &[&'a [f64]],
) -> StatsResult<(Vec<&'a [f64]>, Qr)> {
    let z_cols: Vec<&[f64]> = exog.iter().chain(instruments).copied().collect();
    let z_names: Vec<String> = exog_names
        .iter()
        .map(|s| s.to_string())
        .chain((0..instruments.len()).map(|i| format!("instrument {i}")))
        .collect();
    let z_refs: Vec<&str> = z_names.iter().map(String::as_str).collect();
    let qz = Qr::new(&z_cols, &z_refs)?;
    Ok((z_cols, qz))
}

/// The second stage shared by one and several endogenous regressors: β = (X̂ᵀX̂)⁻¹X̂ᵀy with
/// X̂ = [W, X̂ₑ] (`xhats` the first-stage fitted values), residuals e = y − [W, X]β from the
/// observed X; the unadjusted covariance σ̂²(X̂ᵀX̂)⁻¹ (σ̂² = eᵀe/n) and the robust sandwich,
/// each scaled by n/(n − k) when `debiased`; and Sargan's n·(1 − uᵀu/eᵀe), u = e − P_Z e, on
/// q − p degrees of freedom when the q instruments over-identify the p regressors.
fn second_stage(
    y: &[f64],
    (exog, exog_names): (&[&[f64]], &[&str]),
    (endog, endog_names): (&[&[f64]], &[&str]),
    xhats: &[&[f64]],
    (z_cols, qz): (&[&[f64]], &Qr),
    debiased: bool,
) -> StatsResult<(IvEstimates, Option<Sargan>)> {
    let n = y.len();
    let mut xh_cols: Vec<&[f64]> = exog.to_vec();
    xh_cols.extend(xhats);
    let names: Vec<&str> = exog_names.iter().chain(endog_names).copied().collect();
    let qx = Qr::new(&xh_cols, &names).map_err(|e| match e {
        StatsError::Singular(_) if endog.len() == 1 => {
            StatsError::NoFirstStage("the instruments do not move the endogenous regressor".into())
        }
        StatsError::Singular(_) => StatsError::NoFirstStage(
            "the instruments do not move the endogenous regressors apart".into(),
        ),
        other => other,
    })?;
    let beta = qx.solve(y)?;
    let k = beta.len();
    let x_cols: Vec<&[f64]> = exog.iter().chain(endog).copied().collect();
    let resid: Vec<f64> = (0..n)
        .map(|i| y[i] - x_cols.iter().zip(&beta).map(|(c, b)| c[i] * b).sum::<f64>())
        .collect();
    let scale = if debiased {
        n as f64 / (n - k) as f64
    } else {
        1.0
    };
    let bread = qx.xtx_inverse();
    let ee: f64 = resid.iter().map(|e| e * e).sum();
    check_residuals(ee, y.iter().all(|v| *v == y[0]))?;
    let s2 = ee / n as f64 * scale;
    let unadjusted = bread
        .iter()
        .map(|r| r.iter().map(|v| v * s2).collect())
        .collect();
    let e2: Vec<f64> = resid.iter().map(|e| e * e * scale).collect();
    let robust = sandwich(&bread, &weighted_cross(&xh_cols, &e2));
    let q = z_cols.len() - exog.len();
    let sargan = if q > endog.len() {
        let gz = qz.solve(&resid)?;
        let uu: f64 = (0..n)
            .map(|i| {
                let u = resid[i] - z_cols.iter().zip(&gz).map(|(c, g)| c[i] * g).sum::<f64>();
                u * u
            })
            .sum();
        Some(Sargan::new(n as f64 * (1.0 - uu / ee), q - endog.len())?)
    } else {
        None
    };
    let estimates = IvEstimates {
        names: names.iter().map(|s| s.to_string()).collect(),
        coefficients: beta,
        n,
        k,
        debiased,
        unadjusted,
        robust,
    };
    Ok((estimates, sargan))
}

/// Fits y = [W, x]β + ε by 2SLS, with exogenous regressors W (include a constant), one
/// endogenous regressor x and excluded instruments Z.
///
/// First stage: x̂ = P_{[W,Z]}x. Second stage: β = (X̂ᵀX̂)⁻¹X̂ᵀy with X̂ = [W, x̂];
/// residuals e = y − [W, x]β use the observed x. Covariances as in [`IvCov`], each multiplied by
/// n/(n − k) when `debiased`. Matches `linearmodels.iv.IV2SLS(y, W, x, Z).fit(cov_type=…,
/// debiased=…)` and Stata's `ivregress 2sls …, small`. With one binary instrument and only a
/// constant in W, the slope equals the Wald ratio (ȳ₁ − ȳ₀)/(x̄₁ − x̄₀).
pub fn two_sls(
    y: &[f64],
    exog: &[&[f64]],
    exog_names: &[&str],
    endog: &[f64],
    endog_name: &str,
    instruments: &[&[f64]],
    debiased: bool,
) -> StatsResult<TwoSls> {
    check_finite("2sls outcome", y)?;
    check_finite("2sls endogenous regressor", endog)?;
    let n = y.len();
    if endog.len() != n {
        return Err(StatsError::LengthMismatch(
            "outcome and endogenous regressor differ in length".into(),
        ));
    }
    if instruments.is_empty() {
        return Err(StatsError::NoFirstStage("no excluded instruments".into()));
    }
    // First stage.
    let (z_cols, qz) = instrument_basis(exog, exog_names, instruments)?;
    let g = qz.solve(endog)?;
    let xhat: Vec<f64> = (0..n)
        .map(|i| z_cols.iter().zip(&g).map(|(c, gj)| c[i] * gj).sum())
        .collect();
    let first_stage =
        first_stage_strength(exog, exog_names, endog, &z_cols, &qz, &g, &xhat, debiased)?;
    let (estimates, sargan) = second_stage(
        y,
        (exog, exog_names),
        (&[endog], &[endog_name]),
        &[&xhat],
        (&z_cols, &qz),
        debiased,
    )?;
    Ok(TwoSls {
        estimates,
        first_stage,
        sargan,
    })
}

#[allow(clippy::too_many_arguments)]
fn first_stage_strength(
    exog: &[&[f64]],
    exog_names: &[&str],
    endog: &[f64],
    z_cols: &[&[f64]],
    qz: &Qr,
    g: &[f64],
    xhat: &[f64],
    debiased: bool,
) -> StatsResult<FirstStage> {
    let n = endog.len();
    let kz = z_cols.len();
    let q = kz - exog.len();
    let rss_u: f64 = endog.iter().zip(xhat).map(|(x, f)| (x - f) * (x - f)).sum();
    let on_exog = Qr::new(exog, exog_names)?;
    let restricted = on_exog.solve(endog)?;
    let rss_r: f64 = (0..n)
        .map(|i| {
            let f: f64 = exog.iter().zip(&restricted).map(|(c, b)| c[i] * b).sum();
            (endog[i] - f) * (endog[i] - f)
        })
        .sum();
    check_first_stage_rss(rss_r, rss_u)?;
    let df_u = (n - kz) as f64;
    let f_stat = ((rss_r - rss_u) / q as f64) / (rss_u / df_u);
    // Robust Wald test of the excluded instruments' first-stage coefficients.
    let resid: Vec<f64> = endog
        .iter()
        .zip(xhat)
        .map(|(x, f)| (x - f) * (x - f))
        .collect();
    let scale = if debiased { n as f64 / df_u } else { 1.0 };
    let e2: Vec<f64> = resid.iter().map(|e| e * scale).collect();
    let v = sandwich(&qz.xtx_inverse(), &weighted_cross(z_cols, &e2));
    let idx: Vec<usize> = (exog.len()..kz).collect();
    let sub: Square = idx
        .iter()
        .map(|&i| idx.iter().map(|&j| v[i][j]).collect())
        .collect();
    let b: Vec<f64> = idx.iter().map(|&i| g[i]).collect();
    let wald = wald_quadratic(&b, &sub)?;
    // S = Z̃ᵀZ̃, the excluded instruments residualized on the exogenous regressors.
    let z_tilde: Vec<Vec<f64>> = z_cols[exog.len()..]
        .iter()
        .map(|z| {
            let c = on_exog.solve(z)?;
            Ok((0..n)
                .map(|i| z[i] - exog.iter().zip(&c).map(|(x, b)| x[i] * b).sum::<f64>())
                .collect())
        })
        .collect::<StatsResult<_>>()?;
    let s: Square = z_tilde
        .iter()
        .map(|a| {
            z_tilde
                .iter()
                .map(|b| a.iter().zip(b).map(|(x, y)| x * y).sum())
                .collect()
        })
        .collect();
    let f_eff = effective_f(rss_r - rss_u, &sub, &s);
    FirstStage::new(
        q,
        (f_stat, wald / q as f64, f_eff),
        df_u,
        1.0 - rss_u / rss_r,
    )
}

impl TwoSls {
    /// The endogenous regressor's row of the table.
    pub fn slope(&self, cov: IvCov, confidence: f64) -> StatsResult<Coefficient> {
        let mut t = self.table(cov, confidence)?;
        Ok(t.remove(self.k - 1))
    }
}

/// The Wald (ratio) estimator (ȳ₁ − ȳ₀)/(x̄₁ − x̄₀) for one binary instrument.
pub fn wald_ratio(y1: f64, y0: f64, x1: f64, x0: f64) -> StatsResult<f64> {
    let dx = x1 - x0;
    if dx == 0.0 {
        return Err(StatsError::NoFirstStage(
            "the arms have the same mean exposure".into(),
        ));
    }
    Ok((y1 - y0) / dx)
}
