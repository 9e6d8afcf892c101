//! Invariants that must hold for any input.

use proptest::prelude::*;
use sloproof::stats::descriptive::Moments;
use sloproof::stats::hypothesis::{two_proportion_z_test, welch_t_test};
use sloproof::stats::lift::relative_lift;
use sloproof::stats::multiple::{benjamini_hochberg, holm};

fn sample() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1e3f64..1e3, 3..40)
}

proptest! {
    #[test]
    fn welch_ci_contains_the_estimate_and_swapping_arms_negates(x in sample(), y in sample()) {
        let (Ok(a), Ok(b)) = (welch_t_test(&x, &y, 0.95), welch_t_test(&y, &x, 0.95)) else { return Ok(()) };
        prop_assert!(a.difference.ci_low <= a.difference.estimate && a.difference.estimate <= a.difference.ci_high);
        prop_assert!((a.difference.estimate + b.difference.estimate).abs() <= 1e-9 * (1.0 + a.difference.estimate.abs()));
        prop_assert!((a.difference.p_value - b.difference.p_value).abs() < 1e-12);
        prop_assert!((a.difference.ci_low + b.difference.ci_high).abs() <= 1e-9 * (1.0 + a.difference.ci_low.abs()));
    }

    #[test]
    fn z_test_ci_contains_the_estimate_and_is_antisymmetric(n1 in 1u64..5000, n2 in 1u64..5000, f1 in 0.0f64..1.0, f2 in 0.0f64..1.0) {
        let (k1, k2) = ((n1 as f64 * f1) as u64, (n2 as f64 * f2) as u64);
        let (Ok(a), Ok(b)) = (two_proportion_z_test(k1, n1, k2, n2, 0.9), two_proportion_z_test(k2, n2, k1, n1, 0.9)) else { return Ok(()) };
        prop_assert!(a.difference.ci_low <= a.difference.estimate && a.difference.estimate <= a.difference.ci_high);
        prop_assert!((a.z + b.z).abs() < 1e-9);
        prop_assert!((0.0..=1.0).contains(&a.difference.p_value));
    }

    #[test]
    fn lift_intervals_contain_the_estimate(t in prop::collection::vec(1.0f64..100.0, 3..40), c in prop::collection::vec(1.0f64..100.0, 3..40)) {
        let Ok(l) = relative_lift(Moments::of(&t), Moments::of(&c), 0.95) else { return Ok(()) };
        prop_assert!(l.delta.ci_low <= l.delta.estimate && l.delta.estimate <= l.delta.ci_high);
        if let Some((lo, hi)) = l.fieller {
            prop_assert!(lo <= l.delta.estimate + 1e-12 && l.delta.estimate <= hi + 1e-12);
        }
    }

    #[test]
    fn adjusted_p_values_are_at_least_raw_and_keep_the_order(p in prop::collection::vec(0.0f64..=1.0, 1..30)) {
        for adjusted in [holm(&p).unwrap(), benjamini_hochberg(&p).unwrap()] {
            for i in 0..p.len() {
                prop_assert!(adjusted[i] >= p[i] - 1e-15 && adjusted[i] <= 1.0);
                for j in 0..p.len() {
                    if p[i] < p[j] {
                        prop_assert!(adjusted[i] <= adjusted[j] + 1e-15);
                    }
                }
            }
        }
    }
}
