//! CUPED: variance reduction with a pre-experiment covariate (Deng, Xu, Kohavi & Walker 2013).

use super::{check_finite, StatsError, StatsResult};

/// The pooled CUPED coefficient and the per-arm adjusted outcomes' summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Cuped {
    /// θ = cov(Y, X)/var(X) over all units of all arms.
    pub theta: f64,
    /// The grand mean of the covariate that adjusted values are centred on.
    pub covariate_mean: f64,
    /// Per arm: (n, adjusted mean, adjusted unbiased variance).
    pub arms: Vec<(usize, f64, f64)>,
    /// 1 − var(Y_adj)/var(Y) pooled over arms: the share of variance removed.
    pub variance_reduction: f64,
}

/// CUPED adjustment of outcomes `y[a]` by pre-period covariates `x[a]` for arms a.
///
/// θ = Σ(yᵢ − ȳ)(xᵢ − x̄)/Σ(xᵢ − x̄)² pooled over every unit of every arm; adjusted
/// yᵢ' = yᵢ − θ(xᵢ − x̄) with x̄ the grand covariate mean, so each arm's adjusted mean is
/// ȳₐ − θ(x̄ₐ − x̄) and its variance s²ᵧ + θ²s²ₓ − 2θ·sₓᵧ. Because θ is estimated from all arms
/// without using the assignment, the adjusted difference of means stays unbiased. Reference:
/// Deng et al. (2013), eq. (4); tested against NumPy applying the same adjustment.
/// Returns `ZeroVariance` when the covariate is constant: callers fall back to unadjusted values.
pub fn cuped(y: &[&[f64]], x: &[&[f64]]) -> StatsResult<Cuped> {
    if y.len() != x.len() {
        return Err(StatsError::LengthMismatch(
            "outcome and covariate arm counts differ".into(),
        ));
    }
    let mut n = 0usize;
    let (mut sx, mut sy) = (0.0, 0.0);
    for (ya, xa) in y.iter().zip(x) {
        if ya.len() != xa.len() {
            return Err(StatsError::LengthMismatch(
                "each unit needs an outcome and a covariate".into(),
            ));
        }
        check_finite("cuped outcome", ya)?;
        check_finite("cuped covariate", xa)?;
        n += ya.len();
        sx += xa.iter().sum::<f64>();
        sy += ya.iter().sum::<f64>();
    }
    if n < 3 {
        return Err(StatsError::TooFew {
            what: "CUPED",
            need: 3,
            got: n,
        });
    }
    let (mx, my) = (sx / n as f64, sy / n as f64);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (ya, xa) in y.iter().zip(x) {
        for (&yi, &xi) in ya.iter().zip(xa.iter()) {
            sxx += (xi - mx) * (xi - mx);
            sxy += (xi - mx) * (yi - my);
        }
    }
    if sxx <= 0.0 {
        return Err(StatsError::ZeroVariance(
            "the pre-period covariate is constant",
        ));
    }
    let theta = sxy / sxx;
    let mut arms = Vec::with_capacity(y.len());
    let (mut ss_adj, mut ss_raw) = (0.0, 0.0);
    for (ya, xa) in y.iter().zip(x) {
        let na = ya.len();
        if na < 2 {
            return Err(StatsError::TooFew {
                what: "a CUPED arm",
                need: 2,
                got: na,
            });
        }
        let adj: Vec<f64> = ya
            .iter()
            .zip(xa.iter())
            .map(|(&yi, &xi)| yi - theta * (xi - mx))
            .collect();
        let m = adj.iter().sum::<f64>() / na as f64;
        let v = adj.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (na - 1) as f64;
        let raw_m = ya.iter().sum::<f64>() / na as f64;
        ss_adj += v * (na - 1) as f64;
        ss_raw += ya.iter().map(|a| (a - raw_m) * (a - raw_m)).sum::<f64>();
        arms.push((na, m, v));
    }
    let variance_reduction = if ss_raw > 0.0 {
        1.0 - ss_adj / ss_raw
    } else {
        0.0
    };
    Ok(Cuped {
        theta,
        covariate_mean: mx,
        arms,
        variance_reduction,
    })
}
