//! The seam between the SLO workflow and the store: derive a recommendation from a stored
//! analysis, decide on it, publish, and read recommendations and SLOs back.

use serde::{Deserialize, Serialize};

use super::correlational::derive_correlational;
use super::live::replay::Replay;
use super::live::service as live;
use super::model::{
    Decision, Derivation, ErrorBudget, EvidenceBasis, HistoryEvent, Recommendation,
    RecommendationEvidence, RecommendationInputs, RecommendationStatus, Slo, SloSpec,
    ThresholdRange,
};
use super::recommend::{derive, CreateRecommendation, Production};
use super::revalidate::{compare, Revalidation, ValidationState};
use crate::analysis::report::{Analysis, MetricRole};
use crate::domain::calendar::Calendar;
use crate::domain::document::DocumentError;
use crate::domain::metric::Metric;
use crate::domain::Page;
use crate::error::{AppError, AppResult, Issue};
use crate::store::recommendations::{self as store, Source, StoredRecommendation, StoredSlo};
use crate::store::revalidations::{self, StoredRevalidation};
use crate::store::{analyses, metrics, Db};

/// What is stored per recommendation (its review state lives in columns).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Document {
    slo: SloSpec,
    threshold_range: ThresholdRange,
    error_budget: ErrorBudget,
    derivation: Derivation,
    evidence: RecommendationEvidence,
    inputs: RecommendationInputs,
    #[serde(default)]
    replay: Option<Replay>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("stored {what} cannot be read: {e}"))
}

/// The published SLO with this id, with the derivation and inputs of its recommendation.
pub(crate) fn slo_with_derivation(
    conn: &mut crate::store::DbConnection,
    id: i64,
) -> AppResult<(Slo, Derivation, RecommendationInputs)> {
    let row = store::get_slo(conn, id)?;
    let d = document(&row.recommendation)?;
    Ok((to_slo(&row)?, d.derivation, d.inputs))
}

/// A recommendation's SLO, derivation and the SLI it is about.
pub(crate) fn recommendation_spec(
    conn: &mut crate::store::DbConnection,
    id: i64,
) -> AppResult<(SloSpec, Derivation)> {
    let d = document(&store::get(conn, id)?)?;
    Ok((d.slo, d.derivation))
}

fn document(row: &StoredRecommendation) -> AppResult<Document> {
    serde_json::from_str(&row.document).map_err(|e| corrupt("recommendation", e))
}

/// Derives and stores a recommendation from analysis `analysis_id`.
pub fn recommend(
    db: &Db,
    analysis_id: i64,
    req: &CreateRecommendation,
    actor: &str,
) -> AppResult<Recommendation> {
    let conn = &mut *db.conn()?;
    let stored = analyses::get(conn, analysis_id)?;
    let a: Analysis = serde_json::from_str(&stored.result).map_err(|e| corrupt("analysis", e))?;
    let first_sli = a
        .data_quality
        .metrics
        .iter()
        .find(|m| m.role == MetricRole::Sli)
        .map(|m| m.metric.clone())
        .ok_or_else(|| corrupt("analysis", "no SLI"))?;
    let mut slis: Vec<String> = vec![first_sli.clone()];
    for v in &a.verdicts {
        if let Some(s) = v.sli.as_ref().filter(|s| !slis.contains(s)) {
            slis.push(s.clone());
        }
    }
    let sli_key = req.sli.clone().unwrap_or(first_sli);
    if !slis.contains(&sli_key) {
        return Err(AppError::invalid(
            "unknown SLI for this analysis",
            vec![Issue::field(
                "sli",
                format!(
                    "'{sli_key}' is not an SLI of analysis {analysis_id}; expected one of: {}",
                    slis.join(", ")
                ),
            )],
        ));
    }
    let kpi_key = match &req.kpi {
        Some(k) => k.clone(),
        None => a
            .verdicts
            .first()
            .map(|v| v.kpi.clone())
            .ok_or_else(|| corrupt("analysis", "no KPI"))?,
    };
    if !a.verdicts.iter().any(|v| v.kpi == kpi_key) {
        let mut known: Vec<&str> = a.verdicts.iter().map(|v| v.kpi.as_str()).collect();
        known.dedup();
        known.sort_unstable();
        known.dedup();
        return Err(AppError::invalid(
            "unknown KPI for this analysis",
            vec![Issue::field(
                "kpi",
                format!(
                    "'{kpi_key}' is not a KPI of analysis {analysis_id}; expected one of: {}",
                    known.join(", ")
                ),
            )],
        ));
    }
    let sli = metrics::get(conn, &sli_key)?;
    let kpi = metrics::get(conn, &kpi_key)?;
    let source = Source::Analysis(analysis_id);
    store_derived(conn, source, (&sli, &kpi), req, actor, |view| {
        derive(&a, &sli, &kpi, req, view)
    })
}

