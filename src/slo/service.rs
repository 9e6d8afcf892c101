//! Recommendation workflow on top of the store: derive from a stored analysis, decide, publish.

use serde::{Deserialize, Serialize};

use super::model::{
    Action, Decision, Derivation, ErrorBudget, HistoryEvent, Recommendation,
    RecommendationEvidence, RecommendationInputs, RecommendationStatus, Slo, SloSpec, SloStatus,
    ThresholdRange,
};
use super::recommend::{derive, CreateRecommendation};
use crate::analysis::report::{Analysis, Role};
use crate::error::{AppError, AppResult, Issue};
use crate::store::recommendations::{self as store, RecommendationRow, SloRow};
use crate::store::{analyses, metrics, DbConnection};

/// What is stored per recommendation (its review state lives in columns).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Document {
    slo: SloSpec,
    threshold_range: ThresholdRange,
    error_budget: ErrorBudget,
    derivation: Derivation,
    evidence: RecommendationEvidence,
    inputs: RecommendationInputs,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("stored {what} cannot be read: {e}"))
}

fn document(row: &RecommendationRow) -> AppResult<Document> {
    serde_json::from_str(&row.document).map_err(|e| corrupt("recommendation", e))
}

/// Derives and stores a recommendation from analysis `analysis_id`.
pub fn recommend(
    conn: &mut DbConnection,
    analysis_id: i64,
    req: &CreateRecommendation,
    actor: &str,
) -> AppResult<Recommendation> {
    let stored = analyses::get(conn, analysis_id)?;
    let a: Analysis = serde_json::from_str(&stored.result).map_err(|e| corrupt("analysis", e))?;
    let sli_key = a
        .data_quality
        .metrics
        .iter()
        .find(|m| m.role == Role::Sli)
        .map(|m| m.metric.clone())
        .ok_or_else(|| corrupt("analysis", "no SLI"))?;
    let kpi_key = match &req.kpi {
        Some(k) => k.clone(),
        None => a
            .verdicts
            .first()
            .map(|v| v.kpi.clone())
            .ok_or_else(|| corrupt("analysis", "no KPI"))?,
    };
    if !a.verdicts.iter().any(|v| v.kpi == kpi_key) {
        let known: Vec<&str> = a.verdicts.iter().map(|v| v.kpi.as_str()).collect();
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
    let d = derive(&a, &sli, &kpi, req)?;
    let doc = Document {
        slo: d.slo,
        threshold_range: d.threshold_range,
        error_budget: d.error_budget,
        derivation: d.derivation,
        evidence: d.evidence,
        inputs: d.inputs,
    };
    let row = store::insert(conn, analysis_id, sli.id, kpi.id, actor, |_| {
        serde_json::to_string(&doc).map_err(|e| AppError::Internal(e.into()))
    })?;
    to_recommendation(&row)
}

pub fn to_recommendation(row: &RecommendationRow) -> AppResult<Recommendation> {
    let d = document(row)?;
    Ok(Recommendation {
        id: row.id,
        status: RecommendationStatus::parse(&row.status)
            .ok_or_else(|| corrupt("status", &row.status))?,
        created_at: row.created_at.and_utc(),
        created_by: row.created_by.clone(),
        slo: d.slo,
        threshold_range: d.threshold_range,
        error_budget: d.error_budget,
        derivation: d.derivation,
        evidence: d.evidence,
        inputs: d.inputs,
        slo_id: row.slo_id,
    })
}

/// OpenSLO-safe name: keys with `_` replaced, and the SLO id.
pub fn slo_name(spec: &SloSpec, id: i64) -> String {
    format!("{}-{}-{id}", spec.sli, spec.kpi)
        .replace('_', "-")
        .to_ascii_lowercase()
}

pub fn to_slo(row: &SloRow) -> AppResult<Slo> {
    let d = document(&row.recommendation)?;
    Ok(Slo {
        id: row.id,
        name: slo_name(&d.slo, row.id),
        status: SloStatus::parse(&row.status).ok_or_else(|| corrupt("SLO status", &row.status))?,
        recommendation_id: row.recommendation.id,
        published_at: row.published_at.and_utc(),
        superseded_at: row.superseded_at.map(|t| t.and_utc()),
        superseded_by: row.superseded_by,
        threshold_source: d.derivation.threshold_source,
        slo: d.slo,
        error_budget: d.error_budget,
        evidence: d.evidence,
    })
}

pub fn decide(
    conn: &mut DbConnection,
    id: i64,
    decision: Decision,
    actor: &str,
    comment: Option<&str>,
) -> AppResult<Recommendation> {
    let row = store::decide(conn, id, decision == Decision::Approve, actor, comment)?;
    to_recommendation(&row)
}

pub fn history(conn: &mut DbConnection, id: i64) -> AppResult<Vec<HistoryEvent>> {
    store::history(conn, id)?
        .into_iter()
        .map(|e| {
            Ok(HistoryEvent {
                at: e.at.and_utc(),
                action: Action::parse(&e.action).ok_or_else(|| corrupt("event", &e.action))?,
                actor: e.actor,
                comment: e.comment,
            })
        })
        .collect()
}
