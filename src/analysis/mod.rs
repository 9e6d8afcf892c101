//! Turns an experiment's data, as per-unit columns, into a complete, reproducible analysis (see
//! [`report::Analysis`]) using `crate::stats`; [`service`] loads the data and stores the result.

pub mod aggregate;
pub mod aggregate_boot;
pub mod aggregate_cells;
pub mod aggregate_cuped;
pub mod aggregate_knee;
pub mod aggregate_stream;
pub mod causal;
pub mod comparisons;
pub mod data;
pub mod effects;
pub mod hash;
pub mod history;
pub mod indicators;
pub mod jobs;
pub mod joint;
pub mod leading;
pub mod long_run;
pub mod observational;
pub mod ratio;
pub mod report;
pub mod resample;
pub mod service;
pub mod summary;
pub mod summary_service;
pub mod threshold;
pub mod verdict;

use rayon::prelude::*;

use data::UnitData;
use report::{
    Analysis, BootstrapMethod, BootstrapParameters, Correction, MetricRole, MissingOutcomes,
    Parameters,
};

use crate::error::{AppError, AppResult, Issue};
use crate::stats::multiple::{benjamini_hochberg, holm};
use crate::stats::StatsError;

/// Largest seed: JSON numbers are exact below 2⁵³ in every client.
pub const MAX_SEED: u64 = (1 << 53) - 1;
/// Fewest and most bootstrap resamples of an analysis.
pub const RESAMPLES: std::ops::RangeInclusive<u32> = 100..=100_000;

/// Bootstrap settings of an analysis request.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapRequest {
    /// Resamples, 100 to 100,000 (default 2,000).
    #[schema(minimum = 100, maximum = 100_000)]
    pub resamples: Option<u32>,
    /// Interval kind (default `bca`).
    pub method: Option<BootstrapMethod>,
    /// Seed of every random draw, 0 ≤ seed < 2⁵³ (default: random, and recorded).
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    pub seed: Option<u64>,
}

/// Parameters of a new analysis; every field is optional.
// Defaults and ranges: `resolve`.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisRequest {
    /// Significance level, in (0, 0.5] (default 0.05).
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    pub alpha: Option<f64>,
    /// Confidence level of intervals, in [0.5, 1) (default 0.95).
    #[schema(minimum = 0.5, exclusive_maximum = 1.0)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub bootstrap: Option<BootstrapRequest>,
    /// Adjust with pre-period values (default: true when any KPI has pre-period data).
    pub cuped: Option<bool>,
    /// Multiple-testing correction (default `holm`).
    pub correction: Option<Correction>,
    /// Missing KPI values (default `by_value_type`: 0 for binary and count KPIs, excluded for
    /// continuous ones); SLIs are never imputed, nor are ordinal scores and ratios.
    pub missing_outcomes: Option<MissingOutcomes>,
    /// Cap continuous and count KPI values (heavy-tailed money, counts) at this percentile of
    /// all arms' analysed values pooled, in [50, 100), e.g. 99; pre-period values are capped at
    /// their own percentile. Guardrails and ratio and ordinal KPIs are not capped. Default: no
    /// capping. The caps are reported in `winsorized`; recommendations from a capped analysis
    /// say so.
    #[schema(minimum = 50.0, exclusive_maximum = 100.0)]
    pub winsorize: Option<f64>,
}

