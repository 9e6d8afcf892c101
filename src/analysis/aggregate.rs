//! An experiment summarised from per-arm sums that the database computes (`store::aggregates`):
//! sample ratio, each arm's level of the SLI and of every KPI and guardrail, every treatment's
//! difference from control, and the causal SLI→KPI slope (2SLS with arm instruments). Reading
//! a few rows per arm and metric, it answers in bounded memory for any number of units.
//!
//! The numbers are the full analysis's closed-form ones (unadjusted tests, CUPED with each
//! metric's pre-period value, 2SLS with robust errors) computed from the same sufficient
//! statistics: tests compare the two paths to 1e-9 relative on both backends. A bootstrap runs
//! on counted cells (`aggregate_boot`). What needs units is left to the full analysis:
//! thresholds, ratio metrics, winsorizing and the joint model of several SLIs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::aggregate_boot::SummaryBootstrap;
use super::causal::{relative_per_100, to_stats};
use super::data::{missing_rule, outcome_metrics};
use super::effects::{estimate, level, relative_change, sample_ratio_report};
use super::report::{
    ArmMean, BootstrapInterval, Correction, CupedAdjustment, Estimate, Method, MetricRole,
    MissingOutcomes, SampleRatio, Threshold,
};
use super::stats_err;
use crate::domain::experiment::Experiment;
use crate::domain::metric::{Metric, ValueType};
use crate::error::{AppError, AppResult, Issue};
use crate::stats::descriptive::Moments;
use crate::stats::hypothesis::{two_proportion_z_test, welch_from_moments};
use crate::stats::iv::{two_sls_from_arm_moments, ArmMoments, IvCov};
use crate::store::aggregates::ArmSums;

/// An experiment summarised from per-arm sums computed by the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AggregateSummary {
    pub experiment: String,
    /// The SLI the arms change (the first one, for an experiment with several).
    pub sli: String,
    pub confidence: f64,
    /// Assigned units.
    pub units: u64,
    /// Observations of units without an assignment (in no sum).
    pub unassigned_observations: u64,
    /// Assignments per arm against the planned weights; `analysed` counts units with a value
    /// of `sli` (the full analysis of an experiment with several SLIs counts those with all).
    pub sample_ratio: SampleRatio,
    pub variants: Vec<AggregateVariant>,
    /// Every treatment against control, for every KPI and guardrail (CUPED-adjusted Welch
    /// for a metric with pre-period values when CUPED is on; otherwise two-proportion z for a
    /// binary metric, Welch for the others).
    pub effects: Vec<AggregateEffect>,
    /// Whether metrics with pre-period values were CUPED-adjusted (`cuped`; by default when
    /// any KPI or guardrail has pre-period values, as in a full analysis).
    pub cuped: bool,
    /// The causal slope of each KPI on the SLI.
    pub causal: Vec<AggregateSlope>,
    /// Metrics this summary leaves to the full analysis, and why.
    pub not_summarised: Vec<NotSummarised>,
    /// What the bootstrap ran on, when `resamples` asked for one.
    pub bootstrap: Option<SummaryBootstrap>,
    /// Each KPI's observational and causal thresholds, in that order, as an analysis's
    /// `threshold` entries: present (maybe empty) when `thresholds` asked for them, absent
    /// otherwise. A KPI without a causal slope has none (`not_summarised` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<Threshold>>,
}

/// One arm's size and SLI level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AggregateVariant {
    pub variant: String,
    pub control: bool,
    /// Planned SLI change, in the SLI's unit.
    pub dose: f64,
    pub units: u64,
    /// Mean SLI of the arm's units with a value, with its t interval; null when none has one.
    pub sli: Option<ArmMean>,
    /// The arm's p95 of the SLI minus control's, with a Poisson-bootstrap percentile interval
    /// (with a bootstrap; null for control). From the cells: with binned values each p95 is
    /// within its `relative_error` times its distance from the SLI's shift of the units' own.
    pub p95_shift: Option<Estimate>,
}

