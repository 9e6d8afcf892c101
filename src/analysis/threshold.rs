//! Thresholds (knees) of a KPI against the SLI: observational (hinge regression of the KPI on
//! each unit's SLI) and causal (the injection's effect as a function of the unit's baseline).

use super::causal::{fit, to_stats, Population};
use super::data::{MetricColumn, UnitData};
use super::effects::estimate;
use super::report::{
    BaselineBucket, Breakpoint, Evidence, Interval, Method, Parameters, Threshold, ThresholdTest,
    ThresholdTestMethod,
};
use super::seed_for;
use crate::stats::descriptive::quantile_sorted;
use crate::stats::hypothesis::homogeneity_q;
use crate::stats::iv::{iv_hinge, IvCov, IvHingeData};
use crate::stats::knee::hinge_analysis;

/// Bootstrap replicates for a breakpoint (each refits the hinge profile over all units).
const KNEE_RESAMPLES: u32 = 100;
/// Units with a pre-period SLI from which the causal threshold uses deciles, not quintiles.
const DECILES_FROM: usize = 20_000;
/// Units with a pre-period SLI below which no causal threshold is attempted (100 per quintile).
const CAUSAL_MIN_UNITS: usize = 500;
/// Bootstrap refits of the causal hinge (each is O(n); the interval's ends need more than the
/// observational knee's 100).
const CAUSAL_KNEE_RESAMPLES: u32 = 500;

fn empty(d: &UnitData, m: &MetricColumn, evidence: Evidence) -> Threshold {
    Threshold {
        kpi: m.metric.key.clone(),
        sli: d.sli_metric.key.clone(),
        evidence,
        breakpoint: None,
        slope_below: None,
        slope_above: None,
        slope_below_ci: None,
        slope_above_ci: None,
        slope_change_ci: None,
        no_threshold_test: None,
        reason: None,
        buckets: Vec::new(),
    }
}

/// The observational knee of the KPI against per-unit SLI.
pub fn observational_threshold(
    d: &UnitData,
    m: &MetricColumn,
    pop: &Population,
    p: &Parameters,
) -> Threshold {
    let mut t = empty(d, m, Evidence::Observational);
    let resamples = p.bootstrap.resamples.min(KNEE_RESAMPLES) as usize;
    let seed = seed_for(p, &format!("knee:{}", m.metric.key), 0);
    match hinge_analysis(&pop.x, &pop.y, p.alpha, p.confidence, resamples, seed) {
        Err(e) => t.reason = Some(format!("no threshold can be fitted: {e}")),
        Ok(h) => {
            let davies = h.davies_p_value.min(1.0);
            t.no_threshold_test = Some(ThresholdTest {
                method: ThresholdTestMethod::Davies,
                statistic: None,
                df: None,
                p_value: davies,
            });
            match h.fit {
                None => {
                    t.reason = Some(format!(
                        "no evidence of a slope change (Davies test p = {davies:.3})"
                    ))
                }
                Some((fit, (lo, hi))) => {
                    t.breakpoint = Some(Breakpoint {
                        estimate: fit.breakpoint,
                        ci_low: lo,
                        ci_high: hi,
                    });
                    t.slope_below = Some(fit.slope_below);
                    t.slope_above = Some(fit.slope_above);
                }
            }
        }
    }
    t
}

/// The units with a pre-period SLI, their stratum (quantile bucket of the pre-period SLI) and
/// the strata's edges.
struct Strata {
    pop: Population,
    stratum: Vec<u32>,
    edges: Vec<f64>,
}

fn strata(pop: &Population) -> Option<Strata> {
    let keep: Vec<usize> = (0..pop.x.len())
        .filter(|&i| !pop.x_pre[i].is_nan())
        .collect();
    if keep.len() < CAUSAL_MIN_UNITS || keep.len() * 2 < pop.x.len() {
        return None;
    }
    let k = if keep.len() >= DECILES_FROM { 10 } else { 5 };
    let mut sorted: Vec<f64> = keep.iter().map(|&i| pop.x_pre[i]).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let edges: Vec<f64> = (0..=k)
        .map(|j| quantile_sorted(&sorted, j as f64 / k as f64).unwrap_or(f64::NAN))
        .collect();
    // Stratum j holds edges[j] ≤ v < edges[j + 1] (the last one also v = max); ties at an
    // edge go up, so a heavily tied baseline may leave a stratum empty.
    let inner = &edges[1..k];
    let stratum = keep
        .iter()
        .map(|&i| inner.partition_point(|e| *e <= pop.x_pre[i]) as u32)
        .collect();
    Some(Strata {
        pop: Population {
            arm: keep.iter().map(|&i| pop.arm[i]).collect(),
            x: keep.iter().map(|&i| pop.x[i]).collect(),
            y: keep.iter().map(|&i| pop.y[i]).collect(),
            x_pre: Vec::new(),
        },
        stratum,
        edges,
    })
}

