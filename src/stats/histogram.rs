//! Prometheus classic histograms: finite upper bounds `le` (strictly increasing) with
//! cumulative counts, plus the `+Inf` bucket holding every event.
//!
//! Events are assumed spread uniformly inside each bucket, the assumption Prometheus's
//! `histogram_quantile` makes: the first bucket spans `[0, le₀]` when `le₀ > 0` (a point at
//! `le₀` otherwise), and the `+Inf` bucket's events lie above the last finite bound at an unknown
//! place. A share is exact at a bucket bound and off by at most T's bucket count / total inside
//! it. A quantile is the interpolated point of the rank's bucket: the true quantile lies
//! somewhere in that bucket, so the error is at most the bucket's width for a finite bucket
//! (values ≥ 0 in the first) and unbounded, on the low side, when the rank falls in `+Inf`.
//! Place bounds at the thresholds an SLO may take. Unlike Prometheus, a `q` outside [0, 1] gives
//! NaN here (Prometheus: ∓Inf), and `q = 0` with an empty first bucket gives its bound (NaN).
//!
//! Reference: `histogram_quantile` (prometheus/promql/quantile.go, `bucketQuantile`), and
//! `numpy.interp` over the cumulative counts (scripts/reference, `live.json` → `histogram`).

/// Events at or below `t`: `C(i−1) + (C(i) − C(i−1)) · (t − lower) / (le_i − lower)` in the
/// bucket `i` holding `t`; `C(last finite)` when `t` is beyond the last finite bound (events in
/// `+Inf` are counted above `t`); 0 below the first bucket's lower end.
///
/// `bounds` are the finite bounds; `cumulative` their cumulative counts (same length).
pub fn count_at_or_below(bounds: &[f64], cumulative: &[f64], t: f64) -> f64 {
    let Some(i) = bounds.iter().position(|&le| le >= t) else {
        return cumulative.last().copied().unwrap_or(0.0);
    };
    let (lower, before) = if i == 0 {
        (bounds[0].min(0.0), 0.0)
    } else {
        (bounds[i - 1], cumulative[i - 1])
    };
    if t < lower {
        return 0.0;
    }
    let upper = bounds[i];
    if upper <= lower {
        return cumulative[i];
    }
    before + (cumulative[i] - before) * (t - lower) / (upper - lower)
}

/// The `q` quantile as Prometheus's `histogram_quantile` computes it: the rank `q · total`
/// located in the first bucket whose cumulative count reaches it and interpolated linearly
/// inside it; the last finite bound when the rank falls in `+Inf`; the first bound when the first
/// bucket's bound is ≤ 0. NaN for an empty histogram or `q` outside [0, 1].
pub fn quantile(q: f64, bounds: &[f64], cumulative: &[f64], total: f64) -> f64 {
    if !(0.0..=1.0).contains(&q) || total <= 0.0 || bounds.is_empty() {
        return f64::NAN;
    }
    let rank = q * total;
    let Some(b) = cumulative.iter().position(|&c| c >= rank) else {
        return bounds[bounds.len() - 1];
    };
    if b == 0 && bounds[0] <= 0.0 {
        return bounds[0];
    }
    let (start, before) = if b == 0 {
        (0.0, 0.0)
    } else {
        (bounds[b - 1], cumulative[b - 1])
    };
    let in_bucket = cumulative[b] - before;
    if in_bucket <= 0.0 {
        return bounds[b];
    }
    start + (bounds[b] - start) * ((rank - before) / in_bucket)
}

/// Sampling variance of the interpolated q-quantile of a histogram window of `total` events,
/// by the delta method on the bucket counts: the quantile is start + w·(qn − before)/m with m
/// events in the bucket of width w holding the rank, so with P = m/n and r = (qn − before)/m its
/// position in the bucket, Var ≈ w²/(n·P²)·[q(1 − q) − r(1 − r)·P] (multinomial counts; for
/// equal-width buckets of a uniform density it is Serfling's q(1 − q)/(n·f²)). NaN where the
/// asymptotics fail or nothing can be read: fewer than 20 events on the quantile's thin side
/// (n·min(q, 1 − q)), fewer than 10 in its bucket, or the +Inf bucket.
pub fn quantile_variance(q: f64, bounds: &[f64], cumulative: &[f64], total: f64) -> f64 {
    if !(0.0..1.0).contains(&q) || total <= 0.0 || bounds.is_empty() {
        return f64::NAN;
    }
    if total * q.min(1.0 - q) < 20.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let Some(b) = cumulative.iter().position(|&c| c >= rank) else {
        return f64::NAN;
    };
    if b >= bounds.len() {
        return f64::NAN;
    }
    let (start, before) = if b == 0 {
        (bounds[0].min(0.0), 0.0)
    } else {
        (bounds[b - 1], cumulative[b - 1])
    };
    let width = bounds[b] - start;
    let m = cumulative[b] - before;
    if width <= 0.0 || m < 10.0 {
        return f64::NAN;
    }
    let p = m / total;
    let r = (rank - before) / m;
    (width * width / (total * p * p) * (q * (1.0 - q) - r * (1.0 - r) * p)).max(0.0)
}

