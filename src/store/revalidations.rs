//! Re-validations of published SLOs; each SLO points at its latest.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{slo_revalidations as rv, slos};
use super::{now, with_backend, DbConnection};
use crate::error::AppResult;

/// A stored re-validation; `reasons` is a JSON array the `slo` module defines.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = rv)]
pub struct StoredRevalidation {
    pub id: i64,
    pub slo_id: i64,
    pub analysis_id: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub outcome: String,
    pub reasons: String,
}

/// Records a re-validation and makes it the SLO's latest, in one transaction.
pub fn insert(
    conn: &mut DbConnection,
    slo_id: i64,
    analysis_id: i64,
    actor: &str,
    outcome: &str,
    reasons: &str,
) -> AppResult<StoredRevalidation> {
    super::transaction(conn, |conn| {
        let values = (
            rv::slo_id.eq(slo_id),
            rv::analysis_id.eq(analysis_id),
            rv::at.eq(now()),
            rv::actor.eq(actor),
            rv::outcome.eq(outcome),
            rv::reasons.eq(reasons),
        );
        let id: i64 = with_backend!(conn, |c| diesel::insert_into(rv::table)
            .values(values)
            .returning(rv::id)
            .get_result(c))?;
        diesel::update(slos::table.find(slo_id))
            .set((slos::validation.eq(outcome), slos::revalidation_id.eq(id)))
            .execute(conn)?;
        get(conn, id)?.ok_or_else(|| {
            crate::error::AppError::Internal(anyhow::anyhow!("revalidation {id} vanished"))
        })
    })
}

/// One re-validation.
pub fn get(conn: &mut DbConnection, id: i64) -> AppResult<Option<StoredRevalidation>> {
    Ok(rv::table
        .find(id)
        .select(StoredRevalidation::as_select())
        .first(conn)
        .optional()?)
}

/// A page of an SLO's re-validations, oldest first (`limit + 1` rows, for the next cursor).
pub fn list(
    conn: &mut DbConnection,
    slo_id: i64,
    page: crate::domain::Page,
) -> AppResult<Vec<StoredRevalidation>> {
    Ok(rv::table
        .filter(rv::slo_id.eq(slo_id))
        .filter(rv::id.gt(page.after_id))
        .order(rv::id)
        .limit(page.limit + 1)
        .select(StoredRevalidation::as_select())
        .load(conn)?)
}
