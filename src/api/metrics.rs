//! `/api/v1/metrics`: the catalog of SLIs and KPIs.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::AppState;
use crate::domain::metric::{
    Direction, Layer, Metric, MetricInput, MetricKind, NewMetric, OrdinalScale, PrometheusQueries,
    RatioOf, ValueType,
};
use crate::error::AppError;
use crate::ingest::service;

pub const CREATE_METRIC: Operation =
    Operation::new("create_metric", "POST", "/api/v1/metrics", Access::Write);
pub const LIST_METRICS: Operation =
    Operation::new("list_metrics", "GET", "/api/v1/metrics", Access::Read);
pub const GET_METRIC: Operation =
    Operation::new("get_metric", "GET", "/api/v1/metrics/{key}", Access::Read);

/// A new catalog metric.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMetric {
    /// Unique key: 1-64 characters of a-z, 0-9, `_`, `-`, `.`, starting with a letter or digit.
    #[schema(
        example = "checkout-latency-p95",
        pattern = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
    )]
    pub key: String,
    /// Human-readable name, at most 200 characters.
    #[schema(example = "Checkout latency", min_length = 1, max_length = 200)]
    pub name: String,
    /// Optional longer description.
    #[serde(default)]
    pub description: Option<String>,
    pub kind: MetricKind,
    pub value_type: ValueType,
    /// Unit of the values, e.g. `ms`, `ratio`, `USD`; may be empty for unitless metrics; at most
    /// 50 characters.
    #[schema(example = "ms", max_length = 50)]
    pub unit: String,
    pub direction: Direction,
    pub layer: Layer,
    /// Keys of existing metrics this one feeds (KPI ← journey SLI ← platform SLI ← infrastructure);
    /// at most 50.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub parents: Vec<String>,
    /// PromQL templates of the SLI's good and total events, used by exported rules and OpenSLO.
    #[serde(default)]
    pub prometheus: PrometheusQueries,
    /// Required with value type `ratio` (KPIs only): the catalog metrics whose per-unit values
    /// are its numerator and denominator; observations are uploaded for those.
    #[serde(default)]
    pub ratio: Option<RatioOf>,
    /// Required with value type `ordinal`: the whole-number scale and its top box.
    #[serde(default)]
    pub scale: Option<OrdinalScale>,
}

/// A catalog metric.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Metric)]
pub struct MetricResponse {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub kind: MetricKind,
    pub value_type: ValueType,
    pub unit: String,
    pub direction: Direction,
    pub layer: Layer,
    /// Keys of the metrics this one feeds.
    pub parents: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// PromQL templates of good and total events.
    pub prometheus: PrometheusQueries,
    /// A ratio metric's numerator and denominator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<RatioOf>,
    /// An ordinal metric's scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<OrdinalScale>,
}

impl From<Metric> for MetricResponse {
    fn from(m: Metric) -> Self {
        MetricResponse {
            key: m.key,
            name: m.name,
            description: m.description,
            kind: m.kind,
            value_type: m.value_type,
            unit: m.unit,
            direction: m.direction,
            layer: m.layer,
            parents: m.parents,
            created_at: m.created_at.and_utc(),
            prometheus: m.prometheus,
            ratio: m.ratio,
            scale: m.scale,
        }
    }
}

/// A page of metrics.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MetricList {
    pub items: Vec<MetricResponse>,
    /// Cursor of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Registers a metric.
#[utoipa::path(
    post, path = "/api/v1/metrics", operation_id = "create_metric", tag = "metrics",
    request_body = CreateMetric,
    responses(
        (status = 201, description = "The metric was created", body = MetricResponse,
         headers(("Location" = String, description = "URL of the new metric"))),
        (status = 409, description = "A metric with this key exists", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_metric(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<CreateMetric>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_METRIC)?;
    let b = body.into_inner();
    let new = NewMetric::parse(MetricInput {
        key: b.key,
        name: b.name,
        description: b.description,
        kind: b.kind,
        value_type: b.value_type,
        unit: b.unit,
        direction: b.direction,
        layer: b.layer,
        parents: b.parents,
        prometheus: b.prometheus,
        ratio: b.ratio,
        scale: b.scale,
    })?;
    let m = state
        .run(move |db| service::create_metric(db, &new))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/metrics/{}", m.key)))
        .json(MetricResponse::from(m)))
}

/// Lists metrics in creation order.
#[utoipa::path(
    get, path = "/api/v1/metrics", operation_id = "list_metrics", tag = "metrics",
    params(ListQuery),
    responses((status = 200, description = "A page of metrics", body = MetricList))
)]
pub async fn list_metrics(
    state: web::Data<AppState>,
    caller: Caller,
    q: super::query::Query<ListQuery>,
) -> Result<web::Json<MetricList>, AppError> {
    caller.require(&LIST_METRICS)?;
    let page = q.page()?;
    let rows = state.run(move |db| service::metrics(db, page)).await?;
    let (items, next_cursor) = page_of(rows, page.limit, |r| r.id, |r| Ok(r.into()))?;
    Ok(web::Json(MetricList { items, next_cursor }))
}

/// Fetches one metric.
#[utoipa::path(
    get, path = "/api/v1/metrics/{key}", operation_id = "get_metric", tag = "metrics",
    params(("key" = String, Path, description = "Metric key")),
    responses((status = 200, description = "The metric", body = MetricResponse))
)]
pub async fn get_metric(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> Result<web::Json<MetricResponse>, AppError> {
    caller.require(&GET_METRIC)?;
    let key = key.into_inner();
    let m = state.run(move |db| service::metric(db, &key)).await?;
    Ok(web::Json(m.into()))
}
