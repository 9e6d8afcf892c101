//! `/api/v1/jobs/{id}`: analyses computed as jobs — their state, progress and result, and
//! cancelling them.

use actix_web::{web, HttpResponse};

use super::caller::{Access, Caller, Operation};
use super::AppState;
use crate::analysis::jobs::{self as service, Job};
use crate::error::AppError;

pub const GET_JOB: Operation = Operation::new("get_job", "GET", "/api/v1/jobs/{id}", Access::Read);
pub const CANCEL_JOB: Operation =
    Operation::new("cancel_job", "DELETE", "/api/v1/jobs/{id}", Access::Write);

/// A job: its state (`queued`, `running`, `succeeded`, `failed`, `cancelled`), stage, progress
/// and ETA, and when it succeeded the analysis it stored (`analysis_href`).
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", operation_id = "get_job", tag = "analyses",
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = Job))
)]
pub async fn get_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Job>, AppError> {
    caller.require(&GET_JOB)?;
    let id = id.into_inner();
    Ok(web::Json(state.run(move |db| service::get(db, id)).await?))
}

/// Cancels a job: a queued one at once, a running one at its next stage (nothing is stored).
/// Answers the job (`cancel_requested`; poll it for `cancelled`); 409 when it has finished.
#[utoipa::path(
    delete, path = "/api/v1/jobs/{id}", operation_id = "cancel_job", tag = "analyses",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 202, description = "Cancelled, or asked to stop", body = Job),
        (status = 409, description = "The job has finished", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CANCEL_JOB)?;
    let id = id.into_inner();
    let job = state.run(move |db| service::cancel(db, id)).await?;
    Ok(HttpResponse::Accepted().json(job))
}
