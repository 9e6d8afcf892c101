//! The summary's bootstrap, run on counted cells instead of units (`stats::compressed`):
//! intervals of every difference from control and of every causal slope, and each arm's p95
//! shift. When an arm has at most 4,096 distinct values of a metric (binary and small integer
//! metrics do), its cells are its values and the replicates have the distribution of the
//! per-unit Poisson bootstrap. Otherwise values are binned (`stats::cells`): each cell is its
//! values' mean, so arm means, slopes' point estimates and sums are kept, and what is lost is
//! the spread within cells (a share of the variance below 2⁻²ᵏ(1 + mean²/variance) for k
//! mantissa bits), reported per arm and metric. A slope's (SLI, KPI) pairs are binned whenever
//! the SLI is continuous. Tests compare the intervals with the full analysis's per-unit ones
//! within Monte-Carlo error, on both backends and on a million units.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::aggregate::{AggregateSummary, NotSummarised};
use super::aggregate_cells::UnitCells;
use super::causal::grouped_slope;
use super::data::{missing_rule, outcome_metrics};
use super::effects::{interval_method, shift_estimate};
use super::hash::StableHash;
use super::report::{BootstrapInterval, BootstrapMethod, Estimate, MissingOutcomes};
use crate::domain::experiment::Experiment;
use crate::stats::bootstrap::interval;
use crate::stats::cells::{Cells, Resolution};
use crate::stats::compressed::{
    cells_quantile, compressed_quantile, compressed_sums, counted_acceleration,
};
use crate::stats::{StatsError, StatsResult};

/// How the summary's bootstrap runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootSettings {
    pub resamples: u32,
    pub method: BootstrapMethod,
    pub seed: u64,
    pub confidence: f64,
}

/// What the summary's bootstrap ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SummaryBootstrap {
    pub resamples: u32,
    pub method: BootstrapMethod,
    pub seed: u64,
    /// The cells each arm's values were counted in.
    pub cells: Vec<BootstrapCells>,
}

/// The cells of one arm's values of one metric (or of its (SLI, KPI) pairs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BootstrapCells {
    pub variant: String,
    pub metric: String,
    /// The SLI the values are paired with (for the slope's bootstrap); null for the values alone.
    pub paired_with: Option<String>,
    pub units: u64,
    pub cells: u64,
    /// True when every cell is one distinct value (the bootstrap is the per-unit one).
    pub exact: bool,
    /// Largest distance of a value from its cell's value (the mean of the cell's values),
    /// relative to the value's distance from the metric's shift (a median of a few of its
    /// values, as the sums use); 0 if exact. A quantile moves by less than this share of its
    /// distance from the shift. Means and slopes keep their point estimates; their replicates
    /// lose only the spread within cells, a share of the variance below
    /// relative_error²·(1 + (mean − shift)²/variance).
    pub relative_error: f64,
}

fn seed(s: &BootSettings, what: &str, metric: &str, arm: usize) -> u64 {
    StableHash::default()
        .int(s.seed)
        .text(what)
        .text(metric)
        .int(arm as u64)
        .finish()
}

/// A metric's cells in one arm, with the units without a value as 0 when the rule says so.
fn values(c: &Cells<1>, missing_as_zero: Option<u64>) -> Cells<1> {
    let mut out = c.clone();
    let missing = missing_as_zero.map_or(0, |assigned| assigned.saturating_sub(c.units()));
    if missing > 0 {
        let i = out.rows.partition_point(|r| r[0].total_cmp(&0.0).is_lt());
        if out
            .rows
            .get(i)
            .is_some_and(|r| r[0] == 0.0 && r[0].is_sign_positive())
        {
            out.counts[i] += missing;
        } else {
            out.rows.insert(i, [0.0]);
            out.counts.insert(i, missing);
        }
    }
    out
}

/// The (SLI, value) pairs of one arm's units with an SLI value: a missing value counts as 0
/// or leaves the unit out.
fn pairs(c: &Cells<2>, zero: bool) -> Cells<2> {
    let (mut rows, mut counts) = (Vec::new(), Vec::new());
    for (r, n) in c.rows.iter().zip(&c.counts) {
        match (r[1].is_nan(), zero) {
            (false, _) => rows.push(*r),
            (true, true) => rows.push([r[0], 0.0]),
            (true, false) => continue,
        }
        counts.push(*n);
    }
    Cells {
        rows,
        counts,
        resolution: c.resolution,
    }
}

