//! Two-sample hypothesis tests: Welch's t, the two-proportion z-test and Mann–Whitney U.

use super::descriptive::Moments;
use super::dist::{norm_ppf, norm_sf, t_ppf, two_sided_normal_p, two_sided_t_p};
use super::{alpha_of, check_finite, Inference, StatsError, StatsResult};

/// Result of Welch's unequal-variance t-test of mean(x) − mean(y).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchT {
    /// The difference of means with its standard error, CI and two-sided p-value.
    pub difference: Inference,
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
}

/// Welch's t-test from sample summaries of x and y.
///
/// se = √(s²ₓ/nₓ + s²ᵧ/nᵧ), t = (x̄ − ȳ)/se,
/// df = (s²ₓ/nₓ + s²ᵧ/nᵧ)² / [(s²ₓ/nₓ)²/(nₓ−1) + (s²ᵧ/nᵧ)²/(nᵧ−1)]
///    = 1 / [rₓ²/(nₓ−1) + rᵧ²/(nᵧ−1)] with rₓ = (s²ₓ/nₓ)/se², rᵧ = (s²ᵧ/nᵧ)/se² (computed so:
///    the squares of tiny variances would underflow to 0/0),
/// p = 2·P(T_df > |t|), CI = (x̄ − ȳ) ± t_{1−α/2, df}·se.
/// Matches `scipy.stats.ttest_ind(x, y, equal_var=False)` and R's `t.test(x, y)`.
pub fn welch_from_moments(x: Moments, y: Moments, confidence: f64) -> StatsResult<WelchT> {
    let alpha = alpha_of(confidence)?;
    let (vx, vy) = (x.variance()?, y.variance()?);
    let (ax, ay) = (vx / x.n as f64, vy / y.n as f64);
    let se2 = ax + ay;
    if se2 <= 0.0 {
        return Err(StatsError::ZeroVariance(if x.mean == y.mean {
            "both samples are constant"
        } else {
            "each sample is constant, at different values: no spread within them to test the difference against"
        }));
    }
    let se = se2.sqrt();
    let diff = x.mean - y.mean;
    let t = diff / se;
    let (rx, ry) = (ax / se2, ay / se2);
    let df = 1.0 / (rx * rx / (x.n - 1) as f64 + ry * ry / (y.n - 1) as f64);
    let q = t_ppf(1.0 - alpha / 2.0, df)?;
    Ok(WelchT {
        difference: Inference {
            estimate: diff,
            std_error: se,
            ci_low: diff - q * se,
            ci_high: diff + q * se,
            p_value: two_sided_t_p(t, df)?,
        },
        t,
        df,
    })
}

/// Welch's t-test of mean(x) − mean(y) from raw samples; see [`welch_from_moments`].
pub fn welch_t_test(x: &[f64], y: &[f64], confidence: f64) -> StatsResult<WelchT> {
    check_finite("welch x", x)?;
    check_finite("welch y", y)?;
    welch_from_moments(Moments::of(x), Moments::of(y), confidence)
}

/// Result of the two-proportion z-test of p₁ − p₂.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProportionsZ {
    /// p₁ − p₂ with the unpooled (Wald) standard error and CI, and the pooled test's p-value.
    pub difference: Inference,
    /// The pooled z statistic.
    pub z: f64,
}

/// Two-proportion z-test of successes k₁/n₁ vs k₂/n₂.
///
/// Test (pooled): p̄ = (k₁+k₂)/(n₁+n₂), z = (p̂₁ − p̂₂)/√(p̄(1−p̄)(1/n₁ + 1/n₂)), p = 2(1 − Φ(|z|)),
/// matching `statsmodels.stats.proportion.proportions_ztest([k1, k2], [n1, n2])`.
/// Interval (unpooled Wald): (p̂₁ − p̂₂) ± z_{1−α/2}·√(p̂₁(1−p̂₁)/n₁ + p̂₂(1−p̂₂)/n₂), matching
/// `statsmodels.stats.proportion.confint_proportions_2indep(..., method="wald", compare="diff")`.
pub fn two_proportion_z_test(
    k1: u64,
    n1: u64,
    k2: u64,
    n2: u64,
    confidence: f64,
) -> StatsResult<ProportionsZ> {
    let alpha = alpha_of(confidence)?;
    if n1 == 0 || n2 == 0 {
        return Err(StatsError::TooFew {
            what: "a proportion",
            need: 1,
            got: 0,
        });
    }
    if k1 > n1 || k2 > n2 {
        return Err(StatsError::InvalidParameter(
            "successes exceed trials".into(),
        ));
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (k1 as f64 / n1f, k2 as f64 / n2f);
    let pooled = (k1 + k2) as f64 / (n1f + n2f);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se_pooled == 0.0 {
        return Err(StatsError::ZeroVariance("all outcomes are 0 or all are 1"));
    }
    let diff = p1 - p2;
    let z = diff / se_pooled;
    let se = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).sqrt();
    let q = norm_ppf(1.0 - alpha / 2.0);
    Ok(ProportionsZ {
        difference: Inference {
            estimate: diff,
            std_error: se,
            ci_low: diff - q * se,
            ci_high: diff + q * se,
            p_value: two_sided_normal_p(z),
        },
        z,
    })
}