/// Derives and stores a recommendation from observational analysis `id` (correlational
/// evidence; see `slo::correlational`). `req.sli` and `req.kpi`, when given, must be the
/// analysis's.
pub fn recommend_correlational(
    db: &Db,
    id: i64,
    req: &CreateRecommendation,
    actor: &str,
) -> AppResult<Recommendation> {
    let o = crate::analysis::history::document(db, id)?;
    for (field, given, own) in [("sli", &req.sli, &o.sli), ("kpi", &req.kpi, &o.kpi)] {
        if given.as_ref().is_some_and(|g| g != own) {
            return Err(AppError::invalid(
                format!("observational analysis {id} is about another {field}"),
                vec![Issue::field(
                    field,
                    format!(
                        "the analysis regressed {} on {}; leave {field} out or give '{own}'",
                        o.kpi, o.sli
                    ),
                )],
            ));
        }
    }
    let conn = &mut *db.conn()?;
    let sli = metrics::get(conn, &o.sli)?;
    let kpi = metrics::get(conn, &o.kpi)?;
    let source = Source::Observational(id);
    store_derived(conn, source, (&sli, &kpi), req, actor, |view| {
        derive_correlational(&o, (&sli, &kpi), req, view)
    })
}

/// Reads the SLI's production series, derives, replays the SLO on production's last period and
/// stores the proposed recommendation.
fn store_derived(
    conn: &mut crate::store::DbConnection,
    source: Source,
    (sli, kpi): (&Metric, &Metric),
    req: &CreateRecommendation,
    actor: &str,
    derive: impl FnOnce(Option<&Production>) -> AppResult<super::recommend::Derived>,
) -> AppResult<Recommendation> {
    let production = live::production(conn, sli, req.window_days.unwrap_or(28))?;
    let view = production.as_ref().map(|p| Production {
        layout: &p.layout,
        windows: &p.windows,
        to: p.to,
    });
    let d = derive(view.as_ref())?;
    let replay = production
        .as_ref()
        .map(|p| live::replay_last_period(&d.slo, &d.derivation, p));
    // Correlational evidence has no per-unit noise check: production's own windows are the
    // check, and a threshold healthy production already breaks is refused (the experiment
    // path's rule that noise may spend at most a tenth of the budget).
    if let Some(r) = replay
        .as_ref()
        .filter(|r| d.evidence.kind == EvidenceBasis::Correlational && r.budget_consumed > 0.1)
    {
        return Err(AppError::invalid(
            "production already breaks this SLO",
            vec![Issue::field(
                "max_relative_kpi_loss",
                format!(
                    "on production's last period this SLO would have spent {:.0}% of its error budget (at most 10% is left to noise): tolerate a larger loss, lower the target, or widen the windows",
                    100.0 * r.budget_consumed
                ),
            )],
        ));
    }
    let mut d = d;
    if let Some(p) = &production {
        d.derivation.notes.extend(p.notes.iter().cloned());
    }
    if let Some(r) = replay.as_ref().filter(|r| r.budget_consumed > 1.0) {
        d.derivation.notes.push(format!(
            "On production's last period this SLO would have spent {:.0}% of its error budget ({}); lower the target, widen the window, or fix the service before approving.",
            100.0 * r.budget_consumed,
            r.summary.trim_end_matches('.')
        ));
    }
    let doc = Document {
        replay,
        slo: d.slo,
        threshold_range: d.threshold_range,
        error_budget: d.error_budget,
        derivation: d.derivation,
        evidence: d.evidence,
        inputs: d.inputs,
    };
    // A price of extreme magnitudes overflows: refused rather than stored unreadable.
    let text = crate::domain::document::to_stored_document(&doc).map_err(|e| match e {
        DocumentError::Json(e) => AppError::Internal(e.into()),
        DocumentError::NotFinite => AppError::invalid(
            "the recommendation cannot be priced at these magnitudes",
            vec![Issue::field(
                "units_per_day",
                "with value_per_kpi_unit and the target, a derived amount is not a finite number; use realistic magnitudes",
            )],
        ),
    })?;
    let row = store::insert(conn, source, sli.id, kpi.id, actor, |_| Ok(text))?;
    to_recommendation(&row)
}

