//! Two-stage least squares from per-arm moments, for a constant and arm-indicator instruments.

use super::{check_first_stage_rss, check_residuals, effective_f, FirstStage, Sargan, TwoSls};
use crate::stats::linalg::{sandwich, wald_quadratic, Square};
use crate::stats::{check_finite, StatsError, StatsResult};

/// Per-arm sufficient statistics: size, means and within-arm centred sums of squares and
/// cross-products (two passes over units, so no cancellation; or from a database's sums).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArmMoments {
    pub n: f64,
    /// Mean of the endogenous regressor (the SLI).
    pub x: f64,
    /// Mean of the outcome.
    pub y: f64,
    pub sxx: f64,
    pub syy: f64,
    pub sxy: f64,
}

impl ArmMoments {
    /// From sums of shifted values u = x − kx and v = y − ky: n, Σu, Σv, Σu², Σv², Σuv, so
    /// x̄ = kx + ū and Sxx = Σu² − n·ū² (and so on). The subtraction loses about
    /// log₁₀(1 + (x̄ − kx)²/s²) digits: with a shift near the mean (any observed value will
    /// do) almost none, where raw sums (k = 0) lose log₁₀(x̄²/s²).
    pub fn from_shifted_sums(
        n: f64,
        [su, sv, suu, svv, suv]: [f64; 5],
        (kx, ky): (f64, f64),
    ) -> ArmMoments {
        if n <= 0.0 {
            return ArmMoments::default();
        }
        let (u, v) = (su / n, sv / n);
        ArmMoments {
            n,
            x: kx + u,
            y: ky + v,
            sxx: (suu - n * u * u).max(0.0),
            syy: (svv - n * v * v).max(0.0),
            sxy: suv - n * u * v,
        }
    }
}

/// [`two_sls`] for the design sloproof uses — a constant as the only exogenous regressor and the
/// indicators of every arm but `base` as instruments — computed from per-arm moments in O(n)
/// instead of three QR factorisations. Every output equals `two_sls`'s (tests compare them to
/// 1e-9 relative):
///
/// * first stage: x̂ᵢ = x̄ₐ₍ᵢ₎, RSSᵤ = Σₐ Sxxₐ, RSSᵣ = RSSᵤ + S_b with S_b = Σₐ nₐ(x̄ₐ − x̄)²;
///   the robust Wald test uses the HC0 variances of the arm means vₐ = Sxxₐ/nₐ² (× n/(n − k_z)),
///   so Var(x̄ₐ − x̄_base) = vₐ + v_base and Cov = v_base;
/// * slope β₁ = Σₐ nₐ(x̄ₐ − x̄)(ȳₐ − ȳ)/S_b, β₀ = ȳ − β₁x̄; with dₐ = ȳₐ − β₀ − β₁x̄ₐ the
///   residual sum of squares of arm a is Eₐ = Syyₐ − 2β₁Sxyₐ + β₁²Sxxₐ + nₐdₐ²;
/// * (X̂ᵀX̂)⁻¹ = [[1/n + x̄²/S_b, −x̄/S_b], [−x̄/S_b, 1/S_b]], meat Σₐ Eₐ[1, x̄ₐ]ᵀ[1, x̄ₐ];
/// * Sargan: n·(1 − uᵀu/eᵀe) = n·Σₐ nₐdₐ²/eᵀe, as uᵀu = Σₐ (Eₐ − nₐdₐ²).
pub fn two_sls_arms(
    y: &[f64],
    endog: &[f64],
    endog_name: &str,
    arms: &[u32],
    n_arms: usize,
    base: usize,
    debiased: bool,
) -> StatsResult<TwoSls> {
    let m = arm_moments(y, endog, arms, n_arms, base)?;
    two_sls_from_arm_moments(&m, endog_name, base, debiased)
}