/// A treatment's difference from control for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AggregateEffect {
    pub variant: String,
    pub metric: String,
    pub role: MetricRole,
    pub control: ArmMean,
    pub treatment: ArmMean,
    /// Treatment − control in the metric's unit: CUPED's adjusted difference
    /// (`cuped_welch_t`) when `cuped` is set, as the full analysis's primary; the arm levels
    /// above stay unadjusted.
    pub difference: Estimate,
    /// The difference over the control mean (delta method; of the adjusted means with CUPED);
    /// p-values are the difference's. As the full analysis's `relative`: `scaled` where the
    /// treatment's values are all 0, null when the control mean is 0.
    pub relative: Option<Estimate>,
    /// With CUPED: the unadjusted difference (two-proportion z or Welch) and relative change.
    pub unadjusted: Option<Estimate>,
    pub unadjusted_relative: Option<Estimate>,
    /// CUPED's θ and variance reduction, when the difference is adjusted.
    pub cuped: Option<CupedAdjustment>,
    /// Bootstrap interval of the unadjusted difference (with a bootstrap), as the full
    /// analysis's `alternatives.bootstrap`.
    pub bootstrap: Option<BootstrapInterval>,
}

/// The 2SLS slope of a KPI on the SLI with the arms as instruments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AggregateSlope {
    pub kpi: String,
    pub sli: String,
    /// Units in the regression (with an SLI value, and a KPI value unless missing counts as 0).
    pub units: u64,
    /// KPI change per SLI unit; robust (HC) errors with small-sample scaling.
    pub slope: Estimate,
    /// Relative KPI change per +100 SLI units.
    pub relative_per_100: Estimate,
    pub first_stage_f: f64,
    pub first_stage_robust_f: f64,
    /// Bootstrap interval of the slope (with a bootstrap).
    pub bootstrap: Option<BootstrapInterval>,
}

/// A metric left out of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotSummarised {
    pub metric: String,
    pub reason: String,
}

/// Moments from a count and the sums Σu, Σu² of shifted values u = v − `shift`:
/// mean = shift + ū, variance (Σu² − n·ū²)/(n − 1).
fn moments(n: i64, shift: f64, sum: f64, sq: f64) -> Moments {
    if n <= 0 {
        return Moments::default();
    }
    let nf = n as f64;
    let u = sum / nf;
    let var = if n > 1 {
        ((sq - nf * u * u) / (nf - 1.0)).max(0.0)
    } else {
        0.0
    };
    Moments::from_summary(n as usize, shift + u, var)
}

/// Whether a summary adjusts with pre-period values: as asked, or when any KPI or guardrail
/// has one (the full analysis's default).
fn cuped_on(e: &Experiment, s: &ArmSums, asked: Option<bool>) -> bool {
    asked.unwrap_or_else(|| {
        let outcome = |id: i64| outcome_metrics(e).any(|(m, _)| m.id == id);
        (s.metrics.iter()).any(|r| r.pre_units + r.pre_only_units > 0 && outcome(r.metric_id))
    })
}

/// Assigned units per arm, in the experiment's order; 422 naming `assignments` when none is.
fn assigned_per_arm(e: &Experiment, s: &ArmSums) -> AppResult<Vec<u64>> {
    let assigned: Vec<u64> = (e.variants.iter())
        .map(|v| {
            (s.assigned.iter())
                .find(|a| a.0 == v.id)
                .map_or(0, |a| a.1 as u64)
        })
        .collect();
    if assigned.iter().all(|n| *n == 0) {
        return Err(AppError::invalid(
            format!(
                "experiment '{}' cannot be summarised: no units are assigned",
                e.key
            ),
            vec![Issue::field("assignments", "no units are assigned")],
        ));
    }
    Ok(assigned)
}

