//! Thresholds (knees) of a KPI against the SLI: observational (hinge regression of the KPI on
//! each unit's SLI) and causal (the injection's effect as a function of the unit's baseline).

use super::aggregate_cells::CELL_CAP;
use super::causal::{fit, to_stats, Population};
use super::data::{MetricColumn, UnitData};
use super::effects::estimate;
use super::report::{
    BaselineBucket, Breakpoint, Evidence, Interval, Method, Parameters, Threshold, ThresholdTest,
    ThresholdTestMethod,
};
use super::seed_for;
use crate::domain::metric::Metric;
use crate::stats::cells::{CellCounter, Cells};
use crate::stats::compressed::cells_quantile;
use crate::stats::hypothesis::homogeneity_q;
use crate::stats::iv::{iv_hinge, IvCov, IvHingeData, TwoSls};
use crate::stats::knee::{hinge_analysis, hinge_analysis_cells, CountedSample, HingeAnalysis};
use crate::stats::StatsResult;

/// Bootstrap replicates for a breakpoint (each refits the hinge profile over all units).
const KNEE_RESAMPLES: u32 = 100;
/// Assigned units with a pre-period SLI from which the causal threshold uses deciles, not
/// quintiles.
const DECILES_FROM: u64 = 20_000;
/// Units with a pre-period SLI below which no causal threshold is attempted (100 per quintile).
pub const CAUSAL_MIN_UNITS: usize = 500;
/// Bootstrap refits of the causal hinge (each is O(n); the interval's ends need more than the
/// observational knee's 100).
pub const CAUSAL_KNEE_RESAMPLES: u32 = 500;

fn empty(d: &UnitData, m: &MetricColumn, evidence: Evidence) -> Threshold {
    empty_of(&d.sli_metric, &m.metric, evidence)
}

/// A threshold of `kpi` on `sli` with nothing found yet.
pub fn empty_of(sli: &Metric, kpi: &Metric, evidence: Evidence) -> Threshold {
    Threshold {
        kpi: kpi.key.clone(),
        sli: sli.key.clone(),
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
    let resamples = p.bootstrap.resamples.min(KNEE_RESAMPLES) as usize;
    let seed = seed_for(p, &format!("knee:{}", m.metric.key), 0);
    observational(
        empty(d, m, Evidence::Observational),
        hinge_analysis(&pop.x, &pop.y, p.alpha, p.confidence, resamples, seed),
        growing_harm(&d.sli_metric, &m.metric),
    )
}

/// Largest half-width of the cells at ψ̂ relative to the breakpoint's interval for which a
/// summary reports an observational breakpoint found on binned cells.
const BINNED_SHARE: f64 = 0.1;

/// The observational knee from the KPI population's (SLI, KPI) rows counted into cells, as a
/// summary collects them (`stats::knee::hinge_analysis_cells`); bootstrapped with at most the
/// analysis's 100 replicates. Binned cells place each unit's SLI within ±2⁻ᵏ of its distance
/// from the least value, both columns at one resolution, so a continuous KPI leaves the SLI
/// coarse bins: where the cells' half-width at ψ̂ exceeds a tenth of the breakpoint's
/// interval, the binning, not the data, would decide ψ̂ and its interval (an outside tester's
/// sharp knee at 250,000 units: ψ̂ off by 72% of the analysis's interval, the interval 0.65
/// times as wide), so no breakpoint is reported and the reason says so.
pub fn observational_from_cells(
    (sli, kpi): (&Metric, &Metric),
    sample: CountedSample,
    k: KneeSettings,
) -> Threshold {
    let resamples = k.resamples.min(KNEE_RESAMPLES as usize);
    let found = hinge_analysis_cells(sample, k.alpha, k.confidence, resamples, k.seed);
    let mut t = observational(
        empty_of(sli, kpi, Evidence::Observational),
        found,
        growing_harm(sli, kpi),
    );
    let Some(b) = t.breakpoint.as_ref() else {
        return t;
    };
    let share = sample.cells.resolution.relative_error();
    let half_width = share * (b.estimate - sample.offsets.0).abs();
    if half_width > BINNED_SHARE * (b.ci_high - b.ci_low) {
        let p = t.no_threshold_test.as_ref().map_or(f64::NAN, |x| x.p_value);
        t.reason = Some(format!(
            "a slope change is detected (Davies test p = {}), but the summary's (SLI, KPI) \
             cells are binned to ±{:.2}% of the SLI's distance from its least value (±{} at \
             {}), too coarse for the breakpoint's interval ({}–{}); the full analysis places \
             it unit by unit",
            p_text(p),
            share * 100.0,
            sig(half_width),
            sig(b.estimate),
            sig(b.ci_low),
            sig(b.ci_high)
        ));
        (t.breakpoint, t.slope_below, t.slope_above) = (None, None, None);
    }
    t
}

/// A p-value for a sentence: 3 decimals, or 2 significant digits below 0.001.
fn p_text(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

/// `v` with 4 significant digits, in scientific notation outside 0.001–10⁶.
fn sig(v: f64) -> String {
    if v != 0.0 && !(1e-3..1e6).contains(&v.abs()) {
        return format!("{v:.3e}");
    }
    format!("{}", format!("{v:.3e}").parse::<f64>().unwrap_or(v))
}

/// The sign of a slope change (above ψ − below ψ) by which the KPI's harm grows as the SLI
/// worsens past ψ: the slope on ψ's worse side (above it for a lower-is-better SLI, below it
/// for a higher-is-better one) more harmful than on its better side.
fn growing_harm(sli: &Metric, kpi: &Metric) -> f64 {
    sli.direction.harmful_slope_sign(kpi.direction) * sli.direction.worse_sign()
}

/// The observational threshold from a hinge analysis: a breakpoint where the Davies test finds
/// a slope change and the harm grows past it (a change times `harmful` > 0); a KPI that stops
/// falling past ψ (a floor, saturation) has no threshold to protect, and the reason says so.
fn observational(mut t: Threshold, found: StatsResult<HingeAnalysis>, harmful: f64) -> Threshold {
    match found {
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
                    t.slope_below = Some(fit.slope_below);
                    t.slope_above = Some(fit.slope_above);
                    if harmful * (fit.slope_above - fit.slope_below) <= 0.0 {
                        t.reason = Some(format!(
                            "the slope changes near {} (Davies test p = {}), but the \
                             harm does not grow past it (slope {} below, {} above): no \
                             threshold to protect",
                            sig(fit.breakpoint),
                            p_text(davies),
                            sig(fit.slope_below),
                            sig(fit.slope_above)
                        ));
                        return t;
                    }
                    t.breakpoint = Some(Breakpoint {
                        estimate: fit.breakpoint,
                        ci_low: lo,
                        ci_high: hi,
                    });
                }
            }
        }
    }
    t
}

