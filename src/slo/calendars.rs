//! The seam between business calendars and the store: create, read and list calendars, link an
//! SLO to one, and read the calendar an SLO follows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::calendar::{Calendar, CalendarPeriod, CreateCalendar, InForce};
use crate::domain::{Page, Slug};
use crate::error::{AppError, AppResult};
use crate::store::calendars::{self as store, StoredCalendar};
use crate::store::{Db, DbConnection};

/// A stored calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CalendarView {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Who created it (the token's name).
    pub created_by: String,
    /// Sorted by start.
    pub periods: Vec<CalendarPeriod>,
    /// The last replacement (PUT), if any.
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

/// A page of calendars.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CalendarList {
    pub items: Vec<CalendarView>,
    pub next_cursor: Option<String>,
}

/// The calendar an SLO follows and what holds at a moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CalendarInForce {
    pub calendar: String,
    #[serde(flatten)]
    pub in_force: InForce,
}

fn view(row: &StoredCalendar) -> AppResult<CalendarView> {
    let periods = serde_json::from_str(&row.periods).map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "stored calendar {} cannot be read: {e}",
            row.id
        ))
    })?;
    Ok(CalendarView {
        id: row.id,
        key: row.key.clone(),
        name: row.name.clone(),
        created_at: row.created_at.and_utc(),
        created_by: row.created_by.clone(),
        periods,
        updated_at: row.updated_at.map(|t| t.and_utc()),
        updated_by: row.updated_by.clone(),
    })
}

/// The domain calendar of a stored one.
fn calendar(row: &StoredCalendar) -> AppResult<Calendar> {
    let v = view(row)?;
    Ok(Calendar {
        key: Slug::parse("key", &v.key).map_err(|i| {
            AppError::Internal(anyhow::anyhow!("stored calendar key: {}", i.message))
        })?,
        name: v.name,
        periods: v.periods,
    })
}

/// Creates a calendar (422 naming the field, 409 for a taken key).
pub fn create(db: &Db, req: &CreateCalendar, actor: &str) -> AppResult<CalendarView> {
    let c = Calendar::parse(req).map_err(|issues| AppError::invalid("invalid calendar", issues))?;
    let periods = serde_json::to_string(&c.periods).map_err(|e| AppError::Internal(e.into()))?;
    let row = store::insert(&mut *db.conn()?, (c.key.as_str(), &c.name, &periods), actor)?;
    view(&row)
}

/// Replaces calendar `key`'s name and periods with `req`'s (whose key must be `key`: 422 naming
/// `key` otherwise); 404 for an unknown calendar. SLOs that follow it apply the new periods at
/// once (status, alerts, costs, the gate; their Prometheus rules on the next export).
pub fn replace(db: &Db, key: &str, req: &CreateCalendar, actor: &str) -> AppResult<CalendarView> {
    let c = Calendar::parse(req).map_err(|issues| AppError::invalid("invalid calendar", issues))?;
    if c.key.as_str() != key {
        return Err(AppError::invalid(
            "the key does not match the URL",
            vec![crate::error::Issue::field(
                "key",
                format!("the calendar in the URL is '{key}'; keys cannot be changed"),
            )],
        ));
    }
    let periods = serde_json::to_string(&c.periods).map_err(|e| AppError::Internal(e.into()))?;
    let row = store::replace(&mut *db.conn()?, (key, &c.name, &periods), actor)?;
    view(&row)
}

/// Deletes calendar `key`: 404 for an unknown one, 409 while SLOs follow it.
pub fn delete(db: &Db, key: &str) -> AppResult<()> {
    store::delete(&mut *db.conn()?, key)
}

/// The calendar with this key, or 404.
pub fn get(db: &Db, key: &str) -> AppResult<CalendarView> {
    view(&store::get(&mut *db.conn()?, key)?)
}

/// Calendars in creation order, one page (`limit + 1` items).
pub fn list(db: &Db, page: Page) -> AppResult<Vec<CalendarView>> {
    store::list(&mut *db.conn()?, page)?
        .iter()
        .map(view)
        .collect()
}

/// Links SLO `slo_id` to the calendar `key` (or unlinks it with `None`); 404 for an unknown
/// SLO or calendar (a missing calendar is named as the field `calendar`).
pub fn link(db: &Db, slo_id: i64, key: Option<&str>) -> AppResult<Option<CalendarView>> {
    let slo = super::service::slo(db, slo_id)?;
    if slo.status != super::model::SloStatus::Active {
        return Err(AppError::Conflict(format!(
            "SLO {slo_id} is {}; link its successor{}",
            slo.status,
            slo.superseded_by
                .map_or(String::new(), |s| format!(" (SLO {s})"))
        )));
    }
    let conn = &mut *db.conn()?;
    let row = match key {
        Some(k) => Some(store::get(conn, k).map_err(|e| match e {
            AppError::NotFound { .. } => AppError::invalid(
                "unknown calendar",
                vec![crate::error::Issue::field(
                    "calendar",
                    format!("no calendar has the key '{k}'"),
                )],
            ),
            e => e,
        })?),
        None => None,
    };
    store::link(conn, slo_id, row.as_ref().map(|r| r.id))?;
    row.as_ref().map(view).transpose()
}

/// The calendar SLO `slo_id` follows, if any.
pub fn of_slo(conn: &mut DbConnection, slo_id: i64) -> AppResult<Option<Calendar>> {
    store::of_slo(conn, slo_id)?
        .as_ref()
        .map(calendar)
        .transpose()
}
