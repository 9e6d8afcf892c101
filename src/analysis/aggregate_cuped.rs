//! CUPED in the summary: each KPI's and guardrail's adjustment by its own pre-period value,
//! computed from the per-arm sums of `store::aggregates` exactly as the full analysis computes
//! it from units (`comparisons::cuped_effects`): the same population (the units with a value,
//! or every assigned unit where a missing value counts as 0), the same fill for units without a
//! pre-period value (the mean of the pre-period values of every assigned unit that has one; it
//! does not use the assignment, so the adjusted difference stays unbiased) and the same pooled
//! θ. Pre-period values are shifted by one of them, so a constant covariate sums to exactly
//! zero spread, as `stats::cuped::cuped` finds it from the values. Tests compare the two to
//! 1e-9 relative.

use crate::domain::experiment::Experiment;
use crate::domain::metric::Metric;
use crate::stats::cuped::{cuped_from_sums, CupedSums};
use crate::stats::descriptive::Moments;
use crate::stats::StatsError;
use crate::store::aggregates::{ArmSums, MetricArmSums};

/// θ, the variance reduction and each arm's adjusted moments of metric `m` (in the
/// experiment's arm order); `Ok(None)` when fewer than 3 assigned units have a pre-period
/// value, the covariate is constant or an arm has fewer than 2 units: then the comparison is
/// unadjusted, as in the full analysis. `Err` when sums cannot give it to enough digits (the
/// covariate explains nearly all of an arm's variance): the full analysis can.
pub fn cuped_arms(
    e: &Experiment,
    s: &ArmSums,
    m: &Metric,
    assigned: &[u64],
    zero: bool,
) -> Result<Option<(f64, f64, Vec<Moments>)>, StatsError> {
    let rows: Vec<Option<&MetricArmSums>> = e.variants.iter().map(|v| s.of(v.id, m.id)).collect();
    let Some(first) = rows.iter().flatten().next() else {
        return Ok(None);
    };
    let (kx, ky) = (first.pre_shift, first.shift);
    let (mut with_pre, mut pre_total) = (0i64, 0.0);
    for r in rows.iter().flatten() {
        with_pre += r.pre_units + r.pre_only_units;
        pre_total += r.pre_sum + r.pre_only_sum;
    }
    if with_pre < 3 {
        return Ok(None);
    }
    // Units without a pre-period value take the mean of those with one (shifted).
    let fill = pre_total / with_pre as f64;
    let arms: Vec<CupedSums> = rows
        .iter()
        .zip(assigned)
        .map(|(r, &n)| arm_sums(*r, n, fill, ky, zero))
        .collect();
    let r = match cuped_from_sums(&arms, (kx, ky)) {
        Ok(r) => r,
        Err(e @ StatsError::Undefined(_)) => return Err(e),
        Err(_) => return Ok(None),
    };
    let moments = r
        .arms
        .iter()
        .map(|(n, mean, var)| Moments::from_summary(*n, *mean, *var))
        .collect();
    Ok(Some((r.theta, r.variance_reduction, moments)))
}

/// One arm's CUPED sums of shifted values (x′ = x − pre-period shift, y′ = y − k) over its
/// units with a value, or over all `assigned` units when a missing value counts as 0
/// (y′ = −k), each unit without a pre-period value taking `fill` (shifted).
fn arm_sums(r: Option<&MetricArmSums>, assigned: u64, fill: f64, k: f64, zero: bool) -> CupedSums {
    let Some(r) = r else {
        // No unit of the arm has a value or a pre-period value.
        let n = if zero { assigned as f64 } else { 0.0 };
        return CupedSums {
            n,
            x: n * fill,
            xx: n * fill * fill,
            y: -n * k,
            yy: n * k * k,
            xy: -n * k * fill,
        };
    };
    let filled = (r.units - r.pre_units) as f64;
    let mut out = CupedSums {
        n: r.units as f64,
        x: r.pre_sum + filled * fill,
        xx: r.pre_sq + filled * fill * fill,
        y: r.value_sum,
        yy: r.value_sq,
        xy: r.pre_cross + fill * (r.value_sum - r.value_sum_with_pre),
    };
    if zero {
        // Units without a value count as y = 0, i.e. y′ = −k.
        let missing = assigned as f64 - r.units as f64;
        let filled = missing - r.pre_only_units as f64;
        let x = r.pre_only_sum + filled * fill;
        out.n += missing;
        out.x += x;
        out.xx += r.pre_only_sq + filled * fill * fill;
        out.y -= missing * k;
        out.yy += missing * k * k;
        out.xy -= k * x;
    }
    out
}