/// Summarises an experiment from the database's per-arm sums; `cuped` as asked (default: on
/// when any KPI or guardrail has pre-period values).
pub fn summarise(
    e: &Experiment,
    s: &ArmSums,
    (confidence, rule): (f64, MissingOutcomes),
    cuped: Option<bool>,
) -> AppResult<AggregateSummary> {
    let cuped = cuped_on(e, s, cuped);
    let assigned = assigned_per_arm(e, s)?;
    let sli = |v: i64| s.of(v, e.sli.id);
    let analysed: Vec<u64> = e
        .variants
        .iter()
        .map(|v| sli(v.id).map_or(0, |r| r.units as u64))
        .collect();
    let arms: Vec<(&str, f64)> = e
        .variants
        .iter()
        .map(|v| (v.key.as_str(), v.weight))
        .collect();
    let sample_ratio = sample_ratio_report(&arms, &assigned, analysed)?;
    let variants = e
        .variants
        .iter()
        .zip(&assigned)
        .map(|(v, n)| AggregateVariant {
            variant: v.key.clone(),
            control: v.control,
            dose: v.dose,
            units: *n,
            sli: sli(v.id).filter(|r| r.units > 0).map(|r| {
                level(
                    moments(r.units, r.shift, r.value_sum, r.value_sq),
                    None,
                    confidence,
                )
            }),
            p95_shift: None,
        })
        .collect();
    let metrics = outcome_metrics(e);
    let (mut effects, mut causal, mut not_summarised) = (Vec::new(), Vec::new(), Vec::new());
    for (m, role) in metrics {
        if m.ratio.is_some() {
            not_summarised.push(NotSummarised {
                metric: m.key.clone(),
                reason: "a ratio metric's comparison needs its numerator and denominator per \
                         unit (delta method on linearized values); see the full analysis"
                    .into(),
            });
            continue;
        }
        let settings = (assigned.as_slice(), confidence, rule, cuped);
        let mut skip = |reason: String| {
            not_summarised.push(NotSummarised {
                metric: m.key.clone(),
                reason,
            })
        };
        let (found, failed) = metric_effects(e, s, m, role, settings);
        effects.extend(found);
        for err in failed {
            skip(err.to_string());
        }
        if role == MetricRole::Kpi && !e.extra_slis.is_empty() {
            skip(format!(
                "the arms change {} SLIs: a slope on one alone would carry the others' effects; \
                 the full analysis fits them jointly",
                e.extra_slis.len() + 1
            ));
        } else if role == MetricRole::Kpi {
            match slope(e, s, m, settings) {
                Ok(found) => causal.push(found),
                Err(err) => skip(err.to_string()),
            }
        }
    }
    Ok(AggregateSummary {
        experiment: e.key.clone(),
        sli: e.sli.key.clone(),
        confidence,
        units: assigned.iter().sum(),
        unassigned_observations: s.unassigned_observations.max(0) as u64,
        sample_ratio,
        variants,
        effects,
        cuped,
        causal,
        not_summarised,
        bootstrap: None,
        thresholds: None,
    })
}

/// Assigned units per arm, confidence, missing-outcome rule, CUPED on.
type Settings<'a> = (&'a [u64], f64, MissingOutcomes, bool);