/// The edges of the baseline strata: quintiles of the assigned units' pre-period SLI values,
/// deciles from [`DECILES_FROM`] of them, computed from those values less `shift` (a central
/// value of the SLI, `UnitData::sli_shift`) counted into cells ([`CELL_CAP`] of them,
/// `stats::cells`), plus `shift`: the sample's quantiles (to a rounding) when it has at most
/// that many distinct values, otherwise within 2⁻ᵏ of their distance from `shift` (k ≥ 8 for a
/// log-normal with σ ≤ 1). Counting values less a central one makes the cells' resolution
/// follow the spread, not the magnitude (an availability of 0.999 ± 0.0003, or an SLI
/// of 1e12 ± 1e5, would otherwise fall into a handful of cells). Any cut points fixed by
/// pre-period values alone make valid strata; taking them from cells lets a summary that reads
/// no units find the same strata as the analysis, and taking them over all assigned units (not
/// only those with the KPI) keeps them free of outcomes. `None` without baselines.
pub fn strata_edges(baselines: &Cells<1>, shift: f64) -> Option<Vec<f64>> {
    let units = baselines.units();
    if units == 0 {
        return None;
    }
    let k = if units >= DECILES_FROM { 10 } else { 5 };
    (0..=k)
        .map(|j| {
            cells_quantile(baselines, j as f64 / k as f64)
                .ok()
                .map(|q| q + shift)
        })
        .collect()
}

/// The stratum of a baseline value: stratum j holds edges[j] ≤ v < edges[j + 1] (the last one
/// also v = max); ties at an edge go up, so a heavily tied baseline may leave a stratum empty.
pub fn stratum_of(edges: &[f64], v: f64) -> u32 {
    edges[1..edges.len() - 1].partition_point(|e| *e <= v) as u32
}

/// What the hinge's SLI values are counted above: the least SLI value of an assigned unit (0
/// without any). Above it the values' cells bin their spread, not their level (an
/// availability near 1, or an SLI of 1e12 ± 1e5, would otherwise fall into a few
/// cells), and the hinge keeps its digits; the breakpoint is reported back on the SLI's scale.
pub fn hinge_offset(sli: &[f64]) -> f64 {
    let least = sli
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f64::INFINITY, f64::min);
    if least.is_finite() {
        least
    } else {
        0.0
    }
}

