//! Exact summation of floating-point values: the sum does not depend on the order of the
//! values or on how they were split into partial sums.
//!
//! Every finite f64 is an integer multiple of 2⁻¹⁰⁷⁴ (the smallest subnormal) below 2¹⁰²⁴, so
//! a sum of them is a fixed-point number. [`ExactSum`] holds it in 32-bit digits, digit k
//! weighing 2^(32k − 1074), each kept in an i64 so that 2³⁰ additions fit before carries are
//! propagated. This is the "large superaccumulator" of R. M. Neal, *Fast exact summation using
//! small and large superaccumulators* (2015, arXiv:1505.05571), with 32-bit digits. The result is
//! the exact sum rounded once to the nearest f64 (ties to even), as Python's `math.fsum`
//! returns; tests compare with exact integer arithmetic and check order independence.

/// Digits: 2046 bit positions of a finite f64, 84 bits per addend, and headroom for the sum of
/// up to 2⁶² values of the largest magnitude.
const DIGITS: usize = 68;

/// Additions between carry propagations (each digit grows by less than 2³² per addition).
const CARRY_EVERY: u32 = 1 << 30;

/// An exact running sum of finite f64 values.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactSum {
    digit: [i64; DIGITS],
    pending: u32,
}

impl Default for ExactSum {
    fn default() -> Self {
        ExactSum {
            digit: [0; DIGITS],
            pending: 0,
        }
    }
}

impl ExactSum {
    /// Adds `v` exactly. Non-finite values are not representable and are ignored (callers
    /// only pass finite values: uploads refuse others).
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() || v == 0.0 {
            return;
        }
        let bits = v.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as usize;
        let fraction = bits & ((1u64 << 52) - 1);
        // v = ±mantissa · 2^(position − 1074).
        let (mantissa, position) = if exponent == 0 {
            (fraction, 0)
        } else {
            (fraction | (1u64 << 52), exponent - 1)
        };
        let (k, shift) = (position / 32, position % 32);
        let x = u128::from(mantissa) << shift;
        let pieces = [
            (x & 0xffff_ffff) as i64,
            ((x >> 32) & 0xffff_ffff) as i64,
            (x >> 64) as i64,
        ];
        let negative = v < 0.0;
        for (d, p) in self.digit[k..k + 3].iter_mut().zip(pieces) {
            *d += if negative { -p } else { p };
        }
        self.pending += 1;
        if self.pending == CARRY_EVERY {
            self.propagate();
        }
    }

    /// Adds another exact sum (a partial sum of other values).
    pub fn merge(&mut self, other: &ExactSum) {
        self.propagate();
        let mut other = other.clone();
        other.propagate();
        for (d, o) in self.digit.iter_mut().zip(other.digit) {
            *d += o;
        }
        self.propagate();
    }

    /// Moves carries up: digits below the top end in [0, 2³²), the top one keeps the sign.
    fn propagate(&mut self) {
        for k in 0..DIGITS - 1 {
            let carry = self.digit[k] >> 32;
            self.digit[k] -= carry << 32;
            self.digit[k + 1] += carry;
        }
        self.pending = 0;
    }

    /// The exact sum rounded to the nearest f64 (ties to even; ±∞ beyond the largest finite).
    pub fn value(&self) -> f64 {
        let mut s = self.clone();
        s.propagate();
        let negative = s.digit[DIGITS - 1] < 0;
        if negative {
            for d in s.digit.iter_mut() {
                *d = -*d;
            }
            s.propagate();
        }
        let Some(top) = s.digit.iter().rposition(|&d| d != 0) else {
            return 0.0;
        };
        // The top three digits (at least 65 significant bits) and a sticky bit for the rest,
        // so the one rounding of u128 → f64 is the rounding of the exact value.
        let low = top.saturating_sub(2);
        let mut head: u128 = 0;
        for k in (low..=top).rev() {
            head = (head << 32) | s.digit[k] as u128;
        }
        if s.digit[..low].iter().any(|&d| d != 0) {
            head |= 1;
        }
        let magnitude = scale(head as f64, 32 * low as i32 - 1074);
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// x · 2ⁿ, exact while the result is a normal number (steps keep each factor finite).
fn scale(mut x: f64, mut n: i32) -> f64 {
    while n > 1000 {
        x *= 2f64.powi(1000);
        n -= 1000;
    }
    while n < -1000 {
        // Scale down in two steps near the bottom so the last rounding happens only once.
        if n < -2000 {
            x *= 2f64.powi(-1000);
            n += 1000;
        } else {
            let half = n / 2;
            return x * 2f64.powi(half) * 2f64.powi(n - half);
        }
    }
    x * 2f64.powi(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn sum(values: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        values.iter().for_each(|&v| s.add(v));
        s.value()
    }

    #[test]
    fn cancellations_and_subnormals_are_exact() {
        assert_eq!(sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum(&[1e308, 1e308, -1e308, -1e308, 3.5]), 3.5);
        assert_eq!(sum(&[0.1; 10]), 1.0, "ten doubles 0.1 sum to 1 + 5.6e-17");
        assert_eq!(sum(&[5e-324, 5e-324, -5e-324]), 5e-324);
        assert_eq!(sum(&[-2.5, -0.25]), -2.75);
        assert_eq!(sum(&[]), 0.0);
        // Beyond the largest finite value.
        assert_eq!(sum(&[f64::MAX, f64::MAX]), f64::INFINITY);
    }

    /// Values that are integers times 2⁻²⁰ have an exact integer reference: the i128 sum of
    /// their integers, converted once.
    #[test]
    fn sums_equal_exact_integer_arithmetic_rounded_once() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..200 {
            let n = rng.random_range(1..2_000);
            // At most 53 significant bits, so each value is exactly representable.
            let ints: Vec<i64> = (0..n)
                .map(|_| {
                    let bits = rng.random_range(1..53);
                    let shift = rng.random_range(0..10);
                    let v = rng.random_range(0..1i64 << bits) << shift;
                    if rng.random_bool(0.5) {
                        -v
                    } else {
                        v
                    }
                })
                .collect();
            let values: Vec<f64> = ints.iter().map(|&i| i as f64 * 2f64.powi(-20)).collect();
            let exact: i128 = ints.iter().map(|&i| i128::from(i)).sum();
            assert_eq!(sum(&values), exact as f64 * 2f64.powi(-20), "{ints:?}");
        }
    }

    #[test]
    fn the_sum_does_not_depend_on_order_or_split() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut values: Vec<f64> = (0..100_000)
            .map(|_| {
                let z: f64 = rng.sample(rand_distr::StandardNormal);
                let heavy = (5.5 + 1.2 * z).exp();
                if rng.random_bool(0.3) {
                    -heavy * 1e-3
                } else {
                    heavy
                }
            })
            .collect();
        let whole = sum(&values);
        for _ in 0..5 {
            values.shuffle(&mut rng);
            assert_eq!(sum(&values).to_bits(), whole.to_bits());
            let cut = rng.random_range(0..values.len());
            let (mut a, mut b) = (ExactSum::default(), ExactSum::default());
            values[..cut].iter().for_each(|&v| a.add(v));
            values[cut..].iter().for_each(|&v| b.add(v));
            b.merge(&a);
            assert_eq!(b.value().to_bits(), whole.to_bits());
        }
    }
}
