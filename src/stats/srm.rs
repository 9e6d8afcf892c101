//! Sample-ratio mismatch: are units split across arms as planned?

use super::dist::chi2_sf;
use super::{StatsError, StatsResult};

/// The default alarm level: an SRM is declared when p < 0.001.
pub const SRM_ALPHA: f64 = 0.001;

/// Result of the sample-ratio check.
#[derive(Debug, Clone, PartialEq)]
pub struct SrmTest {
    pub observed: Vec<u64>,
    pub expected: Vec<f64>,
    pub chi_square: f64,
    pub df: usize,
    pub p_value: f64,
}

/// Pearson's χ² goodness of fit of observed arm counts against planned weights.
///
/// Eᵢ = N·wᵢ/Σw, χ² = Σ (Oᵢ − Eᵢ)²/Eᵢ, df = k − 1, p = P(χ²_df > χ²).
/// Matches `scipy.stats.chisquare(observed, expected)`.
pub fn sample_ratio(observed: &[u64], weights: &[f64]) -> StatsResult<SrmTest> {
    if observed.len() != weights.len() {
        return Err(StatsError::LengthMismatch(format!(
            "{} counts vs {} weights",
            observed.len(),
            weights.len()
        )));
    }
    if observed.len() < 2 {
        return Err(StatsError::TooFew {
            what: "a sample-ratio check",
            need: 2,
            got: observed.len(),
        });
    }
    if weights.iter().any(|w| !w.is_finite() || *w <= 0.0) {
        return Err(StatsError::InvalidParameter(
            "weights must be positive".into(),
        ));
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return Err(StatsError::TooFew {
            what: "a sample-ratio check",
            need: 1,
            got: 0,
        });
    }
    let wsum: f64 = weights.iter().sum();
    let expected: Vec<f64> = weights.iter().map(|w| total as f64 * w / wsum).collect();
    let chi_square = observed
        .iter()
        .zip(&expected)
        .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
        .sum::<f64>();
    let df = observed.len() - 1;
    Ok(SrmTest {
        observed: observed.to_vec(),
        expected,
        chi_square,
        df,
        p_value: chi2_sf(chi_square, df as f64)?,
    })
}