/// The injection's 2SLS slope within each stratum (the causal threshold's diagnostics).
fn bucket_slopes(d: &UnitData, s: &Strata, p: &Parameters) -> Vec<BaselineBucket> {
    (0..s.edges.len() - 1)
        .map(|b| {
            let idx: Vec<usize> = (0..s.pop.x.len())
                .filter(|&i| s.stratum[i] as usize == b)
                .collect();
            let sub = Population {
                arm: idx.iter().map(|&i| s.pop.arm[i]).collect(),
                x: idx.iter().map(|&i| s.pop.x[i]).collect(),
                y: idx.iter().map(|&i| s.pop.y[i]).collect(),
                x_pre: Vec::new(),
            };
            let slope = fit(&sub, d.arms.len(), d.control)
                .and_then(|f| f.slope(IvCov::Robust, p.confidence))
                .ok();
            BaselineBucket {
                bucket: b as u32 + 1,
                baseline_low: s.edges[b],
                baseline_high: s.edges[b + 1],
                units: idx.len() as u64,
                slope: slope.map(|s| estimate(to_stats(&s), Method::TwoSlsRobust)),
            }
        })
        .collect()
}

/// Causal threshold: the injection randomises a dose on top of each unit's baseline, so how its
/// effect varies with the baseline traces the KPI–SLI curve. Units are stratified by their
/// pre-period SLI; the test of "no threshold" is Cochran's Q on the strata's 2SLS slopes (one
/// slope everywhere under a linear curve); the breakpoint is the hinge fitted by 2SLS with
/// arm × stratum instruments and ψ profiled ([`crate::stats::iv::IvHingeData`]), with
/// Poisson-bootstrap percentile intervals for ψ, both slopes and their change. A breakpoint is
/// reported when the test rejects at `alpha` and the interval of the slope change lies wholly on
/// the harmful side. Q detects any difference between strata (curvature of any shape, or units
/// of different baselines reacting differently); the hinge assumes one curve for all units.
pub fn causal_threshold(
    d: &UnitData,
    m: &MetricColumn,
    pop: &Population,
    p: &Parameters,
) -> Option<Threshold> {
    let mut t = empty(d, m, Evidence::Causal);
    let Some(s) = strata(pop) else {
        t.reason = Some(format!(
            "a causal threshold needs a pre-period {} value for at least {CAUSAL_MIN_UNITS} units and for half of the analysed ones (to stratify units by their baseline)",
            d.sli_metric.key
        ));
        return Some(t);
    };
    t.buckets = bucket_slopes(d, &s, p);
    let slopes: Vec<(f64, f64)> = t
        .buckets
        .iter()
        .filter_map(|b| b.slope.as_ref())
        .map(|e| (e.estimate, e.std_error))
        .collect();
    let test = match homogeneity_q(&slopes) {
        Ok(h) => h,
        Err(e) => {
            t.reason = Some(format!(
                "the injection's slope could not be compared across baseline strata: {e}"
            ));
            return Some(t);
        }
    };
    t.no_threshold_test = Some(ThresholdTest {
        method: ThresholdTestMethod::SlopeHomogeneity,
        statistic: Some(test.statistic),
        df: Some(test.df as u32),
        p_value: test.p_value,
    });
    if test.p_value >= p.alpha {
        t.reason = Some(format!(
            "no evidence that the injected SLI's effect differs between baseline levels (slope homogeneity p = {:.3}): no threshold found in the observed range, which is absence of evidence, not proof of a straight line",
            test.p_value
        ));
        return Some(t);
    }
    let resamples = p.bootstrap.resamples.min(CAUSAL_KNEE_RESAMPLES) as usize;
    let seed = seed_for(p, &format!("causal-knee:{}", m.metric.key), 0);
    let strata_count = s.edges.len() - 1;
    let fitted = IvHingeData::new(
        &s.pop.y,
        &s.pop.x,
        &s.pop.arm,
        &s.stratum,
        d.arms.len(),
        strata_count,
    )
    .and_then(|data| iv_hinge(&data, resamples, seed, p.confidence));
    let h = match fitted {
        Ok(h) => h,
        Err(e) => {
            t.reason = Some(format!("no causal threshold can be fitted: {e}"));
            return Some(t);
        }
    };
    t.slope_below = Some(h.fit.slope_below);
    t.slope_above = Some(h.fit.slope_above);
    let interval = |(low, high): (f64, f64)| Interval { low, high };
    t.slope_below_ci = Some(interval(h.slope_below_ci));
    t.slope_above_ci = Some(interval(h.slope_above_ci));
    t.slope_change_ci = Some(interval(h.slope_change_ci));
    let harmful = d
        .sli_metric
        .direction
        .harmful_slope_sign(m.metric.direction);
    let (lo, hi) = h.slope_change_ci;
    // The whole interval of the slope change must lie on the harmful side.
    if harmful * lo <= 0.0 || harmful * hi <= 0.0 {
        t.reason = Some(format!(
            "the effect differs between baseline levels, but a harm that grows past one point is not established (slope change {:.3e}, {:.0}% CI {lo:.3e} to {hi:.3e}): no threshold to protect",
            h.fit.slope_above - h.fit.slope_below,
            100.0 * p.confidence
        ));
        return Some(t);
    }
    t.breakpoint = Some(Breakpoint {
        estimate: h.fit.breakpoint,
        ci_low: h.breakpoint_ci.0,
        ci_high: h.breakpoint_ci.1,
    });
    Some(t)
}
