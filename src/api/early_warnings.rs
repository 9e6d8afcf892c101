//! `/api/v1/slos/{id}/early-warnings`: upstream SLIs that warn before an SLO breaks.

use actix_web::{web, HttpResponse};

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::slos::rounded;
use super::AppState;
use crate::error::AppError;
use crate::slo::early_warning::{EarlyWarning, EarlyWarningRequest};
use crate::slo::early_warnings as service;

pub const PUT_EARLY_WARNING: Operation = Operation::new(
    "put_early_warning",
    "PUT",
    "/api/v1/slos/{id}/early-warnings/{indicator}",
    Access::Write,
);
pub const LIST_EARLY_WARNINGS: Operation = Operation::new(
    "list_early_warnings",
    "GET",
    "/api/v1/slos/{id}/early-warnings",
    Access::Read,
);
pub const GET_EARLY_WARNING: Operation = Operation::new(
    "get_early_warning",
    "GET",
    "/api/v1/slos/{id}/early-warnings/{indicator}",
    Access::Read,
);
pub const DELETE_EARLY_WARNING: Operation = Operation::new(
    "delete_early_warning",
    "DELETE",
    "/api/v1/slos/{id}/early-warnings/{indicator}",
    Access::Write,
);

/// Attaches an early warning to an SLO (or replaces it): the upstream SLI `indicator` must lead
/// the SLO's SLI, read as the SLO governs it (its percentile per SLO window), significantly
/// among the SLI's upstream SLIs (see leading indicators). Unless given, the level is learned
/// on the first two thirds of that history (the indicator's percentile whose warnings best
/// anticipate the SLO's bad windows, by F1), and the rule is replayed on the held-out third.
/// Only SLOs that judge windows by a percentile take early warnings. The SLO's Prometheus rules then carry an `SloproofEarlyWarning` alert on the
/// indicator. A warning belongs to this SLO: a successor with a new threshold needs its own.
#[utoipa::path(
    put, path = "/api/v1/slos/{id}/early-warnings/{indicator}", operation_id = "put_early_warning", tag = "slos",
    params(("id" = i64, Path, description = "SLO id"), ("indicator" = String, Path, description = "Upstream SLI key")),
    request_body = EarlyWarningRequest,
    responses(
        (status = 201, description = "Attached", body = EarlyWarning),
        (status = 200, description = "Replaced", body = EarlyWarning),
        (status = 409, description = "The SLO is superseded", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_early_warning(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(i64, String)>,
    body: Body<EarlyWarningRequest>,
) -> Result<HttpResponse, AppError> {
    caller.require(&PUT_EARLY_WARNING)?;
    let (id, indicator) = path.into_inner();
    let r = body.into_inner();
    let slot = state.analysis_slot()?;
    let answer = state
        .run(move |db| service::put(db, id, &indicator, &r, &caller.name))
        .await;
    drop(slot);
    let (w, created) = answer?;
    let mut resp = rounded(&w)?;
    if created {
        *resp.status_mut() = actix_web::http::StatusCode::CREATED;
    }
    Ok(resp)
}

/// The SLO's early warnings, in the order they were attached (at most one per upstream SLI, so
/// not paginated).
#[utoipa::path(
    get, path = "/api/v1/slos/{id}/early-warnings", operation_id = "list_early_warnings", tag = "slos",
    params(("id" = i64, Path, description = "SLO id")),
    responses((status = 200, description = "The warnings", body = Vec<EarlyWarning>))
)]
pub async fn list_early_warnings(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    caller.require(&LIST_EARLY_WARNINGS)?;
    let id = id.into_inner();
    rounded(&state.run(move |db| service::list(db, id)).await?)
}

/// The SLO's early warning on `indicator`.
#[utoipa::path(
    get, path = "/api/v1/slos/{id}/early-warnings/{indicator}", operation_id = "get_early_warning", tag = "slos",
    params(("id" = i64, Path, description = "SLO id"), ("indicator" = String, Path, description = "Upstream SLI key")),
    responses((status = 200, description = "The warning", body = EarlyWarning))
)]
pub async fn get_early_warning(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_EARLY_WARNING)?;
    let (id, indicator) = path.into_inner();
    rounded(
        &state
            .run(move |db| service::get(db, id, &indicator))
            .await?,
    )
}

/// Removes the SLO's early warning on `indicator`.
#[utoipa::path(
    delete, path = "/api/v1/slos/{id}/early-warnings/{indicator}", operation_id = "delete_early_warning", tag = "slos",
    params(("id" = i64, Path, description = "SLO id"), ("indicator" = String, Path, description = "Upstream SLI key")),
    responses((status = 204, description = "Removed"))
)]
pub async fn delete_early_warning(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, AppError> {
    caller.require(&DELETE_EARLY_WARNING)?;
    let (id, indicator) = path.into_inner();
    state
        .run(move |db| service::delete(db, id, &indicator))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