/// Mean of the part of the interpolated distribution beyond `t` on the side `above` (events
/// above `t` when true), per event beyond: the mean excess `E[X − t | X > t]` (or `t − X` for
/// below). Each bucket's share beyond `t` contributes at its midpoint; `+Inf` events contribute
/// as if at the last finite bound (a lower bound on their excess). 0 when no event is beyond.
pub fn mean_excess(bounds: &[f64], cumulative: &[f64], total: f64, t: f64, above: bool) -> f64 {
    let mut weighted = 0.0;
    let mut events = 0.0;
    let mut lower = bounds.first().map_or(0.0, |b| b.min(0.0));
    let mut before = 0.0;
    for (&le, &c) in bounds.iter().zip(cumulative) {
        let n = c - before;
        if n > 0.0 && le <= lower {
            // A point mass at le (a first bound ≤ 0).
            let beyond = if above { le > t } else { le < t };
            if beyond {
                weighted += n * (le - t).abs();
                events += n;
            }
        } else if n > 0.0 {
            // The part of [lower, le] beyond t, holding n · (its length / the bucket's).
            let (a, b) = if above {
                (lower.max(t), le)
            } else {
                (lower, le.min(t))
            };
            if b > a {
                let share = n * (b - a) / (le - lower);
                let mid = 0.5 * (a + b);
                weighted += share * if above { mid - t } else { t - mid };
                events += share;
            }
        }
        lower = le;
        before = c;
    }
    let beyond_last = total - before;
    if above && beyond_last > 0.0 {
        weighted += beyond_last * (lower - t).max(0.0);
        events += beyond_last;
    }
    if events > 0.0 {
        weighted / events
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform on [0, 1] in tenths: f = 1, so the median of 1,000 events varies as 0.25/1000.
    #[test]
    fn the_median_of_a_uniform_window_varies_as_q_one_minus_q_over_n() {
        let bounds: Vec<f64> = (1..=10).map(|i| f64::from(i) / 10.0).collect();
        let cumulative: Vec<f64> = (1..=10)
            .map(|i| f64::from(i) * 100.0)
            .chain([1000.0])
            .collect();
        let v = quantile_variance(0.5, &bounds, &cumulative, 1000.0);
        assert!((v - 0.25 / 1000.0).abs() < 1e-15, "{v}");
        // In the +Inf bucket there is no density to read.
        let cum: Vec<f64> = vec![0.0; 10].into_iter().chain([1000.0]).collect();
        assert!(quantile_variance(0.5, &bounds, &cum, 1000.0).is_nan());
        // Inside a bucket the within-bucket randomness interpolates away: a rank in the middle
        // of [0.4, 0.5] (q = 0.45) varies as w²/(nP²)·[q(1−q) − P/4].
        let v = quantile_variance(0.45, &bounds, &cumulative, 1000.0);
        let want = 0.01 / (1000.0 * 0.01) * (0.45 * 0.55 - 0.25 * 0.1);
        assert!((v - want).abs() < 1e-15, "{v} vs {want}");
        // Too few events on the thin side: the asymptotics do not hold.
        assert!(quantile_variance(0.99, &bounds, &cumulative, 1000.0).is_nan());
    }

    const B: [f64; 3] = [100.0, 200.0, 400.0];
    const C: [f64; 3] = [50.0, 80.0, 95.0];

    #[test]
    fn shares_are_exact_at_bounds_and_linear_inside() {
        assert_eq!(count_at_or_below(&B, &C, 100.0), 50.0);
        assert_eq!(count_at_or_below(&B, &C, 150.0), 65.0);
        assert_eq!(count_at_or_below(&B, &C, 50.0), 25.0);
        assert_eq!(count_at_or_below(&B, &C, 1000.0), 95.0);
        assert_eq!(count_at_or_below(&B, &C, -1.0), 0.0);
    }

    #[test]
    fn quantiles_follow_histogram_quantile() {
        assert_eq!(quantile(0.5, &B, &C, 100.0), 100.0);
        assert_eq!(quantile(0.65, &B, &C, 100.0), 150.0);
        // Rank 97 lies in +Inf: the last finite bound.
        assert_eq!(quantile(0.97, &B, &C, 100.0), 400.0);
        assert!(quantile(0.5, &B, &C, 0.0).is_nan());
        assert!(quantile(1.5, &B, &C, 100.0).is_nan());
    }

    /// A first bound ≤ 0 is a point mass, counted beyond t like any other event.
    #[test]
    fn a_point_mass_first_bucket_counts_in_the_excess() {
        let e = mean_excess(&[0.0, 100.0], &[10.0, 50.0], 50.0, 50.0, false);
        assert!(
            (e - (10.0 * 50.0 + 20.0 * 25.0) / 30.0).abs() < 1e-12,
            "{e}"
        );
    }

    #[test]
    fn excess_beyond_a_bound_uses_bucket_midpoints() {
        // Above 200: 15 events in (200, 400] at 300, 5 in +Inf at 400.
        let e = mean_excess(&B, &C, 100.0, 200.0, true);
        assert!((e - (15.0 * 100.0 + 5.0 * 200.0) / 20.0).abs() < 1e-12);
        // Below 100: 50 events in [0, 100] at 50.
        assert!((mean_excess(&B, &C, 100.0, 100.0, false) - 50.0).abs() < 1e-12);
    }
}
