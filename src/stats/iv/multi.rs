//! 2SLS with several endogenous regressors (several SLIs moved by one experiment's arms), and
//! the first-stage strength of each given the others (Sanderson & Windmeijer 2016).

use super::super::linalg::Qr;
use super::super::{check_finite, dist::f_sf, StatsError, StatsResult};

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

/// A 2SLS fit with p endogenous regressors (last p coefficients); its estimates are reached
/// through `Deref` (`fit.coefficients`, `fit.table(…)`).
#[derive(Debug, Clone)]
pub struct TwoSlsMulti {
    pub estimates: super::IvEstimates,
    pub first_stages: Vec<EndogenousStrength>,
    /// Sargan's test of the over-identifying restrictions when there are more instruments than
    /// SLIs (as [`super::TwoSls::sargan`], `linearmodels` `IVResults.sargan`): with arm
    /// indicators, whether the arms' KPI means fit one additive, linear function of their SLI
    /// means (in a 2×2 factorial: no interaction between the SLIs).
    pub sargan: Option<super::Sargan>,
}

impl std::ops::Deref for TwoSlsMulti {
    type Target = super::IvEstimates;
    fn deref(&self) -> &super::IvEstimates {
        &self.estimates
    }
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
    let (z_cols, qz) = super::instrument_basis(exog, exog_names, instruments)?;
    let xhats: Vec<Vec<f64>> = endog
        .iter()
        .map(|x| fitted(&z_cols, &qz, x))
        .collect::<StatsResult<_>>()?;
    let xh: Vec<&[f64]> = xhats.iter().map(Vec::as_slice).collect();
    let (estimates, sargan) = super::second_stage(
        y,
        (exog, exog_names),
        (endog, endog_names),
        &xh,
        (&z_cols, &qz),
        debiased,
    )?;
    let qw = Qr::new(exog, exog_names)?;
    let first_stages = (0..p)
        .map(|j| strength(j, (exog, &qw), (endog, endog_names), (&z_cols, &qz), &xhats))
        .collect::<StatsResult<_>>()?;
    Ok(TwoSlsMulti {
        estimates,
        first_stages,
        sargan,
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