/// Fills defaults and checks ranges: alpha 0.05 in (0, 0.5]; confidence 0.95 in [0.5, 1);
/// 2,000 BCa resamples (100–100,000); a random seed when none is given; Holm; missing KPI values
/// by value type;
/// CUPED when any KPI has pre-period data.
pub fn resolve(r: &AnalysisRequest, has_pre: bool) -> AppResult<Parameters> {
    let b = r.bootstrap.clone().unwrap_or_default();
    let mut issues = Vec::new();
    let alpha = r.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha <= 0.5) {
        issues.push(Issue::field("alpha", "must be in (0, 0.5]"));
    }
    let confidence = r.confidence.unwrap_or(0.95);
    if !(0.5..1.0).contains(&confidence) {
        issues.push(Issue::field("confidence", "must be in [0.5, 1)"));
    }
    let resamples = b.resamples.unwrap_or(2000);
    if !RESAMPLES.contains(&resamples) {
        issues.push(Issue::field(
            "bootstrap.resamples",
            format!(
                "must be between {} and {}",
                RESAMPLES.start(),
                RESAMPLES.end()
            ),
        ));
    }
    let seed = b.seed.unwrap_or_else(|| rand::random::<u64>() & MAX_SEED);
    if seed > MAX_SEED {
        issues.push(Issue::field(
            "bootstrap.seed",
            format!("must be at most {MAX_SEED} (2^53 - 1)"),
        ));
    }
    if r.winsorize.is_some_and(|w| !(50.0..100.0).contains(&w)) {
        issues.push(Issue::field(
            "winsorize",
            "must be a percentile in [50, 100)",
        ));
    }
    if !issues.is_empty() {
        return Err(AppError::invalid("invalid analysis parameters", issues));
    }
    Ok(Parameters {
        alpha,
        confidence,
        bootstrap: BootstrapParameters {
            resamples,
            method: b.method.unwrap_or(BootstrapMethod::Bca),
            seed,
        },
        cuped: r.cuped.unwrap_or(has_pre),
        correction: r.correction.unwrap_or(Correction::Holm),
        missing_outcomes: r.missing_outcomes.unwrap_or(MissingOutcomes::ByValueType),
        winsorize: r.winsorize,
    })
}

/// A seed for one named random stream of an analysis, derived from the analysis seed with the
/// version-stable [`hash::StableHash`] of (seed, tag, index).
pub fn seed_for(p: &Parameters, tag: &str, index: usize) -> u64 {
    seed_of(p.bootstrap.seed, tag, index)
}

/// [`seed_for`] from the bootstrap seed alone (a summary has no `Parameters`).
pub fn seed_of(seed: u64, tag: &str, index: usize) -> u64 {
    hash::StableHash::default()
        .int(seed)
        .text(tag)
        .int(index as u64)
        .finish()
}

/// Maps a statistics failure to a 422 that says what could not be computed and why.
pub fn stats_err(what: &str) -> impl Fn(StatsError) -> AppError + '_ {
    move |e| {
        AppError::invalid(
            format!("the analysis cannot be computed: {what}: {e}"),
            vec![Issue {
                row: None,
                field: None,
                message: format!("{what}: {e}"),
            }],
        )
    }
}

/// Names everything that is missing for an analysis, or returns Ok.
fn check_sufficient(d: &UnitData, p: &Parameters) -> AppResult<()> {
    let mut issues = Vec::new();
    let counts = d.arm_counts();
    if d.is_empty() {
        issues.push(Issue::field("assignments", "no units are assigned"));
    }
    // Every SLI (the joint model of several needs them all) in every arm with 2 units.
    let slis = std::iter::once((&d.sli_metric.key, &d.sli))
        .chain(d.extra_slis.iter().map(|c| (&c.metric.key, &c.post)));
    let with_value: Vec<(&String, Vec<u64>)> = slis
        .map(|(key, values)| (key, d.values_per_arm(values)))
        .collect();
    for (a, arm) in d.arms.iter().enumerate() {
        let what = if arm.control {
            "the control arm"
        } else {
            "arm"
        };
        if counts[a] < 2 {
            issues.push(Issue::field(
                "assignments",
                format!(
                    "{what} '{}' has {} units; at least 2 are needed",
                    arm.key, counts[a]
                ),
            ));
            continue;
        }
        for (key, n) in with_value.iter().filter(|(_, n)| n[a] < 2) {
            issues.push(Issue::field(
                "observations",
                format!(
                    "{what} '{}' has {} units with a {key} value; at least 2 are needed",
                    arm.key, n[a]
                ),
            ));
        }
    }
    for m in &d.metrics {
        if m.units_post() == 0 {
            let role = if m.role == MetricRole::Kpi {
                "KPI"
            } else {
                "guardrail"
            };
            issues.push(Issue::field(
                "observations",
                format!("{role} '{}' has no observations", m.metric.key),
            ));
        } else if m.missing_rule(p.missing_outcomes) == MissingOutcomes::Exclude {
            let n = d.values_per_arm(&m.post);
            for (a, arm) in d.arms.iter().enumerate().filter(|(a, _)| n[*a] < 2) {
                issues.push(Issue::field(
                    "observations",
                    format!(
                        "'{}' has {} values in arm '{}'; at least 2 are needed",
                        m.metric.key, n[a], arm.key
                    ),
                ));
            }
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid(
            "the experiment has too little data to analyse",
            issues,
        ))
    }
}

