//! Bulk ingestion of assignments and observations: read an upload in any format and validate
//! every row against the experiment; [`service`] stores all rows in one transaction or none,
//! and keeps the metric catalog and the experiments.

pub mod pull;
pub mod read;
pub mod series;
pub mod service;
pub mod spool;

use std::collections::HashMap;
use std::io::Read;

use chrono::NaiveDateTime;
use serde::{Deserialize, Deserializer};

use crate::domain::experiment::{Experiment, Period};
use crate::domain::metric::Metric;
pub use crate::domain::upload::OnConflict;
use crate::domain::upload::{AssignmentRecord, ObservationRecord, MAX_LISTED_ISSUES};
use crate::error::{AppError, AppResult, Issue};
use read::{read_rows, CsvFields, Format, RowError, UploadRow};
use spool::Spool;

/// Longest accepted unit id.
pub const MAX_UNIT_ID_LEN: usize = 200;

/// A unit id as the OpenAPI document declares it: a string of 1 to 200 bytes without
/// surrounding whitespace or control characters, or a signed 64-bit integer, which is stored as
/// its decimal text (so `2` in JSON and `2` in CSV are the same unit). Only its schema is used.
pub struct UnitId;

/// The characters a unit id may not hold: C0 and C1 controls and DEL.
const UNIT_ID_PATTERN: &str =
    r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$";

impl utoipa::PartialSchema for UnitId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_UNIT_ID_LEN))
                    .pattern(Some(UNIT_ID_PATTERN))
                    .examples(["u-000123"]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
            )
            .description(Some(
                "A string of 1 to 200 bytes without surrounding whitespace or control \
                 characters, or a signed 64-bit integer (stored as its decimal text).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for UnitId {}

/// One assignment row of an upload: unit `unit_id` was randomized into `variant`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRow {
    /// The randomization unit (user, session, request…); a string or an integer.
    #[serde(deserialize_with = "unit_id")]
    #[schema(value_type = UnitId)]
    pub unit_id: String,
    /// Variant key, as declared in the experiment.
    #[schema(example = "plus-100ms")]
    pub variant: String,
    /// When the unit was assigned (RFC 3339).
    #[serde(default)]
    #[schema(example = "2026-11-01T10:00:00Z")]
    pub assigned_at: Option<String>,
}

/// One observation row: the value of `metric` for unit `unit_id` in `period`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationRow {
    /// The randomization unit; a string or an integer.
    #[serde(deserialize_with = "unit_id")]
    #[schema(value_type = UnitId)]
    pub unit_id: String,
    /// Metric key; one of the experiment's SLI, KPIs or guardrails.
    #[schema(example = "checkout-conversion")]
    pub metric: String,
    /// The unit-level value in the metric's unit (0/1 for binary metrics, whole ≥ 0 for counts).
    pub value: f64,
    /// When the value was observed (RFC 3339).
    #[serde(default)]
    pub observed_at: Option<String>,
    /// `post` (default): during the experiment; `pre`: before it, a covariate for CUPED.
    #[serde(default)]
    pub period: Option<Period>,
}

fn unit_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)] // U and F are read only to name the error
    enum Id {
        S(String),
        I(i64),
        U(u64),
        F(f64),
    }
    match Id::deserialize(d)
        .map_err(|_| serde::de::Error::custom("unit_id must be a string or an integer"))?
    {
        Id::S(s) => Ok(s),
        Id::I(i) => Ok(i.to_string()),
        // Integer ids are 64-bit signed, as declared; many JSON clients cannot hold more.
        Id::U(_) | Id::F(_) => Err(serde::de::Error::custom(
            "an integer unit_id must be a whole number between -2^63 and 2^63-1; send larger ids as strings",
        )),
    }
}

impl UploadRow for AssignmentRow {
    const CSV_COLUMNS: &'static [(&'static str, bool)] =
        &[("unit_id", true), ("variant", true), ("assigned_at", false)];

    fn from_csv(f: &CsvFields<'_>) -> Result<Self, RowError> {
        Ok(AssignmentRow {
            unit_id: f.required_raw("unit_id")?.to_owned(),
            variant: f.required("variant")?.to_owned(),
            assigned_at: f.get("assigned_at").map(str::to_owned),
        })
    }
}

