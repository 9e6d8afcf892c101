//! Block-permutation calibration of the robust cross-correlation scores (`robust_ccf`): the
//! candidate's whitened series is cut into m blocks of b windows, the blocks are shuffled
//! (the target stays), and each shuffle's largest |z| is one draw of the statistic under "the
//! candidate tells nothing about the target". The p-value is (1 + #{draws ≥ observed}) /
//! (1 + draws), valid when the candidate's blocks are exchangeable: whatever the marginal
//! distribution of its changes (skewed, heavy-tailed). When the stretch covers at least 8
//! periods of a daily cycle the blocks are whole days, so every shuffle keeps the time of day
//! aligned and carries the same spurious correlation two daily profiles make: the draws
//! calibrate it away. Otherwise m = n / (2K + 1), between 8 and 64 (fewer when n·(2K + 1) is
//! large, to bound the work); a tail of fewer than b windows stays in place.
//!
//! The shuffles are cheap because the sums decompose over blocks: with y fixed at absolute
//! positions, Σₜ yₜ₊ₖ x*ₜ = Σᵢ C_{i,π(i)}(k) + tail(k), where C_{ij}(k) = Σₛ y_{ib+s+k} x_{jb+s}
//! (terms with the y index outside the series dropped), and likewise the denominator with
//! squares. Building C costs m·n·(2K + 1); each shuffle then costs m·(2K + 1). The shuffles come
//! from a generator with a fixed seed, so the same data give the same p-values everywhere.
//! References: Politis & Romano's block methods; the permutation p-value convention of Phipson
//! & Smyth (2010). Checked by simulation (`tests/leading_simulation.rs`).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Shuffles drawn for a family of up to 10 candidates (p-values as small as 1/2000), and for
/// larger ones (as small as 1/10,000, so that Holm's smallest threshold, alpha / 50, is
/// reached with room to spare).
pub const PERMUTATIONS: usize = 1999;
pub const PERMUTATIONS_LARGE: usize = 9999;

/// The shuffles for a family of `candidates` compared at once.
pub fn shuffles_for(candidates: usize) -> usize {
    if candidates <= 10 {
        PERMUTATIONS
    } else {
        PERMUTATIONS_LARGE
    }
}
/// Fewest and most blocks.
pub const MIN_BLOCKS: usize = 8;
pub const MAX_BLOCKS: usize = 64;
/// Most multiply-adds spent building the block sums of one candidate.
const WORK: usize = 100_000_000;
/// Fewest whole periods for day blocks.
const MIN_PERIODS: usize = 8;

/// How the series is cut: block length, blocks, and whether blocks are whole periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocks {
    pub len: usize,
    pub count: usize,
    pub seasonal: bool,
}

/// The blocks for n windows, lags ±`max_lag`, and a daily period of `period` windows (if the
/// grid has one).
pub fn blocks(n: usize, max_lag: usize, period: Option<usize>) -> Blocks {
    let lags = 2 * max_lag + 1;
    let affordable = (WORK / (n * lags).max(1)).clamp(MIN_BLOCKS, MAX_BLOCKS);
    if let Some(p) = period.filter(|p| *p >= 2 && n / p >= MIN_PERIODS) {
        let days = n / p;
        // At most `affordable` blocks of whole days, and never fewer than 8 when 8 days fit.
        let per_block = days / days.min(affordable);
        let len = p * per_block;
        if n / len >= MIN_BLOCKS {
            return Blocks {
                len,
                count: n / len,
                seasonal: true,
            };
        }
    }
    let count = (n / lags).clamp(MIN_BLOCKS, affordable.max(MIN_BLOCKS));
    Blocks {
        len: n / count,
        count,
        seasonal: false,
    }
}

/// The block sums of one lag: C (m × m), E (m × m), and the tail's two sums.
struct LagSums {
    c: Vec<f64>,
    e: Vec<f64>,
    tail_c: f64,
    tail_e: f64,
}

fn lag_sums(y: &[f64], x: &[f64], b: &Blocks, k: i64) -> LagSums {
    let (n, m, len) = (y.len() as i64, b.count, b.len);
    let (mut c, mut e) = (vec![0.0; m * m], vec![0.0; m * m]);
    for i in 0..m {
        // The offsets s of block i whose y index i·len + s + k lies in the series.
        let start = (i * len) as i64 + k;
        let lo = (-start).clamp(0, len as i64) as usize;
        let hi = (n - start).clamp(0, len as i64) as usize;
        if lo >= hi {
            continue;
        }
        let ys = &y[(start + lo as i64) as usize..(start + hi as i64) as usize];
        for j in 0..m {
            let xs = &x[j * len + lo..j * len + hi];
            let (mut sc, mut se) = (0.0, 0.0);
            for (a, v) in ys.iter().zip(xs) {
                let p = a * v;
                sc += p;
                se += p * p;
            }
            c[i * m + j] = sc;
            e[i * m + j] = se;
        }
    }
    let (mut tail_c, mut tail_e) = (0.0, 0.0);
    for (s, v) in x.iter().enumerate().skip(m * len) {
        let t = s as i64 + k;
        if t >= 0 && t < n {
            let (a, v) = (y[t as usize], *v);
            tail_c += a * v;
            tail_e += a * a * v * v;
        }
    }
    LagSums {
        c,
        e,
        tail_c,
        tail_e,
    }
}

