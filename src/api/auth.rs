//! Bearer-token authentication and role-based authorization.
//!
//! Roles: `viewer` reads; `analyst` also creates metrics, experiments, uploads, analyses and
//! recommendations; `reviewer` reads and decides on recommendations; `admin` does everything,
//! including managing tokens. An analyst cannot approve, not even their own recommendation.
//! `/healthz`, `/readyz`, `/docs` and the OpenAPI document are public.
//!
//! Tokens are 256-bit random strings (`sp_` + 64 hex digits), shown once, stored as SHA-256.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::pagination::{page_of, ListQuery};
use super::recommendations::Actor;
use super::{blocking, AppState};
use crate::domain::{required_text, text_enum};
use crate::error::{AppError, AppResult};
use crate::store::tokens::{self as store, TokenRow};
use crate::store::Db;

text_enum! {
    /// What a token may do.
    Role { Viewer => "viewer", Analyst => "analyst", Reviewer => "reviewer", Admin => "admin" }
}

const READ: &[Role] = &[Role::Viewer, Role::Analyst, Role::Reviewer, Role::Admin];
const WRITE: &[Role] = &[Role::Analyst, Role::Admin];
const REVIEW: &[Role] = &[Role::Reviewer, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];

/// The roles allowed to call `method` on the route `pattern`.
pub fn allowed(method: &Method, pattern: &str) -> &'static [Role] {
    if pattern.starts_with("/api/v1/tokens") {
        return ADMIN;
    }
    if pattern == "/api/v1/recommendations/{id}/decision" {
        return REVIEW;
    }
    if method == Method::GET || method == Method::HEAD {
        READ
    } else {
        WRITE
    }
}

/// A new random token.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "sp_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Hex SHA-256 of a token.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Name of the admin token `SLOPROOF_ADMIN_TOKEN` sets.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

/// Ensures an admin can log in: `SLOPROOF_ADMIN_TOKEN` (if given) is registered, and a different
/// earlier value of it is revoked (changing the variable rotates the token; a token revoked
/// through the API stays revoked). Without it, and without any live admin token, one is created
/// and its value returned so the caller prints it once.
pub fn bootstrap(db: &Db, admin_token: Option<&str>) -> AppResult<Option<String>> {
    let mut conn = db.conn()?;
    if let Some(token) = admin_token {
        if token.len() < 16 {
            return Err(AppError::Internal(anyhow::anyhow!(
                "SLOPROOF_ADMIN_TOKEN must be at least 16 characters"
            )));
        }
        let h = hash(token);
        let revoked =
            store::rotate_named(&mut conn, BOOTSTRAP_TOKEN_NAME, Role::Admin.as_str(), &h)?;
        if revoked > 0 {
            tracing::warn!(
                revoked,
                "SLOPROOF_ADMIN_TOKEN changed: the earlier bootstrap admin token is revoked"
            );
        }
        return Ok(None);
    }
    if store::active_admins(&mut conn)? > 0 {
        return Ok(None);
    }
    let token = generate();
    store::insert(
        &mut conn,
        "initial-admin",
        Role::Admin.as_str(),
        &hash(&token),
    )?;
    Ok(Some(token))
}

fn bearer(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Middleware on every protected resource: 401 without a live token, 403 for a role the route
/// does not allow; otherwise records the caller as the request's [`Actor`].
pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let token = bearer(&req).ok_or_else(|| {
        AppError::Unauthorized("an `Authorization: Bearer <token>` header is required".into())
    })?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("application state missing")))?;
    let h = hash(&token);
    let db = state.db.clone();
    let found = web::block(move || store::find_active(&mut *db.conn()?, &h))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("token lookup failed: {e}")))??;
    let row =
        found.ok_or_else(|| AppError::Unauthorized("the token is unknown or revoked".into()))?;
    let role = Role::parse(&row.role)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stored role '{}'", row.role)))?;
    let pattern = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
    let roles = allowed(req.method(), &pattern);
    if !roles.contains(&role) {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(AppError::Forbidden(format!(
            "role '{role}' may not {} {pattern}; allowed: {}",
            req.method(),
            names.join(", ")
        ))
        .into());
    }
    req.extensions_mut().insert(Actor(row.name.clone()));
    next.call(req).await
}

/// A new token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Who or what uses the token; recorded as the actor of their actions.
    #[schema(example = "ci-pipeline")]
    pub name: String,
    pub role: Role,
}

/// A token (its value is only shown when it is created).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A created token with its secret value, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The bearer token; store it now, it cannot be shown again.
    pub token: String,
}

/// A page of tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<Token>,
    pub next_cursor: Option<String>,
}

fn token(r: TokenRow) -> AppResult<Token> {
    Ok(Token {
        id: r.id,
        role: Role::parse(&r.role)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stored role '{}'", r.role)))?,
        name: r.name,
        created_at: r.created_at.and_utc(),
        revoked_at: r.revoked_at.map(|t| t.and_utc()),
    })
}

/// Creates a token (admin).
#[utoipa::path(
    post, path = "/api/v1/tokens", operation_id = "create_token", tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, description = "The token, with its value shown once", body = CreatedToken))
)]
pub async fn create_token(
    state: web::Data<AppState>,
    body: web::Json<CreateToken>,
) -> Result<HttpResponse, AppError> {
    let b = body.into_inner();
    let mut issues = Vec::new();
    let name = required_text("name", &b.name, 100, &mut issues);
    if !issues.is_empty() {
        return Err(AppError::invalid("invalid token", issues));
    }
    let secret = generate();
    let h = hash(&secret);
    let role = b.role;
    let row = blocking(&state, move |c| store::insert(c, &name, role.as_str(), &h)).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/tokens/{}", row.id)))
        .json(CreatedToken {
            id: row.id,
            name: row.name,
            role,
            token: secret,
        }))
}

/// Lists tokens, including revoked ones (admin).
#[utoipa::path(
    get, path = "/api/v1/tokens", operation_id = "list_tokens", tag = "tokens",
    params(ListQuery),
    responses((status = 200, description = "A page of tokens", body = TokenList))
)]
pub async fn list_tokens(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<web::Json<TokenList>, AppError> {
    let page = q.page()?;
    let rows = blocking(&state, move |c| {
        store::list(c, page.after_id, page.limit + 1)
    })
    .await?;
    let (items, next_cursor) = page_of(rows, page.limit, |r| r.id, token)?;
    Ok(web::Json(TokenList { items, next_cursor }))
}

/// Revokes a token (admin). Idempotent.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", operation_id = "revoke_token", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, description = "The revoked token", body = Token))
)]
pub async fn revoke_token(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<Token>, AppError> {
    let id = id.into_inner();
    let row = blocking(&state, move |c| store::revoke(c, id)).await?;
    Ok(web::Json(token(row)?))
}
