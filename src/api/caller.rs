//! Who calls: bearer-token authentication, the [`Caller`] extractor, and what each operation
//! requires.
//!
//! Every protected resource is wrapped in [`authenticate`]: without a live token the request
//! ends in a 401, and with a role the routed operation does not admit in a 403, before the body
//! is read. Each handler names the caller and its operation, `caller.require(&CREATE_METRIC)?`,
//! and the OpenAPI document lists the same operation's roles (see [`PROTECTED`]), so the three
//! cannot disagree. An analyst cannot approve, not even their
//! own recommendation. `/healthz`, `/readyz`, `/docs` and the OpenAPI document are public.

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::AppState;
use crate::access::service as access;
use crate::domain::access::Role;
use crate::error::{AppError, AppResult};

/// Which roles an operation admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every role reads.
    Read,
    /// Analysts and admins create metrics, experiments, uploads, analyses, recommendations.
    Write,
    /// Reviewers and admins decide on recommendations.
    Review,
    /// Admins manage tokens.
    Admin,
}

impl Access {
    pub fn roles(self) -> &'static [Role] {
        match self {
            Access::Read => &[Role::Viewer, Role::Analyst, Role::Reviewer, Role::Admin],
            Access::Write => &[Role::Analyst, Role::Admin],
            Access::Review => &[Role::Reviewer, Role::Admin],
            Access::Admin => &[Role::Admin],
        }
    }
}

/// A protected operation: its OpenAPI `operationId`, method and route, and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

impl Operation {
    pub const fn new(
        id: &'static str,
        method: &'static str,
        path: &'static str,
        access: Access,
    ) -> Operation {
        Operation {
            id,
            method,
            path,
            access,
        }
    }
}

/// Every protected operation, declared beside its handler; the OpenAPI document takes each
/// operation's roles from here.
pub const PROTECTED: &[Operation] = &[
    super::metrics::CREATE_METRIC,
    super::metrics::LIST_METRICS,
    super::metrics::GET_METRIC,
    super::experiments::CREATE_EXPERIMENT,
    super::experiments::LIST_EXPERIMENTS,
    super::experiments::GET_EXPERIMENT,
    super::experiments::GET_EXPERIMENT_SUMMARY,
    super::ingest::INGEST_ASSIGNMENTS,
    super::ingest::INGEST_OBSERVATIONS,
    super::series::INGEST_SERIES,
    super::series::GET_SERIES,
    super::series::SYNC_SERIES,
    super::analyses::CREATE_ANALYSIS,
    super::analyses::LIST_ANALYSES,
    super::analyses::GET_ANALYSIS,
    super::observational::CREATE_OBSERVATIONAL,
    super::observational::GET_OBSERVATIONAL,
    super::observational::CREATE_CORRELATIONAL_RECOMMENDATION,
    super::recommendations::CREATE_RECOMMENDATION,
    super::recommendations::LIST_RECOMMENDATIONS,
    super::recommendations::GET_RECOMMENDATION,
    super::recommendations::DECIDE_RECOMMENDATION,
    super::recommendations::GET_RECOMMENDATION_HISTORY,
    super::recommendations::REPLAY_RECOMMENDATION,
    super::slos::LIST_SLOS,
    super::slos::GET_SLO,
    super::slos::GET_SLO_OPENSLO,
    super::slos::GET_SLO_PROMETHEUS_RULES,
    super::slos::GET_SLO_STATUS,
    super::slos::GET_SLO_STATUS_SERIES,
    super::slos::CREATE_REVALIDATION,
    super::slos::LIST_REVALIDATIONS,
    super::calendars::CREATE_CALENDAR,
    super::calendars::LIST_CALENDARS,
    super::calendars::GET_CALENDAR,
    super::calendars::REPLACE_CALENDAR,
    super::calendars::DELETE_CALENDAR,
    super::calendars::SET_SLO_CALENDAR,
    super::traces::CREATE_TRACE,
    super::indicators::GET_LEADING_INDICATORS,
    super::early_warnings::PUT_EARLY_WARNING,
    super::early_warnings::LIST_EARLY_WARNINGS,
    super::early_warnings::GET_EARLY_WARNING,
    super::early_warnings::DELETE_EARLY_WARNING,
    super::jobs::GET_JOB,
    super::jobs::CANCEL_JOB,
    super::journeys::CREATE_JOURNEY,
    super::journeys::LIST_JOURNEYS,
    super::journeys::GET_JOURNEY,
    super::journeys::REPLACE_JOURNEY,
    super::journeys::DELETE_JOURNEY,
    super::journeys::GET_JOURNEY_STATUS,
    super::journeys::GET_JOURNEY_PROMETHEUS_RULES,
    super::journeys::GET_JOURNEY_OPENSLO,
    super::deploy_checks::CREATE_DEPLOY_CHECK,
    super::deploy_checks::LIST_DEPLOY_CHECKS,
    super::tokens::CREATE_TOKEN,
    super::tokens::LIST_TOKENS,
    super::tokens::REVOKE_TOKEN,
];