fn form(
    s: &BootSettings,
    theta: f64,
    reps: &[f64],
    loo: impl FnOnce() -> StatsResult<Vec<Vec<(f64, u64)>>>,
) -> StatsResult<BootstrapInterval> {
    if reps.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::Undefined(
            "a bootstrap replicate is not finite (an arm drew no units)".into(),
        ));
    }
    let accel = match s.method {
        BootstrapMethod::Bca => Some(counted_acceleration(&loo()?)?),
        _ => None,
    };
    let (lo, hi) = interval(interval_method(s.method), theta, reps, accel, s.confidence)?;
    Ok(BootstrapInterval {
        method: s.method,
        resamples: s.resamples,
        ci_low: lo,
        ci_high: hi,
    })
}

/// Leave-one-out means of each cell's units, signed.
fn loo_means(c: &Cells<1>, sign: f64) -> Vec<(f64, u64)> {
    let n = c.units() as f64;
    let total: f64 = c
        .rows
        .iter()
        .zip(&c.counts)
        .map(|(r, k)| r[0] * *k as f64)
        .sum();
    (c.rows.iter().zip(&c.counts))
        .map(|(r, k)| (sign * (total - r[0]) / (n - 1.0), *k))
        .collect()
}

fn difference(
    t: &Cells<1>,
    c: &Cells<1>,
    s: &BootSettings,
    seed: u64,
    theta: f64,
) -> StatsResult<BootstrapInterval> {
    let reps: Vec<f64> = compressed_sums(&[t, c], s.resamples as usize, seed)?
        .iter()
        .map(|r| r[0][1] / r[0][0] - r[1][1] / r[1][0])
        .collect();
    form(s, theta, &reps, || {
        Ok(vec![loo_means(t, 1.0), loo_means(c, -1.0)])
    })
}

fn slope(
    arms: &[Cells<2>],
    s: &BootSettings,
    seed: u64,
    theta: f64,
) -> StatsResult<BootstrapInterval> {
    let groups: Vec<&Cells<2>> = arms.iter().collect();
    let reps: Vec<f64> = compressed_sums(&groups, s.resamples as usize, seed)?
        .iter()
        .map(|r| {
            let sums: Vec<[f64; 3]> = r.iter().map(|g| [g[0], g[1], g[2]]).collect();
            grouped_slope(&sums)
        })
        .collect();
    form(s, theta, &reps, || {
        let sums: Vec<[f64; 3]> = arms
            .iter()
            .map(|a| {
                (a.rows.iter().zip(&a.counts)).fold([0.0; 3], |acc, (r, k)| {
                    let k = *k as f64;
                    [acc[0] + k, acc[1] + k * r[0], acc[2] + k * r[1]]
                })
            })
            .collect();
        Ok((0..arms.len())
            .filter(|a| arms[*a].units() >= 2)
            .map(|a| {
                let mut s2 = sums.clone();
                (arms[a].rows.iter().zip(&arms[a].counts))
                    .map(|(r, k)| {
                        s2[a] = [sums[a][0] - 1.0, sums[a][1] - r[0], sums[a][2] - r[1]];
                        (grouped_slope(&s2), *k)
                    })
                    .collect()
            })
            .collect())
    })
}

fn p95_shift(
    t: &Cells<1>,
    c: &Cells<1>,
    c_reps: &[f64],
    s: &BootSettings,
    seed: u64,
) -> StatsResult<Estimate> {
    let t_reps = compressed_quantile(t, 0.95, s.resamples as usize, seed)?;
    let shift = cells_quantile(t, 0.95)? - cells_quantile(c, 0.95)?;
    shift_estimate(shift, &t_reps, c_reps, s.confidence)
}

fn describe<const C: usize>(
    variant: &str,
    metric: &str,
    paired_with: Option<&str>,
    x: &Cells<C>,
) -> BootstrapCells {
    BootstrapCells {
        variant: variant.to_owned(),
        metric: metric.to_owned(),
        paired_with: paired_with.map(str::to_owned),
        units: x.units(),
        cells: x.rows.len() as u64,
        exact: x.resolution == Resolution::Exact,
        relative_error: x.resolution.relative_error(),
    }
}

/// What the bootstrap ran on, and what it could not compute.
#[derive(Default)]
struct Notes {
    described: Vec<BootstrapCells>,
    failures: Vec<NotSummarised>,
}

