//! Small dense linear algebra for regression: Householder QR of a tall design with column
//! equilibration, and inverses of small matrices. Columns are stored separately (column-major),
//! as regressions here are tall (n up to millions) and narrow (p ≤ a few dozen).

// Matrix code reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

use super::{StatsError, StatsResult};

/// A square matrix as rows.
pub type Square = Vec<Vec<f64>>;

/// Relative size of a pivot, after scaling columns to unit norm, below which the design is
/// declared rank-deficient.
pub(crate) const RANK_TOLERANCE: f64 = 1e-11;

/// 1 − R² of a column on the others at or below which [`solve_normal`] calls a design collinear.
/// Normal equations square the condition number, so this is looser than [`RANK_TOLERANCE`] (a
/// QR pivot, i.e. √(1 − R²), of 1e-11): at 1e-10 the coefficients keep about six significant
/// digits.
pub const COLLINEAR_TOLERANCE: f64 = 1e-10;

/// Householder QR factorisation X·D⁻¹ = Q·R of a design whose columns were scaled by their
/// Euclidean norms D (Golub & Van Loan, "Matrix Computations", §5.2). Scaling makes the
/// factorisation of badly scaled designs such as NIST Longley accurate.
pub struct Qr {
    n: usize,
    p: usize,
    /// Householder vectors vₖ (entries k..n), with their squared norms.
    v: Vec<Vec<f64>>,
    vnorm2: Vec<f64>,
    /// Upper triangular R, row-major p×p.
    r: Square,
    /// Column norms D.
    scale: Vec<f64>,
}

