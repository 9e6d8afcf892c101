//! Ordinary least squares with classical and heteroskedasticity-robust standard errors.

use linfa::traits::Fit;
use linfa::Dataset;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};

use super::dist::{norm_ppf, t_ppf, two_sided_normal_p, two_sided_t_p};
use super::linalg::{sandwich, weighted_cross, Qr, Square};
use super::{alpha_of, check_finite, StatsError, StatsResult};

/// Covariance estimator of the coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CovType {
    /// σ̂²(XᵀX)⁻¹ with σ̂² = e'e/(n − p).
    Classical,
    /// White (1980): (XᵀX)⁻¹ XᵀΩX (XᵀX)⁻¹ with Ω = diag(eᵢ²).
    Hc0,
    /// HC0 · n/(n − p) (MacKinnon & White 1985).
    Hc1,
    /// Ω = diag(eᵢ²/(1 − hᵢ)²) with hᵢ the leverage (MacKinnon & White 1985).
    Hc3,
}

/// One row of a coefficient table.
#[derive(Debug, Clone, PartialEq)]
pub struct Coefficient {
    pub name: String,
    pub estimate: f64,
    pub std_error: f64,
    /// t (classical) or z (robust) statistic.
    pub statistic: f64,
    pub p_value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// A fitted OLS model.
#[derive(Debug, Clone)]
pub struct Ols {
    pub names: Vec<String>,
    pub coefficients: Vec<f64>,
    pub n: usize,
    pub p: usize,
    /// Sum of squared residuals.
    pub ssr: f64,
    /// R², centred when the design has a constant column (as statsmodels does).
    pub r_squared: f64,
    pub adj_r_squared: f64,
    classical: Square,
    hc0: Square,
    /// `None` when a unit has leverage 1 (HC3 divides by 1 − hᵢ).
    hc3: Option<Square>,
}

/// Fits y = Xβ + ε by least squares. Coefficients come from linfa-linear's `LinearRegression`
/// (no intercept added: include a column of ones); the covariance from a column-scaled
/// Householder QR of X. Tested against the NIST StRD Longley certified values and
/// `statsmodels.api.OLS(y, X).fit(cov_type=…)` for HC0, HC1 and HC3.
pub fn ols(cols: &[&[f64]], names: &[&str], y: &[f64]) -> StatsResult<Ols> {
    check_finite("ols outcome", y)?;
    let p = cols.len();
    let n = y.len();
    let qr = Qr::new(cols, names)?;
    let mut x = Array2::<f64>::zeros((n, p));
    for (j, c) in cols.iter().enumerate() {
        if c.len() != n {
            return Err(StatsError::LengthMismatch(format!(
                "column '{}' has {} rows, y has {n}",
                names[j],
                c.len()
            )));
        }
        x.column_mut(j).assign(&ndarray::ArrayView1::from(*c));
    }
    let dataset = Dataset::new(x, Array1::from(y.to_vec()));
    let fitted = LinearRegression::new()
        .with_intercept(false)
        .fit(&dataset)
        .map_err(|e| StatsError::Singular(format!("least squares failed: {e}")))?;
    let coefficients = fitted.params().to_vec();
    let resid: Vec<f64> = (0..n)
        .map(|i| y[i] - (0..p).map(|j| cols[j][i] * coefficients[j]).sum::<f64>())
        .collect();
    let ssr: f64 = resid.iter().map(|e| e * e).sum();
    let has_constant = cols
        .iter()
        .any(|c| c.iter().all(|v| *v == c[0]) && c[0] != 0.0);
    let tss = if has_constant {
        let m = y.iter().sum::<f64>() / n as f64;
        y.iter().map(|v| (v - m) * (v - m)).sum::<f64>()
    } else {
        y.iter().map(|v| v * v).sum::<f64>()
    };
    let r_squared = if tss > 0.0 { 1.0 - ssr / tss } else { f64::NAN };
    let df_model_adj = if has_constant { 1.0 } else { 0.0 };
    let adj_r_squared = 1.0 - (1.0 - r_squared) * (n as f64 - df_model_adj) / (n - p) as f64;
    let bread = qr.xtx_inverse();
    let sigma2 = ssr / (n - p) as f64;
    let classical: Square = bread
        .iter()
        .map(|row| row.iter().map(|v| v * sigma2).collect())
        .collect();
    let e2: Vec<f64> = resid.iter().map(|e| e * e).collect();
    let hc0 = sandwich(&bread, &weighted_cross(cols, &e2));
    let h = qr.leverage(cols);
    let hc3 = h.iter().all(|hi| *hi < 1.0 - 1e-12).then(|| {
        let w3: Vec<f64> = e2
            .iter()
            .zip(&h)
            .map(|(e, hi)| e / ((1.0 - hi) * (1.0 - hi)))
            .collect();
        sandwich(&bread, &weighted_cross(cols, &w3))
    });
    Ok(Ols {
        names: names.iter().map(|s| s.to_string()).collect(),
        coefficients,
        n,
        p,
        ssr,
        r_squared,
        adj_r_squared,
        classical,
        hc0,
        hc3,
    })
}

impl Ols {
    /// Residual degrees of freedom n − p.
    pub fn df_resid(&self) -> f64 {
        (self.n - self.p) as f64
    }

    /// The coefficient covariance matrix of the given type; HC3 is undefined (an error) when a
    /// unit has leverage 1.
    pub fn covariance(&self, cov: CovType) -> StatsResult<Square> {
        Ok(match cov {
            CovType::Classical => self.classical.clone(),
            CovType::Hc0 => self.hc0.clone(),
            CovType::Hc1 => {
                let f = self.n as f64 / self.df_resid();
                self.hc0
                    .iter()
                    .map(|r| r.iter().map(|v| v * f).collect())
                    .collect()
            }
            CovType::Hc3 => self.hc3.clone().ok_or_else(|| {
                StatsError::Singular("a unit has leverage 1, so HC3 is undefined".into())
            })?,
        })
    }

    /// The coefficient table. As in statsmodels, classical inference uses Student's t with n − p
    /// degrees of freedom and robust inference the normal distribution.
    pub fn table(&self, cov: CovType, confidence: f64) -> StatsResult<Vec<Coefficient>> {
        let df = (cov == CovType::Classical).then(|| self.df_resid());
        coefficient_table(
            &self.names,
            &self.coefficients,
            &self.covariance(cov)?,
            df,
            confidence,
        )
    }
}

/// Coefficient rows from estimates and their covariance: SE = √V_jj, statistic b/SE, two-sided
/// p-value and CI from Student's t with `t_df` degrees of freedom, or the normal when `None`.
pub fn coefficient_table(
    names: &[String],
    coefficients: &[f64],
    cov: &Square,
    t_df: Option<f64>,
    confidence: f64,
) -> StatsResult<Vec<Coefficient>> {
    let alpha = alpha_of(confidence)?;
    let q = match t_df {
        Some(df) => t_ppf(1.0 - alpha / 2.0, df)?,
        None => norm_ppf(1.0 - alpha / 2.0),
    };
    coefficients
        .iter()
        .enumerate()
        .map(|(j, &b)| {
            let se = cov[j][j].sqrt();
            let stat = b / se;
            let p_value = match t_df {
                Some(df) => two_sided_t_p(stat, df)?,
                None => two_sided_normal_p(stat),
            };
            Ok(Coefficient {
                name: names[j].clone(),
                estimate: b,
                std_error: se,
                statistic: stat,
                p_value,
                ci_low: b - q * se,
                ci_high: b + q * se,
            })
        })
        .collect()
}
