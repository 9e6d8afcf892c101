//! API tokens: only their SHA-256 hashes are stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::api_tokens as t;
use super::{now, with_backend, DbConnection};
use crate::domain::access::{ApiToken, Role};
use crate::error::{AppError, AppResult};

/// An `api_tokens` row without its hash.
#[derive(Queryable, Selectable)]
#[diesel(table_name = t)]
pub(super) struct TokenRow {
    id: i64,
    name: String,
    #[diesel(deserialize_as = String)]
    role: Role,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

impl From<TokenRow> for ApiToken {
    fn from(r: TokenRow) -> ApiToken {
        ApiToken {
            id: r.id,
            name: r.name,
            role: r.role,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

pub fn insert(conn: &mut DbConnection, name: &str, role: Role, hash: &str) -> AppResult<ApiToken> {
    let values = (
        t::name.eq(name),
        t::role.eq(role.as_str()),
        t::token_hash.eq(hash),
        t::created_at.eq(now()),
    );
    let id: i64 = with_backend!(conn, |c| diesel::insert_into(t::table)
        .values(values)
        .returning(t::id)
        .get_result(c))
    .map_err(|e| match e {
        // Names are unique among live tokens (a partial unique index); a concurrent create
        // of the same name ends here.
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            ref info,
        ) if info.constraint_name() == Some("api_tokens_live_name")
            || info.message().contains("api_tokens.name") =>
        {
            AppError::Conflict(format!("a live token is already named '{name}'"))
        }
        e => e.into(),
    })?;
    get(conn, id)
}

pub fn get(conn: &mut DbConnection, id: i64) -> AppResult<ApiToken> {
    let r = t::table
        .find(id)
        .select(TokenRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("token", id))?;
    Ok(r.into())
}

/// The live (not revoked) token with this hash.
pub fn find_active(conn: &mut DbConnection, hash: &str) -> AppResult<Option<ApiToken>> {
    let r = t::table
        .filter(t::token_hash.eq(hash))
        .filter(t::revoked_at.is_null())
        .select(TokenRow::as_select())
        .first(conn)
        .optional()?;
    Ok(r.map(ApiToken::from))
}

/// Whether any token with this hash exists (revoked or not).
fn hash_exists(conn: &mut DbConnection, hash: &str) -> AppResult<bool> {
    Ok(t::table
        .filter(t::token_hash.eq(hash))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Makes `hash` the one token called `name`, in one transaction: revokes live tokens of that name
/// with another hash, and inserts this one unless a token with this hash exists (a revoked one
/// stays revoked). Returns how many tokens were revoked.
pub fn rotate_named(
    conn: &mut DbConnection,
    name: &str,
    role: Role,
    hash: &str,
) -> AppResult<usize> {
    super::serializable(conn, |conn| {
        let revoked = diesel::update(
            t::table
                .filter(t::name.eq(name))
                .filter(t::token_hash.ne(hash))
                .filter(t::revoked_at.is_null()),
        )
        .set(t::revoked_at.eq(now()))
        .execute(conn)?;
        if !hash_exists(conn, hash)? {
            insert(conn, name, role, hash)?;
        }
        Ok(revoked)
    })
}

/// Number of live admin tokens.
pub fn active_admins(conn: &mut DbConnection) -> AppResult<i64> {
    Ok(t::table
        .filter(t::role.eq(Role::Admin.as_str()))
        .filter(t::revoked_at.is_null())
        .count()
        .get_result(conn)?)
}

/// Tokens in creation order, one page (`limit + 1` rows) at a time.
pub fn list(conn: &mut DbConnection, page: super::Page) -> AppResult<Vec<ApiToken>> {
    let rows = t::table
        .filter(t::id.gt(page.after_id))
        .order(t::id)
        .limit(page.limit + 1)
        .select(TokenRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(ApiToken::from).collect())
}

/// Revokes a token (idempotent); 404 if it does not exist.
pub fn revoke(conn: &mut DbConnection, id: i64) -> AppResult<ApiToken> {
    get(conn, id)?;
    diesel::update(t::table.find(id).filter(t::revoked_at.is_null()))
        .set(t::revoked_at.eq(now()))
        .execute(conn)?;
    get(conn, id)
}

/// Whether a live token has this name.
pub fn live_name_exists(conn: &mut DbConnection, name: &str) -> AppResult<bool> {
    Ok(t::table
        .filter(t::name.eq(name))
        .filter(t::revoked_at.is_null())
        .count()
        .get_result::<i64>(conn)?
        > 0)
}