fn to_recommendation(row: &StoredRecommendation) -> AppResult<Recommendation> {
    let d = document(row)?;
    Ok(Recommendation {
        id: row.id,
        status: row.status,
        created_at: row.created_at.and_utc(),
        created_by: row.created_by.clone(),
        slo: d.slo,
        threshold_range: d.threshold_range,
        error_budget: d.error_budget,
        derivation: d.derivation,
        evidence: d.evidence,
        inputs: d.inputs,
        slo_id: row.slo_id,
        replay: d.replay,
    })
}

/// OpenSLO-safe name: keys with `_` replaced, and the SLO id.
pub fn slo_name(spec: &SloSpec, id: i64) -> String {
    format!("{}-{}-{id}", spec.sli, spec.kpi)
        .replace('_', "-")
        .to_ascii_lowercase()
}

fn to_revalidation(r: &StoredRevalidation) -> AppResult<Revalidation> {
    Ok(Revalidation {
        id: r.id,
        slo_id: r.slo_id,
        analysis_id: r.analysis_id,
        at: r.at.and_utc(),
        actor: r.actor.clone(),
        outcome: ValidationState::try_from(r.outcome.clone())
            .map_err(|e| corrupt("revalidation", e))?,
        reasons: serde_json::from_str(&r.reasons).map_err(|e| corrupt("revalidation", e))?,
    })
}

fn to_slo(row: &StoredSlo) -> AppResult<Slo> {
    let d = document(&row.recommendation)?;
    Ok(Slo {
        validation: row.revalidation.as_ref().map(to_revalidation).transpose()?,
        id: row.id,
        name: slo_name(&d.slo, row.id),
        status: row.status,
        recommendation_id: row.recommendation.id,
        published_at: row.published_at.and_utc(),
        superseded_at: row.superseded_at.map(|t| t.and_utc()),
        superseded_by: row.superseded_by,
        threshold_source: d.derivation.threshold_source,
        calendar: row.calendar.clone(),
        slo: d.slo,
        error_budget: d.error_budget,
        evidence: d.evidence,
    })
}

/// The recommendation with this id, or 404.
pub fn recommendation(db: &Db, id: i64) -> AppResult<Recommendation> {
    to_recommendation(&store::get(&mut *db.conn()?, id)?)
}

/// Recommendations in creation order, optionally with one status, one page (`limit + 1`
/// items) at a time; the items carry their ids for the next cursor.
pub fn recommendations(
    db: &Db,
    status: Option<RecommendationStatus>,
    page: Page,
) -> AppResult<Vec<Recommendation>> {
    store::list(&mut *db.conn()?, status, page)?
        .iter()
        .map(to_recommendation)
        .collect()
}

/// Recommendations no longer proposed, in creation order, one page (`limit + 1` items).
pub fn decided_recommendations(db: &Db, page: Page) -> AppResult<Vec<Recommendation>> {
    store::list_decided(&mut *db.conn()?, page)?
        .iter()
        .map(to_recommendation)
        .collect()
}