/// The family's p-values adjusted by `c` (a missing p-value counts as 1).
pub(crate) fn adjusted(p: impl Iterator<Item = Option<f64>>, c: Correction) -> Vec<f64> {
    let raw: Vec<f64> = p.map(|p| p.unwrap_or(1.0)).collect();
    match c {
        Correction::Holm => holm(&raw).unwrap_or(raw),
        Correction::BenjaminiHochberg => benjamini_hochberg(&raw).unwrap_or(raw),
        Correction::None => raw,
    }
}

/// Adjusts the KPI effects' p-values within each family (KPIs, guardrails).
fn adjust_kpi_effects(effects: &mut [report::KpiEffect], c: Correction) {
    for role in [MetricRole::Kpi, MetricRole::Guardrail] {
        let family = || effects.iter().filter(|e| e.role == role);
        let adj = adjusted(family().map(|e| e.primary.p_value), c);
        let members = effects.iter_mut().filter(|e| e.role == role);
        for (e, a) in members.zip(adj) {
            e.primary.adjusted_p_value = Some(a);
            if let Some(r) = &mut e.relative {
                r.adjusted_p_value = Some(a);
            }
        }
    }
}

/// Adjusts the causal slopes' p-values across KPIs (the relative slope shares its slope's).
fn adjust_causal(effects: &mut [Option<report::CausalEffect>], c: Correction) {
    let adj = adjusted(effects.iter().flatten().map(|e| e.slope.p_value), c);
    for (e, a) in effects.iter_mut().flatten().zip(adj) {
        e.slope.adjusted_p_value = Some(a);
        e.relative_per_100.adjusted_p_value = Some(a);
    }
}

type KpiFit = (AppResult<causal::CausalFit>, Vec<report::Threshold>);

/// Everything that does not need the shared resampling pass: per-arm summaries, the first
/// stage, and each KPI's 2SLS fit and thresholds.
fn without_resampling(
    d: &UnitData,
    p: &Parameters,
    kpis: &[(usize, &data::MetricColumn)],
) -> (
    Vec<report::VariantSummary>,
    AppResult<Vec<report::FirstStageArm>>,
    Vec<KpiFit>,
) {
    let sli_sorted = effects::sorted_sli(d);
    let variants = effects::variants(d, p, &sli_sorted);
    let first_stage = effects::first_stage(d, p, &sli_sorted);
    let fits = kpis
        .par_iter()
        .map(|(_, m)| {
            let fit = causal::fit_kpi(d, m, p);
            let mut thresholds = Vec::new();
            if let Ok(f) = &fit {
                thresholds.push(threshold::observational_threshold(d, m, &f.population, p));
                thresholds.extend(threshold::causal_threshold(d, m, &f.population, p));
            }
            (fit, thresholds)
        })
        .collect();
    (variants, first_stage, fits)
}

