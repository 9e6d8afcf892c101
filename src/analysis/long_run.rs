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
}

/// Rows (y, xₜ₋ⱼ for j = 0..J, group) where the KPI and every lag of the SLI exist, as first
/// differences (each value minus the previous window's, which must exist too) unless `levels`.
fn rows(
    s: &AlignedSeries,
    j_max: u32,
    p: &ObservationalParameters,
) -> (Vec<f64>, Vec<Vec<f64>>, Vec<u32>) {
    let step = i64::from(s.window_seconds);
    let sli: HashMap<i64, f64> = s.sli.iter().copied().collect();
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
    let (mut y, mut cols, mut g) = (Vec::new(), vec![Vec::new(); j_max as usize + 1], Vec::new());
    for (start, _, _) in &s.kpi {
        let Some(yv) = value(&kpi, *start) else {
            continue;
        };
        let xs: Option<Vec<f64>> = (0..=i64::from(j_max))
            .map(|j| value(&sli, start - j * step))
            .collect();
        let Some(xs) = xs else { continue };
        y.push(yv);
        for (c, x) in cols.iter_mut().zip(xs) {
            c.push(x);
        }
        g.push(match p.controls {
            Controls::HourOfWeek => hour_of_week(*start),
            Controls::None => 0,
        });
    }
    (y, cols, g)
}

/// The long-run effect, or None when the joint fit cannot be made (too few complete rows,
/// collinear lags).
pub fn fit(s: &AlignedSeries, p: &ObservationalParameters, min_windows: usize) -> Option<LongRun> {
    let (y, cols, g) = rows(s, p.max_lag_windows, p);
    if y.len() < min_windows {
        return None;
    }
    let maxlags = newey_west_lags(y.len());
    let r = within_lag_sum_hac(&y, &cols, &g, maxlags, p.confidence).ok()?;
    Some(LongRun {
        lags: p.max_lag_windows,
        windows: r.n as u64,
        slope: r.slope,
        std_error: r.std_error,
        ci_low: r.ci_low,
        ci_high: r.ci_high,
        p_value: r.p_value,
        hac_lags: maxlags as u32,
    })
}
