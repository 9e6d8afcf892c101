//! 2SLS with several endogenous regressors (several SLIs moved by one experiment's arms), and
//! the first-stage strength of each given the others (Sanderson & Windmeijer 2016).

use super::super::linalg::{sandwich, weighted_cross, Qr, Square};
use super::super::ols::{coefficient_table, Coefficient};
use super::super::{check_finite, dist::f_sf, StatsError, StatsResult};
use super::IvCov;

/// One endogenous regressor's first stage.
#[derive(Debug, Clone, PartialEq)]
pub struct EndogenousStrength {
    pub name: String,
    /// Classical F of the excluded instruments in its own first stage, with n − k_z residual
    /// degrees of freedom (linearmodels' `first_stage.diagnostics["f.stat"]` with
    /// `cov_type="unadjusted", debiased=True`).
    pub f_stat: f64,
    pub partial_r_squared: f64,
    /// Sanderson–Windmeijer conditional F: whether the instruments move this regressor apart
    /// from the others. Small when two SLIs move together in every arm.
    pub sw_f: f64,
    /// Its p-value on F(q − p + 1, n − k_z): a test of under-identification (the instruments
    /// do not move this regressor apart from the others at all). Weakness is judged by the F
    /// itself against Stock–Yogo critical values for one endogenous regressor and q − p + 1
    /// instruments. The statistic assumes homoskedastic first-stage errors (ivreg2 reports a
    /// robust Wald version under `robust`).
    pub sw_p_value: f64,
}

/// A 2SLS fit with p endogenous regressors (last p coefficients).
#[derive(Debug, Clone)]
pub struct TwoSlsMulti {
    pub names: Vec<String>,
    pub coefficients: Vec<f64>,
    pub n: usize,
    pub k: usize,
    pub debiased: bool,
    pub first_stages: Vec<EndogenousStrength>,
    /// Sargan's test of the over-identifying restrictions when there are more instruments than
    /// SLIs (as [`super::TwoSls::sargan`], `linearmodels` `IVResults.sargan`): with arm
    /// indicators, whether the arms' KPI means fit one additive, linear function of their SLI
    /// means (in a 2×2 factorial: no interaction between the SLIs).
    pub sargan: Option<super::Sargan>,
    unadjusted: Square,
    robust: Square,
}

/// Fitted values of `v` on the columns `qr` factors (`cols`).
fn fitted(cols: &[&[f64]], qr: &Qr, v: &[f64]) -> StatsResult<Vec<f64>> {
    let b = qr.solve(v)?;
    Ok((0..v.len())
        .map(|i| cols.iter().zip(&b).map(|(c, bj)| c[i] * bj).sum())
        .collect())
}

