//! Sessions of the web pages. Signing in with a live API token makes a session: a random id
//! (sent to the browser once, in an HttpOnly cookie; only its SHA-256 is stored) and a CSRF
//! token that every form of the session carries. The session acts as its token: the token's
//! role applies unchanged, and revoking the token ends the session.

use chrono::TimeDelta;

use super::{generate, hash};
use crate::domain::access::ApiToken;
use crate::error::{AppError, AppResult};
use crate::store::{now, sessions, Db};

/// How long a session lasts.
pub const SESSION_HOURS: i64 = 12;

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: ApiToken,
    pub csrf: String,
}

/// Signs in with an API token: the new session's id (for the cookie) and the session; a 401
/// for an unknown or revoked token.
pub fn sign_in(db: &Db, secret: &str) -> AppResult<(String, Session)> {
    let conn = &mut *db.conn()?;
    let token = crate::store::tokens::find_active(conn, &hash(secret.trim()))?
        .ok_or_else(|| AppError::Unauthorized("the token is unknown or revoked".into()))?;
    let id = generate();
    let csrf = generate();
    let expires = now() + TimeDelta::hours(SESSION_HOURS);
    sessions::insert(conn, &hash(&id), token.id, &csrf, expires)?;
    Ok((id, Session { token, csrf }))
}

/// The live session with this id, if any.
pub fn find(db: &Db, id: &str) -> AppResult<Option<Session>> {
    Ok(sessions::find_live(&mut *db.conn()?, &hash(id))?
        .map(|(token, csrf)| Session { token, csrf }))
}

/// Ends the session with this id.
pub fn sign_out(db: &Db, id: &str) -> AppResult<()> {
    sessions::delete(&mut *db.conn()?, &hash(id))
}
