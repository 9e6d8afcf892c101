//! API tokens: only their SHA-256 hashes are stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::api_tokens as t;
use super::{now, with_backend, DbConnection};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

type Row = (i64, String, String, NaiveDateTime, Option<NaiveDateTime>);

fn row(r: Row) -> TokenRow {
    TokenRow {
        id: r.0,
        name: r.1,
        role: r.2,
        created_at: r.3,
        revoked_at: r.4,
    }
}

pub fn insert(conn: &mut DbConnection, name: &str, role: &str, hash: &str) -> AppResult<TokenRow> {
    let values = (
        t::name.eq(name),
        t::role.eq(role),
        t::token_hash.eq(hash),
        t::created_at.eq(now()),
    );
    let id: i64 = with_backend!(conn, |c| diesel::insert_into(t::table)
        .values(values)
        .returning(t::id)
        .get_result(c))?;
    get(conn, id)
}

pub fn get(conn: &mut DbConnection, id: i64) -> AppResult<TokenRow> {
    let r: Row = t::table
        .find(id)
        .select((t::id, t::name, t::role, t::created_at, t::revoked_at))
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("token", id))?;
    Ok(row(r))
}

/// The live (not revoked) token with this hash.
pub fn find_active(conn: &mut DbConnection, hash: &str) -> AppResult<Option<TokenRow>> {
    let r: Option<Row> = t::table
        .filter(t::token_hash.eq(hash))
        .filter(t::revoked_at.is_null())
        .select((t::id, t::name, t::role, t::created_at, t::revoked_at))
        .first(conn)
        .optional()?;
    Ok(r.map(row))
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
    role: &str,
    hash: &str,
) -> AppResult<usize> {
    conn.transaction(|conn| {
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
        .filter(t::role.eq("admin"))
        .filter(t::revoked_at.is_null())
        .count()
        .get_result(conn)?)
}

pub fn list(conn: &mut DbConnection, after_id: i64, limit: i64) -> AppResult<Vec<TokenRow>> {
    let rows: Vec<Row> = t::table
        .filter(t::id.gt(after_id))
        .order(t::id)
        .limit(limit)
        .select((t::id, t::name, t::role, t::created_at, t::revoked_at))
        .load(conn)?;
    Ok(rows.into_iter().map(row).collect())
}

/// Revokes a token (idempotent); 404 if it does not exist.
pub fn revoke(conn: &mut DbConnection, id: i64) -> AppResult<TokenRow> {
    get(conn, id)?;
    diesel::update(t::table.find(id).filter(t::revoked_at.is_null()))
        .set(t::revoked_at.eq(now()))
        .execute(conn)?;
    get(conn, id)
}
