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
    /// A query parameter cannot be parsed (400); `issues` name it.
    #[error("{detail}")]
    BadQuery { detail: String, issues: Vec<Issue> },
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
    /// The server is at a configured capacity, or the database stayed locked by concurrent
    /// writers (503, with `Retry-After`).
    #[error("{what}; retry in {retry_after_seconds} s")]
    Busy {
        what: String,
        retry_after_seconds: u64,
        /// PostgreSQL aborted a serializable transaction for a concurrent one: running it
        /// again usually succeeds (`store::serializable` does, a few times).
        serialization: bool,
    },
    /// The caller's token made more writes than its rate allows (429, with `Retry-After`).
    #[error("this token may make {per_second} writes per second (bursts of {burst}); retry in {retry_after_seconds} s")]
    TooManyRequests {
        per_second: u32,
        burst: u32,
        retry_after_seconds: u64,
    },
    /// An upstream server (a metric's Prometheus source) failed or could not be reached (502).
    /// The message names the upstream and its status, never credentials.
    #[error("{0}")]
    BadGateway(String),
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

impl AppError {
    /// A 503 for contention that goes away on its own.
    pub fn busy(what: impl Into<String>, retry_after_seconds: u64) -> Self {
        AppError::Busy {
            what: what.into(),
            retry_after_seconds,
            serialization: false,
        }
    }

    /// Whether PostgreSQL aborted the transaction for a concurrent one.
    pub fn is_serialization_failure(&self) -> bool {
        matches!(
            self,
            AppError::Busy {
                serialization: true,
                ..
            }
        )
    }
}

/// Seconds a client is asked to wait after database contention.
const DATABASE_RETRY_AFTER_S: u64 = 1;

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &e {
            // PostgreSQL: a serializable transaction lost to a concurrent one.
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => AppError::Busy {
                what: "the database aborted this change for a concurrent one".into(),
                retry_after_seconds: DATABASE_RETRY_AFTER_S,
                serialization: true,
            },
            // SQLite: SQLITE_BUSY / SQLITE_LOCKED after the busy timeout.
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().contains("database is locked")
                    || info.message().contains("database table is locked") =>
            {
                tracing::warn!(error = %info.message(), "database busy");
                AppError::busy(
                    "the database is locked by concurrent writers",
                    DATABASE_RETRY_AFTER_S,
                )
            }
            _ => AppError::Internal(anyhow::Error::new(e).context("database query failed")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        // r2d2 reports only a timeout: every connection stayed in use, or none could be opened
        // (the database is down or unreachable). Logged as an error: it may be an outage.
        tracing::error!(error = %e, "no database connection became available");
        AppError::busy(
            "no database connection became available (all in use, or the database is unreachable)",
            DATABASE_RETRY_AFTER_S,
        )
    }
}

pub type AppResult<T> = Result<T, AppError>;
