//! Early-warning rules attached to SLOs: one per SLO and indicator metric, the derivation as a
//! JSON document.

use diesel::prelude::*;

use super::schema::early_warnings as w;
use super::{now, DbConnection};
use crate::error::AppResult;

/// Stores the SLO's early warning on this indicator, replacing an earlier one in place (it
/// keeps its position); true when it is new.
pub fn put(
    conn: &mut DbConnection,
    (slo_id, indicator_id): (i64, i64),
    document: &str,
    actor: &str,
) -> AppResult<bool> {
    super::transaction(conn, |conn| {
        let replaced = diesel::update(
            w::table
                .filter(w::slo_id.eq(slo_id))
                .filter(w::indicator_metric_id.eq(indicator_id)),
        )
        .set((
            w::document.eq(document),
            w::created_at.eq(now()),
            w::created_by.eq(actor),
        ))
        .execute(conn)?;
        if replaced > 0 {
            return Ok(false);
        }
        diesel::insert_into(w::table)
            .values((
                w::slo_id.eq(slo_id),
                w::indicator_metric_id.eq(indicator_id),
                w::document.eq(document),
                w::created_at.eq(now()),
                w::created_by.eq(actor),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// The documents of the SLO's early warnings, in the order they were attached.
pub fn list(conn: &mut DbConnection, slo_id: i64) -> AppResult<Vec<String>> {
    Ok(w::table
        .filter(w::slo_id.eq(slo_id))
        .order(w::id)
        .select(w::document)
        .load(conn)?)
}

/// Removes the SLO's early warning on this indicator; false when there was none.
pub fn delete(conn: &mut DbConnection, (slo_id, indicator_id): (i64, i64)) -> AppResult<bool> {
    let n = diesel::delete(
        w::table
            .filter(w::slo_id.eq(slo_id))
            .filter(w::indicator_metric_id.eq(indicator_id)),
    )
    .execute(conn)?;
    Ok(n > 0)
}