impl Qr {
    /// Factorises the design with columns `cols` (each of length n); `names` label errors.
    pub fn new(cols: &[&[f64]], names: &[&str]) -> StatsResult<Qr> {
        let p = cols.len();
        let n = cols.first().map_or(0, |c| c.len());
        if cols.iter().any(|c| c.len() != n) {
            return Err(StatsError::LengthMismatch(
                "design columns differ in length".into(),
            ));
        }
        if n <= p {
            return Err(StatsError::TooFew {
                what: "a regression (more rows than columns)",
                need: p + 1,
                got: n,
            });
        }
        let mut scale = Vec::with_capacity(p);
        let mut a: Vec<Vec<f64>> = Vec::with_capacity(p);
        for (j, c) in cols.iter().enumerate() {
            if c.iter().any(|x| !x.is_finite()) {
                return Err(StatsError::NonFinite("design matrix"));
            }
            let norm = c.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                return Err(StatsError::Singular(format!(
                    "column '{}' is all zeros",
                    names.get(j).unwrap_or(&"?")
                )));
            }
            scale.push(norm);
            a.push(c.iter().map(|x| x / norm).collect());
        }
        let mut r = vec![vec![0.0; p]; p];
        let mut v = Vec::with_capacity(p);
        let mut vnorm2 = Vec::with_capacity(p);
        for k in 0..p {
            let x0 = a[k][k];
            let norm = a[k][k..].iter().map(|t| t * t).sum::<f64>().sqrt();
            let alpha = if x0 > 0.0 { -norm } else { norm };
            let mut vk: Vec<f64> = a[k][k..].to_vec();
            vk[0] -= alpha;
            let vv: f64 = vk.iter().map(|t| t * t).sum();
            for j in k..p {
                if vv > 0.0 {
                    let dot: f64 = vk.iter().zip(&a[j][k..]).map(|(s, t)| s * t).sum();
                    let f = 2.0 * dot / vv;
                    for (aj, vi) in a[j][k..].iter_mut().zip(&vk) {
                        *aj -= f * vi;
                    }
                }
                r[k][j] = a[j][k];
            }
            r[k][k] = if vv > 0.0 { alpha } else { x0 };
            v.push(vk);
            vnorm2.push(vv);
        }
        let max_diag = (0..p).map(|k| r[k][k].abs()).fold(0.0, f64::max);
        for k in 0..p {
            if r[k][k].abs() <= RANK_TOLERANCE * max_diag.max(1.0) {
                return Err(StatsError::Singular(format!(
                    "column '{}' is (nearly) a linear combination of the columns before it",
                    names.get(k).unwrap_or(&"?")
                )));
            }
        }
        Ok(Qr {
            n,
            p,
            v,
            vnorm2,
            r,
            scale,
        })
    }

    /// Least-squares coefficients β minimising ‖y − Xβ‖.
    pub fn solve(&self, y: &[f64]) -> StatsResult<Vec<f64>> {
        if y.len() != self.n {
            return Err(StatsError::LengthMismatch(format!(
                "{} outcomes for {} rows",
                y.len(),
                self.n
            )));
        }
        let mut qty = y.to_vec();
        for k in 0..self.p {
            if self.vnorm2[k] > 0.0 {
                let dot: f64 = self.v[k].iter().zip(&qty[k..]).map(|(s, t)| s * t).sum();
                let f = 2.0 * dot / self.vnorm2[k];
                for (q, vi) in qty[k..].iter_mut().zip(&self.v[k]) {
                    *q -= f * vi;
                }
            }
        }
        let mut b = vec![0.0; self.p];
        for k in (0..self.p).rev() {
            let s: f64 = ((k + 1)..self.p).map(|j| self.r[k][j] * b[j]).sum();
            b[k] = (qty[k] - s) / self.r[k][k];
        }
        Ok(b.iter().zip(&self.scale).map(|(bk, d)| bk / d).collect())
    }

    /// R⁻¹ (upper triangular) of the scaled factorisation.
    fn r_inverse(&self) -> Square {
        let p = self.p;
        let mut inv = vec![vec![0.0; p]; p];
        for j in 0..p {
            inv[j][j] = 1.0 / self.r[j][j];
            for i in (0..j).rev() {
                let s: f64 = ((i + 1)..=j).map(|k| self.r[i][k] * inv[k][j]).sum();
                inv[i][j] = -s / self.r[i][i];
            }
        }
        inv
    }

    /// (XᵀX)⁻¹ = D⁻¹·R⁻¹·R⁻ᵀ·D⁻¹.
    pub fn xtx_inverse(&self) -> Square {
        let ri = self.r_inverse();
        let p = self.p;
        let mut out = vec![vec![0.0; p]; p];
        for i in 0..p {
            for j in 0..p {
                let s: f64 = (i.max(j)..p).map(|k| ri[i][k] * ri[j][k]).sum();
                out[i][j] = s / (self.scale[i] * self.scale[j]);
            }
        }
        out
    }

    /// Leverages hᵢ = xᵢᵀ(XᵀX)⁻¹xᵢ = ‖R⁻ᵀ·D⁻¹xᵢ‖², the diagonal of the hat matrix.
    pub fn leverage(&self, cols: &[&[f64]]) -> Vec<f64> {
        let ri = self.r_inverse();
        let p = self.p;
        let mut z = vec![0.0; p];
        (0..self.n)
            .map(|i| {
                for k in 0..p {
                    z[k] = (0..=k).map(|j| ri[j][k] * cols[j][i] / self.scale[j]).sum();
                }
                z.iter().map(|t| t * t).sum()
            })
            .collect()
    }
}

/// B·M·B for symmetric p×p B and M: the sandwich of a robust covariance.
pub fn sandwich(bread: &Square, meat: &Square) -> Square {
    let p = bread.len();
    let bm: Square = (0..p)
        .map(|i| {
            (0..p)
                .map(|j| (0..p).map(|k| bread[i][k] * meat[k][j]).sum())
                .collect()
        })
        .collect();
    (0..p)
        .map(|i| {
            (0..p)
                .map(|j| (0..p).map(|k| bm[i][k] * bread[k][j]).sum())
                .collect()
        })
        .collect()
}

/// Σᵢ wᵢ·xᵢxᵢᵀ over the rows xᵢ of a column-major design.
pub fn weighted_cross(cols: &[&[f64]], w: &[f64]) -> Square {
    let p = cols.len();
    let mut m = vec![vec![0.0; p]; p];
    for a in 0..p {
        for b in a..p {
            let s: f64 = cols[a]
                .iter()
                .zip(cols[b].iter())
                .zip(w)
                .map(|((x, y), wi)| x * y * wi)
                .sum();
            m[a][b] = s;
            m[b][a] = s;
        }
    }
    m
}

