//! Validated rows of bulk uploads, ready to store.

use chrono::NaiveDateTime;

use super::experiment::Period;

/// At most this many offending rows are listed in an error.
pub const MAX_LISTED_ISSUES: usize = 100;

/// A validated assignment; `row` is its 1-based position in the upload.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentRecord {
    pub row: u64,
    pub unit_id: String,
    pub variant_id: i64,
    pub assigned_at: Option<NaiveDateTime>,
}

/// A validated observation; `row` is its 1-based position in the upload.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRecord {
    pub row: u64,
    pub unit_id: String,
    pub metric_id: i64,
    pub period: Period,
    pub value: f64,
    pub observed_at: Option<NaiveDateTime>,
}

/// What to do with an uploaded row whose key is stored with a different value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Report it; the whole request is rejected.
    Reject,
    /// Overwrite the stored value.
    Replace,
}
