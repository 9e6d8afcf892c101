//! `/api/v1/slos…`: published SLOs and their exports.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::AppState;
use crate::analysis::AnalysisRequest;
use crate::error::AppError;
use crate::slo::live::service as live;
use crate::slo::live::status::{SloLiveStatus, StatusPoint};
use crate::slo::model::{Slo, SloList};
use crate::slo::revalidate::{Revalidation, RevalidationList};
use crate::slo::{openslo, prometheus, service};

pub const LIST_SLOS: Operation = Operation::new("list_slos", "GET", "/api/v1/slos", Access::Read);
pub const GET_SLO: Operation = Operation::new("get_slo", "GET", "/api/v1/slos/{id}", Access::Read);
pub const GET_SLO_OPENSLO: Operation = Operation::new(
    "get_slo_openslo",
    "GET",
    "/api/v1/slos/{id}/openslo",
    Access::Read,
);
pub const GET_SLO_PROMETHEUS_RULES: Operation = Operation::new(
    "get_slo_prometheus_rules",
    "GET",
    "/api/v1/slos/{id}/prometheus-rules",
    Access::Read,
);

/// Lists published SLOs (active and superseded) in publication order.
#[utoipa::path(
    get, path = "/api/v1/slos", operation_id = "list_slos", tag = "slos",
    params(ListQuery),
    responses((status = 200, description = "A page of SLOs", body = SloList))
)]
pub async fn list_slos(
    state: web::Data<AppState>,
    caller: Caller,
    q: super::query::Query<ListQuery>,
) -> Result<web::Json<SloList>, AppError> {
    caller.require(&LIST_SLOS)?;
    let page = q.page()?;
    let rows = state.run(move |db| service::slos(db, page)).await?;
    let (items, next_cursor) = page_of(rows, page.limit, |r| r.id, Ok)?;
    Ok(web::Json(SloList { items, next_cursor }))
}

/// Fetches a published SLO.
#[utoipa::path(
    get, path = "/api/v1/slos/{id}", operation_id = "get_slo", tag = "slos",
    params(("id" = i64, Path, description = "SLO id")),
    responses((status = 200, description = "The SLO", body = Slo))
)]
pub async fn get_slo(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Slo>, AppError> {
    caller.require(&GET_SLO)?;
    let id = id.into_inner();
    Ok(web::Json(state.run(move |db| service::slo(db, id)).await?))
}

fn yaml(text: Result<String, serde_yaml_ng::Error>) -> Result<HttpResponse, AppError> {
    let text = text.map_err(|e| AppError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/yaml")
        .body(text))
}

/// The SLO as an OpenSLO v1 document (YAML), with the evidence in `sloproof.dev/` annotations.
#[utoipa::path(
    get, path = "/api/v1/slos/{id}/openslo", operation_id = "get_slo_openslo", tag = "slos",
    params(("id" = i64, Path, description = "SLO id")),
    responses((status = 200, description = "OpenSLO v1 YAML", body = String, content_type = "application/yaml"))
)]
pub async fn get_slo_openslo(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_SLO_OPENSLO)?;
    let id = id.into_inner();
    let (slo, sli) = state.run(move |db| service::slo_with_sli(db, id)).await?;
    yaml(openslo::openslo_yaml(&slo, &sli))
}

/// Prometheus recording and multi-window multi-burn-rate alerting rules for the SLO (YAML).
#[utoipa::path(
    get, path = "/api/v1/slos/{id}/prometheus-rules", operation_id = "get_slo_prometheus_rules", tag = "slos",
    params(("id" = i64, Path, description = "SLO id")),
    responses((status = 200, description = "Prometheus rule groups (YAML)", body = String, content_type = "application/yaml"))
)]
pub async fn get_slo_prometheus_rules(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_SLO_PROMETHEUS_RULES)?;
    let id = id.into_inner();
    let (slo, sli, calendar, warnings) =
        state.run(move |db| service::slo_for_rules(db, id)).await?;
    let mut rules = prometheus::rules(&slo, &sli, calendar.as_ref());
    rules
        .groups
        .extend(crate::slo::early_warning::group(&slo, &warnings));
    yaml(serde_yaml_ng::to_string(&rules))
}

pub const GET_SLO_STATUS: Operation = Operation::new(
    "get_slo_status",
    "GET",
    "/api/v1/slos/{id}/status",
    Access::Read,
);
pub const GET_SLO_STATUS_SERIES: Operation = Operation::new(
    "get_slo_status_series",
    "GET",
    "/api/v1/slos/{id}/status/series",
    Access::Read,
);

/// When to evaluate a status.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// The moment of the status (RFC 3339; default now).
    pub at: Option<DateTime<Utc>>,
}