impl Notes {
    fn failed(&mut self, metric: &str, what: &str, err: StatsError) {
        self.failures.push(NotSummarised {
            metric: metric.to_owned(),
            reason: format!("bootstrap of {what}: {err}"),
        });
    }
}

/// Each treatment arm's p95 shift of the SLI.
fn attach_p95(
    out: &mut AggregateSummary,
    e: &Experiment,
    cells: &UnitCells,
    s: &BootSettings,
    notes: &mut Notes,
) {
    let c = e.variants.iter().position(|v| v.control).unwrap_or(0);
    let sli: Vec<&Cells<1>> = cells.values.iter().map(|a| &a[0]).collect();
    for (v, x) in e.variants.iter().zip(&sli) {
        notes.described.push(describe(&v.key, &e.sli.key, None, x));
    }
    let c_reps = compressed_quantile(
        sli[c],
        0.95,
        s.resamples as usize,
        seed(s, "p95", &e.sli.key, c),
    );
    for (a, v) in out.variants.iter_mut().enumerate().filter(|(a, _)| *a != c) {
        let shift = c_reps
            .clone()
            .and_then(|r| p95_shift(sli[a], sli[c], &r, s, seed(s, "p95", &e.sli.key, a)));
        match shift {
            Ok(x) => v.p95_shift = Some(x),
            Err(err) => notes.failed(&e.sli.key, &format!("the p95 shift of {}", v.variant), err),
        }
    }
}

/// Adds the bootstrap intervals to a summary computed from the same data.
pub fn attach(
    out: &mut AggregateSummary,
    e: &Experiment,
    cells: &UnitCells,
    s: &BootSettings,
    rule: MissingOutcomes,
) {
    let slot = |id: i64| cells.slots.iter().position(|m| *m == id);
    let arm = |key: &str| e.variants.iter().position(|v| v.key == key);
    let c = e.variants.iter().position(|v| v.control).unwrap_or(0);
    let assigned: Vec<u64> = out.variants.iter().map(|v| v.units).collect();
    let mut notes = Notes::default();
    attach_p95(out, e, cells, s, &mut notes);
    for (m, _) in outcome_metrics(e) {
        let Some(k) = slot(m.id) else { continue };
        let zero = missing_rule(m, rule) == MissingOutcomes::Zero;
        let arm_values: Vec<Cells<1>> = (0..e.variants.len())
            .map(|a| values(&cells.values[a][k], zero.then_some(assigned[a])))
            .collect();
        for (v, x) in e.variants.iter().zip(&arm_values) {
            notes.described.push(describe(&v.key, &m.key, None, x));
        }
        for effect in out.effects.iter_mut().filter(|f| f.metric == m.key) {
            let Some(a) = arm(&effect.variant) else {
                continue;
            };
            // The unadjusted difference: the cells hold the values, not CUPED's adjusted ones.
            let unadjusted = effect.unadjusted.as_ref().unwrap_or(&effect.difference);
            let (sd, theta) = (seed(s, "difference", &m.key, a), unadjusted.estimate);
            match difference(&arm_values[a], &arm_values[c], s, sd, theta) {
                Ok(b) => effect.bootstrap = Some(b),
                Err(err) => notes.failed(
                    &m.key,
                    &format!("the difference in {}", effect.variant),
                    err,
                ),
            }
        }
        let Some(found) = out.causal.iter_mut().find(|f| f.kpi == m.key) else {
            continue;
        };
        let arm_pairs: Option<Vec<Cells<2>>> = (0..e.variants.len())
            .map(|a| cells.pairs[a][k].as_ref().map(|p| pairs(p, zero)))
            .collect();
        let Some(arm_pairs) = arm_pairs else { continue };
        for (v, x) in e.variants.iter().zip(&arm_pairs) {
            notes
                .described
                .push(describe(&v.key, &m.key, Some(&e.sli.key), x));
        }
        match slope(
            &arm_pairs,
            s,
            seed(s, "slope", &m.key, 0),
            found.slope.estimate,
        ) {
            Ok(b) => found.bootstrap = Some(b),
            Err(err) => notes.failed(&m.key, "the causal slope", err),
        }
    }
    out.not_summarised.extend(notes.failures);
    out.bootstrap = Some(SummaryBootstrap {
        resamples: s.resamples,
        method: s.method,
        seed: s.seed,
        cells: notes.described,
    });
}
