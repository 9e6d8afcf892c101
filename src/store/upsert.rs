//! Shared bookkeeping of idempotent bulk writes: rows are inserted with `ON CONFLICT DO NOTHING`;
//! when a batch inserts fewer rows than it holds, the stored rows for its keys are read back and
//! each row is classed as a duplicate (same value) or a conflict (different value).

use diesel::RunQueryDsl;

use super::DbConnection;
use crate::domain::upload::MAX_LISTED_ISSUES;
use crate::error::{AppError, AppResult, Issue};

/// Rows of one bulk write per statement. Each backend caps bind parameters per statement
/// (SQLite 32,766, PostgreSQL 65,535); callers divide this by the columns they bind.
pub const MAX_BINDS_PER_STATEMENT: usize = 30_000;

/// Counts of one bulk write.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteOutcome {
    pub inserted: u64,
    pub duplicates: u64,
    pub replaced: u64,
    /// Rows that conflict with stored data (listed up to [`MAX_LISTED_ISSUES`]).
    pub conflicts: Vec<Issue>,
    pub conflict_count: u64,
}

impl WriteOutcome {
    pub(crate) fn conflict(&mut self, issue: Issue) {
        self.conflict_count += 1;
        if self.conflicts.len() < MAX_LISTED_ISSUES {
            self.conflicts.push(issue);
        }
    }

    /// Adds the outcome of a later batch of the same upload.
    pub fn absorb(&mut self, later: WriteOutcome) {
        self.inserted += later.inserted;
        self.duplicates += later.duplicates;
        self.replaced += later.replaced;
        self.conflict_count += later.conflict_count;
        let room = MAX_LISTED_ISSUES.saturating_sub(self.conflicts.len());
        self.conflicts
            .extend(later.conflicts.into_iter().take(room));
    }

    /// Books a batch of `len` rows of which `inserted` were new and `differing` (already
    /// booked as conflicts or replacements) disagreed with stored values; the rest are duplicates.
    pub(crate) fn book_batch(&mut self, len: usize, inserted: usize, differing: usize) {
        self.inserted += inserted as u64;
        self.duplicates += (len - inserted - differing) as u64;
    }
}

/// PostgreSQL's fast path for a batch of rows that are probably all new: `COPY` them (binary
/// format) in a savepoint. `Some(n)` when all `n` were new and are stored; `None` when a key
/// was already stored (or repeated in the batch): the savepoint is rolled back, nothing of the
/// batch is stored, and the caller books it row by row. SQLite always answers `None` (its
/// prepared multi-row inserts are already fast). `copy` runs the COPY statement.
pub(crate) fn copy_if_new(
    conn: &mut DbConnection,
    copy: impl FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<usize>,
) -> AppResult<Option<usize>> {
    use diesel::result::{DatabaseErrorKind, Error};
    use diesel::Connection;
    let DbConnection::Postgresql(pg) = conn else {
        return Ok(None);
    };
    // Inside the upload's transaction, `transaction` is a savepoint.
    match pg.transaction(copy) {
        Ok(n) => Ok(Some(n)),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Runs the bulk write of an upload of `received` rows of `what` in one transaction: rows that
/// conflict with stored data roll everything back and become a 422 listing them; a write that
/// changes data bumps the experiment's data version in the same transaction.
pub fn commit_upload(
    conn: &mut DbConnection,
    experiment_id: i64,
    received: u64,
    what: &str,
    write: impl FnOnce(&mut DbConnection) -> AppResult<WriteOutcome>,
) -> AppResult<WriteOutcome> {
    // PostgreSQL: uploads to one experiment take turns. Two uploads sharing keys in different
    // orders would otherwise lock rows crosswise and deadlock (a 500); SQLite already admits
    // one writer at a time.
    let lock = format!("SELECT pg_advisory_xact_lock({experiment_id})");
    commit_bulk(conn, &lock, received, what, |conn| {
        let outcome = write(conn)?;
        if outcome.conflict_count == 0 && (outcome.inserted > 0 || outcome.replaced > 0) {
            super::experiments::bump_data_version(conn, experiment_id)?;
        }
        Ok(outcome)
    })
}

/// Runs a bulk write in one transaction after taking the PostgreSQL advisory lock `lock` (a
/// `SELECT pg_advisory_xact_lock(...)` statement built from ids), holding SQLite's write lock
/// from the start (batches read stored rows before writing); conflicts roll it all back as a
/// 422 listing them.
pub fn commit_bulk(
    conn: &mut DbConnection,
    lock: &str,
    received: u64,
    what: &str,
    write: impl FnOnce(&mut DbConnection) -> AppResult<WriteOutcome>,
) -> AppResult<WriteOutcome> {
    super::transaction_locked(conn, |conn| {
        if let super::DbConnection::Postgresql(c) = conn {
            diesel::sql_query(lock).execute(c)?;
        }
        let outcome = write(conn)?;
        if outcome.conflict_count > 0 {
            return Err(AppError::invalid(
                format!(
                    "{} of {received} {what} rows conflict with stored data; nothing was stored",
                    outcome.conflict_count
                ),
                outcome.conflicts,
            ));
        }
        Ok(outcome)
    })
}