/// What a reviewer acknowledges when approving.
#[derive(Debug, Clone, Copy, Default)]
pub struct Acknowledged {
    /// Alpha above 0.05, intervals below 95% or no multiple-testing correction.
    pub loose_evidence: bool,
    /// Correlational evidence (production history, not an experiment).
    pub correlational_evidence: bool,
}

/// Approves or rejects a proposed recommendation; approval publishes its SLO. Approving one
/// derived from loose evidence (alpha above 0.05 or no multiple-testing correction) needs
/// `acknowledge_loose_evidence`; one from correlational evidence,
/// `acknowledge_correlational_evidence`.
pub fn decide(
    db: &Db,
    id: i64,
    decision: Decision,
    ack: Acknowledged,
    actor: &str,
    comment: Option<&str>,
) -> AppResult<Recommendation> {
    let conn = &mut *db.conn()?;
    if decision == Decision::Approve {
        let doc = document(&store::get(conn, id)?)?;
        let mut issues = Vec::new();
        let d = &doc.derivation;
        if d.loose_evidence && !ack.loose_evidence {
            issues.push(Issue::field(
                "acknowledge_loose_evidence",
                format!(
                    "the analysis used alpha {} with correction '{}'; set acknowledge_loose_evidence to approve anyway",
                    d.analysis_alpha.unwrap_or(f64::NAN),
                    d.analysis_correction.map_or("unknown", |c| c.as_str())
                ),
            ));
        }
        if doc.evidence.kind == EvidenceBasis::Correlational && !ack.correlational_evidence {
            issues.push(Issue::field(
                "acknowledge_correlational_evidence",
                "the recommendation rests on production history, not an experiment: a common cause may drive both series; set acknowledge_correlational_evidence to approve anyway",
            ));
        }
        if !issues.is_empty() {
            return Err(AppError::invalid(
                "approving needs the reviewer's acknowledgement of the evidence",
                issues,
            ));
        }
    }
    let approve = decision == Decision::Approve;
    let row = store::decide(conn, id, approve, actor, comment)?;
    to_recommendation(&row)
}

/// Every transition of a recommendation, oldest first.
pub fn history(db: &Db, id: i64) -> AppResult<Vec<HistoryEvent>> {
    Ok(store::history(&mut *db.conn()?, id)?
        .into_iter()
        .map(|e| HistoryEvent {
            at: e.at.and_utc(),
            action: e.action,
            actor: e.actor,
            comment: e.comment,
        })
        .collect())
}

/// The active SLO of an SLI and a KPI (metric ids), if any.
pub(crate) fn active_slo(
    conn: &mut crate::store::DbConnection,
    pair: (i64, i64),
) -> AppResult<Option<Slo>> {
    store::active_slo(conn, pair)?
        .as_ref()
        .map(to_slo)
        .transpose()
}

/// The published SLO with this id, or 404.
pub fn slo(db: &Db, id: i64) -> AppResult<Slo> {
    to_slo(&store::get_slo(&mut *db.conn()?, id)?)
}

/// The published SLO with this id and its SLI, for exports.
pub fn slo_with_sli(db: &Db, id: i64) -> AppResult<(Slo, Metric)> {
    let conn = &mut *db.conn()?;
    let slo = to_slo(&store::get_slo(conn, id)?)?;
    let sli = metrics::get(conn, &slo.slo.sli)?;
    Ok((slo, sli))
}

/// What the rules export of an SLO needs.
pub type RulesInput = (
    Slo,
    Metric,
    Option<Calendar>,
    Vec<(super::early_warning::EarlyWarning, Metric)>,
);

/// The published SLO with this id, its SLI, the calendar it follows and its early warnings
/// (with their indicators), for the rules export.
pub fn slo_for_rules(db: &Db, id: i64) -> AppResult<RulesInput> {
    let (slo, sli) = slo_with_sli(db, id)?;
    let conn = &mut *db.conn()?;
    let calendar = super::calendars::of_slo(conn, id)?;
    let warnings = super::early_warnings::with_metrics(conn, id)?;
    Ok((slo, sli, calendar, warnings))
}

