//! `/api/v1/observational-analyses`: correlational evidence from production history.

use actix_web::{web, HttpResponse};

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::AppState;
use crate::analysis::history::{self, ObservationalRequest};
use crate::analysis::observational::ObservationalAnalysis;
use crate::error::AppError;

pub const CREATE_OBSERVATIONAL: Operation = Operation::new(
    "create_observational_analysis",
    "POST",
    "/api/v1/observational-analyses",
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
