//! The seam between access control and the store: bootstrap, create, list and revoke tokens,
//! and find the live token a caller presents.

use super::{generate, hash, BOOTSTRAP_TOKEN_NAME};
use crate::domain::access::{ApiToken, Role};
use crate::domain::Page;
use crate::error::{AppError, AppResult};
use crate::store::{serializable, tokens, Db};

/// Ensures an admin can log in: `SLOPROOF_ADMIN_TOKEN` (if given) is registered, and a different
/// earlier value of it is revoked (changing the variable rotates the token; a token revoked
/// through the API stays revoked). Without it, and without any live admin token, one is created
/// and its value returned so the caller prints it once.
pub fn bootstrap(db: &Db, admin_token: Option<&str>) -> AppResult<Option<String>> {
    let mut conn = db.conn()?;
    if let Some(token) = admin_token {
        if token.trim().len() < 16 || token.trim() != token {
            return Err(AppError::Internal(anyhow::anyhow!(
                "SLOPROOF_ADMIN_TOKEN must be at least 16 characters, without surrounding whitespace"
            )));
        }
        let revoked =
            tokens::rotate_named(&mut conn, BOOTSTRAP_TOKEN_NAME, Role::Admin, &hash(token))?;
        if revoked > 0 {
            tracing::warn!(
                revoked,
                "SLOPROOF_ADMIN_TOKEN changed: the earlier bootstrap admin token is revoked"
            );
        }
        return Ok(None);
    }
    // One transaction: two replicas starting together create one initial admin, not two.
    let token = generate();
    let created = serializable(&mut conn, |conn| {
        if tokens::active_admins(conn)? > 0 {
            return Ok(false);
        }
        tokens::insert(conn, "initial-admin", Role::Admin, &hash(&token))?;
        Ok(true)
    })?;
    Ok(created.then_some(token))
}

/// The live token whose secret is `secret`, if any.
pub fn find_live(db: &Db, secret: &str) -> AppResult<Option<ApiToken>> {
    tokens::find_active(&mut *db.conn()?, &hash(secret))
}

/// Creates a token; returns it with its secret, which is not stored.
/// Names of tokens the service manages itself.
const RESERVED_NAMES: [&str; 2] = [BOOTSTRAP_TOKEN_NAME, "initial-admin"];

/// Creates a token; returns it with its secret, which is not stored. A token's name is the
/// actor recorded for its actions, so names are unique among live tokens (409) and the
/// service's own names are reserved (422).
pub fn create(db: &Db, name: &str, role: Role) -> AppResult<(ApiToken, String)> {
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(AppError::invalid(
            "reserved token name",
            vec![crate::error::Issue::field(
                "name",
                format!("'{name}' is reserved for the service's own admin token"),
            )],
        ));
    }
    let secret = generate();
    let h = hash(&secret);
    let token = serializable(&mut *db.conn()?, |conn| {
        if tokens::live_name_exists(conn, name)? {
            return Err(AppError::Conflict(format!(
                "a live token is already named '{name}'; names identify who acted, so revoke it or choose another"
            )));
        }
        tokens::insert(conn, name, role, &h)
    })?;
    Ok((token, secret))
}

/// Tokens in creation order, revoked ones included, one page (`limit + 1` items) at a time.
pub fn list(db: &Db, page: Page) -> AppResult<Vec<ApiToken>> {
    tokens::list(&mut *db.conn()?, page)
}

/// Revokes a token (idempotent); 404 if it does not exist.
/// Revokes a token (idempotent); 404 if it does not exist, 409 when it is the last live admin
/// token (everyone would be locked out until a restart).
pub fn revoke(db: &Db, id: i64) -> AppResult<ApiToken> {
    serializable(&mut *db.conn()?, |conn| {
        let token = tokens::get(conn, id)?;
        if token.role == Role::Admin
            && token.revoked_at.is_none()
            && tokens::active_admins(conn)? <= 1
        {
            return Err(AppError::Conflict(
                "this is the last live admin token; create another admin token before revoking it"
                    .into(),
            ));
        }
        tokens::revoke(conn, id)
    })
}