/// Causal sections of the KPIs: their effects (`None` where estimation failed, with the reason
/// in `failures`), dose-responses and thresholds.
struct CausalSections {
    effects: Vec<Option<report::CausalEffect>>,
    failures: Vec<Option<String>>,
    dose_response: Vec<report::DoseResponse>,
    threshold: Vec<report::Threshold>,
}

fn finish_causal(
    d: &UnitData,
    p: &Parameters,
    kpis: &[(usize, &data::MetricColumn)],
    fits: Vec<KpiFit>,
    shared: Option<&resample::SharedPass>,
) -> CausalSections {
    let finished: Vec<(AppResult<causal::KpiCausal>, Vec<report::Threshold>)> = kpis
        .par_iter()
        .zip(fits)
        .map(|((mi, m), (fit, thresholds))| {
            // A ratio's causal population is linearized within itself: not in the shared pass.
            let sums = shared.and_then(|s| s.slope_sums(*mi));
            (fit.and_then(|f| f.finish(d, m, p, sums)), thresholds)
        })
        .collect();
    let mut out = CausalSections {
        effects: Vec::new(),
        failures: Vec::new(),
        dose_response: Vec::new(),
        threshold: Vec::new(),
    };
    for (result, thresholds) in finished {
        match result {
            Ok(k) => {
                out.threshold.extend(thresholds);
                out.dose_response.push(k.dose);
                out.effects.push(Some(k.effect));
                out.failures.push(None);
            }
            Err(e) => {
                out.effects.push(None);
                out.failures.push(Some(e.to_string()));
            }
        }
    }
    out
}

/// A copy of the data with continuous and count KPI values capped at the `percentile`-th
/// percentile (per metric and period, arms pooled), and what was capped. The experiment-period
/// cap is taken over the values analysed, after the missing-outcome rule (a count's missing
/// units count as 0); the pre-period cap over the pre-period values. Guardrails are not capped:
/// their harm may be in the tail.
fn winsorize(
    d: &UnitData,
    percentile: f64,
    rule: MissingOutcomes,
) -> AppResult<(UnitData, Vec<report::Winsorized>)> {
    use crate::domain::metric::ValueType;
    use crate::stats::ratio::{cap_above, percentile_cap};
    let mut out = d.clone();
    let mut report = Vec::new();
    for m in out.metrics.iter_mut().filter(|m| {
        m.role == MetricRole::Kpi
            && matches!(
                m.metric.value_type,
                ValueType::Continuous | ValueType::Count
            )
    }) {
        let analysed: Vec<f64> = (0..m.post.len())
            .filter_map(|i| m.outcome(i, rule))
            .collect();
        let err = stats_err(&m.metric.key);
        let post_cap = percentile_cap(&analysed, percentile).map_err(&err)?;
        let mut caps = vec![("post", post_cap, cap_above(&mut m.post, post_cap))];
        if m.pre.iter().any(|v| !v.is_nan()) {
            let pre_cap = percentile_cap(&m.pre, percentile).map_err(&err)?;
            caps.push(("pre", pre_cap, cap_above(&mut m.pre, pre_cap)));
        }
        for (period, cap, units_capped) in caps {
            report.push(report::Winsorized {
                metric: m.metric.key.clone(),
                period: period.to_owned(),
                percentile,
                cap,
                units_capped,
            });
        }
    }
    Ok((out, report))
}

/// What the causal sections are computed from.
struct TailInputs<'a> {
    d: &'a UnitData,
    p: &'a Parameters,
    kpis: &'a [(usize, &'a data::MetricColumn)],
    sample_ratio: &'a report::SampleRatio,
    kpi_effects: &'a [report::KpiEffect],
}

/// The sections that depend on the causal fits.
struct CausalTail {
    first_stage: Vec<report::FirstStageArm>,
    effects: Vec<report::CausalEffect>,
    dose_response: Vec<report::DoseResponse>,
    threshold: Vec<report::Threshold>,
    power: Vec<report::PowerSummary>,
    verdicts: Vec<report::Verdict>,
    headline: Option<report::Headline>,
    summary: String,
}

