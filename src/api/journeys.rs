//! `/api/v1/journeys`: composite journey SLOs, their status and exports.

use actix_web::{web, HttpResponse};

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::slos::{rounded, StatusQuery};
use super::AppState;
use crate::error::AppError;
use crate::slo::journey::CreateJourney;
use crate::slo::journeys::{self as service, Journey, JourneyList, JourneyStatus};

pub const CREATE_JOURNEY: Operation =
    Operation::new("create_journey", "POST", "/api/v1/journeys", Access::Write);
pub const LIST_JOURNEYS: Operation =
    Operation::new("list_journeys", "GET", "/api/v1/journeys", Access::Read);
pub const GET_JOURNEY: Operation =
    Operation::new("get_journey", "GET", "/api/v1/journeys/{key}", Access::Read);
pub const REPLACE_JOURNEY: Operation = Operation::new(
    "replace_journey",
    "PUT",
    "/api/v1/journeys/{key}",
    Access::Write,
);
pub const DELETE_JOURNEY: Operation = Operation::new(
    "delete_journey",
    "DELETE",
    "/api/v1/journeys/{key}",
    Access::Write,
);
pub const GET_JOURNEY_STATUS: Operation = Operation::new(
    "get_journey_status",
    "GET",
    "/api/v1/journeys/{key}/status",
    Access::Read,
);
pub const GET_JOURNEY_PROMETHEUS_RULES: Operation = Operation::new(
    "get_journey_prometheus_rules",
    "GET",
    "/api/v1/journeys/{key}/prometheus-rules",
    Access::Read,
);
pub const GET_JOURNEY_OPENSLO: Operation = Operation::new(
    "get_journey_openslo",
    "GET",
    "/api/v1/journeys/{key}/openslo",
    Access::Read,
);

/// Creates a composite journey SLO from published SLOs of one period.
///
/// A request succeeds only if every step does: the journey's good share at an evaluation is
/// the product of its steps'. Its objective is given or the product of the step targets; its
/// budget is split across the steps by each step's cost per unit of error — `budget_split`:
/// `cost` (∝ cost, the default), `inverse_cost` (∝ 1 / cost) or `equal`; equally when a step
/// is unpriced — and `loss_at_budget` prices the split.
#[utoipa::path(
    post, path = "/api/v1/journeys", operation_id = "create_journey", tag = "journeys",
    request_body = CreateJourney,
    responses(
        (status = 201, description = "The journey", body = Journey,
         headers(("Location" = String, description = "URL of the journey"))),
        (status = 409, description = "A journey with this key exists", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_journey(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<CreateJourney>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_JOURNEY)?;
    let req = body.into_inner();
    let j = state
        .run(move |db| service::create(db, &req, &caller.name))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/journeys/{}", j.key)))
        .json(j))
}

/// Lists journeys in creation order.
#[utoipa::path(
    get, path = "/api/v1/journeys", operation_id = "list_journeys", tag = "journeys",
    params(ListQuery),
    responses((status = 200, description = "A page of journeys", body = JourneyList))
)]
pub async fn list_journeys(
    state: web::Data<AppState>,
    caller: Caller,
    q: super::query::Query<ListQuery>,
) -> Result<web::Json<JourneyList>, AppError> {
    caller.require(&LIST_JOURNEYS)?;
    let page = q.page()?;
    let rows = state.run(move |db| service::list(db, page)).await?;
    let (items, next_cursor) = page_of(rows, page.limit, |j: &Journey| j.id, Ok)?;
    Ok(web::Json(JourneyList { items, next_cursor }))
}

/// Fetches a journey.
#[utoipa::path(
    get, path = "/api/v1/journeys/{key}", operation_id = "get_journey", tag = "journeys",
    params(("key" = String, Path, description = "Journey key")),
    responses((status = 200, description = "The journey", body = Journey))
)]
pub async fn get_journey(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> Result<web::Json<Journey>, AppError> {
    caller.require(&GET_JOURNEY)?;
    let key = key.into_inner();
    let (j, _) = state.run(move |db| service::get(db, &key)).await?;
    Ok(web::Json(j))
}

/// Replaces a journey: its name, steps, objective and budget split (the body as for creating
/// it; its `key` must be the URL's). Status and exports follow the new steps at once; the
/// answer records who changed it and when.
#[utoipa::path(
    put, path = "/api/v1/journeys/{key}", operation_id = "replace_journey", tag = "journeys",
    params(("key" = String, Path, description = "Journey key")),
    request_body = CreateJourney,
    responses((status = 200, description = "The journey as replaced", body = Journey))
)]
pub async fn replace_journey(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    body: Body<CreateJourney>,
) -> Result<web::Json<Journey>, AppError> {
    caller.require(&REPLACE_JOURNEY)?;
    let (key, req) = (key.into_inner(), body.into_inner());
    Ok(web::Json(
        state
            .run(move |db| service::replace(db, &key, &req, &caller.name))
            .await?,
    ))
}

/// Deletes a journey (its steps' SLOs stay).
#[utoipa::path(
    delete, path = "/api/v1/journeys/{key}", operation_id = "delete_journey", tag = "journeys",
    params(("key" = String, Path, description = "Journey key")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_journey(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    caller.require(&DELETE_JOURNEY)?;
    let key = key.into_inner();
    state.run(move |db| service::delete(db, &key)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The journey's live status: attainment (the mean product of the steps' good shares), error
/// budget, burn rates and alerts, and each step's attainment, budget share and contribution to
/// the journey's burn.
#[utoipa::path(
    get, path = "/api/v1/journeys/{key}/status", operation_id = "get_journey_status", tag = "journeys",
    params(("key" = String, Path, description = "Journey key"), StatusQuery),
    responses((status = 200, description = "The status", body = JourneyStatus))
)]
pub async fn get_journey_status(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    q: super::query::Query<StatusQuery>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_JOURNEY_STATUS)?;
    let key = key.into_inner();
    let at = q.at;
    rounded(&state.run(move |db| service::status(db, &key, at)).await?)
}

fn yaml(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(text)
}

/// Prometheus rules of the journey: its error per evaluation (1 − Π (1 − step error)), averages
/// over the alert windows, and multiwindow burn-rate alerts on its budget. Load them with the
/// steps' own rule files.
#[utoipa::path(
    get, path = "/api/v1/journeys/{key}/prometheus-rules", operation_id = "get_journey_prometheus_rules", tag = "journeys",
    params(("key" = String, Path, description = "Journey key")),
    responses((status = 200, description = "Prometheus rule groups (YAML)", body = String, content_type = "application/yaml"))
)]
pub async fn get_journey_prometheus_rules(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_JOURNEY_PROMETHEUS_RULES)?;
    let key = key.into_inner();
    Ok(yaml(
        state.run(move |db| service::rules_yaml(db, &key)).await?,
    ))
}

/// OpenSLO documents of the journey (OpenSLO v1 has no composite kind): one `Service` and each
/// step's SLO in it, with the journey, its objective and the step's budget share in annotations.
#[utoipa::path(
    get, path = "/api/v1/journeys/{key}/openslo", operation_id = "get_journey_openslo", tag = "journeys",
    params(("key" = String, Path, description = "Journey key")),
    responses((status = 200, description = "OpenSLO v1 YAML documents", body = String, content_type = "application/yaml"))
)]
pub async fn get_journey_openslo(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_JOURNEY_OPENSLO)?;
    let key = key.into_inner();
    Ok(yaml(
        state.run(move |db| service::openslo_yaml(db, &key)).await?,
    ))
}
