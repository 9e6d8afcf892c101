//! `/api/v1/analyses/{id}/recommendations` and `/api/v1/recommendations…`: the review workflow.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::AppState;
use crate::error::{AppError, Issue};
use crate::slo::live::replay::Replay;
use crate::slo::model::{
    Decision, HistoryEvent, Recommendation, RecommendationList, RecommendationStatus,
};
use crate::slo::recommend::CreateRecommendation;
use crate::slo::service;

pub const CREATE_RECOMMENDATION: Operation = Operation::new(
    "create_recommendation",
    "POST",
    "/api/v1/analyses/{id}/recommendations",
    Access::Write,
);
pub const LIST_RECOMMENDATIONS: Operation = Operation::new(
    "list_recommendations",
    "GET",
    "/api/v1/recommendations",
    Access::Read,
);
pub const GET_RECOMMENDATION: Operation = Operation::new(
    "get_recommendation",
    "GET",
    "/api/v1/recommendations/{id}",
    Access::Read,
);
pub const DECIDE_RECOMMENDATION: Operation = Operation::new(
    "decide_recommendation",
    "POST",
    "/api/v1/recommendations/{id}/decision",
    Access::Review,
);
pub const GET_RECOMMENDATION_HISTORY: Operation = Operation::new(
    "get_recommendation_history",
    "GET",
    "/api/v1/recommendations/{id}/history",
    Access::Read,
);

/// A review decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub decision: Decision,
    /// Why; recorded in the history.
    pub comment: Option<String>,
    /// Required to approve a recommendation whose analysis used alpha above 0.05 or no
    /// multiple-testing correction (`derivation.loose_evidence`).
    #[serde(default)]
    pub acknowledge_loose_evidence: bool,
    /// Required to approve a recommendation from correlational evidence (an observational
    /// analysis of production history, `evidence.kind` = correlational).
    #[serde(default)]
    pub acknowledge_correlational_evidence: bool,
}

/// Filter of the recommendation list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationQuery {
    /// Only recommendations with this status.
    pub status: Option<RecommendationStatus>,
    /// Items per page, 1 to 500 (default 50).
    // Read as i64 so that 0, -1 or 2³² get the range's 422, not a 400 for the type.
    #[param(minimum = 1, maximum = 500, value_type = Option<u32>)]
    pub limit: Option<i64>,
    /// Opaque cursor from the previous page's `next_cursor`.
    #[param(min_length = 2, max_length = 17, pattern = "^c[0-9a-f]{1,16}$")]
    pub cursor: Option<String>,
}

/// The history of a recommendation, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct History {
    pub items: Vec<HistoryEvent>,
}

/// Derives an SLO recommendation from an analysis.
///
/// Refused (422, with the verdict's reasons) when the analysis did not validate the effect on the KPI.
#[utoipa::path(
    post, path = "/api/v1/analyses/{id}/recommendations", operation_id = "create_recommendation", tag = "slos",
    params(("id" = i64, Path, description = "Analysis id")),
    request_body = CreateRecommendation,
    responses((status = 201, description = "The proposed recommendation", body = Recommendation,
               headers(("Location" = String, description = "URL of the recommendation"))))
)]
pub async fn create_recommendation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<CreateRecommendation>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_RECOMMENDATION)?;
    let r = body.into_inner();
    let id = id.into_inner();
    let rec = state
        .run(move |db| service::recommend(db, id, &r, &caller.name))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/recommendations/{}", rec.id)))
        .json(rec))
}

/// Lists recommendations in creation order, optionally by status.
#[utoipa::path(
    get, path = "/api/v1/recommendations", operation_id = "list_recommendations", tag = "slos",
    params(RecommendationQuery),
    responses((status = 200, description = "A page of recommendations", body = RecommendationList))
)]
pub async fn list_recommendations(
    state: web::Data<AppState>,
    caller: Caller,
    q: super::query::Query<RecommendationQuery>,
) -> Result<web::Json<RecommendationList>, AppError> {
    caller.require(&LIST_RECOMMENDATIONS)?;
    let page = ListQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .page()?;
    let status = q.status;
    let rows = state
        .run(move |db| service::recommendations(db, status, page))
        .await?;
    let (items, next_cursor) = page_of(rows, page.limit, |r| r.id, Ok)?;
    Ok(web::Json(RecommendationList { items, next_cursor }))
}

