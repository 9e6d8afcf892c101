//! `/api/v1/experiments/{key}/analyses` and `/api/v1/analyses/{id}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::AppState;
use crate::analysis::jobs::Job;
use crate::analysis::report::{Analysis, AnalysisSummary};
use crate::analysis::{service, AnalysisRequest};
use crate::error::AppError;

pub const CREATE_ANALYSIS: Operation = Operation::new(
    "create_analysis",
    "POST",
    "/api/v1/experiments/{key}/analyses",
    Access::Write,
);
pub const LIST_ANALYSES: Operation = Operation::new(
    "list_analyses",
    "GET",
    "/api/v1/experiments/{key}/analyses",
    Access::Read,
);
pub const GET_ANALYSIS: Operation =
    Operation::new("get_analysis", "GET", "/api/v1/analyses/{id}", Access::Read);

/// How an analysis is computed.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AnalyseQuery {
    /// true: answer 202 with a job at once and compute it on a job worker (`/api/v1/jobs/{id}`);
    /// analyses of at least SLOPROOF_ASYNC_ANALYSIS_COST (units × resamples × metrics,
    /// default 10¹⁰) always do. false or absent: compute while the request waits.
    #[serde(rename = "async", default)]
    #[param(rename = "async")]
    pub run_async: Option<bool>,
}

/// A page of analyses, newest first: each in brief, with the link to its full document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnalysisList {
    pub items: Vec<AnalysisSummary>,
    pub next_cursor: Option<String>,
}

fn parse_request(req: &HttpRequest, body: &[u8]) -> Result<AnalysisRequest, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(AnalysisRequest::default());
    }
    if !super::body::is_json(req) {
        let ct = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return Err(AppError::UnsupportedMediaType {
            got: ct.to_owned(),
            expected: "application/json",
        });
    }
    super::body::parse(body)
}

fn json(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text)
}

/// Analyses an experiment's data and stores the result.
///
/// With `?async=true`, or for an analysis of at least SLOPROOF_ASYNC_ANALYSIS_COST, answers
/// 202 with a job to follow (`Location: /api/v1/jobs/{id}`); the parameters, the experiment
/// and the cost are checked first either way. The same data, parameters and seed give
/// identical numbers. Answers 422 naming what is
/// missing when the experiment has too little data, and 422 naming `bootstrap.resamples` when
/// assigned units × resamples × metrics exceeds the server's limit (SLOPROOF_MAX_ANALYSIS_COST,
/// default 10¹¹), with the most resamples that fit. An experiment of more assigned units than
/// SLOPROOF_MAX_ANALYSIS_UNITS (default 1,000,000; an analysis holds every unit's values) is a
/// 422 naming `experiment`: its summary (`GET /experiments/{key}/summary?resamples=…`) runs
/// in bounded memory at any size.
#[utoipa::path(
    post, path = "/api/v1/experiments/{key}/analyses", operation_id = "create_analysis", tag = "analyses",
    params(("key" = String, Path, description = "Experiment key"), AnalyseQuery),
    request_body(content = AnalysisRequest, description = "Parameters; an empty body (or none) uses every default"),
    responses((status = 201, description = "The analysis", body = Analysis,
               headers(("Location" = String, description = "URL of the analysis"))),
        (status = 202, description = "A job computes the analysis; follow it at `Location`", body = Job,
         headers(("Location" = String, description = "URL of the job"))),
        (status = 409, description = "The experiment's data kept changing while it was read (uploads in progress); retry", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "As many analyses are running as the server computes at once (SLOPROOF_MAX_CONCURRENT_ANALYSES, default 2), or, for a job, as many jobs are queued as it holds (SLOPROOF_MAX_QUEUED_JOBS, default 32); retry after `Retry-After` seconds", body = super::problem::Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait"))))
)]
pub async fn create_analysis(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    query: super::query::Query<AnalyseQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_ANALYSIS)?;
    // The JSON body limit of every other request (SLOPROOF_JSON_BODY_LIMIT), as a problem.
    let limit = state.limits.json_body_bytes;
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| AppError::PayloadTooLarge { limit })?
        .map_err(|e| AppError::BadRequest(format!("cannot read the request body: {e}")))?;
    let request = parse_request(&req, &body)?;
    let key = key.into_inner();
    let limits = state.limits.analysis();
    let (k, r) = (key.clone(), request.clone());
    let cost = state
        .run(move |db| service::admit_request(db, &k, &r, limits))
        .await?;
    if query.run_async == Some(true) || cost >= state.limits.async_analysis_cost {
        let jobs = state.clone();
        let job = state
            .run(move |db| {
                jobs.jobs.submit(
                    db,
                    &key,
                    &request,
                    &caller.name,
                    jobs.limits.max_queued_jobs,
                )
            })
            .await?;
        return Ok(HttpResponse::Accepted()
            .insert_header(("Location", format!("/api/v1/jobs/{}", job.id)))
            .json(job));
    }
    let slot = state.analysis_slot()?;
    let stored = state
        .run(move |db| service::run(db, &key, &request, limits))
        .await;
    drop(slot);
    let stored = stored?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/analyses/{}", stored.id)))
        .content_type("application/json")
        .body(stored.result))
}

/// Fetches a stored analysis.
#[utoipa::path(
    get, path = "/api/v1/analyses/{id}", operation_id = "get_analysis", tag = "analyses",
    params(("id" = i64, Path, description = "Analysis id")),
    responses((status = 200, description = "The analysis", body = Analysis))
)]
pub async fn get_analysis(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_ANALYSIS)?;
    let id = id.into_inner();
    let a = state.run(move |db| service::get(db, id)).await?;
    Ok(json(a.result))
}

/// Lists an experiment's analyses, newest first.
#[utoipa::path(
    get, path = "/api/v1/experiments/{key}/analyses", operation_id = "list_analyses", tag = "analyses",
    params(("key" = String, Path, description = "Experiment key"), ListQuery),
    responses((status = 200, description = "A page of analyses in brief, each with `href` to its full document", body = AnalysisList))
)]
pub async fn list_analyses(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    q: super::query::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    caller.require(&LIST_ANALYSES)?;
    let page = q.page()?;
    let key = key.into_inner();
    let before = (page.after_id > 0).then_some(page.after_id);
    let rows = state
        .run(move |db| service::list(db, &key, before, page.limit + 1))
        .await?;
    let (items, next_cursor) = page_of(rows, page.limit, |a| a.id, Ok)?;
    Ok(HttpResponse::Ok().json(AnalysisList { items, next_cursor }))
}
