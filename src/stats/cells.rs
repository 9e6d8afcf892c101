//! A sample compressed to cells: distinct rows of values with counts, so a bootstrap can run
//! from `GROUP BY value` aggregates instead of per-unit rows (see `stats::compressed`).
//!
//! Rows are counted exactly while there are at most `cap` distinct ones. Beyond that, values
//! are binned by truncating their binary mantissa to `k` bits (k = [`FIRST_BINNED_BITS`], then
//! fewer until the cells fit): a bin holds the values whose leading `k + 1` significant bits
//! agree, so it spans at most 2⁻ᵏ of its values' magnitude. A cell stands for its values by
//! their common value when they are all equal (so 0, 1, integers and any repeated value stay
//! exact) and by the bin's midpoint otherwise, which is within 2⁻⁽ᵏ⁺¹⁾·|v| of every value v
//! in it. Hence, for the same weights, a weighted mean computed from cells differs from the
//! one computed from the units by at most 2⁻⁽ᵏ⁺¹⁾ times the weighted mean of |v|, and a
//! quantile (binning is monotone) by at most 2⁻⁽ᵏ⁺¹⁾ times the larger |v| it interpolates.
//!
//! Truncation composes (truncating to k bits and then to k − 1 is truncating to k − 1), and
//! the level reached is the finest whose distinct cells over the whole sample fit in `cap`,
//! so the cells do not depend on the order rows arrive in nor on how the sample was split
//! and merged: results are deterministic.

use std::collections::HashMap;

/// Mantissa bits of the first binned level (relative bin width 2⁻¹²).
pub const FIRST_BINNED_BITS: u32 = 12;

/// How finely a sample's cells represent its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolution {
    /// Every distinct row is a cell: the cells are the sample.
    Exact,
    /// Values binned with `bits` mantissa bits: each is within `relative_error` = 2⁻⁽ᵇⁱᵗˢ⁺¹⁾
    /// of |v| from its cell's value.
    Binned { bits: u32, relative_error: f64 },
}

impl Resolution {
    /// The largest relative distance of a value from its cell's value (0 when exact).
    pub fn relative_error(self) -> f64 {
        match self {
            Resolution::Exact => 0.0,
            Resolution::Binned { relative_error, .. } => relative_error,
        }
    }
}

/// Keeps the sign, the exponent and the first `bits` mantissa bits (NaN and infinities are
/// kept whole). `None` truncates nothing.
fn truncate(bits_of_value: u64, bits: Option<u32>) -> u64 {
    let Some(k) = bits else {
        return bits_of_value;
    };
    let v = f64::from_bits(bits_of_value);
    if !v.is_finite() {
        return bits_of_value;
    }
    let drop = 52 - k.min(52);
    bits_of_value & !((1u64 << drop) - 1)
}

/// The value a cell stands for: the common value when all of its values are equal to its key,
/// otherwise the midpoint of the bin [key, key + 2^(e−k)) (in magnitude).
fn representative(key: u64, mixed: bool, bits: Option<u32>) -> f64 {
    let v = f64::from_bits(key);
    match bits {
        Some(k) if mixed && v.is_finite() => {
            let drop = 52 - k.min(52);
            let next = f64::from_bits(key + (1u64 << drop));
            v + (next - v) / 2.0
        }
        _ => v,
    }
}

/// Counts rows of `C` values (NaN allowed, meaning "no value") into at most `cap` cells.
#[derive(Debug, Clone)]
pub struct CellCounter<const C: usize> {
    cap: usize,
    /// `None`: exact; `Some(k)`: k mantissa bits.
    bits: Option<u32>,
    /// Key → (units, whether the cell holds values other than its key, per column).
    cells: HashMap<[u64; C], (u64, [bool; C])>,
}

/// A counted sample: distinct rows (ascending, by `f64::total_cmp` column by column) with
/// their counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Cells<const C: usize> {
    pub rows: Vec<[f64; C]>,
    pub counts: Vec<u64>,
    pub resolution: Resolution,
}