/// Every treatment's comparison with control for one metric, from its per-arm sums, and why
/// the others could not be computed (an arm without units leaves the other arms' alone).
fn metric_effects(
    e: &Experiment,
    s: &ArmSums,
    m: &Metric,
    role: MetricRole,
    (assigned, confidence, rule, cuped): Settings,
) -> (Vec<AggregateEffect>, Vec<crate::error::AppError>) {
    let zero = missing_rule(m, rule) == MissingOutcomes::Zero;
    let (mut out, mut failed) = (Vec::new(), Vec::new());
    let adjusted = if cuped {
        super::aggregate_cuped::cuped_arms(e, s, m, assigned, zero).unwrap_or_else(|err| {
            // Reported, and the comparisons stay unadjusted.
            failed.push(stats_err(&format!("{} (unadjusted here)", m.key))(err));
            None
        })
    } else {
        None
    };
    let binary = m.value_type == ValueType::Binary;
    let arm = |a: usize| {
        let r = s.of(e.variants[a].id, m.id);
        let (units, shift, sum, sq) = r.map_or((0, 0.0, 0.0, 0.0), |r| {
            (r.units, r.shift, r.value_sum, r.value_sq)
        });
        let mo = if zero {
            // Each unit without a value counts as 0, i.e. −shift once shifted.
            let missing = (assigned[a] as i64 - units) as f64;
            moments(
                assigned[a] as i64,
                shift,
                sum - missing * shift,
                sq + missing * shift * shift,
            )
        } else {
            moments(units, shift, sum, sq)
        };
        let ones = binary.then(|| r.map_or(0, |r| r.ones as u64));
        (mo, ones, level(mo, ones, confidence))
    };
    let c = e.variants.iter().position(|v| v.control).unwrap_or(0);
    let (mc, kc, lc) = arm(c);
    for a in (0..e.variants.len()).filter(|a| *a != c) {
        let what = format!("{} in {}", m.key, e.variants[a].key);
        let found = comparison(arm(a), (mc, kc, &lc), confidence, &what).and_then(|found| {
            let (difference, relative, treatment) = found;
            let mut effect = AggregateEffect {
                variant: e.variants[a].key.clone(),
                metric: m.key.clone(),
                role,
                control: lc.clone(),
                treatment,
                difference,
                relative,
                unadjusted: None,
                unadjusted_relative: None,
                cuped: None,
                bootstrap: None,
            };
            if let Some((theta, reduction, arms)) = &adjusted {
                let (difference, relative) =
                    adjusted_comparison(arms[a], arms[c], confidence, &what)?;
                effect.unadjusted = Some(std::mem::replace(&mut effect.difference, difference));
                effect.unadjusted_relative = std::mem::replace(&mut effect.relative, relative);
                effect.cuped = Some(CupedAdjustment {
                    theta: *theta,
                    variance_reduction: *reduction,
                });
            }
            Ok(effect)
        });
        match found {
            Ok(effect) => out.push(effect),
            Err(err) => failed.push(err),
        }
    }
    (out, failed)
}

/// One arm's moments, successes (binary) and level.
type ArmLevel = (Moments, Option<u64>, ArmMean);

/// A treatment's difference from control and its relative change.
fn comparison(
    (mt, kt, lt): ArmLevel,
    (mc, kc, _): (Moments, Option<u64>, &ArmMean),
    confidence: f64,
    what: &str,
) -> AppResult<(Estimate, Option<Estimate>, ArmMean)> {
    let difference = match (kt, kc) {
        (Some(kt), Some(kc)) => {
            let z = two_proportion_z_test(kt, mt.n as u64, kc, mc.n as u64, confidence)
                .map_err(stats_err(what))?;
            estimate(z.difference, Method::TwoProportionZ)
        }
        _ => {
            let w = welch_from_moments(mt, mc, confidence).map_err(stats_err(what))?;
            estimate(w.difference, Method::WelchT)
        }
    };
    let relative = relative_change(mt, mc, &difference, (confidence, kt.zip(kc)), what)?.0;
    Ok((difference, relative, lt))
}

/// CUPED's adjusted Welch difference of a treatment's and control's adjusted moments, and its
/// relative change (delta method) with the difference's p-values.
fn adjusted_comparison(
    t: Moments,
    c: Moments,
    confidence: f64,
    what: &str,
) -> AppResult<(Estimate, Option<Estimate>)> {
    let w = welch_from_moments(t, c, confidence).map_err(stats_err(what))?;
    let difference = estimate(w.difference, Method::CupedWelchT);
    let relative = relative_change(t, c, &difference, (confidence, None), what)?.0;
    Ok((difference, relative))
}

