//! `/api/v1/metrics/{key}/series…`: an SLI's production series, pushed or pulled from
//! Prometheus.

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::ingest::{check_declared_length, format_of, stream_body, ObservationQuery};
use super::AppState;
use crate::domain::series::{SeriesKind, MAX_WINDOW_SECONDS};
use crate::error::{AppError, AppResult, Issue};
use crate::ingest::series::SeriesRow;
use crate::ingest::{pull, service, IngestSummary, OnConflict};

pub const INGEST_SERIES: Operation = Operation::new(
    "ingest_series",
    "POST",
    "/api/v1/metrics/{key}/series",
    Access::Write,
);
pub const GET_SERIES: Operation = Operation::new(
    "get_series",
    "GET",
    "/api/v1/metrics/{key}/series",
    Access::Read,
);
pub const SYNC_SERIES: Operation = Operation::new(
    "sync_series",
    "POST",
    "/api/v1/metrics/{key}/series/sync",
    Access::Write,
);

const CSV_SERIES: &str = "start,seconds,count,sum,le_100,le_250,le_500,le_inf\n2026-11-28T10:05:00Z,60,1200,210000,700,1100,1180,1200\n";

/// Uploads windows of an SLI's production series, all or nothing.
///
/// One row per window: a Prometheus-style histogram (`count`, `sum`, cumulative `buckets`, the
/// last `+Inf` equal to `count`) or event counts (`good`, `total`). The first upload fixes the
/// metric's window length and bucket bounds; every `start` is aligned to the window length and
/// the window must have ended. Re-sending an identical window is a no-op counted in
/// `duplicates`; different counts for a stored window are rejected unless `on_conflict=replace`.
#[utoipa::path(
    post, path = "/api/v1/metrics/{key}/series", operation_id = "ingest_series", tag = "series",
    params(("key" = String, Path, description = "SLI key"), ObservationQuery),
    request_body(description = "Windows", content(
        (Vec<SeriesRow> = "application/json"),
        (SeriesRow = "application/x-ndjson"),
        (String = "text/csv", example = json!(CSV_SERIES)),
    )),
    responses((status = 200, description = "All windows were stored, replaced or were duplicates", body = IngestSummary))
)]
pub async fn ingest_series(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    query: super::query::Query<ObservationQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<web::Json<IngestSummary>> {
    caller.require(&INGEST_SERIES)?;
    let policy: OnConflict = query.on_conflict.into();
    let format = format_of(&req)?;
    check_declared_length(&state, &req)?;
    let key = key.into_inner();
    let (metric, layout) = state
        .run(move |db| service::series_metric(db, &key))
        .await?;
    let summary = stream_body(&state, payload, move |db, reader| {
        service::upload_series(db, &metric, layout.as_ref(), reader, format, policy)
    })
    .await?;
    Ok(web::Json(summary))
}

/// What a metric's production series holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeriesInfo {
    pub metric: String,
    /// `histogram` or `events` (SLIs), `values` (KPIs); null before the first window.
    pub kind: Option<SeriesKind>,
    pub window_seconds: Option<u32>,
    /// Finite bucket bounds in the metric's unit (histograms).
    pub bounds: Vec<f64>,
    pub windows: i64,
    /// Whether the metric names a Prometheus source to pull from.
    pub pullable: bool,
}

/// Describes a metric's production series: layout and number of windows.
#[utoipa::path(
    get, path = "/api/v1/metrics/{key}/series", operation_id = "get_series", tag = "series",
    params(("key" = String, Path, description = "SLI key")),
    responses((status = 200, description = "The series", body = SeriesInfo))
)]
pub async fn get_series(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
) -> AppResult<web::Json<SeriesInfo>> {
    caller.require(&GET_SERIES)?;
    let key = key.into_inner();
    let (m, layout, n) = state
        .run(move |db| service::metric_series(db, &key))
        .await?;
    Ok(web::Json(SeriesInfo {
        metric: m.key,
        kind: layout.as_ref().map(|l| l.kind),
        window_seconds: layout.as_ref().map(|l| l.seconds),
        bounds: layout.map(|l| l.bounds).unwrap_or_default(),
        windows: n,
        pullable: m.prometheus.source.is_some(),
    }))
}

/// Range of windows to pull.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Start of the first window (RFC 3339); rounded down to the window length.
    pub from: DateTime<Utc>,
    /// End of the last window (RFC 3339, default now); rounded down to the window length.
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
}