/// [`two_sls_arms`] from each arm's moments (in arm order, `base` the control), for data that
/// is summarised where it is stored; needs every arm non-empty and more units than arms.
pub fn two_sls_from_arm_moments(
    m: &[ArmMoments],
    endog_name: &str,
    base: usize,
    debiased: bool,
) -> StatsResult<TwoSls> {
    if m.len() < 2 || base >= m.len() {
        return Err(StatsError::NoFirstStage("no excluded instruments".into()));
    }
    if let Some(a) = m.iter().position(|g| g.n <= 0.0) {
        return Err(StatsError::Singular(format!(
            "arm {a} (in the experiment's order, from 0) has no units with both values"
        )));
    }
    let n = m.iter().map(|g| g.n).sum::<f64>() as usize;
    if n <= m.len() {
        return Err(StatsError::TooFew {
            what: "a regression (more rows than columns)",
            need: m.len() + 1,
            got: n,
        });
    }
    let p = Pooled::of(m, n);
    let first_stage = arm_first_stage(m, &p, base, debiased)?;
    // Second stage. The QR route declares the design rank-deficient when the fitted exposure is
    // constant relative to its scale; mirror that with the same relative tolerance.
    let xhat_norm2: f64 = m.iter().map(|g| g.n * g.x * g.x).sum();
    if p.sb <= 0.0 || p.sb.sqrt() <= crate::stats::linalg::RANK_TOLERANCE * xhat_norm2.sqrt() {
        return Err(StatsError::NoFirstStage(
            "the instruments do not move the endogenous regressor".into(),
        ));
    }
    let (coefficients, unadjusted, robust, sargan) = arm_second_stage(m, &p, debiased)?;
    Ok(TwoSls {
        estimates: super::IvEstimates {
            names: vec!["const".to_owned(), endog_name.to_owned()],
            coefficients,
            n,
            k: 2,
            debiased,
            unadjusted,
            robust,
        },
        first_stage,
        sargan,
    })
}

/// Checks the inputs of [`two_sls_arms`] and computes each arm's moments in two passes.
fn arm_moments(
    y: &[f64],
    endog: &[f64],
    arms: &[u32],
    n_arms: usize,
    base: usize,
) -> StatsResult<Vec<ArmMoments>> {
    check_finite("2sls outcome", y)?;
    check_finite("2sls endogenous regressor", endog)?;
    let n = y.len();
    if endog.len() != n || arms.len() != n {
        return Err(StatsError::LengthMismatch(
            "outcome, endogenous regressor and arms differ in length".into(),
        ));
    }
    if n_arms < 2 || base >= n_arms {
        return Err(StatsError::NoFirstStage("no excluded instruments".into()));
    }
    if arms.iter().any(|&a| a as usize >= n_arms) {
        return Err(StatsError::InvalidParameter(
            "arm index out of range".into(),
        ));
    }
    if n <= n_arms {
        return Err(StatsError::TooFew {
            what: "a regression (more rows than columns)",
            need: n_arms + 1,
            got: n,
        });
    }
    let mut m = vec![ArmMoments::default(); n_arms];
    // Sums of each value less its arm's first (exact for values constant within an arm, whose
    // mean then is that value and their spread exactly 0; 0.3 summed n times is not n·0.3).
    let mut first: Vec<Option<(f64, f64)>> = vec![None; n_arms];
    for i in 0..n {
        let a = arms[i] as usize;
        let (x0, y0) = *first[a].get_or_insert((endog[i], y[i]));
        let g = &mut m[a];
        g.n += 1.0;
        g.x += endog[i] - x0;
        g.y += y[i] - y0;
    }
    if let Some(a) = m.iter().position(|g| g.n == 0.0) {
        return Err(StatsError::Singular(format!(
            "arm {a} (in the experiment's order, from 0) has no units with both values"
        )));
    }
    for (g, (x0, y0)) in m.iter_mut().zip(first.into_iter().flatten()) {
        g.x = x0 + g.x / g.n;
        g.y = y0 + g.y / g.n;
    }
    for i in 0..n {
        let g = &mut m[arms[i] as usize];
        let (dx, dy) = (endog[i] - g.x, y[i] - g.y);
        g.sxx += dx * dx;
        g.syy += dy * dy;
        g.sxy += dx * dy;
    }
    Ok(m)
}

/// Pooled quantities of the arm moments: n, x̄, ȳ, RSSᵤ = Σₐ Sxxₐ and S_b = Σₐ nₐ(x̄ₐ − x̄)².
struct Pooled {
    n: f64,
    xbar: f64,
    ybar: f64,
    rss_u: f64,
    sb: f64,
}

impl Pooled {
    fn of(m: &[ArmMoments], n: usize) -> Pooled {
        let nf = n as f64;
        let xbar = m.iter().map(|g| g.n * g.x).sum::<f64>() / nf;
        Pooled {
            n: nf,
            xbar,
            ybar: m.iter().map(|g| g.n * g.y).sum::<f64>() / nf,
            rss_u: m.iter().map(|g| g.sxx).sum(),
            sb: m.iter().map(|g| g.n * (g.x - xbar) * (g.x - xbar)).sum(),
        }
    }
}

