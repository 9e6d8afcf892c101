//! Is a threshold inside the noise? A window-based SLO ("p95 < T in 99% of 5-minute windows")
//! judges each window by the percentile of its own few hundred requests, which scatters around
//! the service's true percentile. With T just above the true p95, an unchanged, healthy service
//! breaks the SLO in a large share of windows and spends its budget on noise.
//!
//! Model: an unchanged service's requests are independent draws from the control arm's SLI
//! distribution (known by its quantile grid); a share π of them is on the bad side of T. A
//! window of n requests is bad when more than n·(1 − q) of them are bad (q: the good share a
//! window needs, 0.95 for p95), so the share of bad windows is P(Binomial(n, π) > ⌊n(1 − q)⌋).
//! Checked against a simulation of windows in `tests` below.

use super::model::{Comparison, WindowNoise};
use crate::error::{AppError, AppResult, Issue};
use crate::stats::descriptive::cdf_from_quantile_grid;
use crate::stats::dist::binom_sf;

/// Share of the error budget that noise may spend: a window length fits when an unchanged
/// service is expected to break at most this share of the budget, leaving the rest for real
/// degradations.
pub const NOISE_BUDGET_SHARE: f64 = 0.1;

/// Window lengths (minutes) tried, in order, when the default 5-minute window is too noisy.
pub const WIDER_WINDOWS: [u32; 5] = [10, 15, 20, 30, 60];

/// Share of an unchanged service's requests on the bad side of `threshold`.
pub fn bad_request_share(quantiles: &[f64], threshold: f64, comparison: Comparison) -> f64 {
    let below = cdf_from_quantile_grid(quantiles, threshold);
    match comparison {
        Comparison::Lt => 1.0 - below,
        Comparison::Gt => below,
    }
}

/// Share of windows of `n` requests, each bad with probability `pi`, in which fewer than
/// `good_share` of the requests are good.
pub fn bad_window_share(pi: f64, n: u64, good_share: f64) -> f64 {
    let allowed = (n as f64 * (1.0 - good_share) + 1e-9).floor() as u64;
    binom_sf(allowed, n.max(1), pi.clamp(0.0, 1.0)).unwrap_or(1.0)
}

/// What the check decided for a window-based SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowChoice {
    pub window_minutes: u32,
    pub noise: WindowNoise,
    /// Why the window changed, when it did.
    pub note: Option<String>,
}

/// The inputs of the check.
pub struct NoiseCheck<'a> {
    pub quantiles: &'a [f64],
    pub threshold: f64,
    pub comparison: Comparison,
    pub good_share: f64,
    pub units_per_day: f64,
    pub window_days: u32,
    pub budget_fraction: f64,
}

