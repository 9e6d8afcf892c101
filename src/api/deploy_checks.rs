//! `/api/v1/deploy-checks`: the deploy gate (may this change ship now?) and its record.

use actix_web::{web, HttpResponse};

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::AppState;
use crate::error::AppError;
use crate::slo::business::{self as service, CreateDeployCheck, DeployCheck, DeployCheckList};

pub const CREATE_DEPLOY_CHECK: Operation = Operation::new(
    "create_deploy_check",
    "POST",
    "/api/v1/deploy-checks",
    Access::Read,
);
pub const LIST_DEPLOY_CHECKS: Operation = Operation::new(
    "list_deploy_checks",
    "GET",
    "/api/v1/deploy-checks",
    Access::Read,
);

/// Asks the deploy gate whether a change may ship now; every role may ask, and the check is
/// recorded with the caller's name.
///
/// Rules, strictest outcome first: a `critical` change is always allowed; a calendar freeze in
/// force denies; a page-level burn denies; a remaining budget below the priority's floor
/// (low 50%, normal 25%, high 10%) denies; an SLO without data, or an `expected_budget_burn`
/// (share of the remaining budget) above 1 or that would take the budget below the floor, needs
/// approval; otherwise allow. `sloproof gate` calls this and exits 0 (allow), 1 (deny) or 2
/// (needs approval).
#[utoipa::path(
    post, path = "/api/v1/deploy-checks", operation_id = "create_deploy_check", tag = "calendars",
    request_body = CreateDeployCheck,
    responses((status = 201, description = "The decision, its reasons and each SLO's state", body = DeployCheck,
               headers(("Location" = String, description = "URL of the deploy checks"))))
)]
pub async fn create_deploy_check(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<CreateDeployCheck>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_DEPLOY_CHECK)?;
    let req = body.into_inner();
    let age = f64::from(state.limits.evidence_max_age_days);
    let answer = state
        .run(move |db| service::check(db, &req, &caller.name, age))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", "/api/v1/deploy-checks"))
        .json(answer))
}

/// Lists recorded deploy checks, oldest first, with who asked.
#[utoipa::path(
    get, path = "/api/v1/deploy-checks", operation_id = "list_deploy_checks", tag = "calendars",
    params(ListQuery),
    responses((status = 200, description = "A page of deploy checks", body = DeployCheckList))
)]
pub async fn list_deploy_checks(
    state: web::Data<AppState>,
    caller: Caller,
    q: super::query::Query<ListQuery>,
) -> Result<web::Json<DeployCheckList>, AppError> {
    caller.require(&LIST_DEPLOY_CHECKS)?;
    let page = q.page()?;
    let rows = state.run(move |db| service::checks(db, page)).await?;
    let (items, next_cursor) = page_of(rows, page.limit, |c: &DeployCheck| c.id, Ok)?;
    Ok(web::Json(DeployCheckList { items, next_cursor }))
}