/// The first stage from arm moments: F, the robust Wald F and the partial R².
fn arm_first_stage(
    m: &[ArmMoments],
    p: &Pooled,
    base: usize,
    debiased: bool,
) -> StatsResult<FirstStage> {
    let rss_r = p.rss_u + p.sb;
    check_first_stage_rss(rss_r, p.rss_u)?;
    let q = m.len() - 1;
    let df_u = p.n - m.len() as f64;
    let f_stat = (p.sb / q as f64) / (p.rss_u / df_u);
    let fs_scale = if debiased { p.n / df_u } else { 1.0 };
    let v: Vec<f64> = m.iter().map(|g| g.sxx / (g.n * g.n) * fs_scale).collect();
    let others: Vec<usize> = (0..m.len()).filter(|a| *a != base).collect();
    let b: Vec<f64> = others.iter().map(|&a| m[a].x - m[base].x).collect();
    let cov: Square = others
        .iter()
        .map(|&a| {
            others
                .iter()
                .map(|&c| v[base] + if a == c { v[a] } else { 0.0 })
                .collect()
        })
        .collect();
    let robust_f_stat = wald_quadratic(&b, &cov)? / q as f64;
    // S = Z̃ᵀZ̃ for the indicators of the non-base arms after removing the constant:
    // S_ac = nₐ·δ_ac − nₐn_c/n; π̂ᵀSπ̂ is the between-arm sum of squares S_b.
    let s: Square = others
        .iter()
        .map(|&a| {
            others
                .iter()
                .map(|&c| {
                    let diag = if a == c { m[a].n } else { 0.0 };
                    diag - m[a].n * m[c].n / p.n
                })
                .collect()
        })
        .collect();
    let f_eff = effective_f(p.sb, &cov, &s);
    FirstStage::new(
        q,
        (f_stat, robust_f_stat, f_eff),
        df_u,
        1.0 - p.rss_u / rss_r,
    )
}

/// The second stage from arm moments: coefficients [β₀, β₁], unadjusted and robust
/// covariances, and Sargan's test when over-identified.
fn arm_second_stage(
    m: &[ArmMoments],
    p: &Pooled,
    debiased: bool,
) -> StatsResult<(Vec<f64>, Square, Square, Option<Sargan>)> {
    let (nf, xbar, sb) = (p.n, p.xbar, p.sb);
    let beta1 = m
        .iter()
        .map(|g| g.n * (g.x - xbar) * (g.y - p.ybar))
        .sum::<f64>()
        / sb;
    let beta0 = p.ybar - beta1 * xbar;
    let d: Vec<f64> = m.iter().map(|g| g.y - beta0 - beta1 * g.x).collect();
    let e: Vec<f64> = m
        .iter()
        .zip(&d)
        .map(|(g, d)| {
            let within = (g.syy - 2.0 * beta1 * g.sxy + beta1 * beta1 * g.sxx).max(0.0);
            within + g.n * d * d
        })
        .collect();
    let ee: f64 = e.iter().sum();
    check_residuals(ee, m.iter().all(|g| g.syy == 0.0 && g.y == m[0].y))?;
    let scale = if debiased { nf / (nf - 2.0) } else { 1.0 };
    let bread: Square = vec![
        vec![1.0 / nf + xbar * xbar / sb, -xbar / sb],
        vec![-xbar / sb, 1.0 / sb],
    ];
    let s2 = ee / nf * scale;
    let unadjusted = bread
        .iter()
        .map(|r| r.iter().map(|v| v * s2).collect())
        .collect();
    let mut meat = vec![vec![0.0; 2]; 2];
    for (g, e) in m.iter().zip(&e) {
        let row = [1.0, g.x];
        for r in 0..2 {
            for c in 0..2 {
                meat[r][c] += e * scale * row[r] * row[c];
            }
        }
    }
    let mut robust = sandwich(&bread, &meat);
    // The slope's own variance in centred form, Σₐ Eₐ(x̄ₐ − x̄)²/S_b²: the same number as the
    // sandwich's, without its cancellation when x̄ is large next to the spread of the arm means
    // (an SLI in µs: the uncentred product loses about log₁₀(x̄²/S_b·n) digits).
    robust[1][1] = m
        .iter()
        .zip(&e)
        .map(|(g, e)| e * scale * (g.x - xbar) * (g.x - xbar))
        .sum::<f64>()
        / (sb * sb);
    let q = m.len() - 1;
    let sargan = if q > 1 {
        // eᵀe − uᵀu = Σₐ nₐdₐ² exactly: no cancellation when the arms lie close to one line.
        let explained: f64 = m.iter().zip(&d).map(|(g, d)| g.n * d * d).sum();
        Some(Sargan::new(nf * explained / ee, q - 1)?)
    } else {
        None
    };
    Ok((vec![beta0, beta1], unadjusted, robust, sargan))
}

