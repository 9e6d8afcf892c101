//! `/api/v1/analyses/{id}/recommendations`, `/api/v1/recommendations…` and `/api/v1/slos…`.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::pagination::{page_of, ListQuery};
use super::{blocking, AppState};
use crate::error::{AppError, Issue};
use crate::slo::model::{
    Decision, HistoryEvent, Recommendation, RecommendationList, RecommendationStatus, Slo, SloList,
};
use crate::slo::recommend::CreateRecommendation;
use crate::slo::{openslo, prometheus, service};
use crate::store::{metrics, recommendations as store};

/// The authenticated caller's name, set by the authentication middleware.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

fn actor(req: &HttpRequest) -> String {
    req.extensions()
        .get::<Actor>()
        .map(|a| a.0.clone())
        .unwrap_or_else(|| "anonymous".to_owned())
}

/// A review decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub decision: Decision,
    /// Why; recorded in the history.
    pub comment: Option<String>,
}

/// Filter of the recommendation list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationQuery {
    /// Only recommendations with this status.
    pub status: Option<RecommendationStatus>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
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
    id: web::Path<i64>,
    req: HttpRequest,
    body: web::Json<CreateRecommendation>,
) -> Result<HttpResponse, AppError> {
    let r = body.into_inner();
    let (id, who) = (id.into_inner(), actor(&req));
    let rec = blocking(&state, move |c| service::recommend(c, id, &r, &who)).await?;
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
    q: web::Query<RecommendationQuery>,
) -> Result<web::Json<RecommendationList>, AppError> {
    let page = ListQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .page()?;
    let status = q.status.map(|s| s.as_str());
    let rows = blocking(&state, move |c| {
        store::list(c, status, page.after_id, page.limit + 1)
    })
    .await?;
    let (items, next_cursor) = page_of(
        rows,
        page.limit,
        |r| r.id,
        |r| service::to_recommendation(&r),
    )?;
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
    id: web::Path<i64>,
) -> Result<web::Json<Recommendation>, AppError> {
    let id = id.into_inner();
    let row = blocking(&state, move |c| store::get(c, id)).await?;
    Ok(web::Json(service::to_recommendation(&row)?))
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
    id: web::Path<i64>,
    req: HttpRequest,
    body: web::Json<DecisionRequest>,
) -> Result<web::Json<Recommendation>, AppError> {
    let b = body.into_inner();
    let comment = b
        .comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return Err(AppError::invalid(
            "invalid decision",
            vec![Issue::field("comment", "must be at most 2000 characters")],
        ));
    }
    let (id, who) = (id.into_inner(), actor(&req));
    let rec = blocking(&state, move |c| {
        service::decide(c, id, b.decision, &who, comment.as_deref())
    })
    .await?;
    Ok(web::Json(rec))
}

/// Every transition of a recommendation: who, when, what, and their comment.
#[utoipa::path(
    get, path = "/api/v1/recommendations/{id}/history", operation_id = "get_recommendation_history", tag = "slos",
    params(("id" = i64, Path, description = "Recommendation id")),
    responses((status = 200, description = "The history, oldest first", body = History))
)]
pub async fn get_recommendation_history(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<History>, AppError> {
    let id = id.into_inner();
    let items = blocking(&state, move |c| service::history(c, id)).await?;
    Ok(web::Json(History { items }))
}

/// Lists published SLOs (active and superseded) in publication order.
#[utoipa::path(
    get, path = "/api/v1/slos", operation_id = "list_slos", tag = "slos",
    params(ListQuery),
    responses((status = 200, description = "A page of SLOs", body = SloList))
)]
pub async fn list_slos(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<web::Json<SloList>, AppError> {
    let page = q.page()?;
    let rows = blocking(&state, move |c| {
        store::list_slos(c, page.after_id, page.limit + 1)
    })
    .await?;
    let (items, next_cursor) = page_of(rows, page.limit, |r| r.id, |r| service::to_slo(&r))?;
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
    id: web::Path<i64>,
) -> Result<web::Json<Slo>, AppError> {
    let id = id.into_inner();
    let row = blocking(&state, move |c| store::get_slo(c, id)).await?;
    Ok(web::Json(service::to_slo(&row)?))
}

async fn slo_and_sli(
    state: &web::Data<AppState>,
    id: i64,
) -> Result<(Slo, metrics::Metric), AppError> {
    blocking(state, move |c| {
        let row = store::get_slo(c, id)?;
        let slo = service::to_slo(&row)?;
        let sli = metrics::get(c, &slo.slo.sli)?;
        Ok((slo, sli))
    })
    .await
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
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let (slo, sli) = slo_and_sli(&state, id.into_inner()).await?;
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
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let (slo, sli) = slo_and_sli(&state, id.into_inner()).await?;
    yaml(prometheus::rules_yaml(&slo, &sli))
}
