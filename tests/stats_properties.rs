//! Invariants that must hold for any input.

// A failed unwrap is the test failing; reference tables make long test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

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
        // Continuous random samples of ≥ 3 values have a variance: both directions must answer.
        let (a, b) = (welch_t_test(&x, &y, 0.95), welch_t_test(&y, &x, 0.95));
        prop_assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        let (a, b) = (a.unwrap(), b.unwrap());
        prop_assert!(a.difference.ci_low <= a.difference.estimate && a.difference.estimate <= a.difference.ci_high);
        prop_assert!((a.difference.estimate + b.difference.estimate).abs() <= 1e-9 * (1.0 + a.difference.estimate.abs()));
        prop_assert!((a.difference.p_value - b.difference.p_value).abs() < 1e-12);
        prop_assert!((a.difference.ci_low + b.difference.ci_high).abs() <= 1e-9 * (1.0 + a.difference.ci_low.abs()));
    }

    #[test]
    fn z_test_ci_contains_the_estimate_and_is_antisymmetric(n1 in 1u64..5000, n2 in 1u64..5000, f1 in 0.0f64..1.0, f2 in 0.0f64..1.0) {
        let (k1, k2) = ((n1 as f64 * f1) as u64, (n2 as f64 * f2) as u64);
        let (a, b) = (two_proportion_z_test(k1, n1, k2, n2, 0.9), two_proportion_z_test(k2, n2, k1, n1, 0.9));
        // The pooled test is undefined only when every unit or none has the outcome.
        let degenerate = k1 + k2 == 0 || k1 + k2 == n1 + n2;
        prop_assert_eq!(a.is_err(), degenerate, "{:?}", a);
        if degenerate {
            return Ok(());
        }
        let (a, b) = (a.unwrap(), b.unwrap());
        prop_assert!(a.difference.ci_low <= a.difference.estimate && a.difference.estimate <= a.difference.ci_high);
        prop_assert!((a.z + b.z).abs() < 1e-9);
        prop_assert!((0.0..=1.0).contains(&a.difference.p_value));
    }

    #[test]
    fn lift_intervals_contain_the_estimate(t in prop::collection::vec(1.0f64..100.0, 3..40), c in prop::collection::vec(1.0f64..100.0, 3..40)) {
        // Positive control means and ≥ 3 values: the lift is always defined.
        let l = relative_lift(Moments::of(&t), Moments::of(&c), 0.95);
        prop_assert!(l.is_ok(), "{l:?}");
        let l = l.unwrap();
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

/// Units of a random design: arm, exposure (shifted by arm) and outcome.
fn arm_design() -> impl Strategy<Value = (usize, usize, bool, Vec<(u32, f64, f64)>)> {
    (2usize..5).prop_flat_map(|arms| {
        (
            Just(arms),
            0..arms,
            any::<bool>(),
            prop::collection::vec((0..arms as u32, -50.0f64..50.0, -5.0f64..5.0), 30..200),
        )
    })
}

fn rel_close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-8 * (a.abs().max(b.abs()) + 1e-6)
}

proptest! {
    #[test]
    fn per_arm_two_sls_equals_the_general_fit(design in arm_design()) {
        use sloproof::stats::iv::{two_sls, two_sls_arms};
        let (arms, base, debiased, units) = design;
        let g: Vec<u32> = units.iter().map(|u| u.0).collect();
        prop_assume!((0..arms as u32).all(|a| g.iter().filter(|x| **x == a).count() >= 2));
        let x: Vec<f64> = units.iter().map(|u| 100.0 + 30.0 * f64::from(u.0) + u.1).collect();
        let y: Vec<f64> = units.iter().zip(&x).map(|(u, x)| 2.0 - 0.01 * x + u.2).collect();
        let dummies: Vec<Vec<f64>> = (0..arms)
            .filter(|a| *a != base)
            .map(|a| g.iter().map(|x| f64::from(u8::from(*x as usize == a))).collect())
            .collect();
        let refs: Vec<&[f64]> = dummies.iter().map(Vec::as_slice).collect();
        let ones = vec![1.0; x.len()];
        let general = two_sls(&y, &[&ones], &["const"], &x, "x", &refs, debiased).unwrap();
        let fast = two_sls_arms(&y, &x, "x", &g, arms, base, debiased).unwrap();
        for (a, b) in general.coefficients.iter().zip(&fast.coefficients) {
            prop_assert!(rel_close(*a, *b), "coefficient {a} vs {b}");
        }
        for cov in [sloproof::stats::iv::IvCov::Unadjusted, sloproof::stats::iv::IvCov::Robust] {
            for (ra, rb) in general.covariance(cov).iter().zip(fast.covariance(cov)) {
                for (a, b) in ra.iter().zip(rb) {
                    prop_assert!(rel_close(*a, *b), "{cov:?} covariance {a} vs {b}");
                }
            }
        }
        let (fa, fb) = (general.first_stage, fast.first_stage);
        prop_assert_eq!(fa.instruments, fb.instruments);
        for (a, b) in [
            (fa.f_stat, fb.f_stat),
            (fa.robust_f_stat, fb.robust_f_stat),
            (fa.partial_r_squared, fb.partial_r_squared),
            (fa.f_p_value, fb.f_p_value),
            (fa.effective_f, fb.effective_f),
        ] {
            prop_assert!(rel_close(a, b), "first stage {a} vs {b}");
        }
        // With one excluded instrument the effective F is the robust Wald F (MOP 2013).
        if arms == 2 {
            prop_assert!(rel_close(fa.effective_f, fa.robust_f_stat), "{} vs {}", fa.effective_f, fa.robust_f_stat);
        }
        match (general.sargan, fast.sargan) {
            (Some(a), Some(b)) => {
                prop_assert_eq!(a.df, b.df);
                prop_assert!((a.statistic - b.statistic).abs() <= 1e-7 * (1.0 + a.statistic.abs()));
            }
            (None, None) => {}
            (a, b) => prop_assert!(false, "sargan {a:?} vs {b:?}"),
        }
    }
}

