//! Turns an experiment's stored data into a complete, reproducible analysis (see
//! [`report::Analysis`]) using `crate::stats`.

pub mod causal;
pub mod data;
pub mod effects;
pub mod report;
pub mod resample;
pub mod verdict;

use std::hash::{DefaultHasher, Hash, Hasher};

use rayon::prelude::*;

use data::UnitData;
use report::{
    Analysis, BootstrapMethod, BootstrapParameters, Correction, MissingOutcomes, Parameters, Role,
};

use crate::error::{AppError, AppResult, Issue};
use crate::stats::multiple::{benjamini_hochberg, holm};
use crate::stats::StatsError;
use crate::store::experiments::Experiment;
use crate::store::{analyses, Db};

/// Largest seed: JSON numbers are exact below 2⁵³ in every client.
pub const MAX_SEED: u64 = (1 << 53) - 1;

/// Optional request parameters; see [`resolve`] for defaults.
#[derive(Debug, Default, Clone)]
pub struct Requested {
    pub alpha: Option<f64>,
    pub confidence: Option<f64>,
    pub resamples: Option<u32>,
    pub method: Option<BootstrapMethod>,
    pub seed: Option<u64>,
    pub cuped: Option<bool>,
    pub correction: Option<Correction>,
    pub missing_outcomes: Option<MissingOutcomes>,
}

/// Fills defaults and checks ranges: alpha 0.05 in (0, 0.5]; confidence 0.95 in [0.5, 1);
/// 2,000 BCa resamples (100–100,000); a random seed when none is given; Holm; KPIs missing → 0;
/// CUPED when any KPI has pre-period data.
pub fn resolve(r: &Requested, has_pre: bool) -> AppResult<Parameters> {
    let mut issues = Vec::new();
    let alpha = r.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha <= 0.5) {
        issues.push(Issue::field("alpha", "must be in (0, 0.5]"));
    }
    let confidence = r.confidence.unwrap_or(0.95);
    if !(0.5..1.0).contains(&confidence) {
        issues.push(Issue::field("confidence", "must be in [0.5, 1)"));
    }
    let resamples = r.resamples.unwrap_or(2000);
    if !(100..=100_000).contains(&resamples) {
        issues.push(Issue::field(
            "bootstrap.resamples",
            "must be between 100 and 100000",
        ));
    }
    let seed = r.seed.unwrap_or_else(|| rand::random::<u64>() & MAX_SEED);
    if seed > MAX_SEED {
        issues.push(Issue::field(
            "bootstrap.seed",
            format!("must be at most {MAX_SEED} (2^53 - 1)"),
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
            method: r.method.unwrap_or(BootstrapMethod::Bca),
            seed,
        },
        cuped: r.cuped.unwrap_or(has_pre),
        correction: r.correction.unwrap_or(Correction::Holm),
        missing_outcomes: r.missing_outcomes.unwrap_or(MissingOutcomes::Zero),
    })
}

