//! The long-run effect behind a correlational SLO: the KPI regressed on the SLI at lags 0..J
//! jointly (a distributed lag, with the analysis's transform and hour-of-week effects), reported
//! as θ = Σⱼ βⱼ with its Newey–West error (`stats::hac::within_lag_sum_hac`). One lag's slope
//! is the response to a change within that lag only; a sustained degradation costs every lag's
//! response, which is θ. θ is one quantity fixed before looking at the data, so its interval
//! needs no correction for the lag search.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::observational::{
    hour_of_week, AlignedSeries, Controls, ObservationalParameters, Transform,
};
use crate::stats::hac::{newey_west_lags, within_lag_sum_hac};

/// θ = Σⱼ βⱼ over lags 0..J fitted jointly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LongRun {
    /// J: the largest lag in the joint fit (the analysis's `max_lag_windows`).
    pub lags: u32,
    /// Window rows with every lag present.
    pub windows: u64,
    /// KPI change per unit of sustained SLI change, after every lag has passed.
    pub slope: f64,
    pub std_error: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    pub hac_lags: u32,
    /// Reliability of the SLI's per-window values as a measure of the SLI: λ = 1 − mean
    /// sampling variance of the lag-0 regressor / its variance (within hour-of-week groups; for
    /// differences a window's variance plus the previous one's). Noise flattens a slope by λ, so
    /// `slope`, `std_error` and the interval are divided by it (a first-order correction, exact
    /// for one lag); null when the windows' sampling variances cannot be read.
    #[serde(default)]
    pub reliability: Option<f64>,
    /// θ before the correction.
    #[serde(default)]
    pub uncorrected_slope: Option<f64>,
}

struct Rows {
    y: Vec<f64>,
    cols: Vec<Vec<f64>>,
    groups: Vec<u32>,
    /// Sampling variance of the lag-0 regressor per row.
    noise: Vec<f64>,
}

/// Rows (y, xₜ₋ⱼ for j = 0..J, group) where the KPI and every lag of the SLI exist, as first
/// differences (each value minus the previous window's, which must exist too) unless `levels`,
/// with the sampling variance of the lag-0 regressor.
fn rows(s: &AlignedSeries, j_max: u32, p: &ObservationalParameters) -> Rows {
    let step = i64::from(s.window_seconds);
    let sli: HashMap<i64, f64> = s.sli.iter().copied().collect();
    let var: HashMap<i64, f64> = s
        .sli
        .iter()
        .zip(&s.sli_variance)
        .map(|(x, v)| (x.0, *v))
        .collect();
    let kpi: HashMap<i64, f64> = s.kpi.iter().map(|k| (k.0, k.1)).collect();
    let diff = p.transform == Transform::Differences;
    let value = |map: &HashMap<i64, f64>, t: i64| -> Option<f64> {
        let v = *map.get(&t)?;
        if diff {
            Some(v - *map.get(&(t - step))?)
        } else {
            Some(v)
        }
    };
    let mut r = Rows {
        y: Vec::new(),
        cols: vec![Vec::new(); j_max as usize + 1],
        groups: Vec::new(),
        noise: Vec::new(),
    };
    for (start, _, _) in &s.kpi {
        let Some(yv) = value(&kpi, *start) else {
            continue;
        };
        let xs: Option<Vec<f64>> = (0..=i64::from(j_max))
            .map(|j| value(&sli, start - j * step))
            .collect();
        let Some(xs) = xs else { continue };
        r.y.push(yv);
        let v = var.get(start).copied().unwrap_or(f64::NAN);
        r.noise.push(if diff {
            v + var.get(&(start - step)).copied().unwrap_or(f64::NAN)
        } else {
            v
        });
        for (c, x) in r.cols.iter_mut().zip(xs) {
            c.push(x);
        }
        r.groups.push(match p.controls {
            Controls::HourOfWeek => hour_of_week(*start),
            Controls::None => 0,
        });
    }
    r
}

