//! Composite journey SLOs: key, name, objective and the ordered step SLO ids (JSON).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::journeys as j;
use super::{now, with_backend, DbConnection, Page};
use crate::error::{AppError, AppResult};

/// A stored journey; `steps` is a JSON array of SLO ids.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = j)]
pub struct StoredJourney {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub objective: Option<f64>,
    pub steps: String,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub updated_at: Option<NaiveDateTime>,
    pub updated_by: Option<String>,
    /// `cost`, `inverse_cost` or `equal`.
    pub budget_split: String,
}

/// What a journey is made of: key, name, objective, steps (JSON) and budget split.
pub type JourneyFields<'a> = (&'a str, &'a str, Option<f64>, &'a str, &'a str);

/// Stores a journey; 409 when the key is taken.
pub fn insert(
    conn: &mut DbConnection,
    (key, name, objective, steps, split): JourneyFields,
    actor: &str,
) -> AppResult<StoredJourney> {
    let values = (
        j::key.eq(key),
        j::name.eq(name),
        j::objective.eq(objective),
        j::steps.eq(steps),
        j::budget_split.eq(split),
        j::created_at.eq(now()),
        j::created_by.eq(actor),
    );
    let id: i64 = with_backend!(conn, |c| diesel::insert_into(j::table)
        .values(values)
        .returning(j::id)
        .get_result(c))
    .map_err(|e| {
        super::metrics::unique_or_internal(e, format!("a journey with key '{key}' already exists"))
    })?;
    j::table
        .find(id)
        .select(StoredJourney::as_select())
        .first(conn)
        .map_err(Into::into)
}

/// The journey with this key, or 404.
pub fn get(conn: &mut DbConnection, key: &str) -> AppResult<StoredJourney> {
    j::table
        .filter(j::key.eq(key))
        .select(StoredJourney::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("journey", key))
}

/// Replaces a journey's name, objective, steps and budget split; 404 for an unknown key.
pub fn replace(
    conn: &mut DbConnection,
    (key, name, objective, steps, split): JourneyFields,
    actor: &str,
) -> AppResult<StoredJourney> {
    let n = diesel::update(j::table.filter(j::key.eq(key)))
        .set((
            j::name.eq(name),
            j::objective.eq(objective),
            j::steps.eq(steps),
            j::budget_split.eq(split),
            j::updated_at.eq(Some(now())),
            j::updated_by.eq(Some(actor)),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::not_found("journey", key));
    }
    get(conn, key)
}

/// Deletes a journey; 404 for an unknown key.
pub fn delete(conn: &mut DbConnection, key: &str) -> AppResult<()> {
    let n = diesel::delete(j::table.filter(j::key.eq(key))).execute(conn)?;
    if n == 0 {
        return Err(AppError::not_found("journey", key));
    }
    Ok(())
}

/// Journeys in creation order, one page (`limit + 1` rows).
pub fn list(conn: &mut DbConnection, page: Page) -> AppResult<Vec<StoredJourney>> {
    Ok(j::table
        .filter(j::id.gt(page.after_id))
        .order(j::id)
        .limit(page.limit + 1)
        .select(StoredJourney::as_select())
        .load(conn)?)
}
