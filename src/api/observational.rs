//! `/api/v1/observational-analyses`: correlational evidence from production history.

use actix_web::{web, HttpResponse};

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::AppState;
use crate::analysis::history::{self, ObservationalRequest};
use crate::analysis::observational::ObservationalAnalysis;
use crate::error::AppError;
use crate::slo::model::Recommendation;
use crate::slo::recommend::CreateRecommendation;
use crate::slo::service as slo_service;

pub const CREATE_OBSERVATIONAL: Operation = Operation::new(
    "create_observational_analysis",
    "POST",
    "/api/v1/observational-analyses",
    Access::Write,
);
pub const CREATE_CORRELATIONAL_RECOMMENDATION: Operation = Operation::new(
    "create_correlational_recommendation",
    "POST",
    "/api/v1/observational-analyses/{id}/recommendations",
    Access::Write,
);
pub const GET_OBSERVATIONAL: Operation = Operation::new(
    "get_observational_analysis",
    "GET",
    "/api/v1/observational-analyses/{id}",
    Access::Read,
);

/// Regresses a KPI's production windows on an SLI's, for SLIs that are hard to experiment on.
///
/// Both series are read over [from, to) at the longer of their window lengths; the KPI at
/// window t is regressed on the SLI's statistic at window t − lag for every lag 0..max_lag,
/// with hour-of-week effects and Newey–West (HAC) errors. The lag with the largest |z| is
/// reported with its p-value Bonferroni-corrected over the lags. The verdict is at most
/// `correlational`, never validated: history cannot rule out a common cause.
#[utoipa::path(
    post, path = "/api/v1/observational-analyses", operation_id = "create_observational_analysis", tag = "analyses",
    request_body = ObservationalRequest,
    responses((status = 201, description = "The analysis", body = ObservationalAnalysis,
               headers(("Location" = String, description = "URL of the analysis"))))
)]
pub async fn create_observational_analysis(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<ObservationalRequest>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_OBSERVATIONAL)?;
    let r = body.into_inner();
    let slot = state.analysis_slot()?;
    let text = state.run(move |db| history::run(db, &r)).await;
    drop(slot);
    let text = text?;
    let id = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["id"].as_i64())
        .unwrap_or_default();
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/observational-analyses/{id}")))
        .content_type("application/json")
        .body(text))
}

/// Fetches a stored observational analysis.
#[utoipa::path(
    get, path = "/api/v1/observational-analyses/{id}", operation_id = "get_observational_analysis", tag = "analyses",
    params(("id" = i64, Path, description = "Observational analysis id")),
    responses((status = 200, description = "The analysis", body = ObservationalAnalysis))
)]
pub async fn get_observational_analysis(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_OBSERVATIONAL)?;
    let id = id.into_inner();
    let text = state.run(move |db| history::get(db, id)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(text))
}

/// Derives an SLO recommendation from an observational analysis (correlational evidence).
///
/// Its statement ends "(evidence: correlational)", `evidence.kind` is `correlational`,
/// `evidence.validated` is false, the exports carry the label, and approving it needs
/// `acknowledge_correlational_evidence`. The slope is the conservative end of the best lag's
/// interval, simultaneous over the lags searched; the baseline is production's; a degradation
/// beyond the SLI values history saw needs `allow_extrapolation`. A percentile analysis yields
/// a windows SLO on that percentile, a good-share analysis an events SLO. Refused (422) when
/// the analysis found no harmful association.
#[utoipa::path(
    post, path = "/api/v1/observational-analyses/{id}/recommendations", operation_id = "create_correlational_recommendation", tag = "slos",
    params(("id" = i64, Path, description = "Observational analysis id")),
    request_body = CreateRecommendation,
    responses((status = 201, description = "The proposed recommendation", body = Recommendation,
               headers(("Location" = String, description = "URL of the recommendation"))))
)]
pub async fn create_correlational_recommendation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<CreateRecommendation>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_CORRELATIONAL_RECOMMENDATION)?;
    let r = body.into_inner();
    let id = id.into_inner();
    let rec = state
        .run(move |db| slo_service::recommend_correlational(db, id, &r, &caller.name))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/recommendations/{}", rec.id)))
        .json(rec))
}
