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
use crate::stats::hac::{newey_west_lags, within_lag_sum_hac, within_lag_sum_hac_eiv};

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
    /// Reliability of θ: the uncorrected θ over the corrected one. Each window's value measures
    /// the SLI with sampling noise of known variance, which flattens the slopes; θ, its error
    /// and interval are the errors-in-variables estimates (the noise's cross-products taken out
    /// of X̃ᵀX̃; `stats::hac::within_lag_sum_hac_eiv`). Null when the windows' sampling
    /// variances cannot be read (then θ is uncorrected).
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
    /// Sampling variances of the SLI at t − j, j = 0..=J+1, per row (NaN where unreadable).
    noise: Vec<Vec<f64>>,
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
        r.noise.push(
            (0..=i64::from(j_max) + 1)
                .map(|j| var.get(&(start - j * step)).copied().unwrap_or(f64::NAN))
                .collect(),
        );
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

/// The rows' noise with unreadable variances replaced by their column's mean; None when more
/// than a tenth are unreadable (those are the noisiest windows, so a mean would flatter).
fn imputed(noise: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let cols = noise.first()?.len();
    let mut out = noise.to_vec();
    for j in 0..cols {
        let known: Vec<f64> = noise
            .iter()
            .map(|r| r[j])
            .filter(|v| v.is_finite())
            .collect();
        if known.len() * 10 < noise.len() * 9 {
            return None;
        }
        let mean = known.iter().sum::<f64>() / known.len() as f64;
        out.iter_mut()
            .filter(|r| !r[j].is_finite())
            .for_each(|r| r[j] = mean);
    }
    Some(out)
}

/// The long-run effect, or None when the joint fit cannot be made (too few complete rows,
/// collinear lags).
pub fn fit(s: &AlignedSeries, p: &ObservationalParameters, min_windows: usize) -> Option<LongRun> {
    let r = rows(s, p.max_lag_windows, p);
    if r.y.len() < min_windows {
        return None;
    }
    let maxlags = newey_west_lags(r.y.len());
    let diff = p.transform == Transform::Differences;
    let corrected = imputed(&r.noise).and_then(|noise| {
        within_lag_sum_hac_eiv(
            &r.y,
            &r.cols,
            (&noise, diff),
            &r.groups,
            (maxlags, p.confidence),
        )
        .ok()
    });
    let (fit, raw, lambda) = match corrected {
        Some((fit, raw)) => {
            let lambda = if fit.slope != 0.0 {
                raw / fit.slope
            } else {
                1.0
            };
            (fit, raw, Some(lambda))
        }
        None => {
            let fit = within_lag_sum_hac(&r.y, &r.cols, &r.groups, maxlags, p.confidence).ok()?;
            let raw = fit.slope;
            (fit, raw, None)
        }
    };
    Some(LongRun {
        lags: p.max_lag_windows,
        windows: fit.n as u64,
        slope: fit.slope,
        std_error: fit.std_error,
        ci_low: fit.ci_low,
        ci_high: fit.ci_high,
        p_value: fit.p_value,
        hac_lags: maxlags as u32,
        reliability: lambda,
        uncorrected_slope: Some(raw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A persistent SLI measured with known noise (reliability ≈ 0.45 in differences): the raw
    /// θ is flattened, the errors-in-variables θ recovers the truth (−2e-4) within 10% and its
    /// interval covers it, at J = 0, 3 and 12 lags and in levels.
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
        // Several lags share the noise (neighbouring differences): a scalar λ would overshoot
        // there; the matrix correction recovers θ at every J, in differences and levels.
        for (lags, transform) in [
            (0, Transform::Differences),
            (3, Transform::Differences),
            (12, Transform::Differences),
            (3, Transform::Levels),
        ] {
            let p = ObservationalParameters {
                statistic: SliStatistic::P50,
                controls: Controls::None,
                transform,
                max_lag_windows: lags,
                confidence: 0.95,
                alpha: 0.05,
            };
            let l = fit(&s, &p, 100).unwrap();
            let raw = l.uncorrected_slope.unwrap();
            // Levels of a persistent SLI vary far more than the noise: little to undo there.
            assert!(
                raw / -2e-4
                    < if transform == Transform::Levels {
                        1.0
                    } else {
                        0.9
                    },
                "{lags} {transform}: raw {raw} is attenuated"
            );
            assert!(
                (l.slope / -2e-4 - 1.0).abs() < 0.1,
                "{lags} {transform}: corrected {} (raw {raw})",
                l.slope
            );
            assert!(
                l.ci_low < -2e-4 && l.ci_high > -2e-4,
                "{lags} {transform}: {l:?}"
            );
            assert!((l.reliability.unwrap() - raw / l.slope).abs() < 1e-12);
        }
    }

    /// More than a tenth of unreadable variances: no correction is claimed.
    #[test]
    fn unreadable_noise_is_not_imputed_beyond_a_tenth() {
        let rows = vec![vec![1.0, 1.0]; 8]
            .into_iter()
            .chain([vec![f64::NAN, 1.0], vec![f64::NAN, 1.0]])
            .collect::<Vec<_>>();
        assert_eq!(imputed(&rows), None);
        let ok: Vec<Vec<f64>> = vec![vec![1.0, 2.0]; 9]
            .into_iter()
            .chain([vec![f64::NAN, 2.0]])
            .collect();
        assert_eq!(imputed(&ok).unwrap()[9], vec![1.0, 2.0]);
    }
}
