//! The one error type of sloproof. Every layer returns [`AppError`]; `api::problem` maps it to an
//! RFC 9457 `application/problem+json` response in one place.

use std::fmt;

/// One offending input item: a field of a request body, or a row of a bulk upload.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Issue {
    /// 1-based row number in a bulk upload (the first data row is 1; a CSV header is not a row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// The field (JSON pointer-like dotted path, e.g. `variants[1].weight`) the message is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl Issue {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            row: None,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn row(row: u64, field: Option<&str>, message: impl Into<String>) -> Self {
        Issue {
            row: Some(row),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Errors of sloproof, each with a fixed HTTP meaning (see `api::problem`).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The named resource does not exist (404).
    #[error("{what} '{key}' not found")]
    NotFound { what: &'static str, key: String },
    /// The input is well-formed but violates a rule (422); `issues` lists what is wrong.
    #[error("{detail}")]
    Invalid { detail: String, issues: Vec<Issue> },
    /// The resource already exists or the request conflicts with stored state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be parsed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body exceeds the configured limit (413).
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body's content type is not accepted here (415).
    #[error("unsupported content type '{got}'; expected one of: {expected}")]
    UnsupportedMediaType { got: String, expected: &'static str },
    /// No valid bearer token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The token's role may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The server is at a configured capacity (503, with `Retry-After`).
    #[error("{what}; retry in {retry_after_seconds} s")]
    Busy {
        what: String,
        retry_after_seconds: u64,
    },
    /// A failure that is not the client's fault (500). The detail is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn invalid(detail: impl Into<String>, issues: Vec<Issue>) -> Self {
        AppError::Invalid {
            detail: detail.into(),
            issues,
        }
    }

    pub fn not_found(what: &'static str, key: impl fmt::Display) -> Self {
        AppError::NotFound {
            what,
            key: key.to_string(),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Internal(anyhow::Error::new(e).context("database query failed"))
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        AppError::Internal(anyhow::Error::new(e).context("no database connection available"))
    }
}

pub type AppResult<T> = Result<T, AppError>;