/// Published SLOs in publication order, one page (`limit + 1` items) at a time.
pub fn slos(db: &Db, page: Page) -> AppResult<Vec<Slo>> {
    store::list_slos(&mut *db.conn()?, page)?
        .iter()
        .map(to_slo)
        .collect()
}

/// Re-validates SLO `id` with a new analysis of `experiment` (which must measure the SLO's SLI
/// and KPI) and records the outcome; the SLO shows it until the next.
pub fn revalidate(
    db: &Db,
    id: i64,
    experiment: &str,
    request: &crate::analysis::AnalysisRequest,
    limits: crate::analysis::service::AnalysisLimits,
    actor: &str,
) -> AppResult<Revalidation> {
    let slo = slo(db, id)?;
    if slo.status != super::model::SloStatus::Active {
        return Err(AppError::Conflict(format!(
            "SLO {id} is {}; only an active SLO is re-validated",
            slo.status
        )));
    }
    crate::domain::Slug::parse("experiment", experiment)
        .map_err(|i| AppError::invalid("the experiment key is not valid", vec![i]))?;
    let e = crate::store::experiments::get(&mut *db.conn()?, experiment)?;
    // A correlational SLO has no experiment behind it: any experiment may re-validate it.
    let published = match &slo.evidence.experiment {
        Some(key) => Some(crate::store::experiments::get(&mut *db.conn()?, key)?),
        None => None,
    };
    if let Some(published) = published.filter(|p| e.id < p.id) {
        return Err(AppError::invalid(
            "re-validation needs the same or a newer experiment",
            vec![Issue::field(
                "experiment",
                format!(
                    "'{experiment}' is older than '{}', the experiment the SLO was published on",
                    published.key
                ),
            )],
        ));
    }
    let kpis: Vec<&str> = e.kpis.iter().map(|k| k.key.as_str()).collect();
    if !e.slis().any(|s| s.key == slo.slo.sli) || !kpis.contains(&slo.slo.kpi.as_str()) {
        return Err(AppError::invalid(
            "the experiment does not measure this SLO's SLI and KPI",
            vec![Issue::field(
                "experiment",
                format!(
                    "'{experiment}' measures {} on {}; the SLO needs {} and {}",
                    e.sli.key,
                    kpis.join(", "),
                    slo.slo.sli,
                    slo.slo.kpi
                ),
            )],
        ));
    }
    let stored = crate::analysis::service::run(db, experiment, request, limits)?;
    let a: Analysis = serde_json::from_str(&stored.result).map_err(|e| corrupt("analysis", e))?;
    let harmful = {
        let conn = &mut *db.conn()?;
        let (sli, kpi) = (
            metrics::get(conn, &slo.slo.sli)?,
            metrics::get(conn, &slo.slo.kpi)?,
        );
        sli.direction.harmful_slope_sign(kpi.direction)
    };
    let (outcome, reasons) = compare(
        &slo.evidence.relative_per_100,
        &a,
        (&slo.slo.sli, &slo.slo.kpi),
        &slo.slo.unit,
        (slo.evidence.kind == EvidenceBasis::Correlational).then_some(harmful),
    );
    let reasons_json = serde_json::to_string(&reasons).map_err(|e| AppError::Internal(e.into()))?;
    let row = revalidations::insert(
        &mut *db.conn()?,
        id,
        stored.id,
        actor,
        outcome.as_str(),
        &reasons_json,
    )?;
    to_revalidation(&row)
}

/// A page of SLO `id`'s re-validations, oldest first, `limit + 1` of them for the next cursor
/// (404 for an unknown SLO).
pub fn revalidations_of(
    db: &Db,
    id: i64,
    page: crate::domain::Page,
) -> AppResult<Vec<Revalidation>> {
    let conn = &mut *db.conn()?;
    store::get_slo(conn, id)?;
    revalidations::list(conn, id, page)?
        .iter()
        .map(to_revalidation)
        .collect()
}
