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

/// Pearson's χ² test of homogeneity of the share of units with a value across arms: the 2 × k
/// table of (measured, missing) per arm, given the realised assignment counts.
///
/// With Mₐ of Nₐ units measured in arm a, M = ΣMₐ, N = ΣNₐ: E(measured)ₐ = Nₐ·M/N,
/// E(missing)ₐ = Nₐ·(N − M)/N, χ² = Σ over the 2k cells (O − E)²/E, df = k − 1. Without
/// missingness (M = N) the shares cannot differ: χ² = 0, p = 1. Matches
/// `scipy.stats.chi2_contingency([measured, missing], correction=False)`.
pub fn missingness_homogeneity(measured: &[u64], assigned: &[u64]) -> StatsResult<(f64, f64)> {
    if measured.len() != assigned.len() || measured.len() < 2 {
        return Err(StatsError::LengthMismatch(
            "measured and assigned counts of at least two arms".into(),
        ));
    }
    if measured.iter().zip(assigned).any(|(m, n)| m > n) {
        return Err(StatsError::InvalidParameter(
            "more measured than assigned units".into(),
        ));
    }
    let n: u64 = assigned.iter().sum();
    let m: u64 = measured.iter().sum();
    if m == n || m == 0 || assigned.contains(&0) {
        return Ok((0.0, 1.0));
    }
    let (nf, mf) = (n as f64, m as f64);
    let mut chi_square = 0.0;
    for (&ma, &na) in measured.iter().zip(assigned) {
        let e_measured = na as f64 * mf / nf;
        let e_missing = na as f64 - e_measured;
        let missing = (na - ma) as f64;
        chi_square += (ma as f64 - e_measured).powi(2) / e_measured
            + (missing - e_missing).powi(2) / e_missing;
    }
    let df = (measured.len() - 1) as f64;
    Ok((chi_square, chi2_sf(chi_square, df)?))
}