impl UploadRow for ObservationRow {
    const CSV_COLUMNS: &'static [(&'static str, bool)] = &[
        ("unit_id", true),
        ("metric", true),
        ("value", true),
        ("observed_at", false),
        ("period", false),
    ];

    fn from_csv(f: &CsvFields<'_>) -> Result<Self, RowError> {
        let value = f.required("value")?;
        let period = match f.get("period") {
            None => None,
            Some(p) => Some(Period::parse(p).ok_or_else(|| {
                RowError::of("period", format!("period '{p}' is not 'pre' or 'post'"))
            })?),
        };
        Ok(ObservationRow {
            unit_id: f.required_raw("unit_id")?.to_owned(),
            metric: f.required("metric")?.to_owned(),
            value: value
                .parse()
                .map_err(|_| RowError::of("value", format!("value '{value}' is not a number")))?,
            observed_at: f.get("observed_at").map(str::to_owned),
            period,
        })
    }
}

/// What an upload did: rows received, newly stored, already stored identically, and overwritten.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IngestSummary {
    /// Rows in the upload.
    pub received: u64,
    /// Rows stored by this upload.
    pub inserted: u64,
    /// Rows identical to one already stored (or to an earlier row of the upload): no-ops.
    pub duplicates: u64,
    /// Rows that overwrote a different stored value (only with `on_conflict=replace`).
    pub replaced: u64,
}

/// Collects row problems: keeps the first [`MAX_LISTED_ISSUES`], counts all.
#[derive(Default)]
struct Problems {
    listed: Vec<Issue>,
    count: u64,
}

impl Problems {
    fn add(&mut self, issue: Issue) {
        self.count += 1;
        if self.listed.len() < MAX_LISTED_ISSUES {
            self.listed.push(issue);
        }
    }

    fn into_error(self, received: u64, what: &str) -> AppError {
        AppError::invalid(
            format!(
                "{} of {received} {what} rows are invalid; nothing was stored",
                self.count
            ),
            self.listed,
        )
    }
}

