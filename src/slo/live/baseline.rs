//! The production baseline of a recommendation: the point the tolerated degradation is added
//! to, read from the SLI's production histogram instead of the experiment's per-unit values.
//!
//! - Windows evaluation ("p95 < T in 99% of 5-minute windows"): the median, over the SLO's
//!   windows in the last period (tumbling, aligned to the window length), of each window's
//!   governed percentile (`histogram_quantile`). The SLO governs exactly this per-window
//!   percentile, which is heavier-tailed than the percentile of per-unit means.
//! - Requests evaluation ("< T for 99% of requests"): the quantile at the target's good share
//!   (0.99 for "<", 0.01 for ">") of the period's pooled histogram.
//!
//! Resolution: a histogram quantile is exact at bucket bounds and off by at most a bucket's
//! width inside one (see `stats::histogram`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::series::{SeriesKind, SeriesLayout, SeriesWindow, WindowData};
use crate::domain::text_enum;
use crate::slo::model::Evaluation;
use crate::stats::histogram::quantile;

text_enum! {
    /// Where a recommendation's baseline came from.
    BaselineKind { Production => "production", Experiment => "experiment" }
}

/// The source of the baseline, with the production range it was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BaselineSource {
    pub kind: BaselineKind,
    /// Production range used (Unix windows [from, to)).
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// SLO windows (windows evaluation) or data windows (requests) with events in the range.
    pub windows: Option<u64>,
    /// The experiment's baseline, kept for comparison when production was used.
    pub experiment_baseline: Option<f64>,
}

impl BaselineSource {
    /// The experiment's control arm.
    pub fn experiment() -> BaselineSource {
        BaselineSource {
            kind: BaselineKind::Experiment,
            from: None,
            to: None,
            windows: None,
            experiment_baseline: None,
        }
    }
}

/// What the production baseline needs from the request.
pub struct BaselineSpec {
    pub evaluation: Evaluation,
    /// Governed percentile (windows evaluation).
    pub percentile: Option<u32>,
    pub window_minutes: Option<u32>,
    /// Quantile level for requests evaluation (target for lower-is-better, 1 − target otherwise).
    pub request_level: f64,
}

/// The production baseline and how many windows it rests on; None for an event series or
/// without data.
pub fn production(
    layout: &SeriesLayout,
    windows: &[SeriesWindow],
    spec: &BaselineSpec,
) -> Option<(f64, u64)> {
    if layout.kind != SeriesKind::Histogram {
        return None;
    }
    let step = i64::from(layout.seconds);
    match (spec.evaluation, spec.percentile, spec.window_minutes) {
        (Evaluation::Windows, Some(p), Some(minutes)) => {
            let w = i64::from(minutes) * 60;
            let w = if w % step == 0 && w >= step { w } else { step };
            let mut buckets: BTreeMap<i64, WindowData> = BTreeMap::new();
            for x in windows {
                buckets
                    .entry(x.start.div_euclid(w))
                    .or_insert_with(|| WindowData::empty(layout))
                    .add(&x.data);
            }
            let mut values: Vec<f64> = buckets
                .values()
                .filter_map(|d| match d {
                    WindowData::Histogram {
                        count, cumulative, ..
                    } if *count > 0.0 => Some(quantile(
                        f64::from(p) / 100.0,
                        &layout.bounds,
                        cumulative,
                        *count,
                    )),
                    _ => None,
                })
                .collect();
            median(&mut values).map(|m| (m, values.len() as u64))
        }
        _ => {
            let mut pooled = WindowData::empty(layout);
            let mut n = 0;
            for x in windows {
                if x.data.total() > 0.0 {
                    n += 1;
                }
                pooled.add(&x.data);
            }
            match pooled {
                WindowData::Histogram {
                    count, cumulative, ..
                } if count > 0.0 => Some((
                    quantile(spec.request_level, &layout.bounds, &cumulative, count),
                    n,
                )),
                _ => None,
            }
        }
    }
}

/// The median (mean of the middle two for an even count).
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(0.5 * (v[n / 2 - 1] + v[n / 2])),
    }
}