/// A seed for one named random stream of an analysis, derived from the analysis seed.
pub fn seed_for(p: &Parameters, tag: &str, index: usize) -> u64 {
    let mut h = DefaultHasher::new();
    (p.bootstrap.seed, tag, index).hash(&mut h);
    h.finish()
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
        }
        let with_sli = (0..d.len())
            .filter(|i| d.arm[*i] as usize == a && !d.sli[*i].is_nan())
            .count();
        if counts[a] >= 2 && with_sli < 2 {
            issues.push(Issue::field(
                "observations",
                format!(
                    "{what} '{}' has {with_sli} units with a {} value; at least 2 are needed",
                    arm.key, d.sli_metric.key
                ),
            ));
        }
    }
    for m in &d.metrics {
        if m.units_post() == 0 {
            let role = if m.role == Role::Kpi {
                "KPI"
            } else {
                "guardrail"
            };
            issues.push(Issue::field(
                "observations",
                format!("{role} '{}' has no observations", m.metric.key),
            ));
        } else if p.missing_outcomes == MissingOutcomes::Exclude {
            for (a, arm) in d.arms.iter().enumerate() {
                let n = (0..d.len())
                    .filter(|i| d.arm[*i] as usize == a && !m.post[*i].is_nan())
                    .count();
                if n < 2 {
                    issues.push(Issue::field(
                        "observations",
                        format!(
                            "'{}' has {n} values in arm '{}'; at least 2 are needed",
                            m.metric.key, arm.key
                        ),
                    ));
                }
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

fn adjust(p: &[f64], c: Correction) -> Vec<f64> {
    match c {
        Correction::Holm => holm(p).unwrap_or_else(|_| p.to_vec()),
        Correction::BenjaminiHochberg => benjamini_hochberg(p).unwrap_or_else(|_| p.to_vec()),
        Correction::None => p.to_vec(),
    }
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
    let t0 = std::time::Instant::now();
    let lap = |what: &str| {
        tracing::debug!(
            what,
            ms = t0.elapsed().as_millis() as u64,
            "analysis section done"
        )
    };
    // The shared resampling pass is the longest step; everything that does not need it (per-arm
    // summaries, the first stage, each KPI's 2SLS fit and thresholds) runs beside it. Each part
    // is deterministic on its own, so the overlap does not change any number.
    let data_quality = effects::data_quality(d, p);
    let sample_ratio = effects::srm(d)?;
    let kpis: Vec<(usize, &data::MetricColumn)> = d.kpis().collect();
    let (shared, (variants, first_stage, fits)) = rayon::join(
        || {
            let shared = resample::SharedPass::build(d, p);
            lap("shared bootstrap pass");
            shared
        },
        || {
            let sli_sorted = effects::sorted_sli(d);
            let variants = effects::variants(d, p, &sli_sorted);
            let first_stage = effects::first_stage(d, p, &sli_sorted);
            let fits: Vec<(AppResult<causal::CausalFit>, Vec<report::Threshold>)> = kpis
                .par_iter()
                .map(|(_, m)| {
                    let fit = causal::fit_kpi(d, m, p);
                    let mut thresholds = Vec::new();
                    if let Ok(f) = &fit {
                        thresholds.push(causal::observational_threshold(d, m, &f.population, p));
                        thresholds.extend(causal::causal_threshold(d, m, &f.population, p));
                    }
                    (fit, thresholds)
                })
                .collect();
            lap("variants, first stage, causal fits and thresholds");
            (variants, first_stage, fits)
        },
    );
    let shared = shared.map_err(stats_err("bootstrap"))?;
    let first_stage = first_stage?;
    let mut kpi_effects = effects::kpi_effects(d, p, shared.as_ref())?;
    lap("kpi_effects");
    for role in [Role::Kpi, Role::Guardrail] {
        let idx: Vec<usize> = (0..kpi_effects.len())
            .filter(|i| kpi_effects[*i].role == role)
            .collect();
        let raw: Vec<f64> = idx
            .iter()
            .map(|i| kpi_effects[*i].difference.p_value.unwrap_or(1.0))
            .collect();
        for (i, adj) in idx.iter().zip(adjust(&raw, p.correction)) {
            kpi_effects[*i].difference.adjusted_p_value = Some(adj);
        }
    }
    let mut causal_effects = Vec::new();
    let mut failures = Vec::new();
    let mut dose_response = Vec::new();
    let mut threshold = Vec::new();
    let finished: Vec<(AppResult<causal::KpiCausal>, Vec<report::Threshold>)> = kpis
        .par_iter()
        .zip(fits)
        .map(|((mi, m), (fit, thresholds))| {
            let sums = shared.as_ref().map(|s| s.slope_sums(*mi));
            (fit.and_then(|f| f.finish(d, m, p, sums)), thresholds)
        })
        .collect();
    for (result, thresholds) in finished {
        match result {
            Ok(k) => {
                threshold.extend(thresholds);
                dose_response.push(k.dose);
                causal_effects.push(Some(k.effect));
                failures.push(None);
            }
            Err(e) => {
                causal_effects.push(None);
                failures.push(Some(e.to_string()));
            }
        }
    }
    let present: Vec<usize> = (0..causal_effects.len())
        .filter(|i| causal_effects[*i].is_some())
        .collect();
    let raw: Vec<f64> = present
        .iter()
        .filter_map(|i| causal_effects[*i].as_ref().and_then(|c| c.slope.p_value))
        .collect();
    for (i, adj) in present.iter().zip(adjust(&raw, p.correction)) {
        if let Some(c) = causal_effects[*i].as_mut() {
            c.slope.adjusted_p_value = Some(adj);
            c.relative_per_100.adjusted_p_value = Some(adj);
        }
    }
    lap("causal");
    let power = verdict::power(d, p, &variants, &causal_effects);
    let verdicts = verdict::verdicts(d, p, &sample_ratio, &causal_effects, &failures, &power);
    let summary = verdict::summary(d, p, &causal_effects, &verdicts, &first_stage);
    lap("verdicts");
    Ok(Analysis {
        id,
        experiment: experiment.to_owned(),
        created_at,
        parameters: p.clone(),
        fingerprint: d.fingerprint.clone(),
        data_quality,
        sample_ratio,
        variants,
        first_stage,
        kpi_effects,
        causal_effects: causal_effects.into_iter().flatten().collect(),
        dose_response,
        threshold,
        power,
        verdicts,
        summary,
    })
}

/// Loads the data, computes the analysis and stores it; returns the stored JSON document.
pub fn run(db: &Db, e: &Experiment, requested: &Requested) -> AppResult<analyses::StoredAnalysis> {
    let started = std::time::Instant::now();
    let d = data::load(db, e)?;
    let loaded_ms = started.elapsed().as_millis() as u64;
    let has_pre = d.metrics.iter().any(|m| m.units_pre() > 0);
    let p = resolve(requested, has_pre)?;
    // Compute before opening the write transaction; id and time are filled in afterwards.
    let mut analysis = compute(&d, &p, 0, &e.key, chrono::Utc::now())?;
    let computed_ms = started.elapsed().as_millis() as u64 - loaded_ms;
    let parameters = serde_json::to_string(&p).map_err(|e| AppError::Internal(e.into()))?;
    let stored = analyses::insert(
        &mut *db.conn()?,
        e.id,
        p.bootstrap.seed,
        &d.fingerprint,
        &parameters,
        |id, created_at| {
            analysis.id = id;
            analysis.created_at = created_at.and_utc();
            serde_json::to_string(&analysis).map_err(|e| AppError::Internal(e.into()))
        },
    )?;
    tracing::info!(experiment = %e.key, units = d.len(), loaded_ms, computed_ms, id = stored.id, "analysis stored");
    Ok(stored)
}
