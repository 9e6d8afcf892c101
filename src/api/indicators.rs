//! `/api/v1/metrics/{key}/leading-indicators`: which upstream SLIs move before an SLI.

use actix_web::{web, HttpResponse};

use super::caller::{Access, Caller, Operation};
use super::slos::rounded;
use super::AppState;
use crate::analysis::indicators::{self as service, LeadingIndicators, LeadingQuery};
use crate::error::AppError;

pub const GET_LEADING_INDICATORS: Operation = Operation::new(
    "get_leading_indicators",
    "GET",
    "/api/v1/metrics/{key}/leading-indicators",
    Access::Read,
);

/// Upstream SLIs that lead this SLI: for each candidate (the SLIs under it in the metric
/// hierarchy, or `candidates`), on the longest gap-free stretch of common windows, the
/// pre-whitened cross-correlation of the window-to-window changes at lags 0 … `max_lag`, the
/// best lead, and a Granger F test at that lead; its p-value is multiplied by the lags looked
/// at and Holm-corrected across candidates. A lead is an association in time (a common cause
/// reaching one SLI first also leads), which is what an early warning needs.
#[utoipa::path(
    get, path = "/api/v1/metrics/{key}/leading-indicators", operation_id = "get_leading_indicators", tag = "metrics",
    params(("key" = String, Path, description = "The target SLI's key"), LeadingQuery),
    responses((status = 200, description = "The candidates, leading ones first", body = LeadingIndicators))
)]
pub async fn get_leading_indicators(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    q: super::query::Query<LeadingQuery>,
) -> Result<HttpResponse, AppError> {
    caller.require(&GET_LEADING_INDICATORS)?;
    let key = key.into_inner();
    let q = q.into_inner();
    let slot = state.analysis_slot()?;
    let answer = state.run(move |db| service::run(db, &key, &q)).await;
    drop(slot);
    rounded(&answer?)
}