/// The reason no causal threshold is attempted when too few units have a baseline, or `None`.
pub fn too_few_baselines(sli: &Metric, with_baseline: u64, analysed: u64) -> Option<String> {
    (with_baseline < CAUSAL_MIN_UNITS as u64 || with_baseline * 2 < analysed).then(|| {
        format!(
            "a causal threshold needs a pre-period {} value for at least {CAUSAL_MIN_UNITS} units and for half of the analysed ones (to stratify units by their baseline)",
            sli.key
        )
    })
}

/// The units with a pre-period SLI, their stratum (quantile bucket of the pre-period SLI) and
/// the strata's edges.
struct Strata {
    pop: Population,
    stratum: Vec<u32>,
    edges: Vec<f64>,
}

fn strata(d: &UnitData, pop: &Population) -> Result<Strata, String> {
    let keep: Vec<usize> = (0..pop.x.len())
        .filter(|&i| !pop.x_pre[i].is_nan())
        .collect();
    if let Some(reason) = too_few_baselines(&d.sli_metric, keep.len() as u64, pop.x.len() as u64) {
        return Err(reason);
    }
    let mut baselines = CellCounter::new(CELL_CAP);
    for v in d.sli_pre.iter().filter(|v| !v.is_nan()) {
        baselines.add([*v - d.sli_shift], 1);
    }
    let edges = strata_edges(&baselines.finish(), d.sli_shift).ok_or("no baseline")?;
    let stratum = keep
        .iter()
        .map(|&i| stratum_of(&edges, pop.x_pre[i]))
        .collect();
    Ok(Strata {
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
fn bucket_slopes(d: &UnitData, s: &Strata) -> Vec<(u64, StatsResult<TwoSls>)> {
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
            (idx.len() as u64, fit(&sub, d.arms.len(), d.control))
        })
        .collect()
}

/// Causal threshold: the injection randomises a dose on top of each unit's baseline, so how its
/// effect varies with the baseline traces the KPI–SLI curve. Units are stratified by their
/// pre-period SLI ([`strata_edges`]); the test of "no threshold" is Cochran's Q on the strata's
/// 2SLS slopes (one slope everywhere under a linear curve); the breakpoint is the hinge fitted
/// by 2SLS with arm × stratum instruments and ψ profiled ([`crate::stats::iv::IvHingeData`]),
/// with Poisson-bootstrap percentile intervals for ψ, both slopes and their change. A breakpoint
/// is reported when the test rejects at `alpha` and the interval of the slope change lies
/// wholly on the harmful side. Q detects any difference between strata (curvature of any shape,
/// or units of different baselines reacting differently); the hinge assumes one curve for all
/// units.
pub fn causal_threshold(
    d: &UnitData,
    m: &MetricColumn,
    pop: &Population,
    p: &Parameters,
) -> Option<Threshold> {
    let s = match strata(d, pop) {
        Ok(s) => s,
        Err(reason) => {
            let mut t = empty(d, m, Evidence::Causal);
            t.reason = Some(reason);
            return Some(t);
        }
    };
    let offset = hinge_offset(&d.sli);
    let input = StratifiedKpi {
        sli: &d.sli_metric,
        kpi: &m.metric,
        edges: &s.edges,
        slopes: bucket_slopes(d, &s),
        hinge: Box::new(|| {
            let x: Vec<f64> = s.pop.x.iter().map(|v| v - offset).collect();
            IvHingeData::new(
                &s.pop.y,
                &x,
                &s.pop.arm,
                &s.stratum,
                d.arms.len(),
                s.edges.len() - 1,
            )
        }),
        x_offset: offset,
    };
    let knee = KneeSettings {
        alpha: p.alpha,
        confidence: p.confidence,
        resamples: p.bootstrap.resamples.min(CAUSAL_KNEE_RESAMPLES) as usize,
        seed: seed_for(p, &format!("causal-knee:{}", m.metric.key), 0),
    };
    Some(causal_from_strata(input, knee))
}

/// A KPI's units stratified by baseline, however they were read: per stratum its units and
/// the 2SLS fit of the KPI on the SLI within it, and the hinge's data (built only when the
/// test asks for a fit).
pub struct StratifiedKpi<'a> {
    pub sli: &'a Metric,
    pub kpi: &'a Metric,
    pub edges: &'a [f64],
    pub slopes: Vec<(u64, StatsResult<TwoSls>)>,
    /// The hinge's data, with the SLI's values less `x_offset` ([`hinge_offset`]).
    pub hinge: Box<dyn FnOnce() -> StatsResult<IvHingeData> + 'a>,
    pub x_offset: f64,
}