fn rss(v: &[f64], fit: &[f64]) -> f64 {
    v.iter().zip(fit).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// Fits y = [W, X]β + ε by 2SLS with exogenous W (include a constant), endogenous X (p
/// columns) and excluded instruments Z (q ≥ p columns): X̂ = P_{[W,Z]}X, β = (X̂ᵀX̂)⁻¹X̂ᵀy with
/// X̂ = [W, X̂], residuals from the observed X. Covariances as [`super::two_sls`]. Fails with
/// `NoFirstStage` when the instruments cannot separate the regressors (q < p, or [W, X̂] rank
/// deficient). Matches `linearmodels.iv.IV2SLS(y, W, X, Z)` (the reference test).
///
/// For each endogenous xⱼ, the Sanderson–Windmeijer (2016) conditional F: the 2SLS residual
/// ε̂ⱼ of xⱼ on [W, X₋ⱼ] instrumented by Z, then the F test of Z in the regression of ε̂ⱼ on
/// [W, Z] with q − (p − 1) numerator degrees of freedom:
/// F = ((RSSᵣ − RSSᵤ)/(q − p + 1)) / (RSSᵤ/(n − k_z)).
#[allow(clippy::too_many_arguments)]
pub fn two_sls_multi(
    y: &[f64],
    exog: &[&[f64]],
    exog_names: &[&str],
    endog: &[&[f64]],
    endog_names: &[&str],
    instruments: &[&[f64]],
    debiased: bool,
) -> StatsResult<TwoSlsMulti> {
    check_finite("2sls outcome", y)?;
    let (n, p, q) = (y.len(), endog.len(), instruments.len());
    for x in endog {
        check_finite("2sls endogenous regressor", x)?;
        if x.len() != n {
            return Err(StatsError::LengthMismatch(
                "outcome and endogenous regressors differ in length".into(),
            ));
        }
    }
    if p == 0 || q < p {
        return Err(StatsError::NoFirstStage(format!(
            "{q} excluded instruments cannot identify {p} endogenous regressors"
        )));
    }
    let z_cols: Vec<&[f64]> = exog.iter().chain(instruments).copied().collect();
    let z_names: Vec<String> = exog_names
        .iter()
        .map(|s| s.to_string())
        .chain((0..q).map(|i| format!("instrument {i}")))
        .collect();
    let z_refs: Vec<&str> = z_names.iter().map(String::as_str).collect();
    let qz = Qr::new(&z_cols, &z_refs)?;
    let xhats: Vec<Vec<f64>> = endog
        .iter()
        .map(|x| fitted(&z_cols, &qz, x))
        .collect::<StatsResult<_>>()?;
    let mut xh_cols: Vec<&[f64]> = exog.to_vec();
    xh_cols.extend(xhats.iter().map(Vec::as_slice));
    let names: Vec<&str> = exog_names.iter().chain(endog_names).copied().collect();
    let qx = Qr::new(&xh_cols, &names).map_err(|e| match e {
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
    let s2 = resid.iter().map(|e| e * e).sum::<f64>() / n as f64 * scale;
    let unadjusted = bread
        .iter()
        .map(|r| r.iter().map(|v| v * s2).collect())
        .collect();
    let e2: Vec<f64> = resid.iter().map(|e| e * e * scale).collect();
    let robust = sandwich(&bread, &weighted_cross(&xh_cols, &e2));
    let sargan = if q > p {
        let u_fit = fitted(&z_cols, &qz, &resid)?;
        let (ee, uu) = (rss(&resid, &vec![0.0; n]), rss(&resid, &u_fit));
        Some(super::Sargan::new(n as f64 * (1.0 - uu / ee), q - p)?)
    } else {
        None
    };
    let qw = Qr::new(exog, exog_names)?;
    let first_stages = (0..p)
        .map(|j| strength(j, (exog, &qw), (endog, endog_names), (&z_cols, &qz), &xhats))
        .collect::<StatsResult<_>>()?;
    Ok(TwoSlsMulti {
        names: names.iter().map(|s| s.to_string()).collect(),
        coefficients: beta,
        n,
        k,
        debiased,
        first_stages,
        sargan,
        unadjusted,
        robust,
    })
}

/// Endogenous regressor j's own first-stage F and partial R², and its conditional F.
fn strength(
    j: usize,
    (exog, qw): (&[&[f64]], &Qr),
    (endog, endog_names): (&[&[f64]], &[&str]),
    (z_cols, qz): (&[&[f64]], &Qr),
    xhats: &[Vec<f64>],
) -> StatsResult<EndogenousStrength> {
    let (n, p, kz) = (endog[j].len(), endog.len(), z_cols.len());
    let q = kz - exog.len();
    let f_test = |v: &[f64], num_df: usize| -> StatsResult<(f64, f64)> {
        let rss_r = rss(v, &fitted(exog, qw, v)?);
        let rss_u = rss(v, &fitted(z_cols, qz, v)?);
        super::check_first_stage_rss(rss_r, rss_u)?;
        let f = ((rss_r - rss_u) / num_df as f64) / (rss_u / (n - kz) as f64);
        Ok((f, 1.0 - rss_u / rss_r))
    };
    let (f_stat, partial_r_squared) = f_test(endog[j], q)?;
    // ε̂ⱼ: 2SLS of xⱼ on [W, X₋ⱼ] with the same instruments.
    let mut cols: Vec<&[f64]> = exog.to_vec();
    let mut obs: Vec<&[f64]> = exog.to_vec();
    let mut names: Vec<&str> = vec!["exogenous"; exog.len()];
    for i in (0..p).filter(|i| *i != j) {
        cols.push(&xhats[i]);
        obs.push(endog[i]);
        names.push(endog_names[i]);
    }
    let delta = Qr::new(&cols, &names)?.solve(endog[j])?;
    let eps: Vec<f64> = (0..n)
        .map(|i| endog[j][i] - obs.iter().zip(&delta).map(|(c, d)| c[i] * d).sum::<f64>())
        .collect();
    let df1 = q - (p - 1);
    let (sw_f, _) = f_test(&eps, df1)?;
    Ok(EndogenousStrength {
        name: endog_names[j].to_string(),
        f_stat,
        partial_r_squared,
        sw_f,
        sw_p_value: f_sf(sw_f, df1 as f64, (n - kz) as f64)?,
    })
}

impl TwoSlsMulti {
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