/// Fetches a recommendation.
#[utoipa::path(
    get, path = "/api/v1/recommendations/{id}", operation_id = "get_recommendation", tag = "slos",
    params(("id" = i64, Path, description = "Recommendation id")),
    responses((status = 200, description = "The recommendation", body = Recommendation))
)]
pub async fn get_recommendation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Recommendation>, AppError> {
    caller.require(&GET_RECOMMENDATION)?;
    let id = id.into_inner();
    let rec = state.run(move |db| service::recommendation(db, id)).await?;
    Ok(web::Json(rec))
}

/// Approves or rejects a proposed recommendation; approval publishes an SLO and supersedes the
/// previous SLO of the same SLI and KPI.
#[utoipa::path(
    post, path = "/api/v1/recommendations/{id}/decision", operation_id = "decide_recommendation", tag = "slos",
    params(("id" = i64, Path, description = "Recommendation id")),
    request_body = DecisionRequest,
    responses(
        (status = 200, description = "The decided recommendation", body = Recommendation),
        (status = 409, description = "The recommendation was already decided", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn decide_recommendation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<DecisionRequest>,
) -> Result<web::Json<Recommendation>, AppError> {
    caller.require(&DECIDE_RECOMMENDATION)?;
    let b = body.into_inner();
    let comment = decision_comment(b.comment)?;
    let id = id.into_inner();
    let rec = state
        .run(move |db| {
            let ack = service::Acknowledged {
                loose_evidence: b.acknowledge_loose_evidence,
                correlational_evidence: b.acknowledge_correlational_evidence,
            };
            service::decide(db, id, b.decision, ack, &caller.name, comment.as_deref())
        })
        .await?;
    Ok(web::Json(rec))
}

/// A decision's comment: trimmed, empty as none, at most 2,000 characters, without control
/// characters (but line breaks and tabs) or bidirectional overrides.
pub(crate) fn decision_comment(raw: Option<String>) -> Result<Option<String>, AppError> {
    let comment = raw.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    let problem = comment.as_ref().and_then(|c| {
        if c.chars().count() > 2000 {
            Some("must be at most 2000 characters")
        } else if c.chars().any(|ch| {
            (ch.is_control() && ch != '\n' && ch != '\r' && ch != '\t')
                || ('\u{202a}'..='\u{202e}').contains(&ch)
                || ('\u{2066}'..='\u{2069}').contains(&ch)
        }) {
            // Bidirectional overrides would let a comment reorder how its history line reads.
            Some("must not contain control characters or bidirectional overrides")
        } else {
            None
        }
    });
    if let Some(m) = problem {
        return Err(AppError::invalid(
            "invalid decision: the comment is not accepted",
            vec![Issue::field("comment", m)],
        ));
    }
    Ok(comment)
}

/// Every transition of a recommendation: who, when, what, and their comment.
#[utoipa::path(
    get, path = "/api/v1/recommendations/{id}/history", operation_id = "get_recommendation_history", tag = "slos",
    params(("id" = i64, Path, description = "Recommendation id")),
    responses((status = 200, description = "The history, oldest first", body = History))
)]
pub async fn get_recommendation_history(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<History>, AppError> {
    caller.require(&GET_RECOMMENDATION_HISTORY)?;
    let id = id.into_inner();
    let items = state.run(move |db| service::history(db, id)).await?;
    Ok(web::Json(History { items }))
}

pub const REPLAY_RECOMMENDATION: Operation = Operation::new(
    "replay_recommendation",
    "POST",
    "/api/v1/recommendations/{id}/replay",
    Access::Read,
);

/// The range to replay on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Start of the range (RFC 3339).
    pub from: chrono::DateTime<chrono::Utc>,
    /// End of the range (RFC 3339); at most 92 days after `from`.
    pub to: chrono::DateTime<chrono::Utc>,
}

/// Replays the recommended SLO on the SLI's production data over a range: attainment, bad
/// windows, budget consumed, when the budget would have run out, how often it would have paged
/// and ticketed, and week by week whether the target was met.
#[utoipa::path(
    post, path = "/api/v1/recommendations/{id}/replay", operation_id = "replay_recommendation", tag = "slos",
    params(("id" = i64, Path, description = "Recommendation id")),
    request_body = ReplayRequest,
    responses((status = 200, description = "The replay", body = Replay))
)]
pub async fn replay_recommendation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<ReplayRequest>,
) -> Result<HttpResponse, AppError> {
    caller.require(&REPLAY_RECOMMENDATION)?;
    let id = id.into_inner();
    let (from, to) = (body.from.timestamp(), body.to.timestamp());
    let replay = state
        .run(move |db| crate::slo::live::service::replay_recommendation(db, id, from, to))
        .await?;
    super::slos::rounded(&replay)
}