/// How the causal threshold is tested and bootstrapped.
#[derive(Debug, Clone, Copy)]
pub struct KneeSettings {
    pub alpha: f64,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
}

/// The causal threshold from stratified units (see [`causal_threshold`]).
pub fn causal_from_strata(input: StratifiedKpi, k: KneeSettings) -> Threshold {
    let mut t = empty_of(input.sli, input.kpi, Evidence::Causal);
    let edges = input.edges;
    t.buckets = (input.slopes.into_iter().enumerate())
        .map(|(b, (units, fit))| {
            let slope = fit.and_then(|f| f.slope(IvCov::Robust, k.confidence)).ok();
            BaselineBucket {
                bucket: b as u32 + 1,
                baseline_low: edges[b],
                baseline_high: edges[b + 1],
                units,
                slope: slope.map(|s| estimate(to_stats(&s), Method::TwoSlsRobust)),
            }
        })
        .collect();
    let slopes: Vec<(f64, f64)> = t
        .buckets
        .iter()
        .filter_map(|b| b.slope.as_ref())
        .map(|e| (e.estimate, e.std_error))
        .collect();
    if slopes.len() < 2 {
        t.reason = Some(format!(
            "the injection's slope could be estimated in {} of {} baseline strata (each needs units of every arm with a {} value and a spread in the SLI); comparing strata needs two",
            slopes.len(),
            t.buckets.len(),
            input.kpi.key
        ));
        return t;
    }
    let test = match homogeneity_q(&slopes) {
        Ok(h) => h,
        Err(e) => {
            t.reason = Some(format!(
                "the injection's slope could not be compared across baseline strata: {e}"
            ));
            return t;
        }
    };
    t.no_threshold_test = Some(ThresholdTest {
        method: ThresholdTestMethod::SlopeHomogeneity,
        statistic: Some(test.statistic),
        df: Some(test.df as u32),
        p_value: test.p_value,
    });
    if test.p_value >= k.alpha {
        t.reason = Some(format!(
            "no evidence that the injected SLI's effect differs between baseline levels (slope homogeneity p = {:.3}): no threshold found in the observed range, which is absence of evidence, not proof of a straight line",
            test.p_value
        ));
        return t;
    }
    let fitted =
        (input.hinge)().and_then(|data| iv_hinge(&data, k.resamples, k.seed, k.confidence));
    let h = match fitted {
        Ok(h) => h,
        Err(e) => {
            t.reason = Some(format!("no causal threshold can be fitted: {e}"));
            return t;
        }
    };
    t.slope_below = Some(h.fit.slope_below);
    t.slope_above = Some(h.fit.slope_above);
    let interval = |(low, high): (f64, f64)| Interval { low, high };
    t.slope_below_ci = Some(interval(h.slope_below_ci));
    t.slope_above_ci = Some(interval(h.slope_above_ci));
    t.slope_change_ci = Some(interval(h.slope_change_ci));
    let harmful = growing_harm(input.sli, input.kpi);
    let (lo, hi) = h.slope_change_ci;
    // The whole interval of the slope change must lie on the harmful side.
    if harmful * lo <= 0.0 || harmful * hi <= 0.0 {
        t.reason = Some(format!(
            "the effect differs between baseline levels, but a harm that grows past one point is not established (slope change {:.3e}, {:.0}% CI {lo:.3e} to {hi:.3e}): no threshold to protect",
            h.fit.slope_above - h.fit.slope_below,
            100.0 * k.confidence
        ));
        return t;
    }
    t.breakpoint = Some(Breakpoint {
        estimate: h.fit.breakpoint + input.x_offset,
        ci_low: h.breakpoint_ci.0 + input.x_offset,
        ci_high: h.breakpoint_ci.1 + input.x_offset,
    });
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(values: &[f64]) -> Cells<1> {
        let mut c = CellCounter::new(CELL_CAP);
        for v in values {
            c.add([*v], 1);
        }
        c.finish()
    }

    #[test]
    fn edges_are_the_baselines_quantiles_and_ties_go_up() {
        // 1..=10: quintiles by linear interpolation at h = 9q (2.8 = 2 + 0.8 × (3 − 2), …).
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let e = strata_edges(&cells(&v), 0.0).unwrap();
        for (got, want) in e.iter().zip([1.0, 2.8, 4.6, 6.4, 8.2, 10.0]) {
            assert!((got - want).abs() < 1e-12, "{e:?}");
        }
        assert_eq!(stratum_of(&e, 1.0), 0);
        assert_eq!(stratum_of(&e, 2.79), 0);
        assert_eq!(stratum_of(&e, e[1]), 1, "a value on an edge goes up");
        assert_eq!(stratum_of(&e, 9.0), 4);
        assert_eq!(
            stratum_of(&e, 10.0),
            4,
            "the maximum is in the last stratum"
        );
        // 70 zeros then 1..=30: the first four edges are 0, so every zero is in stratum 3
        // and strata 0–2 are empty.
        let mut tied = vec![0.0; 70];
        tied.extend((1..=30).map(f64::from));
        let e = strata_edges(&cells(&tied), 0.0).unwrap();
        assert_eq!(&e[..4], &[0.0; 4]);
        assert_eq!(stratum_of(&e, 0.0), 3);
        assert_eq!(stratum_of(&e, 30.0), 4);
        // Deciles from 20,000 baselines; none without any.
        let many: Vec<f64> = (0..20_000).map(f64::from).collect();
        assert_eq!(strata_edges(&cells(&many), 0.0).unwrap().len(), 11);
        assert!(strata_edges(&cells(&[]), 0.0).is_none());
    }

    fn metric(key: &str) -> Metric {
        Metric::for_tests(key, "ms", crate::domain::metric::MetricKind::Kpi)
    }

    /// A sharp knee of a continuous KPI (0.05 per ms past 700 ms, noise sd 5) on 20,000 units:
    /// counted exactly, the breakpoint is reported; squeezed into 1,024 cells, whose bins at ψ̂
    /// are wider than a tenth of its interval, it is not, and the reason says why.
    #[test]
    fn a_breakpoint_finer_than_its_cells_is_not_reported() {
        use rand::{Rng, SeedableRng};
        use rand_distr::{Distribution, LogNormal, Normal};
        let mut r = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let (x_of, noise) = (
            LogNormal::new(500f64.ln(), 0.4).unwrap(),
            Normal::new(0.0, 5.0).unwrap(),
        );
        let rows: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                let x = x_of.sample(&mut r) + f64::from(r.random_range(0..3u8)) * 200.0;
                (x, noise.sample(&mut r) - 0.05 * (x - 700.0).max(0.0))
            })
            .collect();
        let least = rows.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let settings = KneeSettings {
            alpha: 0.05,
            confidence: 0.95,
            resamples: 100,
            seed: 1,
        };
        let sli = metric("lat_ms_2");
        let mut kpi = metric("kpi_9");
        kpi.direction = crate::domain::metric::Direction::HigherIsBetter;
        let found_for = |kpi: &Metric, cap: usize| {
            let mut c = CellCounter::new(cap);
            let mut sums = [0.0; 2];
            for (x, y) in &rows {
                c.add([x - least, *y], 1);
                sums[0] += y;
                sums[1] += y * y;
            }
            let cells = c.finish();
            let sample = CountedSample {
                cells: &cells,
                offsets: (least, 0.0),
                y_sums: sums,
            };
            observational_from_cells((&sli, kpi), sample, settings)
        };
        let found = |cap: usize| found_for(&kpi, cap);
        let exact = found(1 << 20);
        let b = exact
            .breakpoint
            .as_ref()
            .expect("a breakpoint from exact cells");
        assert!((b.estimate - 700.0).abs() < 5.0, "{b:?}");
        assert!(exact.reason.is_none());
        let coarse = found(1024);
        assert!(
            coarse.breakpoint.is_none() && coarse.slope_above.is_none(),
            "{coarse:?}"
        );
        let reason = coarse.reason.unwrap();
        assert!(
            reason.contains("binned") && reason.contains("full analysis"),
            "{reason}"
        );
        assert!(coarse.no_threshold_test.unwrap().p_value < 1e-6);
        // A KPI for which lower is better gains as it falls past 700 ms: the slope changes,
        // but no harm grows past the point, so it is no threshold.
        kpi.direction = crate::domain::metric::Direction::LowerIsBetter;
        let gain = found_for(&kpi, 1 << 20);
        assert!(gain.breakpoint.is_none(), "{gain:?}");
        assert!(gain.slope_above.unwrap() < gain.slope_below.unwrap());
        let reason = gain.reason.unwrap();
        assert!(reason.contains("does not grow"), "{reason}");
    }
}
