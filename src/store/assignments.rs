//! Unit assignments: which variant each unit of an experiment was randomized into.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::assignments::dsl as a;
use super::units::UnitNumbers;
use super::upsert::{WriteOutcome, MAX_BINDS_PER_STATEMENT};
use super::{with_backend, DbConnection};
use crate::domain::upload::AssignmentRecord;
use crate::error::{AppResult, Issue};

#[derive(Insertable)]
#[diesel(table_name = super::schema::assignments)]
#[diesel(treat_none_as_default_value = false)]
struct NewAssignment {
    experiment_id: i64,
    unit_id: i64,
    variant_id: i64,
    assigned_at: Option<NaiveDateTime>,
}

const ROWS_PER_STATEMENT: usize = MAX_BINDS_PER_STATEMENT / 4;

fn new_row(experiment_id: i64, unit_id: i64, r: &AssignmentRecord) -> NewAssignment {
    NewAssignment {
        experiment_id,
        unit_id,
        variant_id: r.variant_id,
        assigned_at: r.assigned_at,
    }
}

/// Writes assignments inside the caller's transaction (on PostgreSQL a batch of new units by one
/// `COPY`, see `upsert::copy_if_new`), numbering their units with `numbers`. Re-sending an identical assignment is a
/// duplicate; assigning a stored unit to another variant is a conflict. `variant_key` names a
/// variant id in conflict messages.
pub fn write(
    conn: &mut DbConnection,
    experiment_id: i64,
    records: &[AssignmentRecord],
    numbers: &mut UnitNumbers,
    variant_key: &dyn Fn(i64) -> String,
) -> AppResult<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    let keys: Vec<&str> = records.iter().map(|r| r.unit_id.as_str()).collect();
    let ids = numbers.resolve(conn, &keys)?;
    let rows = |from: usize, to: usize| -> Vec<NewAssignment> {
        (from..to)
            .map(|i| new_row(experiment_id, ids[i], &records[i]))
            .collect()
    };
    if let Some(n) = super::upsert::copy_if_new(conn, |c| {
        let rows = rows(0, records.len());
        diesel::copy_from(a::assignments)
            .from_insertable(&rows)
            .execute(c)
    })? {
        outcome.book_batch(records.len(), n, 0);
        return Ok(outcome);
    }
    for (k, chunk) in records.chunks(ROWS_PER_STATEMENT).enumerate() {
        let first = k * ROWS_PER_STATEMENT;
        let chunk_ids = &ids[first..first + chunk.len()];
        let rows = rows(first, first + chunk.len());
        // Full chunks as fixed-size arrays: a static query id lets diesel reuse the statement.
        let inserted =
            match Box::<[NewAssignment; ROWS_PER_STATEMENT]>::try_from(rows.into_boxed_slice()) {
                Ok(full) => with_backend!(conn, |c| diesel::insert_into(a::assignments)
                    .values(&*full)
                    .on_conflict_do_nothing()
                    .execute(c))?,
                Err(rows) => with_backend!(conn, |c| diesel::insert_into(a::assignments)
                    .values(&rows[..])
                    .on_conflict_do_nothing()
                    .execute(c))?,
            };
        let mut differing = 0;
        if inserted < chunk.len() {
            let stored: HashMap<i64, i64> = with_backend!(conn, |c| a::assignments
                .filter(a::experiment_id.eq(experiment_id))
                .filter(a::unit_id.eq_any(chunk_ids))
                .select((a::unit_id, a::variant_id))
                .load::<(i64, i64)>(c))?
            .into_iter()
            .collect();
            for (r, id) in chunk.iter().zip(chunk_ids) {
                match stored.get(id) {
                    Some(&v) if v != r.variant_id => {
                        differing += 1;
                        outcome.conflict(Issue::row(
                            r.row,
                            Some("variant"),
                            format!(
                                "unit '{}' is already assigned to variant '{}' (stored or earlier in this upload); \
                                 cannot re-assign it to '{}'",
                                r.unit_id,
                                variant_key(v),
                                variant_key(r.variant_id)
                            ),
                        ))
                    }
                    _ => {}
                }
            }
        }
        outcome.book_batch(chunk.len(), inserted, differing);
    }
    Ok(outcome)
}

/// Number of assigned units of an experiment.
pub fn count(conn: &mut DbConnection, experiment_id: i64) -> AppResult<i64> {
    Ok(a::assignments
        .filter(a::experiment_id.eq(experiment_id))
        .count()
        .get_result(conn)?)
}

/// The first and last `assigned_at` of an experiment's assignments (None when none has one).
pub fn date_range(
    conn: &mut DbConnection,
    experiment_id: i64,
) -> AppResult<(Option<NaiveDateTime>, Option<NaiveDateTime>)> {
    use diesel::dsl::{max, min};
    Ok(a::assignments
        .filter(a::experiment_id.eq(experiment_id))
        .select((min(a::assigned_at), max(a::assigned_at)))
        .first(conn)?)
}