/// λ = 1 − mean noise variance / within-group variance of the regressor; None when fewer than
/// half the rows have a readable sampling variance.
fn reliability(x: &[f64], groups: &[u32], noise: &[f64]) -> Option<f64> {
    let known: Vec<f64> = noise.iter().copied().filter(|v| v.is_finite()).collect();
    if known.len() * 2 < noise.len() || x.is_empty() {
        return None;
    }
    let n_groups = groups.iter().map(|g| *g as usize + 1).max().unwrap_or(0);
    let mut sum = vec![0.0; n_groups];
    let mut count = vec![0.0; n_groups];
    for (v, g) in x.iter().zip(groups) {
        sum[*g as usize] += v;
        count[*g as usize] += 1.0;
    }
    let within = x
        .iter()
        .zip(groups)
        .map(|(v, g)| (v - sum[*g as usize] / count[*g as usize]).powi(2))
        .sum::<f64>()
        / x.len() as f64;
    let mean_noise = known.iter().sum::<f64>() / known.len() as f64;
    (within > 0.0).then(|| 1.0 - mean_noise / within)
}

/// The long-run effect, or None when the joint fit cannot be made (too few complete rows,
/// collinear lags).
pub fn fit(s: &AlignedSeries, p: &ObservationalParameters, min_windows: usize) -> Option<LongRun> {
    let r = rows(s, p.max_lag_windows, p);
    if r.y.len() < min_windows {
        return None;
    }
    let maxlags = newey_west_lags(r.y.len());
    let fit = within_lag_sum_hac(&r.y, &r.cols, &r.groups, maxlags, p.confidence).ok()?;
    let lambda = reliability(&r.cols[0], &r.groups, &r.noise);
    // Corrected only where it is a correction: at or below 0 the noise swamps the signal (a
    // recommendation refuses it); above 1 cannot happen in expectation.
    let k = lambda.filter(|l| *l > 0.0 && *l <= 1.0).unwrap_or(1.0);
    Some(LongRun {
        lags: p.max_lag_windows,
        windows: fit.n as u64,
        slope: fit.slope / k,
        std_error: fit.std_error / k,
        ci_low: fit.ci_low / k,
        ci_high: fit.ci_high / k,
        p_value: fit.p_value,
        hac_lags: maxlags as u32,
        reliability: lambda,
        uncorrected_slope: Some(fit.slope),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A persistent SLI measured with known noise (λ ≈ 0.45 in differences): the raw slope is
    /// flattened by about λ, the corrected one recovers the truth (−2e-4) within 10%.
    #[test]
    fn the_correction_undoes_the_attenuation_of_noise() {
        use crate::analysis::observational::SliStatistic;
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let (shock, noise, err) = (
            Normal::new(0.0, 10.0).unwrap(),
            Normal::new(0.0, 8.0).unwrap(),
            Normal::new(0.0, 0.0005).unwrap(),
        );
        let n = 20_000;
        let mut truth = vec![300.0; n];
        for t in 1..n {
            truth[t] = 300.0 + 0.95 * (truth[t - 1] - 300.0) + shock.sample(&mut rng);
        }
        let s = AlignedSeries {
            window_seconds: 60,
            sli: (0..n)
                .map(|t| (t as i64 * 60, truth[t] + noise.sample(&mut rng)))
                .collect(),
            sli_variance: vec![64.0; n],
            kpi: (0..n)
                .map(|t| {
                    (
                        t as i64 * 60,
                        0.05 - 2e-4 * truth[t] + err.sample(&mut rng),
                        1.0,
                    )
                })
                .collect(),
        };
        let p = ObservationalParameters {
            statistic: SliStatistic::P50,
            controls: Controls::None,
            transform: Transform::Differences,
            max_lag_windows: 0,
            confidence: 0.95,
            alpha: 0.05,
        };
        let l = fit(&s, &p, 100).unwrap();
        let lambda = l.reliability.unwrap();
        assert!((0.4..0.5).contains(&lambda), "{lambda}");
        let raw = l.uncorrected_slope.unwrap();
        assert!((raw / -2e-4 - lambda).abs() < 0.05, "{raw} vs λ {lambda}");
        assert!((l.slope / -2e-4 - 1.0).abs() < 0.1, "{}", l.slope);
    }

    /// Noise with half the regressor's variance leaves a reliability of one half.
    #[test]
    fn reliability_is_one_minus_the_noise_share() {
        let x = [1.0, -1.0, 1.0, -1.0];
        let g = [0, 0, 0, 0];
        assert!((reliability(&x, &g, &[0.5; 4]).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(reliability(&x, &g, &[f64::NAN; 4]), None);
    }
}
