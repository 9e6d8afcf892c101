//! Multiple-testing corrections.

use super::{StatsError, StatsResult};

fn check(p: &[f64]) -> StatsResult<()> {
    if p.iter().all(|v| (0.0..=1.0).contains(v)) {
        Ok(())
    } else {
        Err(StatsError::InvalidParameter(
            "p-values must be in [0, 1]".into(),
        ))
    }
}

fn ascending_order(p: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    idx
}

/// Holm's step-down adjusted p-values (family-wise error rate).
///
/// With p₍₁₎ ≤ … ≤ p₍ₘ₎: p̃₍ᵢ₎ = min(1, max_{j ≤ i} (m − j + 1)·p₍ⱼ₎).
/// Matches `statsmodels.stats.multitest.multipletests(p, method="holm")`.
pub fn holm(p: &[f64]) -> StatsResult<Vec<f64>> {
    check(p)?;
    let m = p.len();
    let mut out = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in ascending_order(p).iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    Ok(out)
}

/// Benjamini–Hochberg adjusted p-values (false discovery rate).
///
/// With p₍₁₎ ≤ … ≤ p₍ₘ₎: p̃₍ᵢ₎ = min(1, min_{j ≥ i} m·p₍ⱼ₎/j).
/// Matches `statsmodels.stats.multitest.multipletests(p, method="fdr_bh")`.
pub fn benjamini_hochberg(p: &[f64]) -> StatsResult<Vec<f64>> {
    check(p)?;
    let m = p.len();
    let order = ascending_order(p);
    let mut out = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(m as f64 * p[i] / (rank + 1) as f64);
        out[i] = running;
    }
    Ok(out)
}