/// An Anderson–Rubin confidence set for the slope: it is an interval only when the instruments
/// are strong enough; otherwise it is unbounded (two rays or the whole line), and it can be
/// empty when the arms contradict a common slope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArSet {
    /// [low, high] (a bound may be infinite when the set is a single ray).
    Interval(f64, f64),
    /// (−∞, low] ∪ [high, ∞).
    TwoRays(f64, f64),
    WholeLine,
    Empty,
}

/// Anderson & Rubin's (1949) confidence set for β in y = α + βx + u with the arm indicators as
/// instruments, by inverting the homoskedastic AR test in F form: β is in the set when
/// AR(β) = (e′P_Z̃e / k) / (e′M_Z̃e / (n − k − 1)) ≤ F⁻¹(confidence; k, n − k − 1), with e = y − βx
/// centred and Z̃ the k = arms − 1 centred indicators. Valid however weak the instruments. From
/// arm moments e′P_Z̃e = B_yy − 2βB_xy + β²B_xx (between arms) and e′M_Z̃e = W_yy − 2βW_xy +
/// β²W_xx (within), so the set solves one quadratic inequality. Matches `ivmodels`
/// `inverse_anderson_rubin_test(critical_values="f")`.
pub fn anderson_rubin_arms(
    y: &[f64],
    endog: &[f64],
    arms: &[u32],
    n_arms: usize,
    confidence: f64,
) -> StatsResult<ArSet> {
    let m = arm_moments(y, endog, arms, n_arms, 0)?;
    let p = Pooled::of(&m, y.len());
    let k = (n_arms - 1) as f64;
    let dfd = p.n - k - 1.0;
    let c = k * crate::stats::dist::f_ppf(confidence, k, dfd)? / dfd;
    let between = |f: &dyn Fn(&ArmMoments) -> f64| m.iter().map(|g| g.n * f(g)).sum::<f64>();
    let b_xx = p.sb;
    let b_xy = between(&|g| (g.x - p.xbar) * (g.y - p.ybar));
    let b_yy = between(&|g| (g.y - p.ybar) * (g.y - p.ybar));
    let (w_xx, w_xy, w_yy) = m.iter().fold((0.0, 0.0, 0.0), |(a, b, c), g| {
        (a + g.sxx, b + g.sxy, c + g.syy)
    });
    // Quadratic a·β² + b·β + q ≤ 0.
    let a = b_xx - c * w_xx;
    let b = -2.0 * (b_xy - c * w_xy);
    let q = b_yy - c * w_yy;
    Ok(solve_quadratic_set(a, b, q))
}

/// {β : a·β² + b·β + q ≤ 0}.
fn solve_quadratic_set(a: f64, b: f64, q: f64) -> ArSet {
    if a == 0.0 {
        return match b {
            0.0 if q <= 0.0 => ArSet::WholeLine,
            0.0 => ArSet::Empty,
            b if b > 0.0 => ArSet::Interval(f64::NEG_INFINITY, -q / b),
            b => ArSet::Interval(-q / b, f64::INFINITY),
        };
    }
    let disc = b * b - 4.0 * a * q;
    if disc < 0.0 {
        return if a > 0.0 {
            ArSet::Empty
        } else {
            ArSet::WholeLine
        };
    }
    // Numerically stable roots.
    let s = -0.5 * (b + b.signum() * disc.sqrt());
    let (r1, r2) = if s == 0.0 { (0.0, 0.0) } else { (s / a, q / s) };
    let (lo, hi) = (r1.min(r2), r1.max(r2));
    if a > 0.0 {
        ArSet::Interval(lo, hi)
    } else {
        ArSet::TwoRays(lo, hi)
    }
}