/// The causal sections of a one-SLI experiment.
fn one_sli_tail(
    t: &TailInputs,
    variants: &[report::VariantSummary],
    first_stage: Vec<report::FirstStageArm>,
    mut causal: CausalSections,
) -> CausalTail {
    let (d, p) = (t.d, t.p);
    adjust_causal(&mut causal.effects, p.correction);
    let power = verdict::power(d, p, variants, &causal.effects);
    let verdicts = verdict::verdicts(
        d,
        p,
        t.sample_ratio,
        &causal.effects,
        &causal.failures,
        &power,
    );
    let headline = summary::headline(d, &verdicts, &power);
    let summary = summary::summary(
        d,
        p,
        t.sample_ratio,
        &causal.effects,
        &verdicts,
        &first_stage,
        t.kpi_effects,
        &causal.dose_response,
        &causal.threshold,
    );
    CausalTail {
        first_stage,
        effects: causal.effects.into_iter().flatten().collect(),
        dose_response: causal.dose_response,
        threshold: causal.threshold,
        power,
        verdicts,
        headline,
        summary,
    }
}

/// The causal sections of an experiment with several SLIs: each KPI's joint 2SLS (see
/// [`joint`]), then, per SLI, its first stage, power, verdicts and summary, read from the data
/// focused on that SLI. The slopes' p-values are corrected across every KPI and SLI. Each SLI's
/// dose–response carries the joint fit's over-identification test (do the SLIs' effects add
/// up); no threshold is computed: a factorial's arms do not lie on one dose line.
fn joint_tail(
    t: &TailInputs,
    variants: &mut [report::VariantSummary],
    mut first_stage: Vec<report::FirstStageArm>,
) -> AppResult<CausalTail> {
    let (d, p) = (t.d, t.p);
    let k = d.sli_count();
    let fits: Vec<AppResult<(Vec<report::CausalEffect>, Vec<report::DoseResponse>)>> = t
        .kpis
        .par_iter()
        .map(|(_, m)| joint::fit_kpi(d, m, p))
        .collect();
    // effects[j][kpi], SLI-major, so the correction spans every slope.
    let mut flat: Vec<Option<report::CausalEffect>> = Vec::new();
    let mut failures: Vec<Option<String>> = Vec::new();
    for j in 0..k {
        for fit in &fits {
            match fit {
                Ok((e, _)) => {
                    flat.push(Some(e[j].clone()));
                    failures.push(None);
                }
                Err(e) => {
                    flat.push(None);
                    failures.push(Some(e.to_string()));
                }
            }
        }
    }
    adjust_causal(&mut flat, p.correction);
    let n = t.kpis.len();
    let mut out = CausalTail {
        first_stage: Vec::new(),
        effects: flat.iter().flatten().cloned().collect(),
        dose_response: (0..k)
            .flat_map(|j| fits.iter().flatten().map(move |(_, dr)| dr[j].clone()))
            .collect(),
        threshold: Vec::new(),
        power: Vec::new(),
        verdicts: Vec::new(),
        headline: None,
        summary: String::new(),
    };
    let mut sentences = Vec::new();
    for j in 0..k {
        let focused;
        let dj = if j == 0 {
            d
        } else {
            focused = d.focus(j);
            let sorted = effects::sorted_sli(&focused);
            for (a, v) in variants.iter_mut().enumerate() {
                v.extra_slis.push(report::ExtraSliSummary {
                    sli: focused.sli_metric.key.clone(),
                    dose: focused.arms[a].dose,
                    summary: effects::sli_summary(&sorted[a]),
                });
            }
            first_stage.extend(effects::first_stage(&focused, p, &sorted)?);
            &focused
        };
        let (effects_j, failures_j) = (&flat[j * n..(j + 1) * n], &failures[j * n..(j + 1) * n]);
        let power = verdict::power(dj, p, variants, effects_j);
        let verdicts = verdict::verdicts(dj, p, t.sample_ratio, effects_j, failures_j, &power);
        if j == 0 {
            out.headline = summary::headline(dj, &verdicts, &power);
        }
        let fs: Vec<report::FirstStageArm> = first_stage
            .iter()
            .filter(|f| f.sli.as_deref() == Some(dj.sli_metric.key.as_str()))
            .cloned()
            .collect();
        let dose_j: Vec<report::DoseResponse> = out
            .dose_response
            .iter()
            .filter(|r| r.sli == dj.sli_metric.key)
            .cloned()
            .collect();
        sentences.push(summary::summary(
            dj,
            p,
            t.sample_ratio,
            effects_j,
            &verdicts,
            &fs,
            t.kpi_effects,
            &dose_j,
            &[],
        ));
        out.power.extend(power);
        out.verdicts.extend(verdicts);
    }
    out.first_stage = first_stage;
    out.summary = sentences.join(" ");
    Ok(out)
}