/// Result of the Mann–Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: R₁ − n₁(n₁+1)/2.
    pub u: f64,
    /// The normal-approximation z statistic (continuity-corrected, on max(U₁, U₂)).
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// The common-language effect size U₁/(n₁n₂): P(X > Y) + ½P(X = Y).
    pub prob_superiority: f64,
}

/// Mann–Whitney U test, two-sided, normal approximation with tie and continuity corrections.
///
/// Mid-ranks of the pooled sample give R₁; U₁ = R₁ − n₁(n₁+1)/2, U₂ = n₁n₂ − U₁, U = max(U₁, U₂);
/// σ = √(n₁n₂/12 · ((n+1) − Σ(t³ − t)/(n(n−1)))) over tie groups of size t;
/// z = (U − n₁n₂/2 − ½)/σ, p = min(1, 2(1 − Φ(z))).
/// Matches `scipy.stats.mannwhitneyu(x, y, method="asymptotic")` (which reports U₁).
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> StatsResult<MannWhitney> {
    check_finite("mann-whitney x", x)?;
    check_finite("mann-whitney y", y)?;
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    mann_whitney_pooled(&pooled, x.len(), y.len())
}

/// [`mann_whitney_u`] for samples already sorted ascending: merges instead of sorting.
pub fn mann_whitney_sorted(x: &[f64], y: &[f64]) -> StatsResult<MannWhitney> {
    check_finite("mann-whitney x", x)?;
    check_finite("mann-whitney y", y)?;
    let mut pooled = Vec::with_capacity(x.len() + y.len());
    let (mut i, mut j) = (0, 0);
    while i < x.len() || j < y.len() {
        if j == y.len() || (i < x.len() && x[i] <= y[j]) {
            pooled.push((x[i], true));
            i += 1;
        } else {
            pooled.push((y[j], false));
            j += 1;
        }
    }
    mann_whitney_pooled(&pooled, x.len(), y.len())
}

fn mann_whitney_pooled(pooled: &[(f64, bool)], n1: usize, n2: usize) -> StatsResult<MannWhitney> {
    if n1 == 0 || n2 == 0 {
        return Err(StatsError::TooFew {
            what: "Mann-Whitney U",
            need: 1,
            got: n1.min(n2),
        });
    }
    let n = pooled.len();
    let mut r1 = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        r1 += mid_rank * pooled[i..=j].iter().filter(|p| p.1).count() as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u = u1.max(n1f * n2f - u1);
    let var = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if var <= 0.0 {
        return Err(StatsError::ZeroVariance("all values are tied"));
    }
    let z = (u - n1f * n2f / 2.0 - 0.5) / var.sqrt();
    Ok(MannWhitney {
        u: u1,
        z,
        p_value: (2.0 * norm_sf(z)).clamp(0.0, 1.0),
        prob_superiority: u1 / (n1f * n2f),
    })
}

/// Cochran's Q test that independent estimates share one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homogeneity {
    /// Q = Σ wₖ(θₖ − θ̄)² with wₖ = 1/seₖ² and θ̄ = Σwₖθₖ/Σwₖ.
    pub statistic: f64,
    /// k − 1.
    pub df: usize,
    /// P(χ²_df > Q).
    pub p_value: f64,
}

/// Cochran's Q from estimates with their standard errors, as
/// `statsmodels.stats.meta_analysis.combine_effects(θ, se²).test_homogeneity()`.
pub fn homogeneity_q(estimates: &[(f64, f64)]) -> StatsResult<Homogeneity> {
    if estimates.len() < 2 {
        return Err(StatsError::TooFew {
            what: "a homogeneity test",
            need: 2,
            got: estimates.len(),
        });
    }
    if estimates
        .iter()
        .any(|(t, se)| !t.is_finite() || !se.is_finite() || *se <= 0.0)
    {
        return Err(StatsError::InvalidParameter(
            "homogeneity needs finite estimates with positive standard errors".into(),
        ));
    }
    let (mut w, mut wt) = (0.0, 0.0);
    for (t, se) in estimates {
        w += 1.0 / (se * se);
        wt += t / (se * se);
    }
    let mean = wt / w;
    let statistic: f64 = estimates
        .iter()
        .map(|(t, se)| (t - mean).powi(2) / (se * se))
        .sum();
    let df = estimates.len() - 1;
    Ok(Homogeneity {
        statistic,
        df,
        p_value: super::dist::chi2_sf(statistic, df as f64)?,
    })
}