impl NoiseCheck<'_> {
    fn noise(&self, window_minutes: u32) -> WindowNoise {
        let n = self.units_per_day * f64::from(window_minutes) / 1440.0;
        let pi = bad_request_share(self.quantiles, self.threshold, self.comparison);
        WindowNoise {
            window_minutes,
            requests_per_window: n,
            bad_request_share: pi,
            expected_bad_window_share: bad_window_share(pi, n.round() as u64, self.good_share),
            budget_fraction: self.budget_fraction,
        }
    }

    fn fits(&self, n: &WindowNoise) -> bool {
        n.expected_bad_window_share <= NOISE_BUDGET_SHARE * self.budget_fraction
    }

    /// Keeps `window_minutes` when an unchanged service spends at most [`NOISE_BUDGET_SHARE`] of
    /// the budget; otherwise, when
    /// the window was not chosen by the request (`explicit` false), widens it to the first of
    /// [`WIDER_WINDOWS`] that fits and divides the period; otherwise a 422 that says how often an
    /// unchanged service would break the SLO and what would fit.
    pub fn choose(&self, window_minutes: u32, explicit: bool) -> AppResult<WindowChoice> {
        let first = self.noise(window_minutes);
        if self.fits(&first) {
            return Ok(WindowChoice {
                window_minutes,
                noise: first,
                note: None,
            });
        }
        let wider = WIDER_WINDOWS
            .iter()
            .copied()
            .filter(|w| *w > window_minutes && (self.window_days * 1440) % w == 0)
            .map(|w| self.noise(w))
            .find(|n| self.fits(n));
        let why = format!(
            "with ~{:.0} requests per {window_minutes}-minute window, an unchanged service would break the threshold in {:.1}% of windows ({:.2}% of its requests are beyond it) where noise may spend at most {:.3}% (a tenth of the {:.2}% budget)",
            first.requests_per_window,
            100.0 * first.expected_bad_window_share,
            100.0 * first.bad_request_share,
            100.0 * NOISE_BUDGET_SHARE * self.budget_fraction,
            100.0 * self.budget_fraction
        );
        match wider {
            Some(n) if !explicit => Ok(WindowChoice {
                window_minutes: n.window_minutes,
                note: Some(format!(
                    "Window widened from {window_minutes} to {} minutes: {why}; at {} minutes it would break {:.2}% of windows.",
                    n.window_minutes,
                    n.window_minutes,
                    100.0 * n.expected_bad_window_share
                )),
                noise: n,
            }),
            _ => {
                let advice = match wider {
                    Some(n) => format!("use window_minutes {}", n.window_minutes),
                    None => "tolerate a larger loss (a threshold further from the baseline) or a lower target".to_owned(),
                };
                Err(AppError::invalid(
                    "the threshold sits inside the noise of per-window percentiles",
                    vec![Issue::field("window_minutes", format!("{why}; {advice}"))],
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::descriptive::quantile_sorted;
    use rand::SeedableRng;
    use rand_distr::{Distribution, LogNormal};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// The model against simulated windows: log-normal latency (median 300 ms, σ 0.5), 350
    /// requests per window, a threshold 10 ms above the p95; π from the quantile grid of a
    /// 400,000-draw sample; 20,000 simulated windows, each bad when fewer than 95% of its
    /// requests are ≤ T (the exported rules' definition). Agreement within 3 points (Monte-Carlo
    /// SE ≈ 0.35 points; π's sampling error moves the model by ≈ 1 point).
    #[test]
    fn bad_window_share_matches_simulated_windows() {
        let d = LogNormal::new(300f64.ln(), 0.5).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let mut big: Vec<f64> = (0..400_000).map(|_| d.sample(&mut rng)).collect();
        big.sort_unstable_by(f64::total_cmp);
        let grid: Vec<f64> = (0..=200)
            .map(|i| quantile_sorted(&big, f64::from(i) / 200.0).unwrap())
            .collect();
        let t = quantile_sorted(&big, 0.95).unwrap() + 10.0;
        let pi = bad_request_share(&grid, t, Comparison::Lt);
        // True π = 1 − Φ((ln 692.9 − ln 300)/0.5) = 0.0470.
        assert!((pi - 0.0470).abs() < 0.002, "{pi}");
        let model = bad_window_share(pi, 350, 0.95);
        let windows = 20_000;
        let mut bad = 0;
        for _ in 0..windows {
            let good = (0..350).filter(|_| d.sample(&mut rng) <= t).count();
            if (good as f64) < 0.95 * 350.0 {
                bad += 1;
            }
        }
        let simulated = f64::from(bad) / f64::from(windows);
        assert!(
            (model - simulated).abs() < 0.03,
            "model {model}, simulated {simulated}"
        );
        assert!(
            simulated > 0.2,
            "10 ms above p95 is inside the noise: {simulated}"
        );
    }

    #[test]
    fn a_quiet_window_fits_and_a_noisy_one_is_widened_or_refused() {
        let grid: Vec<f64> = (0..=200).map(f64::from).collect(); // uniform on [0, 200]
        let check = |t: f64| NoiseCheck {
            quantiles: &grid,
            threshold: t,
            comparison: Comparison::Lt,
            good_share: 0.95,
            units_per_day: 100_000.0,
            window_days: 28,
            budget_fraction: 0.01,
        };
        // 10% of requests beyond T: far above a 5% allowance in any window.
        assert!(check(180.0).choose(5, false).is_err());
        // 3% beyond: too noisy at 5 minutes (347 requests), fine with wider windows.
        let c = check(194.0).choose(5, false).unwrap();
        assert!(c.window_minutes > 5 && c.note.is_some(), "{c:?}");
        assert!(c.noise.expected_bad_window_share <= 0.001);
        let Err(AppError::Invalid { issues, .. }) = check(194.0).choose(5, true) else {
            panic!("an explicit window is not widened")
        };
        assert_eq!(issues[0].field.as_deref(), Some("window_minutes"));
        // 1% beyond: quiet at 5 minutes.
        let c = check(198.0).choose(5, false).unwrap();
        assert_eq!(c.window_minutes, 5);
        assert!(c.note.is_none());
    }
}
