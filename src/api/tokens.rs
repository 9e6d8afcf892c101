//! `/api/v1/tokens`: API tokens and their roles (admin only).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::Body;
use super::caller::{Access, Caller, Operation};
use super::pagination::{page_of, ListQuery};
use super::AppState;
use crate::access::service;
use crate::domain::access::{ApiToken, Role};
use crate::domain::required_text;
use crate::error::{AppError, Issue};

pub const CREATE_TOKEN: Operation =
    Operation::new("create_token", "POST", "/api/v1/tokens", Access::Admin);
pub const LIST_TOKENS: Operation =
    Operation::new("list_tokens", "GET", "/api/v1/tokens", Access::Admin);
pub const REVOKE_TOKEN: Operation = Operation::new(
    "revoke_token",
    "DELETE",
    "/api/v1/tokens/{id}",
    Access::Admin,
);

/// A new token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Who or what uses the token; recorded as the actor of their actions. At most 100
    /// characters, without invisible or control characters; unique among live tokens;
    /// `bootstrap-admin` and `initial-admin` (in any case) are reserved.
    #[schema(example = "ci-pipeline", min_length = 1, max_length = 100)]
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

impl From<ApiToken> for Token {
    fn from(t: ApiToken) -> Token {
        Token {
            id: t.id,
            role: t.role,
            name: t.name,
            created_at: t.created_at.and_utc(),
            revoked_at: t.revoked_at.map(|t| t.and_utc()),
        }
    }
}

/// Creates a token (admin).
#[utoipa::path(
    post, path = "/api/v1/tokens", operation_id = "create_token", tag = "tokens",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token, with its value shown once", body = CreatedToken),
        (status = 409, description = "A live token has this name", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<CreateToken>,
) -> Result<HttpResponse, AppError> {
    caller.require(&CREATE_TOKEN)?;
    let b = body.into_inner();
    let mut issues = Vec::new();
    let name = required_text("name", &b.name, 100, &mut issues);
    // The name is the actor shown in review histories: no invisible or control characters
    // that would let one name pass for another.
    if let Some(c) = name.chars().find(|c| {
        c.is_control()
            || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
    }) {
        issues.push(Issue::field(
            "name",
            format!(
                "contains the invisible or control character U+{:04X}",
                u32::from(c)
            ),
        ));
    }
    if !issues.is_empty() {
        return Err(AppError::invalid("invalid token", issues));
    }
    let role = b.role;
    let (token, secret) = state
        .run(move |db| service::create(db, &name, role))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/tokens/{}", token.id)))
        .json(CreatedToken {
            id: token.id,
            name: token.name,
            role: token.role,
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
    caller: Caller,
    q: super::query::Query<ListQuery>,
) -> Result<web::Json<TokenList>, AppError> {
    caller.require(&LIST_TOKENS)?;
    let page = q.page()?;
    let rows = state.run(move |db| service::list(db, page)).await?;
    let (items, next_cursor) = page_of(rows, page.limit, |r| r.id, |r| Ok(r.into()))?;
    Ok(web::Json(TokenList { items, next_cursor }))
}

/// Revokes a token (admin). Idempotent.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", operation_id = "revoke_token", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 200, description = "The revoked token", body = Token),
        (status = 409, description = "The last live admin token cannot be revoked", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Token>, AppError> {
    caller.require(&REVOKE_TOKEN)?;
    let id = id.into_inner();
    let token = state.run(move |db| service::revoke(db, id)).await?;
    Ok(web::Json(token.into()))
}
