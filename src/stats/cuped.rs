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
/// Returns `ZeroVariance` when the covariate is constant (every value equal: decided exactly,
/// since a constant like 0.1 leaves Σ(xᵢ − x̄)² at rounding noise, not 0): callers fall back
/// to unadjusted values.
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
    let first = x.iter().find_map(|xa| xa.first());
    let constant = first.is_some_and(|f| x.iter().all(|xa| xa.iter().all(|v| v == f)));
    if constant || sxx <= 0.0 {
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

/// The least share of its terms an arm's adjusted sum of squares may keep in
/// [`cuped_from_sums`]: below it, more than 6 of 16 digits cancel.
const CANCELLED: f64 = 1e-6;

/// One arm's sums for [`cuped_from_sums`], over its n units, of shifted outcomes y′ = y − k_y
/// and covariates x′ = x − k_x: Σx′, Σx′², Σy′, Σy′² and Σx′y′.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CupedSums {
    pub n: f64,
    pub x: f64,
    pub xx: f64,
    pub y: f64,
    pub yy: f64,
    pub xy: f64,
}

/// [`cuped`] from each arm's sums instead of its units (`shifts` = (k_x, k_y)): the same θ,
/// covariate mean, adjusted arm moments and variance reduction, so a database or a stream can
/// adjust any number of units. With N = Σnₐ and the pooled shifted means x̄′ = Σx′/N,
/// ȳ′ = Σy′/N: Sxx = Σx′² − N·x̄′², Sxy = Σx′y′ − N·x̄′ȳ′, θ = Sxy/Sxx; per arm, with its own
/// centred sums sxxₐ, syyₐ, sxyₐ, the adjusted mean is k_y + ȳ′ₐ − θ(x̄′ₐ − x̄′) and the
/// adjusted variance (syyₐ + θ²sxxₐ − 2θ·sxyₐ)/(nₐ − 1). Shifts near the data keep the
/// digits the differences of sums would cancel. Reference: as [`cuped`] (statsmodels OLS and
/// pandas, `tests/stats_reference.rs`); the summary's CUPED is tested against the per-unit
/// analysis to 1e-9 relative. Sums cannot tell a constant covariate from rounding noise
/// unless it is shifted by one of its values (then its sums are exactly 0): `ZeroVariance`
/// here means Sxx ≤ 0. Each arm's adjusted sum of squares is a difference
/// of sums, so it loses digits as 1/(1 − R²) grows (a covariate explaining nearly all the
/// variance, or one outlier dominating an arm); the per-unit path sums the residuals instead.
/// When it would keep less than 1e-6 of its terms (`Undefined`), callers report CUPED as not
/// computed rather than a variance with few correct digits.
pub fn cuped_from_sums(arms: &[CupedSums], (kx, ky): (f64, f64)) -> StatsResult<Cuped> {
    let total = arms.iter().fold(CupedSums::default(), |t, a| CupedSums {
        n: t.n + a.n,
        x: t.x + a.x,
        xx: t.xx + a.xx,
        y: t.y + a.y,
        yy: t.yy + a.yy,
        xy: t.xy + a.xy,
    });
    let sums = [total.x, total.xx, total.y, total.yy, total.xy];
    if !sums.iter().all(|v| v.is_finite()) {
        return Err(StatsError::NonFinite("cuped sums"));
    }
    if total.n < 3.0 {
        return Err(StatsError::TooFew {
            what: "CUPED",
            need: 3,
            got: total.n as usize,
        });
    }
    let (mx, my) = (total.x / total.n, total.y / total.n);
    let sxx = total.xx - total.n * mx * mx;
    let sxy = total.xy - total.n * mx * my;
    if sxx <= 0.0 {
        return Err(StatsError::ZeroVariance(
            "the pre-period covariate is constant",
        ));
    }
    let theta = sxy / sxx;
    let mut out = Vec::with_capacity(arms.len());
    let (mut ss_adj, mut ss_raw) = (0.0, 0.0);
    for a in arms {
        if a.n < 2.0 {
            return Err(StatsError::TooFew {
                what: "a CUPED arm",
                need: 2,
                got: a.n as usize,
            });
        }
        let (ax, ay) = (a.x / a.n, a.y / a.n);
        let axx = (a.xx - a.n * ax * ax).max(0.0);
        let ayy = (a.yy - a.n * ay * ay).max(0.0);
        let axy = a.xy - a.n * ax * ay;
        let ss = (ayy + theta * theta * axx - 2.0 * theta * axy).max(0.0);
        let scale = ayy + theta * theta * axx + 2.0 * (theta * axy).abs();
        if ss < CANCELLED * scale {
            return Err(StatsError::Undefined(format!(
                "CUPED from sums: the pre-period value explains all but {:.1e} of an arm's \
                 variance, so its adjusted variance would keep too few digits",
                ss / scale
            )));
        }
        ss_adj += ss;
        ss_raw += ayy;
        out.push((a.n as usize, ky + ay - theta * (ax - mx), ss / (a.n - 1.0)));
    }
    let variance_reduction = if ss_raw > 0.0 {
        1.0 - ss_adj / ss_raw
    } else {
        0.0
    };
    Ok(Cuped {
        theta,
        covariate_mean: kx + mx,
        arms: out,
        variance_reduction,
    })
}