/// Inverse of a small square matrix by Gauss–Jordan elimination with partial pivoting.
pub fn invert(m: &Square) -> StatsResult<Square> {
    let p = m.len();
    let mut a: Square = m
        .iter()
        .map(|row| row.iter().copied().chain((0..p).map(|_| 0.0)).collect())
        .collect();
    for (i, row) in a.iter_mut().enumerate() {
        row[p + i] = 1.0;
    }
    let scale = m
        .iter()
        .flatten()
        .fold(0.0f64, |s, x| s.max(x.abs()))
        .max(f64::MIN_POSITIVE);
    for c in 0..p {
        let piv = (c..p)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        if a[piv][c].abs() <= 1e-14 * scale {
            return Err(StatsError::Singular("matrix is not invertible".into()));
        }
        a.swap(c, piv);
        let d = a[c][c];
        a[c].iter_mut().for_each(|x| *x /= d);
        for r in 0..p {
            if r != c {
                let f = a[r][c];
                if f != 0.0 {
                    let pivot_row = a[c].clone();
                    a[r].iter_mut()
                        .zip(&pivot_row)
                        .for_each(|(x, y)| *x -= f * y);
                }
            }
        }
    }
    Ok(a.into_iter().map(|row| row[p..].to_vec()).collect())
}

/// Quadratic form bᵀ·M⁻¹·b.
pub fn wald_quadratic(b: &[f64], m: &Square) -> StatsResult<f64> {
    let inv = invert(m)?;
    Ok((0..b.len())
        .map(|i| (0..b.len()).map(|j| b[i] * inv[i][j] * b[j]).sum::<f64>())
        .sum())
}

/// Solution of the normal equations A·β = b for a small cross-product matrix A = XᵀX, with
/// (XᵀX)⁻¹. A is scaled to unit diagonal (C = D⁻¹AD⁻¹, D = √diag A) and factorised by Cholesky
/// (Golub & Van Loan §4.2). In that scale the k-th squared pivot is 1 − R²ₖ of column k on the
/// columns before it, so a squared pivot at or below [`COLLINEAR_TOLERANCE`] means the columns
/// are collinear to working precision: the answer is `None`, for the caller to skip that design.
pub fn solve_normal(a: &Square, b: &[f64]) -> Option<(Vec<f64>, Square)> {
    let p = a.len();
    if b.len() != p || a.iter().any(|r| r.len() != p) {
        return None;
    }
    let d: Vec<f64> = (0..p).map(|i| a[i][i].sqrt()).collect();
    if d.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    // Lower-triangular L with C = L·Lᵀ.
    let mut l = vec![vec![0.0; p]; p];
    for j in 0..p {
        let mut s = a[j][j] / (d[j] * d[j]);
        for k in 0..j {
            s -= l[j][k] * l[j][k];
        }
        if s.is_nan() || s <= COLLINEAR_TOLERANCE {
            return None;
        }
        l[j][j] = s.sqrt();
        for i in (j + 1)..p {
            let mut t = a[i][j] / (d[i] * d[j]);
            for k in 0..j {
                t -= l[i][k] * l[j][k];
            }
            l[i][j] = t / l[j][j];
        }
    }
    // C⁻¹ column by column: solve L·Lᵀ·e = unit vector.
    let solve = |rhs: &[f64]| -> Vec<f64> {
        let mut z = vec![0.0; p];
        for i in 0..p {
            let s: f64 = (0..i).map(|k| l[i][k] * z[k]).sum();
            z[i] = (rhs[i] - s) / l[i][i];
        }
        let mut x = vec![0.0; p];
        for i in (0..p).rev() {
            let s: f64 = ((i + 1)..p).map(|k| l[k][i] * x[k]).sum();
            x[i] = (z[i] - s) / l[i][i];
        }
        x
    };
    let scaled_b: Vec<f64> = (0..p).map(|i| b[i] / d[i]).collect();
    let beta: Vec<f64> = solve(&scaled_b)
        .iter()
        .zip(&d)
        .map(|(x, di)| x / di)
        .collect();
    let mut inv = vec![vec![0.0; p]; p];
    for j in 0..p {
        let mut e = vec![0.0; p];
        e[j] = 1.0;
        for (i, v) in solve(&e).into_iter().enumerate() {
            inv[i][j] = v / (d[i] * d[j]);
        }
    }
    Some((beta, inv))
}