/// A heavy-tailed SLI sample (log-normal, σ ≥ 0.5, rounded to a coarse resolution so that ties
/// abound) and a KPI with a knee, a saturation floor, or no effect at all.
fn heavy_tailed_knee() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (
        200usize..3000,
        0.5f64..1.5,
        prop::sample::select(vec![1.0, 5.0, 10.0]),
        0.1f64..0.95,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(n, sigma, resolution, knee_q, binary, seed)| {
            use rand::{Rng, SeedableRng};
            use rand_distr::{Distribution, LogNormal};
            let mut r = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            let base = LogNormal::new(300f64.ln(), sigma).unwrap();
            let x: Vec<f64> = (0..n)
                .map(|_| (base.sample(&mut r) / resolution).round() * resolution)
                .collect();
            // The knee sits at the knee_q quantile of the median-centred scale; conversion falls
            // above it to a floor of 0.1%.
            let knee = 300.0 * (sigma * 1.5 * (knee_q - 0.5)).exp();
            let y: Vec<f64> = x
                .iter()
                .map(|&v| {
                    let p = (0.12 - 0.0004 * (v - knee).max(0.0)).max(0.001);
                    if binary {
                        f64::from(u8::from(r.random::<f64>() < p))
                    } else {
                        p + r.random_range(-0.05..0.05)
                    }
                })
                .collect();
            (x, y)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// 500 heavy-tailed data sets with ≥ 100 distinct SLI values: the hinge fit, its bootstrap
    /// and the Davies test always answer, within their documented ranges.
    #[test]
    fn hinge_and_davies_answer_on_heavy_tailed_data(data in heavy_tailed_knee()) {
        use sloproof::stats::knee::{davies_test, hinge_bootstrap, hinge_fit};
        let (x, y) = data;
        let mut distinct = x.clone();
        distinct.sort_unstable_by(f64::total_cmp);
        distinct.dedup();
        prop_assume!(distinct.len() >= 100);
        let p = davies_test(&x, &y, 10);
        prop_assert!(p.is_ok(), "davies: {p:?}");
        prop_assert!(p.unwrap() >= 0.0);
        let fit = hinge_fit(&x, &y, 0.95);
        prop_assert!(fit.is_ok(), "hinge: {fit:?}");
        let fit = fit.unwrap();
        // The breakpoint is searched between the SLI's 5% and 95% quantiles, interpolated
        // between order statistics (type 7): between neighbouring values, not on one.
        let mut sorted = x.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let type7 = |q: f64| {
            let h = (sorted.len() - 1) as f64 * q;
            let (i, frac) = (h.floor() as usize, h - h.floor());
            sorted[i] + frac * (sorted[(i + 1).min(sorted.len() - 1)] - sorted[i])
        };
        let (lo, hi) = (type7(0.05), type7(0.95));
        prop_assert!(fit.breakpoint >= lo - 1e-9 && fit.breakpoint <= hi + 1e-9, "{} outside [{lo}, {hi}]", fit.breakpoint);
        prop_assert!(fit.slope_change.std_error.is_finite());
        let boot = hinge_bootstrap(&x, &y, 20, 7, 0.95);
        prop_assert!(boot.is_ok(), "bootstrap: {boot:?}");
        let (_, (blo, bhi)) = boot.unwrap();
        prop_assert!(blo <= bhi);
    }
}
