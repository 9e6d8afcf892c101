//! HTTP API: actix handlers, request/response types with OpenAPI schemas, and error mapping.
//! Handlers are thin: parse into domain types, run the work off the async workers, map the result.

pub mod analyses;
pub mod auth;
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

/// A public resource that answers unknown methods with a 405 problem.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(problem::method_not_allowed))
}

/// A resource behind bearer-token authentication and the role table of [`auth::allowed`].
macro_rules! protected {
    ($path:expr $(, $method:ident => $handler:expr)+ $(,)?) => {
        web::resource($path)
            .wrap(actix_web::middleware::from_fn(auth::authorize))
            .default_service(web::to(problem::method_not_allowed))
            $(.route(web::$method().to($handler)))+
    };
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
            .service(protected!("/api/v1/metrics", post => metrics::create_metric, get => metrics::list_metrics))
            .service(protected!("/api/v1/metrics/{key}", get => metrics::get_metric))
            .service(protected!(
                "/api/v1/experiments",
                post => experiments::create_experiment,
                get => experiments::list_experiments
            ))
            .service(protected!("/api/v1/experiments/{key}", get => experiments::get_experiment))
            .service(protected!("/api/v1/experiments/{key}/assignments", post => ingest::ingest_assignments))
            .service(protected!("/api/v1/experiments/{key}/observations", post => ingest::ingest_observations))
            .service(protected!(
                "/api/v1/experiments/{key}/analyses",
                post => analyses::create_analysis,
                get => analyses::list_analyses
            ))
            .service(protected!("/api/v1/analyses/{id}", get => analyses::get_analysis))
            .service(protected!("/api/v1/analyses/{id}/recommendations", post => recommendations::create_recommendation))
            .service(protected!("/api/v1/recommendations", get => recommendations::list_recommendations))
            .service(protected!("/api/v1/recommendations/{id}", get => recommendations::get_recommendation))
            .service(protected!("/api/v1/recommendations/{id}/decision", post => recommendations::decide_recommendation))
            .service(protected!(
                "/api/v1/recommendations/{id}/history",
                get => recommendations::get_recommendation_history
            ))
            .service(protected!("/api/v1/slos", get => recommendations::list_slos))
            .service(protected!("/api/v1/slos/{id}", get => recommendations::get_slo))
            .service(protected!("/api/v1/slos/{id}/openslo", get => recommendations::get_slo_openslo))
            .service(protected!("/api/v1/slos/{id}/prometheus-rules", get => recommendations::get_slo_prometheus_rules))
            .service(protected!("/api/v1/tokens", post => auth::create_token, get => auth::list_tokens))
            .service(protected!("/api/v1/tokens/{id}", delete => auth::revoke_token))
            .service(web::redirect("/docs", "/docs/"))
            .service(
                utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                    .url("/api/v1/openapi.json", openapi::document()),
            );
    }
}