impl<const C: usize> Cells<C> {
    /// Units in all cells.
    pub fn units(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl<const C: usize> CellCounter<C> {
    /// A counter that keeps at most `cap` cells (at least 2).
    pub fn new(cap: usize) -> Self {
        CellCounter {
            cap: cap.max(2),
            bits: None,
            cells: HashMap::new(),
        }
    }

    /// Counts `count` units with the values `row`.
    pub fn add(&mut self, row: [f64; C], count: u64) {
        let raw: [u64; C] = std::array::from_fn(|c| row[c].to_bits());
        let key: [u64; C] = std::array::from_fn(|c| truncate(raw[c], self.bits));
        let mixed: [bool; C] = std::array::from_fn(|c| key[c] != raw[c]);
        self.insert(key, count, mixed);
        if self.cells.len() > self.cap {
            self.coarsen();
        }
    }

    fn insert(&mut self, key: [u64; C], count: u64, mixed: [bool; C]) {
        let e = self.cells.entry(key).or_insert((0, [false; C]));
        e.0 += count;
        for (m, x) in e.1.iter_mut().zip(mixed) {
            *m |= x;
        }
    }

    /// Bins one level coarser until the cells fit (or values are cut to their exponent).
    fn coarsen(&mut self) {
        while self.cells.len() > self.cap && self.bits != Some(0) {
            let bits = match self.bits {
                None => FIRST_BINNED_BITS,
                Some(k) => k - 1,
            };
            self.rebin(bits);
        }
    }

    fn rebin(&mut self, bits: u32) {
        self.bits = Some(bits);
        let old = std::mem::take(&mut self.cells);
        for (key, (count, mixed)) in old {
            let new: [u64; C] = std::array::from_fn(|c| truncate(key[c], Some(bits)));
            let m: [bool; C] = std::array::from_fn(|c| mixed[c] || new[c] != key[c]);
            self.insert(new, count, m);
        }
    }

    /// Adds another counter's cells (of a disjoint part of the sample).
    pub fn merge(&mut self, mut other: CellCounter<C>) {
        match (self.bits, other.bits) {
            (Some(a), Some(b)) if b < a => self.rebin(b),
            (None, Some(b)) => self.rebin(b),
            (Some(a), None) => other.rebin(a),
            (Some(a), Some(b)) if a < b => other.rebin(a),
            _ => {}
        }
        for (key, (count, mixed)) in other.cells {
            self.insert(key, count, mixed);
        }
        if self.cells.len() > self.cap {
            self.coarsen();
        }
    }

    /// The cells in ascending order of their values.
    pub fn finish(self) -> Cells<C> {
        let bits = self.bits;
        let mut cells: Vec<([f64; C], u64)> = self
            .cells
            .into_iter()
            .map(|(key, (count, mixed))| {
                let row = std::array::from_fn(|c| representative(key[c], mixed[c], bits));
                (row, count)
            })
            .collect();
        cells.sort_unstable_by(|a, b| {
            (0..C)
                .map(|c| a.0[c].total_cmp(&b.0[c]))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Cells {
            rows: cells.iter().map(|c| c.0).collect(),
            counts: cells.iter().map(|c| c.1).collect(),
            resolution: match bits {
                None => Resolution::Exact,
                Some(k) => Resolution::Binned {
                    bits: k,
                    relative_error: 2f64.powi(-(k as i32 + 1)),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, LogNormal};

    fn lognormal(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let d = LogNormal::new(5.5, 0.8).unwrap();
        (0..n).map(|_| d.sample(&mut rng)).collect()
    }

    #[test]
    fn repeated_values_stay_exact() {
        let mut c = CellCounter::<2>::new(10);
        for i in 0..1000 {
            c.add([(i % 3) as f64, f64::NAN], 1);
            c.add([(i % 3) as f64, 1.0], 2);
        }
        let cells = c.finish();
        assert_eq!(cells.resolution, Resolution::Exact);
        assert_eq!(cells.rows.len(), 6);
        assert_eq!(cells.units(), 3000);
        assert_eq!(cells.rows[0], [0.0, 1.0]);
        assert!(cells.rows[1][0] == 0.0 && cells.rows[1][1].is_nan());
        assert_eq!(cells.counts[0], 2 * 334);
    }

    #[test]
    fn binned_values_are_within_the_stated_error() {
        let x = lognormal(50_000, 3);
        let mut c = CellCounter::<1>::new(2000);
        for v in &x {
            c.add([*v], 1);
        }
        let cells = c.finish();
        let Resolution::Binned { relative_error, .. } = cells.resolution else {
            panic!("50,000 distinct values fit in 2,000 cells only binned");
        };
        assert!(cells.rows.len() <= 2000);
        assert_eq!(cells.units(), 50_000);
        // Every value is within the error of the cell it fell in: find it by bisection.
        for v in &x {
            let i = cells.rows.partition_point(|r| r[0] < *v);
            let near = [i.saturating_sub(1), i.min(cells.rows.len() - 1)]
                .iter()
                .map(|j| (cells.rows[*j][0] - v).abs())
                .fold(f64::INFINITY, f64::min);
            assert!(near <= relative_error * v.abs(), "{v}: {near}");
        }
    }

    #[test]
    fn cells_do_not_depend_on_order_or_split() {
        let x = lognormal(20_000, 9);
        let mut whole = CellCounter::<2>::new(700);
        for (i, v) in x.iter().enumerate() {
            whole.add([*v, (i % 2) as f64], 1);
        }
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
        let (mut a, mut b) = (CellCounter::<2>::new(700), CellCounter::<2>::new(700));
        for (i, v) in x.iter().enumerate().rev() {
            let part = if rng.random_bool(0.2) { &mut a } else { &mut b };
            part.add([*v, (i % 2) as f64], 1);
        }
        a.merge(b);
        assert_eq!(whole.finish(), a.finish());
    }
}
