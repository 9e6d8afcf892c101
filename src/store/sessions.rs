//! Sessions of the web pages: only the SHA-256 of a session id is stored, with the token the
//! session acts as and the CSRF token of its forms.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_tokens as t, ui_sessions as s};
use super::tokens::TokenRow;
use super::{now, DbConnection};
use crate::domain::access::ApiToken;
use crate::error::AppResult;

/// Stores a session; expired sessions are removed on the way.
pub fn insert(
    conn: &mut DbConnection,
    id_hash: &str,
    token_id: i64,
    csrf: &str,
    expires_at: NaiveDateTime,
) -> AppResult<()> {
    let at = now();
    diesel::delete(s::table.filter(s::expires_at.le(at))).execute(conn)?;
    diesel::insert_into(s::table)
        .values((
            s::id_hash.eq(id_hash),
            s::token_id.eq(token_id),
            s::csrf.eq(csrf),
            s::created_at.eq(at),
            s::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The live session with this id hash: its token (not revoked) and CSRF token.
pub fn find_live(conn: &mut DbConnection, id_hash: &str) -> AppResult<Option<(ApiToken, String)>> {
    let row: Option<(TokenRow, String)> = s::table
        .inner_join(t::table)
        .filter(s::id_hash.eq(id_hash))
        .filter(s::expires_at.gt(now()))
        .filter(t::revoked_at.is_null())
        .select((TokenRow::as_select(), s::csrf))
        .first(conn)
        .optional()?;
    Ok(row.map(|(token, csrf)| (token.into(), csrf)))
}

/// Ends a session.
pub fn delete(conn: &mut DbConnection, id_hash: &str) -> AppResult<()> {
    diesel::delete(s::table.find(id_hash)).execute(conn)?;
    Ok(())
}
