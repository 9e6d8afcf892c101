//! RFC 9457 problem details: the one place where [`AppError`] becomes an HTTP response.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, Issue};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// URI identifying the problem type.
    #[serde(rename = "type")]
    #[schema(example = "https://sloproof.dev/problems/invalid-input")]
    pub type_: String,
    /// Short summary of the problem type.
    #[schema(example = "Invalid input")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// The offending fields or rows, when the problem is about input (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 100)]
    pub errors: Vec<ProblemIssue>,
}

/// One offending field or row of a request.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ProblemIssue {
    /// 1-based row number in a bulk upload (a CSV header is not a row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// The field the message is about, e.g. `variants[1].weight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl From<Issue> for ProblemIssue {
    fn from(i: Issue) -> Self {
        ProblemIssue {
            row: i.row,
            field: i.field,
            message: i.message,
        }
    }
}

fn kind(e: &AppError) -> (&'static str, &'static str) {
    match e {
        AppError::NotFound { .. } => ("not-found", "Not found"),
        AppError::Invalid { .. } => ("invalid-input", "Invalid input"),
        AppError::Conflict(_) => ("conflict", "Conflict"),
        AppError::BadRequest(_) | AppError::BadQuery { .. } => {
            ("malformed-request", "Malformed request")
        }
        AppError::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
        AppError::UnsupportedMediaType { .. } => {
            ("unsupported-media-type", "Unsupported media type")
        }
        AppError::Unauthorized(_) => ("unauthorized", "Unauthorized"),
        AppError::Forbidden(_) => ("forbidden", "Forbidden"),
        AppError::Busy { .. } => ("busy", "Service busy"),
        AppError::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
        AppError::BadGateway(_) => ("upstream-failed", "Upstream failed"),
        AppError::Internal(_) => ("internal", "Internal server error"),
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::BadRequest(_) | AppError::BadQuery { .. } => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = kind(self);
        let detail = match self {
            AppError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                "An internal error occurred. It has been logged; please retry later.".to_owned()
            }
            other => other.to_string(),
        };
        let errors = match self {
            AppError::Invalid { issues, .. } | AppError::BadQuery { issues, .. } => {
                issues.iter().cloned().map(ProblemIssue::from).collect()
            }
            _ => Vec::new(),
        };
        let body = Problem {
            type_: format!("https://sloproof.dev/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = HttpResponse::build(status);
        if let AppError::Unauthorized(_) = self {
            // RFC 9110 §11.6.1: a 401 names the scheme it wants.
            response.insert_header(("WWW-Authenticate", "Bearer realm=\"sloproof\""));
        }
        if let AppError::Busy {
            retry_after_seconds,
            ..
        }
        | AppError::TooManyRequests {
            retry_after_seconds,
            ..
        } = self
        {
            response.insert_header(("Retry-After", retry_after_seconds.to_string()));
        }
        response.content_type(PROBLEM_JSON).json(body)
    }
}

/// Maps query-string failures (unknown parameter, wrong type) to a 400 problem.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    AppError::BadRequest(format!("invalid query string: {err}")).into()
}

/// Maps path-parameter failures to a 400 problem.
pub fn path_error(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    AppError::BadRequest(format!("invalid path: {err}")).into()
}

/// Answers unknown routes.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    AppError::NotFound {
        what: "route",
        key: req.path().to_owned(),
    }
    .error_response()
}

/// Answers a known route called with a method it does not have, naming the ones it has in
/// `Allow` (RFC 9110 §15.5.6).
pub fn method_not_allowed(
    methods: &[&str],
) -> impl Fn(actix_web::HttpRequest) -> std::future::Ready<HttpResponse> + Clone {
    let allow: Vec<String> = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
    let allow = allow.join(", ");
    move |req| std::future::ready(method_not_allowed_response(&req, &allow))
}

fn method_not_allowed_response(req: &actix_web::HttpRequest, allow: &str) -> HttpResponse {
    let status = StatusCode::METHOD_NOT_ALLOWED;
    HttpResponse::build(status)
        .insert_header(("Allow", allow))
        .content_type(PROBLEM_JSON)
        .json(Problem {
            type_: "https://sloproof.dev/problems/method-not-allowed".into(),
            title: "Method not allowed".into(),
            status: status.as_u16(),
            detail: format!("{} is not allowed on {}", req.method(), req.path()),
            errors: Vec::new(),
        })
}
