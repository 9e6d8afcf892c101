//! `/api/v1/metrics/{key}/traces`: which SLIs explain a KPI's change.

use actix_web::{web, HttpResponse};

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::slos::rounded;
use super::AppState;
use crate::error::AppError;
use crate::slo::traces::{self as service, Trace, TraceRequest};

pub const CREATE_TRACE: Operation = Operation::new(
    "create_trace",
    "POST",
    "/api/v1/metrics/{key}/traces",
    Access::Read,
);

/// Traces a KPI's change (range vs baseline) to the SLIs under it in the metric hierarchy.
///
/// Each SLI with an active SLO of validated (causal) evidence gets the share of the change its
/// slope explains: slope × the SLI's shift (the SLO's governed percentile of the pooled
/// production windows, p50 without a windows SLO; the good share of events), with the slope's
/// interval. SLIs without such evidence or without data in both ranges are listed as
/// unquantified.
#[utoipa::path(
    post, path = "/api/v1/metrics/{key}/traces", operation_id = "create_trace", tag = "metrics",
    params(("key" = String, Path, description = "KPI key")),
    request_body = TraceRequest,
    responses((status = 200, description = "The trace", body = Trace))
)]
pub async fn create_trace(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    body: Body<TraceRequest>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_TRACE)?;
    let key = key.into_inner();
    let r = body.into_inner();
    rounded(&state.run(move |db| service::run(db, &key, &r)).await?)
}
