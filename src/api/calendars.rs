//! `/api/v1/calendars` and `/api/v1/slos/{id}/calendar`: business calendars (sales, release
//! weeks, freezes) and the calendar an SLO follows.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::AppState;
use crate::domain::calendar::CreateCalendar;
use crate::error::AppError;
use crate::slo::calendars::{self as service, CalendarList, CalendarView};

pub const CREATE_CALENDAR: Operation = Operation::new(
    "create_calendar",
    "POST",
    "/api/v1/calendars",
    Access::Write,
);
pub const LIST_CALENDARS: Operation =
    Operation::new("list_calendars", "GET", "/api/v1/calendars", Access::Read);
pub const GET_CALENDAR: Operation = Operation::new(
    "get_calendar",
    "GET",
    "/api/v1/calendars/{key}",
    Access::Read,
);
pub const REPLACE_CALENDAR: Operation = Operation::new(
    "replace_calendar",
    "PUT",
    "/api/v1/calendars/{key}",
    Access::Write,
);
pub const DELETE_CALENDAR: Operation = Operation::new(
    "delete_calendar",
    "DELETE",
    "/api/v1/calendars/{key}",
    Access::Write,
);
pub const SET_SLO_CALENDAR: Operation = Operation::new(
    "set_slo_calendar",
    "PUT",
    "/api/v1/slos/{id}/calendar",
    Access::Write,
);

/// Creates a business calendar.
///
/// Each period holds one policy over [start, end): `freeze` (the deploy gate denies all but
/// critical changes), `budget_multiplier` (the burn-rate alerts' factors are multiplied by it:
/// 0.5 on Black Friday alerts at half the usual burn) or `value_per_kpi_unit` (costs and the
/// value at risk of a change use it). Periods of one policy type must not overlap.
#[utoipa::path(
    post, path = "/api/v1/calendars", operation_id = "create_calendar", tag = "calendars",
    request_body = CreateCalendar,
    responses(
        (status = 201, description = "The calendar", body = CalendarView,
         headers(("Location" = String, description = "URL of the calendar"))),
        (status = 409, description = "A calendar with this key exists", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_calendar(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<CreateCalendar>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_CALENDAR)?;
    let req = body.into_inner();
    let c = state
        .run(move |db| service::create(db, &req, &caller.name))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/calendars/{}", c.key)))
        .json(c))
}

/// Lists calendars in creation order.
#[utoipa::path(
    get, path = "/api/v1/calendars", operation_id = "list_calendars", tag = "calendars",
    params(ListQuery),
    responses((status = 200, description = "A page of calendars", body = CalendarList))
)]
pub async fn list_calendars(
    state: web::Data<AppState>,
    caller: Caller,
    q: super::query::Query<ListQuery>,
) -> Result<web::Json<CalendarList>, AppError> {
    caller.require(&LIST_CALENDARS)?;
    let page = q.page()?;
    let rows = state.run(move |db| service::list(db, page)).await?;
    let (items, next_cursor) = page_of(rows, page.limit, |c| c.id, Ok)?;
    Ok(web::Json(CalendarList { items, next_cursor }))
}

/// Fetches a calendar.
#[utoipa::path(
    get, path = "/api/v1/calendars/{key}", operation_id = "get_calendar", tag = "calendars",
    params(("key" = String, Path, description = "Calendar key")),
    responses((status = 200, description = "The calendar", body = CalendarView))
)]
pub async fn get_calendar(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> Result<web::Json<CalendarView>, AppError> {
    caller.require(&GET_CALENDAR)?;
    let key = key.into_inner();
    Ok(web::Json(
        state.run(move |db| service::get(db, &key)).await?,
    ))
}

/// Replaces a calendar's name and periods (the body as for creating it; its `key` must be the
/// URL's). SLOs that follow it apply the new periods at once; re-export their Prometheus rules
/// to carry them there. The answer records who changed it and when.
#[utoipa::path(
    put, path = "/api/v1/calendars/{key}", operation_id = "replace_calendar", tag = "calendars",
    params(("key" = String, Path, description = "Calendar key")),
    request_body = CreateCalendar,
    responses((status = 200, description = "The calendar as replaced", body = CalendarView))
)]
pub async fn replace_calendar(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    body: Body<CreateCalendar>,
) -> Result<web::Json<CalendarView>, AppError> {
    caller.require(&REPLACE_CALENDAR)?;
    let (key, req) = (key.into_inner(), body.into_inner());
    Ok(web::Json(
        state
            .run(move |db| service::replace(db, &key, &req, &caller.name))
            .await?,
    ))
}

/// Deletes a calendar no SLO follows (409 naming the SLOs that do: unlink them first).
#[utoipa::path(
    delete, path = "/api/v1/calendars/{key}", operation_id = "delete_calendar", tag = "calendars",
    params(("key" = String, Path, description = "Calendar key")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "SLOs follow the calendar", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_calendar(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    caller.require(&DELETE_CALENDAR)?;
    let key = key.into_inner();
    state.run(move |db| service::delete(db, &key)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Which calendar an SLO follows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCalendar {
    /// The calendar's key, or null to follow none (required: an empty body is refused, so a
    /// link is never dropped by accident).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub calendar: Option<Option<String>>,
}

/// A field that is present, possibly null: `Some(None)` for null, `None` when absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Links an SLO to a business calendar (or unlinks it with null).
///
/// Its status, alerts, costs, Prometheus rules and deploy checks then apply the periods in
/// force. Answers the calendar (null when unlinked).
#[utoipa::path(
    put, path = "/api/v1/slos/{id}/calendar", operation_id = "set_slo_calendar", tag = "calendars",
    params(("id" = i64, Path, description = "SLO id")),
    request_body = SetCalendar,
    responses(
        (status = 200, description = "The calendar the SLO now follows", body = Option<CalendarView>),
        (status = 409, description = "The SLO is superseded", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_slo_calendar(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<SetCalendar>,
) -> Result<web::Json<Option<CalendarView>>, AppError> {
    caller.require(&SET_SLO_CALENDAR)?;
    let id = id.into_inner();
    let Some(key) = body.into_inner().calendar else {
        return Err(AppError::invalid(
            "the calendar is missing",
            vec![crate::error::Issue::field(
                "calendar",
                "give a calendar's key, or null to follow none",
            )],
        ));
    };
    let c = state
        .run(move |db| service::link(db, id, key.as_deref()))
        .await?;
    Ok(web::Json(c))
}