/// One unit, one identity in every format: a unit id is taken exactly as sent, so ids that
/// begin or end with whitespace (which CSV editors and JSON producers treat differently) and
/// ids with control characters (NUL, which PostgreSQL text cannot hold; line breaks) are
/// refused rather than silently stored as a second unit.
fn check_unit_id(row: u64, unit_id: &str) -> Result<(), Issue> {
    if unit_id.trim().is_empty() {
        return Err(Issue::row(row, Some("unit_id"), "must not be empty"));
    }
    if unit_id.trim() != unit_id {
        return Err(Issue::row(
            row,
            Some("unit_id"),
            format!("'{unit_id}' begins or ends with whitespace; send the id without it"),
        ));
    }
    if let Some(c) = unit_id.chars().find(|c| c.is_control()) {
        return Err(Issue::row(
            row,
            Some("unit_id"),
            format!("contains the control character U+{:04X}", u32::from(c)),
        ));
    }
    if unit_id.len() > MAX_UNIT_ID_LEN {
        return Err(Issue::row(
            row,
            Some("unit_id"),
            format!("must be at most {MAX_UNIT_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

fn timestamp(row: u64, field: &str, raw: Option<&str>) -> Result<Option<NaiveDateTime>, Issue> {
    raw.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.naive_utc())
            .map_err(|_| {
                Issue::row(
                    row,
                    Some(field),
                    format!("'{s}' is not an RFC 3339 timestamp (e.g. 2026-11-28T10:00:00Z)"),
                )
            })
    })
    .transpose()
}

fn reading_issue(row: u64, e: read::RowError) -> Issue {
    Issue::row(row, e.field.as_deref(), e.message)
}

/// The rows of an upload that all passed validation, staged in upload order.
pub struct ValidUpload<R> {
    /// Rows in the upload.
    pub received: u64,
    pub records: Spool<R>,
}

/// Reads and validates an upload of assignments: every row valid, or a 422 listing the first
/// [`MAX_LISTED_ISSUES`] problems with their row numbers.
pub fn assignments(
    experiment: &Experiment,
    input: impl Read,
    format: Format,
) -> AppResult<ValidUpload<AssignmentRecord>> {
    let variants: HashMap<&str, i64> = experiment
        .variants
        .iter()
        .map(|v| (v.key.as_str(), v.id))
        .collect();
    let mut records = Spool::default();
    let mut staging: AppResult<()> = Ok(());
    let mut problems = Problems::default();
    let received = read_rows::<AssignmentRow>(input, format, |row, parsed| {
        let checked = parsed.map_err(|r| reading_issue(row, r)).and_then(|r| {
            check_unit_id(row, &r.unit_id)?;
            let variant_id = *variants.get(r.variant.as_str()).ok_or_else(|| {
                let known: Vec<&str> = experiment.variants.iter().map(|v| v.key.as_str()).collect();
                Issue::row(
                    row,
                    Some("variant"),
                    format!(
                        "unknown variant '{}'; expected one of: {}",
                        r.variant,
                        known.join(", ")
                    ),
                )
            })?;
            let assigned_at = timestamp(row, "assigned_at", r.assigned_at.as_deref())?;
            Ok(AssignmentRecord {
                row,
                unit_id: r.unit_id,
                variant_id,
                assigned_at,
            })
        });
        match checked {
            // Once a row is invalid nothing will be stored: later valid rows are only counted.
            Ok(rec) if problems.count == 0 && staging.is_ok() => staging = records.push(rec),
            Ok(_) => {}
            Err(issue) => problems.add(issue),
        }
    })?;
    staging?;
    if problems.count > 0 {
        return Err(problems.into_error(received, "assignment"));
    }
    Ok(ValidUpload { received, records })
}

/// Reads and validates an upload of observations (see [`assignments`]).
pub fn observations(
    experiment: &Experiment,
    input: impl Read,
    format: Format,
) -> AppResult<ValidUpload<ObservationRecord>> {
    let metrics: HashMap<&str, &Metric> =
        experiment.metrics().map(|m| (m.key.as_str(), m)).collect();
    let mut records = Spool::default();
    let mut staging: AppResult<()> = Ok(());
    let mut problems = Problems::default();
    let received = read_rows::<ObservationRow>(input, format, |row, parsed| {
        let checked = parsed.map_err(|r| reading_issue(row, r)).and_then(|r| {
            check_unit_id(row, &r.unit_id)?;
            let metric = *metrics.get(r.metric.as_str()).ok_or_else(|| {
                let known: Vec<&str> = experiment
                    .metrics()
                    .filter(|m| m.ratio.is_none())
                    .map(|m| m.key.as_str())
                    .collect();
                Issue::row(
                    row,
                    Some("metric"),
                    format!(
                        "metric '{}' is not part of this experiment; expected one of: {}",
                        r.metric,
                        known.join(", ")
                    ),
                )
            })?;
            metric
                .check(r.value)
                .map_err(|m| Issue::row(row, Some("value"), m))?;
            let metric_id = metric.id;
            let observed_at = timestamp(row, "observed_at", r.observed_at.as_deref())?;
            Ok(ObservationRecord {
                row,
                unit_id: r.unit_id,
                metric_id,
                period: r.period.unwrap_or(Period::Post),
                value: r.value,
                observed_at,
            })
        });
        match checked {
            // Once a row is invalid nothing will be stored: later valid rows are only counted.
            Ok(rec) if problems.count == 0 && staging.is_ok() => staging = records.push(rec),
            Ok(_) => {}
            Err(issue) => problems.add(issue),
        }
    })?;
    staging?;
    if problems.count > 0 {
        return Err(problems.into_error(received, "observation"));
    }
    Ok(ValidUpload { received, records })
}