/// What a sync pulled and stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncSummary {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub window_seconds: u32,
    /// Complete windows found in Prometheus, and what storing them did.
    pub stored: IngestSummary,
}

/// Most windows one sync pulls.
pub const MAX_SYNC_WINDOWS: i64 = 200_000;

/// Pulls windows of the SLI's production series from its Prometheus source.
///
/// Windows are the increase of the source's counters between window boundaries (see the
/// README). Idempotent: windows already stored identically are duplicates; windows whose counts
/// changed in Prometheus (late scrapes) replace the stored ones. An unreachable or failing
/// Prometheus is a 502 naming it and its status; nothing is written.
#[utoipa::path(
    post, path = "/api/v1/metrics/{key}/series/sync", operation_id = "sync_series", tag = "series",
    params(("key" = String, Path, description = "SLI key")),
    request_body = SyncRequest,
    responses(
        (status = 200, description = "Windows pulled and stored", body = SyncSummary),
        (status = 502, description = "The Prometheus source failed or could not be reached", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sync_series(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    body: Body<SyncRequest>,
) -> AppResult<web::Json<SyncSummary>> {
    caller.require(&SYNC_SERIES)?;
    let key = key.into_inner();
    let (metric, layout) = state
        .run(move |db| service::series_metric(db, &key))
        .await?;
    let Some(src) = metric.prometheus.source.clone() else {
        return Err(AppError::invalid(
            "the metric names no Prometheus source",
            vec![Issue::field(
                "prometheus.source",
                "create the metric with prometheus.source to pull its series",
            )],
        ));
    };
    let w = i64::from(src.window_seconds.unwrap_or(60).min(MAX_WINDOW_SECONDS));
    let now = Utc::now().timestamp();
    let to = body
        .to
        .map_or(now, |t| t.timestamp())
        .min(now)
        .div_euclid(w)
        * w;
    let from = body.from.timestamp().div_euclid(w) * w;
    if to <= from || (to - from) / w > MAX_SYNC_WINDOWS {
        return Err(AppError::invalid(
            "the range to pull is not valid",
            vec![Issue::field(
                "from",
                format!("must be before to (and now), spanning at most {MAX_SYNC_WINDOWS} windows of {w} s"),
            )],
        ));
    }
    let stored = pull_and_store(&state, metric, layout, (from, to)).await?;
    let at = |t: i64| DateTime::from_timestamp(t, 0).unwrap_or_default();
    Ok(web::Json(SyncSummary {
        from: at(from),
        to: at(to),
        window_seconds: w as u32,
        stored,
    }))
}

/// Pulls windows starting in [from, to) from the metric's source and stores them.
pub async fn pull_and_store(
    state: &AppState,
    metric: crate::domain::metric::Metric,
    layout: Option<crate::domain::series::SeriesLayout>,
    (from, to): (i64, i64),
) -> AppResult<IngestSummary> {
    let Some(src) = metric.prometheus.source.clone() else {
        return Ok(IngestSummary {
            received: 0,
            inserted: 0,
            duplicates: 0,
            replaced: 0,
        });
    };
    let (_, rows) = pull::pull(&src, &metric.unit, from, to).await?;
    state
        .run(move |db| service::store_pulled(db, &metric, layout.as_ref(), rows))
        .await
}

/// Pulls every SLI that names a Prometheus source, from the end of its stored series (at most
/// a day back) to now; failures are logged and retried at the next round.
pub async fn sync_round(state: &AppState) {
    let keys = match state.run(service::pullable).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "background sync: cannot list metrics");
            return;
        }
    };
    for key in keys {
        let k = key.clone();
        let loaded = state
            .run(move |db| {
                let (m, layout) = service::series_metric(db, &k)?;
                let end = service::series_end(db, &m, layout.as_ref())?;
                Ok((m, layout, end))
            })
            .await;
        let (metric, layout, end) = match loaded {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(metric = key, error = %e, "background sync: cannot load");
                continue;
            }
        };
        let w = i64::from(
            metric
                .prometheus
                .source
                .as_ref()
                .and_then(|s| s.window_seconds)
                .unwrap_or(60),
        );
        let now = Utc::now().timestamp().div_euclid(w) * w;
        let from = end.unwrap_or(now - 86_400).max(now - 86_400);
        if from >= now {
            continue;
        }
        match pull_and_store(state, metric, layout, (from, now)).await {
            Ok(s) => tracing::info!(metric = key, inserted = s.inserted, "background sync"),
            Err(e) => tracing::warn!(metric = key, error = %e, "background sync failed"),
        }
    }
}