/// The SLO's live status: attainment over the rolling period, error budget, burn rates, the
/// alert in force (the exported multiwindow rules), time to exhaustion, and what the burn cost.
///
/// Computed from the SLI's production series (`POST /api/v1/metrics/{key}/series`); without
/// data, `coverage` is 0 and no alert fires.
#[utoipa::path(
    get, path = "/api/v1/slos/{id}/status", operation_id = "get_slo_status", tag = "slos",
    params(("id" = i64, Path, description = "SLO id"), StatusQuery),
    responses((status = 200, description = "The status", body = SloLiveStatus))
)]
pub async fn get_slo_status(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    q: super::query::Query<StatusQuery>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_SLO_STATUS)?;
    let id = id.into_inner();
    let at = q.at;
    let age = f64::from(state.limits.evidence_max_age_days);
    rounded(&state.run(move |db| live::status(db, id, at, age)).await?)
}

/// A computed document as JSON, its numbers rounded to 12 significant digits (no float noise
/// such as 79.30000000000001 bad windows).
pub(super) fn rounded<T: Serialize>(doc: &T) -> Result<HttpResponse, AppError> {
    let text =
        crate::domain::document::to_document(doc).map_err(|e| AppError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(text))
}

/// A range of a status series.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusSeriesQuery {
    /// First point (RFC 3339).
    pub from: DateTime<Utc>,
    /// Last point at most (RFC 3339); at most 92 days after `from`.
    pub to: DateTime<Utc>,
    /// Seconds between points (default 3600); at most 5,000 points.
    #[param(minimum = 1, maximum = 7948800)]
    pub step: Option<i64>,
}

/// Points of a status series.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusSeries {
    pub slo_id: i64,
    pub items: Vec<StatusPoint>,
}

/// Budget remaining, the last hour's burn rate and the alert state over time, for charts.
#[utoipa::path(
    get, path = "/api/v1/slos/{id}/status/series", operation_id = "get_slo_status_series", tag = "slos",
    params(("id" = i64, Path, description = "SLO id"), StatusSeriesQuery),
    responses((status = 200, description = "The series", body = StatusSeries))
)]
pub async fn get_slo_status_series(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    q: super::query::Query<StatusSeriesQuery>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_SLO_STATUS_SERIES)?;
    let id = id.into_inner();
    let (from, to, step) = (q.from.timestamp(), q.to.timestamp(), q.step.unwrap_or(3600));
    let items = state
        .run(move |db| live::status_series(db, id, from, to, step))
        .await?;
    rounded(&StatusSeries { slo_id: id, items })
}

pub const CREATE_REVALIDATION: Operation = Operation::new(
    "create_revalidation",
    "POST",
    "/api/v1/slos/{id}/revalidations",
    Access::Write,
);
pub const LIST_REVALIDATIONS: Operation = Operation::new(
    "list_revalidations",
    "GET",
    "/api/v1/slos/{id}/revalidations",
    Access::Read,
);

/// A re-validation request: the experiment to analyse again (the same or a newer one on the
/// SLO's SLI and KPI) and the analysis parameters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevalidationRequest {
    /// Experiment key.
    #[schema(max_length = 64)]
    pub experiment: String,
    /// Analysis parameters (defaults when absent).
    #[serde(default)]
    pub analysis: Option<AnalysisRequest>,
}

/// Re-validates a published SLO: analyses the experiment again and records whether the new
/// evidence confirms the SLO (`confirmed`: the KPI's verdict is validated and the causal
/// slope's CI overlaps the published one) or leaves it `stale` (`verdict_failed`,
/// `slope_changed`). Shown on the SLO, its status and its exports until the next.
#[utoipa::path(
    post, path = "/api/v1/slos/{id}/revalidations", operation_id = "create_revalidation", tag = "slos",
    params(("id" = i64, Path, description = "SLO id")),
    request_body = RevalidationRequest,
    responses(
        (status = 201, description = "The recorded re-validation", body = Revalidation),
        (status = 409, description = "The SLO is superseded", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_revalidation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<RevalidationRequest>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_REVALIDATION)?;
    let id = id.into_inner();
    let RevalidationRequest {
        experiment,
        analysis,
    } = body.into_inner();
    let request = analysis.unwrap_or_default();
    let slot = state.analysis_slot()?;
    let limits = state.limits.analysis();
    let r = state
        .run(move |db| service::revalidate(db, id, &experiment, &request, limits, &caller.name))
        .await;
    drop(slot);
    let r = r?;
    Ok(HttpResponse::Created().json(r))
}

/// Lists an SLO's re-validations, oldest first, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/slos/{id}/revalidations", operation_id = "list_revalidations", tag = "slos",
    params(("id" = i64, Path, description = "SLO id"), ListQuery),
    responses((status = 200, description = "The re-validations", body = RevalidationList))
)]
pub async fn list_revalidations(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    q: super::query::Query<ListQuery>,
) -> Result<web::Json<RevalidationList>, AppError> {
    caller.require(&LIST_REVALIDATIONS)?;
    let id = id.into_inner();
    let page = q.page()?;
    let rows = state
        .run(move |db| service::revalidations_of(db, id, page))
        .await?;
    let (items, next_cursor) = page_of(rows, page.limit, |r| r.id, Ok)?;
    Ok(web::Json(RevalidationList { items, next_cursor }))
}
