//! Business calendars, the calendar each SLO follows, and the deploy checks the gate answered.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{calendars as cal, deploy_checks as dc, slos};
use super::{now, with_backend, DbConnection, Page};
use crate::error::{AppError, AppResult};

/// A stored calendar; `periods` is the JSON array the domain defines.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = cal)]
pub struct StoredCalendar {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub periods: String,
    pub updated_at: Option<NaiveDateTime>,
    pub updated_by: Option<String>,
}

/// Stores a new calendar; 409 when the key is taken.
pub fn insert(
    conn: &mut DbConnection,
    (key, name, periods): (&str, &str, &str),
    actor: &str,
) -> AppResult<StoredCalendar> {
    let values = (
        cal::key.eq(key),
        cal::name.eq(name),
        cal::created_at.eq(now()),
        cal::created_by.eq(actor),
        cal::periods.eq(periods),
    );
    let id: i64 = with_backend!(conn, |c| diesel::insert_into(cal::table)
        .values(values)
        .returning(cal::id)
        .get_result(c))
    .map_err(|e| {
        super::metrics::unique_or_internal(e, format!("a calendar with key '{key}' already exists"))
    })?;
    by_id(conn, id)
}

/// The calendar with this id.
pub fn by_id(conn: &mut DbConnection, id: i64) -> AppResult<StoredCalendar> {
    cal::table
        .find(id)
        .select(StoredCalendar::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("calendar", id))
}

/// The calendar with this key, or 404.
pub fn get(conn: &mut DbConnection, key: &str) -> AppResult<StoredCalendar> {
    cal::table
        .filter(cal::key.eq(key))
        .select(StoredCalendar::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("calendar", key))
}

/// Replaces a calendar's name and periods; 404 for an unknown key.
pub fn replace(
    conn: &mut DbConnection,
    (key, name, periods): (&str, &str, &str),
    actor: &str,
) -> AppResult<StoredCalendar> {
    let n = diesel::update(cal::table.filter(cal::key.eq(key)))
        .set((
            cal::name.eq(name),
            cal::periods.eq(periods),
            cal::updated_at.eq(Some(now())),
            cal::updated_by.eq(Some(actor)),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::not_found("calendar", key));
    }
    get(conn, key)
}

/// Deletes a calendar; 404 for an unknown key, 409 naming the SLOs that follow it.
pub fn delete(conn: &mut DbConnection, key: &str) -> AppResult<()> {
    super::transaction(conn, |conn| {
        let row = get(conn, key)?;
        let linked: Vec<i64> = slos::table
            .filter(slos::calendar_id.eq(row.id))
            .filter(slos::status.eq("active"))
            .order(slos::id)
            .select(slos::id)
            .load(conn)?;
        if !linked.is_empty() {
            let ids: Vec<String> = linked.iter().map(i64::to_string).collect();
            let (who, verb) = if ids.len() == 1 {
                ("SLO", "follows")
            } else {
                ("SLOs", "follow")
            };
            return Err(AppError::Conflict(format!(
                "{who} {} {verb} calendar '{key}'; unlink first (PUT /api/v1/slos/{{id}}/calendar with null)",
                ids.join(", ")
            )));
        }
        // Superseded SLOs keep no link: their successors carry it.
        diesel::update(slos::table.filter(slos::calendar_id.eq(row.id)))
            .set(slos::calendar_id.eq(None::<i64>))
            .execute(conn)?;
        diesel::delete(cal::table.find(row.id)).execute(conn)?;
        Ok(())
    })
}

/// Calendars in creation order, one page (`limit + 1` rows).
pub fn list(conn: &mut DbConnection, page: Page) -> AppResult<Vec<StoredCalendar>> {
    Ok(cal::table
        .filter(cal::id.gt(page.after_id))
        .order(cal::id)
        .limit(page.limit + 1)
        .select(StoredCalendar::as_select())
        .load(conn)?)
}

/// Links SLO `slo_id` to a calendar, or unlinks it (`None`); 404 for an unknown SLO.
pub fn link(conn: &mut DbConnection, slo_id: i64, calendar: Option<i64>) -> AppResult<()> {
    let n = diesel::update(slos::table.find(slo_id))
        .set(slos::calendar_id.eq(calendar))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::not_found("SLO", slo_id));
    }
    Ok(())
}

/// The calendar SLO `slo_id` follows, if any.
pub fn of_slo(conn: &mut DbConnection, slo_id: i64) -> AppResult<Option<StoredCalendar>> {
    let id: Option<i64> = slos::table
        .find(slo_id)
        .select(slos::calendar_id)
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("SLO", slo_id))?;
    id.map(|id| by_id(conn, id)).transpose()
}

/// A stored deploy check; `document` is the request and answer as JSON.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = dc)]
pub struct StoredCheck {
    pub id: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub decision: String,
    pub document: String,
}

/// Records a deploy check: `document` renders it once its id and time are known.
pub fn record_check(
    conn: &mut DbConnection,
    actor: &str,
    decision: &str,
    document: impl FnOnce(i64, NaiveDateTime) -> AppResult<String>,
) -> AppResult<StoredCheck> {
    super::transaction(conn, |conn| {
        let at = now();
        let values = (
            dc::at.eq(at),
            dc::actor.eq(actor),
            dc::decision.eq(decision),
            dc::document.eq(""),
        );
        let id: i64 = with_backend!(conn, |c| diesel::insert_into(dc::table)
            .values(values)
            .returning(dc::id)
            .get_result(c))?;
        let text = document(id, at)?;
        diesel::update(dc::table.find(id))
            .set(dc::document.eq(&text))
            .execute(conn)?;
        Ok(StoredCheck {
            id,
            at,
            actor: actor.to_owned(),
            decision: decision.to_owned(),
            document: text,
        })
    })
}

/// Deploy checks, newest last, one page (`limit + 1` rows).
pub fn list_checks(conn: &mut DbConnection, page: Page) -> AppResult<Vec<StoredCheck>> {
    Ok(dc::table
        .filter(dc::id.gt(page.after_id))
        .order(dc::id)
        .limit(page.limit + 1)
        .select(StoredCheck::as_select())
        .load(conn)?)
}
