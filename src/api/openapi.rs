//! The OpenAPI document, derived from the handlers and types by utoipa. The committed copy in
//! `openapi/openapi.json` is checked against it by a test.

use actix_web::http::Method;
use actix_web::HttpResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::caller::operation;
use super::problem::PROBLEM_JSON;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sloproof",
        description = "Turns A/B-experiment evidence into Service Level Objectives justified by business impact.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::metrics::create_metric,
        super::metrics::list_metrics,
        super::metrics::get_metric,
        super::experiments::create_experiment,
        super::experiments::list_experiments,
        super::experiments::get_experiment,
        super::experiments::get_experiment_summary,
        super::ingest::ingest_assignments,
        super::ingest::ingest_observations,
        super::series::ingest_series,
        super::series::get_series,
        super::series::sync_series,
        super::analyses::create_analysis,
        super::analyses::list_analyses,
        super::analyses::get_analysis,
        super::observational::create_observational_analysis,
        super::observational::get_observational_analysis,
        super::observational::create_correlational_recommendation,
        super::calendars::create_calendar,
        super::calendars::list_calendars,
        super::calendars::get_calendar,
        super::calendars::replace_calendar,
        super::calendars::delete_calendar,
        super::calendars::set_slo_calendar,
        super::traces::create_trace,
        super::indicators::get_leading_indicators,
        super::early_warnings::put_early_warning,
        super::early_warnings::list_early_warnings,
        super::early_warnings::get_early_warning,
        super::early_warnings::delete_early_warning,
        super::jobs::get_job,
        super::jobs::cancel_job,
        super::journeys::create_journey,
        super::journeys::list_journeys,
        super::journeys::get_journey,
        super::journeys::replace_journey,
        super::journeys::delete_journey,
        super::journeys::get_journey_status,
        super::journeys::get_journey_prometheus_rules,
        super::journeys::get_journey_openslo,
        super::deploy_checks::create_deploy_check,
        super::deploy_checks::list_deploy_checks,
        super::recommendations::create_recommendation,
        super::recommendations::list_recommendations,
        super::recommendations::get_recommendation,
        super::recommendations::decide_recommendation,
        super::recommendations::get_recommendation_history,
        super::recommendations::replay_recommendation,
        super::slos::list_slos,
        super::slos::get_slo,
        super::slos::get_slo_openslo,
        super::slos::get_slo_prometheus_rules,
        super::slos::get_slo_status,
        super::slos::get_slo_status_series,
        super::slos::create_revalidation,
        super::slos::list_revalidations,
        super::tokens::create_token,
        super::tokens::list_tokens,
        super::tokens::revoke_token,
    ),
    components(schemas(super::problem::Problem, super::problem::ProblemIssue, super::ingest::ConflictPolicy)),
    modifiers(&ProblemResponses),
    tags(
        (name = "metrics", description = "The catalog of SLIs and KPIs"),
        (name = "experiments", description = "Experiments, their metrics and arms"),
        (name = "ingestion", description = "Bulk upload of assignments and observations"),
        (name = "series", description = "Production time series of SLIs, pushed or pulled from Prometheus"),
        (name = "analyses", description = "Causal analyses of experiments and their verdicts"),
        (name = "slos", description = "SLO recommendations, review, published SLOs and exports"),
        (name = "calendars", description = "Business calendars (sales, freezes) and the deploy gate"),
        (name = "journeys", description = "Composite journey SLOs: a request succeeds only if every step does"),
        (name = "tokens", description = "API tokens and roles (admin)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// The document as served and committed.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a trailing newline, the form committed to `openapi/`.
pub fn document_json() -> String {
    let mut s = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// Serves the document.
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

/// Declares the shared problem responses once and adds them to every operation that can
/// produce them, so generated clients know every error body is a `Problem`.
struct ProblemResponses;

const SHARED: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "The request could not be parsed"),
    ("404", "NotFound", "The resource does not exist"),
    ("413", "PayloadTooLarge", "The body exceeds the size limit"),
    (
        "415",
        "UnsupportedMediaType",
        "The body's content type is not accepted",
    ),
    (
        "422",
        "InvalidInput",
        "The input breaks a rule; `errors` lists the fields or rows",
    ),
    (
        "500",
        "InternalError",
        "An internal error; details are logged, not returned",
    ),
    ("401", "Unauthorized", "No valid bearer token"),
    ("403", "Forbidden", "The token's role may not do this"),
    (
        "429",
        "TooManyRequests",
        "The token made more writes than its rate allows (SLOPROOF_WRITE_RATE per second, bursts \
         of SLOPROOF_WRITE_BURST; defaults 20 and 200); retry after `Retry-After` seconds",
    ),
    (
        "503",
        "ServiceUnavailable",
        "The database stayed locked by concurrent writers, or every connection was in use; \
         retry after `Retry-After` seconds",
    ),
];

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description) in SHARED {
            let mut response = ResponseBuilder::new().description(*description);
            if *status == "503" || *status == "429" {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(0)),
                        )
                        .description(Some("Seconds to wait"))
                        .build(),
                );
            }
            let response = response
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build();
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(response));
        }
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sp_…")
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_key = path.contains('{');
            let ops = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                let has_body = op.request_body.is_some();
                // An analysis request's body is optional: none means every default.
                if op.operation_id.as_deref() == Some("create_analysis") {
                    if let Some(body) = op.request_body.as_mut() {
                        body.required = Some(utoipa::openapi::Required::False);
                    }
                }
                add_shared(op, path, has_key, has_body, method == Method::GET);
                // The roles come from the declaration each handler enforces.
                let declared = op.operation_id.as_deref().and_then(operation);
                if let Some(declared) = declared {
                    let roles: Vec<&str> =
                        declared.access.roles().iter().map(|r| r.as_str()).collect();
                    op.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                    let note = format!("Requires a bearer token with role: {}.", roles.join(", "));
                    op.description = Some(match op.description.take() {
                        Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
                        _ => note,
                    });
                    for (status, name) in [("401", "Unauthorized"), ("403", "Forbidden")] {
                        op.responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
            }
        }
    }
}

fn add_shared(op: &mut Operation, path: &str, has_key: bool, has_body: bool, is_get: bool) {
    let probes = path == "/healthz" || path == "/readyz";
    for (status, name, _) in SHARED {
        let wanted = match *status {
            "400" => !probes,
            "404" => has_key,
            "413" | "415" => has_body,
            // A body, or a query parameter (paging), can break a rule.
            "422" => {
                has_body
                    || (is_get
                        && op.parameters.as_ref().is_some_and(|ps| {
                            ps.iter().any(|p| p.parameter_in == ParameterIn::Query)
                        }))
            }
            "500" => path != "/healthz",
            // Writes spend the token's rate budget.
            "429" => !is_get,
            // Everything that touches the database.
            "503" => {
                !path.starts_with("/healthz")
                    && !path.contains("openapi")
                    && !path.starts_with("/docs")
            }
            // Added with the security requirement of protected operations.
            "401" | "403" => false,
            _ => false,
        };
        if wanted && !op.responses.responses.contains_key(*status) {
            op.responses.responses.insert(
                (*status).to_owned(),
                RefOr::Ref(Ref::from_response_name(*name)),
            );
        }
    }
}
