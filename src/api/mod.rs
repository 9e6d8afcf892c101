//! HTTP API: actix handlers, request/response types with OpenAPI schemas, and error mapping.
//! Handlers are thin: parse into domain types, run the work off the async workers, map the result.

pub mod analyses;
pub mod experiments;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod recommendations;

use actix_web::web;

use crate::error::{AppError, AppResult};
use crate::store::{Db, DbConnection};

/// Body size limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk upload, in bytes.
    pub ingest_body_bytes: usize,
    /// Largest JSON body elsewhere, in bytes.
    pub json_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ingest_body_bytes: 512 << 20,
            json_body_bytes: 1 << 20,
        }
    }
}

/// Shared state of every request.
pub struct AppState {
    pub db: Db,
    pub limits: Limits,
}

/// Runs blocking database work on actix's blocking pool with a pooled connection.
pub async fn blocking<T, F>(state: &web::Data<AppState>, f: F) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
{
    let db = state.db.clone();
    web::block(move || {
        let mut conn = db.conn()?;
        f(&mut conn)
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("blocking task failed: {e}")))?
}

/// A resource that answers unknown methods with a 405 problem.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(problem::method_not_allowed))
}

/// Registers every route, extractor configuration and the shared state.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let json = web::JsonConfig::default()
            .limit(state.limits.json_body_bytes)
            .error_handler(problem::json_error);
        cfg.app_data(state)
            .app_data(json)
            .app_data(web::QueryConfig::default().error_handler(problem::query_error))
            .app_data(web::PathConfig::default().error_handler(problem::path_error))
            .service(resource("/healthz").route(web::get().to(health::healthz)))
            .service(resource("/readyz").route(web::get().to(health::readyz)))
            .service(resource("/api/v1/openapi.json").route(web::get().to(openapi::serve)))
            .service(
                resource("/api/v1/metrics")
                    .route(web::post().to(metrics::create_metric))
                    .route(web::get().to(metrics::list_metrics)),
            )
            .service(resource("/api/v1/metrics/{key}").route(web::get().to(metrics::get_metric)))
            .service(
                resource("/api/v1/experiments")
                    .route(web::post().to(experiments::create_experiment))
                    .route(web::get().to(experiments::list_experiments)),
            )
            .service(
                resource("/api/v1/experiments/{key}")
                    .route(web::get().to(experiments::get_experiment)),
            )
            .service(
                resource("/api/v1/experiments/{key}/assignments")
                    .route(web::post().to(ingest::ingest_assignments)),
            )
            .service(
                resource("/api/v1/experiments/{key}/observations")
                    .route(web::post().to(ingest::ingest_observations)),
            )
            .service(
                resource("/api/v1/experiments/{key}/analyses")
                    .route(web::post().to(analyses::create_analysis))
                    .route(web::get().to(analyses::list_analyses)),
            )
            .service(resource("/api/v1/analyses/{id}").route(web::get().to(analyses::get_analysis)))
            .service(
                resource("/api/v1/analyses/{id}/recommendations")
                    .route(web::post().to(recommendations::create_recommendation)),
            )
            .service(
                resource("/api/v1/recommendations")
                    .route(web::get().to(recommendations::list_recommendations)),
            )
            .service(
                resource("/api/v1/recommendations/{id}")
                    .route(web::get().to(recommendations::get_recommendation)),
            )
            .service(
                resource("/api/v1/recommendations/{id}/decision")
                    .route(web::post().to(recommendations::decide_recommendation)),
            )
            .service(
                resource("/api/v1/recommendations/{id}/history")
                    .route(web::get().to(recommendations::get_recommendation_history)),
            )
            .service(resource("/api/v1/slos").route(web::get().to(recommendations::list_slos)))
            .service(resource("/api/v1/slos/{id}").route(web::get().to(recommendations::get_slo)))
            .service(
                resource("/api/v1/slos/{id}/openslo")
                    .route(web::get().to(recommendations::get_slo_openslo)),
            )
            .service(
                resource("/api/v1/slos/{id}/prometheus-rules")
                    .route(web::get().to(recommendations::get_slo_prometheus_rules)),
            )
            .service(web::redirect("/docs", "/docs/"))
            .service(
                utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                    .url("/api/v1/openapi.json", openapi::document()),
            );
    }
}
