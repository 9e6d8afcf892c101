//! Stored observational (correlational) analyses: the document as JSON text.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::observational_analyses::dsl as oa;
use super::{now, with_backend, DbConnection};
use crate::error::{AppError, AppResult};

/// Stores a new analysis: `result` renders the document once the id and creation time are
/// known. Returns the stored text.
pub fn insert(
    conn: &mut DbConnection,
    (sli_metric_id, kpi_metric_id): (i64, i64),
    result: impl FnOnce(i64, NaiveDateTime) -> AppResult<String>,
) -> AppResult<String> {
    super::transaction(conn, |conn| {
        let created_at = now();
        let values = (
            oa::sli_metric_id.eq(sli_metric_id),
            oa::kpi_metric_id.eq(kpi_metric_id),
            oa::created_at.eq(created_at),
            oa::result.eq(""),
        );
        let id: i64 = with_backend!(conn, |c| diesel::insert_into(oa::observational_analyses)
            .values(values)
            .returning(oa::id)
            .get_result(c))?;
        let text = result(id, created_at)?;
        diesel::update(oa::observational_analyses.find(id))
            .set(oa::result.eq(&text))
            .execute(conn)?;
        Ok(text)
    })
}

/// The stored document of analysis `id`, or 404.
pub fn get(conn: &mut DbConnection, id: i64) -> AppResult<String> {
    oa::observational_analyses
        .find(id)
        .select(oa::result)
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("observational analysis", id))
}

/// When analysis `id` was made, or 404.
pub fn created_at(conn: &mut DbConnection, id: i64) -> AppResult<NaiveDateTime> {
    oa::observational_analyses
        .find(id)
        .select(oa::created_at)
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("observational analysis", id))
}