/// Adjusts the p-values for multiple testing as the full analysis does: the differences within
/// each family (KPIs, guardrails), the slopes across KPIs; a relative change shares its
/// difference's (its slope's) adjusted p-value.
pub fn adjust(out: &mut AggregateSummary, c: Correction) {
    for role in [MetricRole::Kpi, MetricRole::Guardrail] {
        let family = out.effects.iter().filter(|e| e.role == role);
        let adj = super::adjusted(family.map(|e| e.difference.p_value), c);
        let members = out.effects.iter_mut().filter(|e| e.role == role);
        for (e, a) in members.zip(adj) {
            e.difference.adjusted_p_value = Some(a);
            if let Some(r) = &mut e.relative {
                r.adjusted_p_value = Some(a);
            }
        }
    }
    let adj = super::adjusted(out.causal.iter().map(|e| e.slope.p_value), c);
    for (e, a) in out.causal.iter_mut().zip(adj) {
        e.slope.adjusted_p_value = Some(a);
        e.relative_per_100.adjusted_p_value = Some(a);
    }
}

/// The causal slope of KPI `m` on the SLI from per-arm moments: the population is the units
/// with an SLI value (and a KPI value, unless a missing KPI counts as 0).
fn slope(
    e: &Experiment,
    s: &ArmSums,
    m: &Metric,
    (_, confidence, rule, _): Settings,
) -> AppResult<AggregateSlope> {
    let what = format!("causal slope of {} on {}", m.key, e.sli.key);
    let zero = missing_rule(m, rule) == MissingOutcomes::Zero;
    let arms: Vec<ArmMoments> = e
        .variants
        .iter()
        .map(|v| {
            let r = s.of(v.id, m.id);
            let x = s.of(v.id, e.sli.id);
            let kx = x.map_or(0.0, |x| x.shift);
            let ky = r.map_or(0.0, |r| r.shift);
            let (with_y, sy, syy, sxy, sx_y, sxx_y) = r.map_or((0, 0.0, 0.0, 0.0, 0.0, 0.0), |r| {
                (
                    r.with_sli,
                    r.sum_with_sli,
                    r.sq_with_sli,
                    r.sli_cross,
                    r.sli_sum,
                    r.sli_sq,
                )
            });
            let sums = if zero {
                // Every unit with an SLI value; those without a KPI value have y = 0, i.e.
                // v = −ky: they add −ky to Σv, ky² to Σv² and −ky·u to Σuv.
                let (n, sx, sxx) = x.map_or((0, 0.0, 0.0), |x| (x.units, x.value_sum, x.value_sq));
                let missing = (n - with_y) as f64;
                let sx_missing = sx - sx_y;
                (
                    n,
                    [
                        sx,
                        sy - missing * ky,
                        sxx,
                        syy + missing * ky * ky,
                        sxy - ky * sx_missing,
                    ],
                )
            } else {
                (with_y, [sx_y, sy, sxx_y, syy, sxy])
            };
            ArmMoments::from_shifted_sums(sums.0 as f64, sums.1, (kx, ky))
        })
        .collect();
    let c = e.variants.iter().position(|v| v.control).unwrap_or(0);
    let f = two_sls_from_arm_moments(&arms, &e.sli.key, c, true).map_err(stats_err(&what))?;
    let coefficient = f
        .slope(IvCov::Robust, confidence)
        .map_err(stats_err(&what))?;
    let control = &arms[c];
    let spread = control.syy / (control.n - 1.0).max(1.0);
    let control = Moments::from_summary(control.n as usize, control.y, spread);
    let relative = relative_per_100(&coefficient, control).map_err(stats_err(&what))?;
    Ok(AggregateSlope {
        kpi: m.key.clone(),
        sli: e.sli.key.clone(),
        units: arms.iter().map(|a| a.n as u64).sum(),
        slope: estimate(to_stats(&coefficient), Method::TwoSlsRobust),
        relative_per_100: relative,
        first_stage_f: f.first_stage.f_stat,
        first_stage_robust_f: f.first_stage.robust_f_stat,
        bootstrap: None,
    })
}
