//! Analysis jobs: the request, the state machine (queued → running → succeeded | failed |
//! cancelled), the stage and progress a worker reports, and the analysis it stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::jobs as j;
use super::{now, with_backend, DbConnection};
use crate::error::{AppError, AppResult};

/// A stored job.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = j)]
pub struct StoredJob {
    pub id: i64,
    pub kind: String,
    pub experiment_key: String,
    pub request: String,
    pub state: String,
    pub stage: String,
    pub progress: f64,
    pub cancel_requested: bool,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub analysis_id: Option<i64>,
    pub error: Option<String>,
}

/// Queues an analysis of experiment `key` with `request` (JSON).
pub fn insert(
    conn: &mut DbConnection,
    key: &str,
    request: &str,
    actor: &str,
) -> AppResult<StoredJob> {
    let values = (
        j::kind.eq("analysis"),
        j::experiment_key.eq(key),
        j::request.eq(request),
        j::state.eq("queued"),
        j::stage.eq("queued"),
        j::progress.eq(0.0),
        j::created_at.eq(now()),
        j::created_by.eq(actor),
    );
    let id: i64 = with_backend!(conn, |c| diesel::insert_into(j::table)
        .values(values)
        .returning(j::id)
        .get_result(c))?;
    get(conn, id)
}

/// The job with this id, or 404.
pub fn get(conn: &mut DbConnection, id: i64) -> AppResult<StoredJob> {
    j::table
        .find(id)
        .select(StoredJob::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("job", id))
}

/// Jobs in a state, oldest first.
pub fn in_state(conn: &mut DbConnection, state: &str) -> AppResult<Vec<StoredJob>> {
    Ok(j::table
        .filter(j::state.eq(state))
        .order(j::id)
        .select(StoredJob::as_select())
        .load(conn)?)
}

/// Jobs waiting or running.
pub fn unfinished(conn: &mut DbConnection) -> AppResult<i64> {
    Ok(j::table
        .filter(j::state.eq_any(["queued", "running"]))
        .count()
        .get_result(conn)?)
}

/// Marks a queued job running (false when it is no longer queued: cancelled meanwhile).
pub fn start(conn: &mut DbConnection, id: i64) -> AppResult<bool> {
    let n = diesel::update(j::table.find(id).filter(j::state.eq("queued")))
        .set((
            j::state.eq("running"),
            j::stage.eq("loading"),
            j::started_at.eq(Some(now())),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Records a running job's stage and progress (0–1); answers whether a cancel was asked.
pub fn progress(conn: &mut DbConnection, id: i64, stage: &str, progress: f64) -> AppResult<bool> {
    diesel::update(j::table.find(id).filter(j::state.eq("running")))
        .set((j::stage.eq(stage), j::progress.eq(progress)))
        .execute(conn)?;
    Ok(j::table.find(id).select(j::cancel_requested).first(conn)?)
}

/// Ends a job: `succeeded` (with its analysis), `failed` (with why) or `cancelled`.
pub fn finish(
    conn: &mut DbConnection,
    id: i64,
    state: &str,
    analysis: Option<i64>,
    error: Option<&str>,
) -> AppResult<()> {
    diesel::update(j::table.find(id))
        .set((
            j::state.eq(state),
            j::stage.eq(state),
            j::analysis_id.eq(analysis),
            j::error.eq(error),
            j::finished_at.eq(Some(now())),
        ))
        .execute(conn)?;
    if state == "succeeded" {
        diesel::update(j::table.find(id))
            .set(j::progress.eq(1.0))
            .execute(conn)?;
    }
    Ok(())
}

/// Asks a job to stop: a queued one is cancelled at once, a running one when its worker
/// reaches its next stage. 409 for a finished job.
pub fn cancel(conn: &mut DbConnection, id: i64) -> AppResult<StoredJob> {
    // Read then write: the write lock from the start, so a worker's progress update in
    // between cannot make SQLite refuse the upgrade.
    super::transaction_locked(conn, |conn| {
        let job = get(conn, id)?;
        match job.state.as_str() {
            "queued" => {
                diesel::update(j::table.find(id))
                    .set((
                        j::state.eq("cancelled"),
                        j::stage.eq("cancelled"),
                        j::cancel_requested.eq(true),
                        j::finished_at.eq(Some(now())),
                    ))
                    .execute(conn)?;
            }
            "running" => {
                diesel::update(j::table.find(id))
                    .set(j::cancel_requested.eq(true))
                    .execute(conn)?;
            }
            s => {
                return Err(AppError::Conflict(format!(
                    "job {id} has already finished ({s}); nothing to cancel"
                )))
            }
        }
        get(conn, id)
    })
}

/// At start-up: jobs a previous process left running failed with it (their work is lost);
/// answers how many.
pub fn fail_interrupted(conn: &mut DbConnection) -> AppResult<usize> {
    Ok(diesel::update(j::table.filter(j::state.eq("running")))
        .set((
            j::state.eq("failed"),
            j::stage.eq("failed"),
            j::error.eq(Some(
                "the server stopped while this analysis was running; submit it again",
            )),
            j::finished_at.eq(Some(now())),
        ))
        .execute(conn)?)
}