/// The protected operation with this OpenAPI `operationId`.
pub fn operation(id: &str) -> Option<Operation> {
    PROTECTED.iter().copied().find(|o| o.id == id)
}

/// The protected operation a request is routed to (by method and route pattern).
fn routed(method: &str, pattern: &str) -> Option<Operation> {
    PROTECTED
        .iter()
        .copied()
        .find(|o| o.method == method && o.path == pattern)
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: i64,
    /// The token's name: the actor recorded for what the caller does.
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Ok when the caller's role may perform `op`; otherwise a 403 naming the role and the roles
    /// that may.
    pub fn require(&self, op: &Operation) -> AppResult<()> {
        let roles = op.access.roles();
        if roles.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(AppError::Forbidden(format!(
            "role '{}' may not {} {}; allowed: {}",
            self.role,
            op.method,
            op.path,
            names.join(", ")
        )))
    }
}

/// The caller [`authenticate`] found; a handler outside a protected resource has none (401).
impl FromRequest for Caller {
    type Error = AppError;
    type Future = Ready<Result<Caller, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Caller>().cloned().ok_or_else(|| {
            AppError::Unauthorized("an `Authorization: Bearer <token>` header is required".into())
        }))
    }
}

/// A signed-in browser's session id, honoured in place of a bearer token only for reads (GET
/// or HEAD of an operation every role may perform): the raw JSON and exports the pages link
/// to. Writes always need the bearer token, so the cookie cannot be used for cross-site
/// requests that change anything (it is SameSite=Strict as well).
fn page_session(req: &ServiceRequest) -> Option<String> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let pattern = req.match_pattern()?;
    let op = routed("GET", &pattern)?;
    (op.access == Access::Read)
        .then(|| req.cookie(super::ui::SESSION_COOKIE))
        .flatten()
        .map(|c| c.value().to_owned())
}

fn bearer(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Middleware on every protected resource: a 401 without a live token and a 403 for a role the
/// routed operation does not admit, both before the body is read; otherwise the caller is
/// recorded for the [`Caller`] extractor (and the handler checks the same requirement again).
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("application state missing")))?;
    let found = match (bearer(&req), page_session(&req)) {
        (Some(secret), _) => state
            .run(move |db| access::find_live(db, &secret))
            .await?
            .ok_or_else(|| AppError::Unauthorized("the token is unknown or revoked".into()))?,
        (None, Some(id)) => state
            .run(move |db| crate::access::session::find(db, &id))
            .await?
            .map(|s| s.token)
            .ok_or_else(|| {
                AppError::Unauthorized(
                    "the page session has ended; sign in again or send a bearer token".into(),
                )
            })?,
        (None, None) => {
            return Err(AppError::Unauthorized(
                "an `Authorization: Bearer <token>` header is required".into(),
            )
            .into())
        }
    };
    let caller = Caller {
        token_id: found.id,
        name: found.name,
        role: found.role,
    };
    let pattern = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
    if let Some(op) = routed(req.method().as_str(), &pattern) {
        caller.require(&op)?;
    }
    // Writes spend the token's rate budget, before the body is read.
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        state.spend_write(caller.token_id)?;
    }
    req.extensions_mut().insert(caller);
    next.call(req).await
}