/// The calibrated p-values of one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Shuffles whose largest |z| over lags 1 … K is at least the observed one.
    pub p_lead: f64,
    /// The same over lag 0 and the target first.
    pub p_other: f64,
    /// Shuffles whose (largest lead |z|) − (largest other |z|) is at least the observed
    /// difference: small when the candidate is ahead by more than chance.
    pub p_ahead: f64,
    pub blocks: Blocks,
    pub permutations: usize,
}

/// Calibrates the max test of `x` leading `y` (centred, pre-whitened, equal length) at lags
/// 1 … `max_lag` by `shuffles` block permutations (see the module).
pub fn calibrate(
    y: &[f64],
    x: &[f64],
    max_lag: usize,
    period: Option<usize>,
    shuffles: usize,
) -> Calibration {
    let b = blocks(y.len(), max_lag, period);
    let k = max_lag as i64;
    // Lags −K … K; index K + k.
    let sums: Vec<LagSums> = (-k..=k).map(|lag| lag_sums(y, x, &b, lag)).collect();
    let m = b.count;
    let stat = |perm: &[usize]| {
        let z = |s: &LagSums| {
            let (mut c, mut e) = (s.tail_c, s.tail_e);
            for (i, &j) in perm.iter().enumerate() {
                c += s.c[i * m + j];
                e += s.e[i * m + j];
            }
            if e > 0.0 {
                (c / e.sqrt()).abs()
            } else {
                0.0
            }
        };
        let lead = sums[max_lag + 1..].iter().map(z).fold(0.0, f64::max);
        let other = sums[..=max_lag].iter().map(z).fold(0.0, f64::max);
        (lead, other)
    };
    let identity: Vec<usize> = (0..m).collect();
    let (l0, o0) = stat(&identity);
    let mut rng =
        Xoshiro256PlusPlus::seed_from_u64(0x5107_9e00 ^ ((y.len() as u64) << 8) ^ (k as u64));
    let mut perm = identity.clone();
    let (mut above_l, mut above_o, mut above_d) = (0usize, 0usize, 0usize);
    for _ in 0..shuffles {
        perm.shuffle(&mut rng);
        let (l, o) = stat(&perm);
        above_l += usize::from(l >= l0);
        above_o += usize::from(o >= o0);
        above_d += usize::from(l - o >= l0 - o0);
    }
    let p = |a: usize| (1 + a) as f64 / (1 + shuffles) as f64;
    Calibration {
        p_lead: p(above_l),
        p_other: p(above_o),
        p_ahead: p(above_d),
        blocks: b,
        permutations: shuffles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_whole_days_when_there_are_enough_and_bounded_otherwise() {
        // 10 days of 5-minute windows: day blocks.
        let b = blocks(2880, 12, Some(288));
        assert_eq!((b.len, b.count, b.seasonal), (288, 10, true));
        // 5 days: too few; blocks of about 2K + 1.
        let b = blocks(1440, 12, Some(288));
        assert!(!b.seasonal && b.count == 1440 / 25 && b.len == 25, "{b:?}");
        // Large series: fewer blocks, never fewer than 8.
        let b = blocks(50_000, 120, None);
        assert!(b.count >= MIN_BLOCKS && b.count <= MAX_BLOCKS, "{b:?}");
        assert!(b.count * b.len <= 50_000);
    }

    #[test]
    fn large_families_get_finer_p_values() {
        assert_eq!(shuffles_for(1), PERMUTATIONS);
        assert_eq!(shuffles_for(10), PERMUTATIONS);
        assert_eq!(shuffles_for(11), PERMUTATIONS_LARGE);
        // The smallest p of a large family clears Holm's first threshold at 50 candidates.
        assert!(1.0 / (1.0 + PERMUTATIONS_LARGE as f64) < 0.05 / 50.0 / 5.0);
    }

    #[test]
    fn the_identity_shuffle_gives_the_direct_scores() {
        let n = 300;
        let y: Vec<f64> = (0..n).map(|i| ((i * 37 % 23) as f64) - 11.0).collect();
        let x: Vec<f64> = (0..n).map(|i| ((i * 17 % 29) as f64) - 14.0).collect();
        let b = blocks(n, 5, None);
        for k in [-5i64, 0, 3] {
            let s = lag_sums(&y, &x, &b, k);
            let c: f64 = (0..b.count).map(|i| s.c[i * b.count + i]).sum::<f64>() + s.tail_c;
            let direct: f64 = (0..n as i64)
                .filter(|t| (0..n as i64).contains(&(t + k)))
                .map(|t| y[(t + k) as usize] * x[t as usize])
                .sum();
            assert!(
                (c - direct).abs() < 1e-9 * direct.abs().max(1.0),
                "{k}: {c} vs {direct}"
            );
        }
    }
}