/// Computes every section from loaded data (no database access).
pub fn compute(
    d: &UnitData,
    p: &Parameters,
    id: i64,
    experiment: &str,
    created_at: chrono::DateTime<chrono::Utc>,
) -> AppResult<Analysis> {
    check_sufficient(d, p)?;
    let capped;
    let (d, winsorized) = match p.winsorize {
        Some(w) => {
            capped = winsorize(d, w, p.missing_outcomes)?;
            (&capped.0, capped.1.clone())
        }
        None => (d, Vec::new()),
    };
    let t0 = std::time::Instant::now();
    let lap = |what: &str| {
        let ms = t0.elapsed().as_millis() as u64;
        tracing::debug!(what, ms, "analysis section done")
    };
    let data_quality = effects::data_quality(d, p);
    let sample_ratio = effects::srm(d)?;
    let kpis: Vec<(usize, &data::MetricColumn)> = d.kpis().collect();
    // The shared resampling pass is the longest step; everything that does not need it runs
    // beside it. Each part is deterministic on its own, so the overlap changes no number.
    // With several SLIs, the one-SLI fits would leave the other SLIs' effects in the arms.
    let one_sli_kpis = if d.extra_slis.is_empty() {
        &kpis[..]
    } else {
        &[]
    };
    let (shared, (mut variants, first_stage, fits)) = rayon::join(
        || resample::SharedPass::build(d, p),
        || without_resampling(d, p, one_sli_kpis),
    );
    lap("shared bootstrap pass, variants, first stage, causal fits and thresholds");
    let shared = shared.map_err(stats_err("bootstrap"))?;
    let first_stage = first_stage?;
    let (mut kpi_effects, failed_comparisons) = comparisons::kpi_effects(d, p, shared.as_ref());
    adjust_kpi_effects(&mut kpi_effects, p.correction);
    lap("kpi_effects");
    let inputs = TailInputs {
        d,
        p,
        kpis: &kpis,
        sample_ratio: &sample_ratio,
        kpi_effects: &kpi_effects,
    };
    let tail = if d.extra_slis.is_empty() {
        let causal = finish_causal(d, p, &kpis, fits, shared.as_ref());
        one_sli_tail(&inputs, &variants, first_stage, causal)
    } else {
        joint_tail(&inputs, &mut variants, first_stage)?
    };
    lap("causal and verdicts");
    let CausalTail {
        first_stage,
        effects,
        dose_response,
        threshold,
        power,
        verdicts,
        headline,
        summary,
    } = tail;
    Ok(Analysis {
        id,
        experiment: experiment.to_owned(),
        created_at,
        dates: None,
        parameters: p.clone(),
        fingerprint: d.fingerprint.clone(),
        data_quality,
        sample_ratio,
        variants,
        first_stage,
        kpi_effects,
        winsorized,
        failed_comparisons,
        causal_effects: effects,
        dose_response,
        threshold,
        power,
        verdicts,
        headline,
        summary,
    })
}
