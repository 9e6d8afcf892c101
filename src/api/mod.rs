//! HTTP API: actix handlers, request/response types with OpenAPI schemas, and error mapping.
//! Handlers are thin: parse into domain types, run the work off the async workers, map the result.

pub mod analyses;
pub mod body;
pub mod calendars;
pub mod caller;
pub mod deploy_checks;
pub mod early_warnings;
pub mod experiments;
pub mod health;
pub mod indicators;
pub mod ingest;
pub mod jobs;
pub mod journeys;
pub mod metrics;
pub mod observational;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod query;
pub mod recommendations;
pub mod series;
pub mod slos;
pub mod tokens;
pub mod traces;
pub mod ui;

use actix_web::web;

pub use crate::server::{AppState, Limits};

/// A public GET resource that answers other methods with a 405 problem.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(problem::method_not_allowed(&["get"])))
}

/// A resource behind bearer-token authentication ([`caller::authenticate`]); each handler
/// checks its caller's role.
macro_rules! protected {
    ($path:expr $(, $method:ident => $handler:expr)+ $(,)?) => {
        web::resource($path)
            .wrap(actix_web::middleware::from_fn(caller::authenticate))
            .default_service(web::to(problem::method_not_allowed(&[$(stringify!($method)),+])))
            $(.route(web::$method().to($handler)))+
    };
}

/// Registers every route, extractor configuration and the shared state.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        // JSON request bodies are read by `body::Body`, with the limit from the state.
        cfg.app_data(state)
            .app_data(web::QueryConfig::default().error_handler(problem::query_error))
            .app_data(web::PathConfig::default().error_handler(problem::path_error))
            .service(resource("/healthz").route(web::get().to(health::healthz)))
            .service(resource("/readyz").route(web::get().to(health::readyz)))
            .service(resource("/api/v1/openapi.json").route(web::get().to(openapi::serve)))
            .service(protected!("/api/v1/metrics", post => metrics::create_metric, get => metrics::list_metrics))
            .service(protected!("/api/v1/metrics/{key}", get => metrics::get_metric))
            .service(protected!(
                "/api/v1/metrics/{key}/series",
                post => series::ingest_series,
                get => series::get_series
            ))
            .service(protected!("/api/v1/metrics/{key}/series/sync", post => series::sync_series))
            .service(protected!("/api/v1/metrics/{key}/traces", post => traces::create_trace))
            .service(protected!(
                "/api/v1/metrics/{key}/leading-indicators",
                get => indicators::get_leading_indicators
            ))
            .service(protected!(
                "/api/v1/experiments",
                post => experiments::create_experiment,
                get => experiments::list_experiments
            ))
            .service(protected!("/api/v1/experiments/{key}", get => experiments::get_experiment))
            .service(protected!("/api/v1/experiments/{key}/summary", get => experiments::get_experiment_summary))
            .service(protected!("/api/v1/experiments/{key}/assignments", post => ingest::ingest_assignments))
            .service(protected!("/api/v1/experiments/{key}/observations", post => ingest::ingest_observations))
            .service(protected!(
                "/api/v1/experiments/{key}/analyses",
                post => analyses::create_analysis,
                get => analyses::list_analyses
            ))
            .service(protected!("/api/v1/analyses/{id}", get => analyses::get_analysis))
            .service(protected!(
                "/api/v1/observational-analyses",
                post => observational::create_observational_analysis
            ))
            .service(protected!(
                "/api/v1/observational-analyses/{id}",
                get => observational::get_observational_analysis
            ))
            .configure(business_routes)
            .service(protected!(
                "/api/v1/observational-analyses/{id}/recommendations",
                post => observational::create_correlational_recommendation
            ))
            .service(protected!("/api/v1/analyses/{id}/recommendations", post => recommendations::create_recommendation))
            .service(protected!("/api/v1/recommendations", get => recommendations::list_recommendations))
            .service(protected!("/api/v1/recommendations/{id}", get => recommendations::get_recommendation))
            .service(protected!("/api/v1/recommendations/{id}/decision", post => recommendations::decide_recommendation))
            .service(protected!(
                "/api/v1/recommendations/{id}/history",
                get => recommendations::get_recommendation_history
            ))
            .service(protected!("/api/v1/recommendations/{id}/replay", post => recommendations::replay_recommendation))
            .service(protected!("/api/v1/slos", get => slos::list_slos))
            .service(protected!("/api/v1/slos/{id}", get => slos::get_slo))
            .service(protected!("/api/v1/slos/{id}/openslo", get => slos::get_slo_openslo))
            .service(protected!("/api/v1/slos/{id}/prometheus-rules", get => slos::get_slo_prometheus_rules))
            .service(protected!("/api/v1/slos/{id}/status", get => slos::get_slo_status))
            .service(protected!("/api/v1/slos/{id}/status/series", get => slos::get_slo_status_series))
            .service(protected!(
                "/api/v1/slos/{id}/revalidations",
                post => slos::create_revalidation,
                get => slos::list_revalidations
            ))
            .service(protected!("/api/v1/tokens", post => tokens::create_token, get => tokens::list_tokens))
            .service(protected!("/api/v1/tokens/{id}", delete => tokens::revoke_token))
            .configure(ui::configure)
            .service(web::redirect("/docs", "/docs/"))
            .service(
                utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                    .url("/api/v1/openapi.json", openapi::document()),
            );
    }
}

/// The business layer's routes: calendars, journeys, the deploy gate and early warnings.
fn business_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(protected!(
        "/api/v1/calendars",
        post => calendars::create_calendar,
        get => calendars::list_calendars
    ))
    .service(protected!(
        "/api/v1/calendars/{key}",
        get => calendars::get_calendar,
        put => calendars::replace_calendar,
        delete => calendars::delete_calendar
    ))
    .service(protected!(
        "/api/v1/journeys",
        post => journeys::create_journey,
        get => journeys::list_journeys
    ))
    .service(protected!("/api/v1/jobs/{id}", get => jobs::get_job, delete => jobs::cancel_job))
    .service(protected!(
        "/api/v1/journeys/{key}",
        get => journeys::get_journey,
        put => journeys::replace_journey,
        delete => journeys::delete_journey
    ))
    .service(protected!("/api/v1/journeys/{key}/status", get => journeys::get_journey_status))
    .service(protected!(
        "/api/v1/journeys/{key}/prometheus-rules",
        get => journeys::get_journey_prometheus_rules
    ))
    .service(protected!("/api/v1/journeys/{key}/openslo", get => journeys::get_journey_openslo))
    .service(protected!(
        "/api/v1/deploy-checks",
        post => deploy_checks::create_deploy_check,
        get => deploy_checks::list_deploy_checks
    ))
    .service(protected!("/api/v1/slos/{id}/calendar", put => calendars::set_slo_calendar))
    .service(
        protected!("/api/v1/slos/{id}/early-warnings", get => early_warnings::list_early_warnings),
    )
    .service(protected!(
        "/api/v1/slos/{id}/early-warnings/{indicator}",
        put => early_warnings::put_early_warning,
        get => early_warnings::get_early_warning,
        delete => early_warnings::delete_early_warning
    ));
}
