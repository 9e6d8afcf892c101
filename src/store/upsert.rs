//! Shared bookkeeping of idempotent bulk writes: rows are inserted with `ON CONFLICT DO NOTHING`;
//! when a batch inserts fewer rows than it holds, the stored rows for its keys are read back and
//! each row is classed as a duplicate (same value) or a conflict (different value).

use crate::error::Issue;

/// Rows of one bulk write per statement. Each backend caps bind parameters per statement
/// (SQLite 32,766, PostgreSQL 65,535); callers divide this by the columns they bind.
pub const MAX_BINDS_PER_STATEMENT: usize = 30_000;

/// At most this many offending rows are listed in an error.
pub const MAX_LISTED_ISSUES: usize = 100;

/// What to do with a row whose key is stored with a different value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Report it; the whole request is rejected.
    Reject,
    /// Overwrite the stored value.
    Replace,
}

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

    /// Books a batch of `len` rows of which `inserted` were new and `differing` (already
    /// booked as conflicts or replacements) disagreed with stored values; the rest are duplicates.
    pub(crate) fn book_batch(&mut self, len: usize, inserted: usize, differing: usize) {
        self.inserted += inserted as u64;
        self.duplicates += (len - inserted - differing) as u64;
    }
}
