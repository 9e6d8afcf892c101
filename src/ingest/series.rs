//! Uploads of an SLI's production series: one row per window, a histogram
//! `{start, seconds, count, sum, buckets: [{le, count}]}` or event counts
//! `{start, seconds, good, total}`, read in any upload format and validated against the
//! metric's layout (fixed by its first upload): all rows valid, or a 422 naming rows and fields.

use std::io::Read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use super::read::{read_rows, CsvFields, Format, RowError, UploadRow};
use super::spool::Spool;
use super::{reading_issue, Problems, ValidUpload};
use crate::domain::metric::MAX_ABS_VALUE;
use crate::domain::series::{
    SeriesKind, SeriesLayout, SeriesWindow, WindowData, MAX_SERIES_BUCKETS, MAX_WINDOW_SECONDS,
};
use crate::error::{AppResult, Issue};

/// A window may end at most this far past the server's clock (clock skew), in seconds.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// One cumulative bucket of a histogram window.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketRow {
    /// Upper bound in the metric's unit, or `"+Inf"` for the last bucket. Numbers may also
    /// come as strings, as Prometheus writes them (`"0.25"`).
    #[serde(deserialize_with = "bound")]
    #[schema(schema_with = bound_schema)]
    pub le: f64,
    /// Events at or below `le` (cumulative).
    #[schema(minimum = 0, maximum = 1e15)]
    pub count: f64,
}

fn bound_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^\s*([+]?[Ii]nf|[-+]?[0-9.eE+-]+)\s*$"))
                .max_length(Some(40)),
        )
        .description(Some("A bucket upper bound, or \"+Inf\"."))
        .build()
        .into()
}

/// Reads a bound written as a number or as text (`+Inf`, `Inf`, `0.25`).
pub(crate) fn parse_bound(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        t => t.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

/// Reads `le` as a number or a string, without buffering (an untagged enum would buffer
/// every bound of every row).
fn bound<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct Bound;
    impl serde::de::Visitor<'_> for Bound {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number or \"+Inf\"")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<f64, E> {
            parse_bound(s).ok_or_else(|| E::custom(format!("le '{s}' is not a number or \"+Inf\"")))
        }
    }
    d.deserialize_any(Bound)
}

/// Reads `buckets` into a vector sized for a typical histogram up front (serde's default
/// grows it from empty for every row).
fn buckets<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<BucketRow>>, D::Error> {
    use serde::de::{Error, SeqAccess, Visitor};
    struct Buckets;
    impl<'de> Visitor<'de> for Buckets {
        type Value = Option<Vec<BucketRow>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of buckets {le, count}")
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(32);
            // A row is at most 64 KiB (`MAX_ROW_BYTES`), which bounds the buckets read;
            // their number is checked with the histogram, naming the field.
            while let Some(b) = seq.next_element::<BucketRow>()? {
                out.push(b);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(Buckets)
}

/// One window of a production series: an SLI's histogram (`count`, `sum`, `buckets`) or event
/// counts (`good`, `total`), or a KPI's mean (`value`) over `units`. In CSV, buckets are columns `le_<bound>` (`le_inf` for `+Inf`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesRow {
    /// Start of the window (RFC 3339), a whole multiple of `seconds` since the Unix epoch.
    #[schema(example = "2026-11-28T10:05:00Z", max_length = 64)]
    pub start: String,
    /// Length of the window in seconds; one length per metric.
    #[schema(minimum = 1, maximum = 86400, example = 60)]
    pub seconds: i64,
    /// Histogram: events in the window (equal to the `+Inf` bucket).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1e15)]
    pub count: Option<f64>,
    /// Histogram: sum of the window's values, in the metric's unit.
    #[serde(default)]
    pub sum: Option<f64>,
    /// Histogram: cumulative buckets, `le` strictly increasing, the last `+Inf`.
    #[serde(default, deserialize_with = "buckets")]
    #[schema(max_items = 201)]
    pub buckets: Option<Vec<BucketRow>>,
    /// Events: good events in the window.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1e15)]
    pub good: Option<f64>,
    /// Events: all events in the window.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1e15)]
    pub total: Option<f64>,
    /// KPI windows: the KPI's mean over the window's units (e.g. conversion 0.052).
    #[serde(default)]
    #[schema(minimum = -1e15, maximum = 1e15)]
    pub value: Option<f64>,
    /// KPI windows: the units the mean is over (sessions, users, impressions); > 0.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 1e15)]
    pub units: Option<f64>,
}

/// A CSV number field, if present.
fn csv_number(f: &CsvFields<'_>, name: &str) -> Result<Option<f64>, RowError> {
    f.get(name)
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| RowError::of(name, format!("{name} '{v}' is not a number")))
        })
        .transpose()
}

impl UploadRow for SeriesRow {
    const CSV_COLUMNS: &'static [(&'static str, bool)] = &[
        ("start", true),
        ("seconds", true),
        ("count", false),
        ("sum", false),
        ("good", false),
        ("total", false),
        ("value", false),
        ("units", false),
    ];

    fn csv_column_known(name: &str) -> bool {
        Self::CSV_COLUMNS.iter().any(|(c, _)| *c == name)
            || name.strip_prefix("le_").and_then(parse_bound).is_some()
    }

    fn from_csv(f: &CsvFields<'_>) -> Result<Self, RowError> {
        let seconds = f.required("seconds")?;
        let mut buckets = Vec::new();
        for (column, value) in f.present() {
            if let Some(le) = column.strip_prefix("le_").and_then(parse_bound) {
                let count = value.parse::<f64>().map_err(|_| {
                    RowError::of(column, format!("{column} '{value}' is not a number"))
                })?;
                buckets.push(BucketRow { le, count });
            }
        }
        buckets.sort_by(|a, b| a.le.total_cmp(&b.le));
        Ok(SeriesRow {
            start: f.required("start")?.to_owned(),
            seconds: seconds.parse().map_err(|_| {
                RowError::of(
                    "seconds",
                    format!("seconds '{seconds}' is not a whole number"),
                )
            })?,
            count: csv_number(f, "count")?,
            sum: csv_number(f, "sum")?,
            buckets: (!buckets.is_empty()).then_some(buckets),
            good: csv_number(f, "good")?,
            total: csv_number(f, "total")?,
            value: csv_number(f, "value")?,
            units: csv_number(f, "units")?,
        })
    }
}

/// A count field: finite, ≥ 0, at most [`MAX_ABS_VALUE`]; the issue names `field()` (built
/// only on error: this runs for every bucket of every row).
fn count(row: u64, field: impl Fn() -> String, v: f64) -> Result<f64, Issue> {
    if !(0.0..=MAX_ABS_VALUE).contains(&v) {
        return Err(Issue::row(
            row,
            Some(&field()),
            format!("{v} is not a count between 0 and {MAX_ABS_VALUE:e}"),
        ));
    }
    Ok(v)
}

/// Checks a histogram's buckets; returns the finite bounds and their cumulative counts.
fn histogram(row: u64, total: f64, buckets: &[BucketRow]) -> Result<(Vec<f64>, Vec<f64>), Issue> {
    if buckets.len() < 2 || buckets.len() > MAX_SERIES_BUCKETS + 1 {
        return Err(Issue::row(
            row,
            Some("buckets"),
            format!(
                "must list 2 to {} buckets, the last with le \"+Inf\"",
                MAX_SERIES_BUCKETS + 1
            ),
        ));
    }
    let mut bounds = Vec::with_capacity(buckets.len() - 1);
    let mut cumulative = Vec::with_capacity(buckets.len() - 1);
    let mut previous: Option<(f64, f64)> = None;
    for (i, b) in buckets.iter().enumerate() {
        let field = |f: &str| format!("buckets[{i}].{f}");
        let c = count(row, || field("count"), b.count)?;
        if let Some((le, before)) = previous {
            if b.le <= le {
                return Err(Issue::row(
                    row,
                    Some(&field("le")),
                    format!("{} does not exceed the previous bound {le}", b.le),
                ));
            }
            if c < before {
                return Err(Issue::row(
                    row,
                    Some(&field("count")),
                    format!("{c} is below the previous bucket's {before}: counts are cumulative"),
                ));
            }
        }
        previous = Some((b.le, c));
        if b.le.is_finite() {
            if b.le.abs() > MAX_ABS_VALUE {
                return Err(Issue::row(row, Some(&field("le")), "is out of range"));
            }
            bounds.push(b.le);
            cumulative.push(c);
        } else if i + 1 != buckets.len() {
            return Err(Issue::row(
                row,
                Some(&field("le")),
                "+Inf must be the last bucket",
            ));
        }
    }
    let last = &buckets[buckets.len() - 1];
    if last.le.is_finite() {
        return Err(Issue::row(
            row,
            Some(&format!("buckets[{}].le", buckets.len() - 1)),
            "the last bucket must be \"+Inf\"",
        ));
    }
    if last.count != total {
        return Err(Issue::row(
            row,
            Some(&format!("buckets[{}].count", buckets.len() - 1)),
            format!(
                "the +Inf bucket holds {} events but count is {total}",
                last.count
            ),
        ));
    }
    Ok((bounds, cumulative))
}

/// The window's data and the layout it implies.
fn window_data(row: u64, r: &SeriesRow, seconds: u32) -> Result<(WindowData, SeriesLayout), Issue> {
    let kpi = r.value.is_some() || r.units.is_some();
    match (&r.buckets, r.good, r.total) {
        (None, None, None) if kpi && r.count.is_none() && r.sum.is_none() => {
            values_window(row, r, seconds)
        }
        (Some(buckets), None, None) if !kpi => {
            let total = count(
                row,
                || "count".into(),
                r.count
                    .ok_or_else(|| Issue::row(row, Some("count"), "a histogram needs count"))?,
            )?;
            if let Some(s) = r.sum.filter(|s| !s.is_finite() || s.abs() > 1e300) {
                return Err(Issue::row(row, Some("sum"), format!("{s} is not finite")));
            }
            let (bounds, cumulative) = histogram(row, total, buckets)?;
            Ok((
                WindowData::Histogram {
                    count: total,
                    sum: r.sum,
                    cumulative,
                },
                SeriesLayout {
                    kind: SeriesKind::Histogram,
                    seconds,
                    bounds,
                },
            ))
        }
        (None, Some(good), Some(total)) if r.count.is_none() && r.sum.is_none() && !kpi => {
            let good = count(row, || "good".into(), good)?;
            let total = count(row, || "total".into(), total)?;
            if good > total {
                return Err(Issue::row(
                    row,
                    Some("good"),
                    format!("{good} good events exceed the {total} total"),
                ));
            }
            let layout = SeriesLayout {
                kind: SeriesKind::Events,
                seconds,
                bounds: vec![],
            };
            Ok((WindowData::Events { good, total }, layout))
        }
        _ => Err(Issue::row(
            row,
            None,
            "a window is a histogram (count, sum, buckets), events (good, total) or a KPI's value (value, units)",
        )),
    }
}

/// A KPI window: its mean `value` over `units` (> 0).
fn values_window(
    row: u64,
    r: &SeriesRow,
    seconds: u32,
) -> Result<(WindowData, SeriesLayout), Issue> {
    let units = count(
        row,
        || "units".into(),
        r.units
            .ok_or_else(|| Issue::row(row, Some("units"), "a KPI window needs its units"))?,
    )?;
    if units <= 0.0 {
        return Err(Issue::row(row, Some("units"), "must be greater than 0"));
    }
    let value = r
        .value
        .ok_or_else(|| Issue::row(row, Some("value"), "a KPI window needs its value"))?;
    if !value.is_finite() || value.abs() > crate::domain::metric::MAX_ABS_VALUE {
        return Err(Issue::row(
            row,
            Some("value"),
            format!("{value} is not a finite number within ±1e15"),
        ));
    }
    let layout = SeriesLayout {
        kind: SeriesKind::Values,
        seconds,
        bounds: vec![],
    };
    Ok((
        WindowData::Values {
            units,
            sum: value * units,
        },
        layout,
    ))
}

/// Validates one row against the layout (`layout` is set by the first valid row when the
/// metric has none yet).
fn check_row(
    row: u64,
    r: &SeriesRow,
    layout: &mut Option<SeriesLayout>,
    now: DateTime<Utc>,
) -> Result<SeriesWindow, Issue> {
    let seconds = u32::try_from(r.seconds)
        .ok()
        .filter(|s| (1..=MAX_WINDOW_SECONDS).contains(s))
        .ok_or_else(|| {
            Issue::row(
                row,
                Some("seconds"),
                format!("{} is not between 1 and {MAX_WINDOW_SECONDS}", r.seconds),
            )
        })?;
    let start = DateTime::parse_from_rfc3339(r.start.trim())
        .map_err(|_| {
            Issue::row(
                row,
                Some("start"),
                format!("'{}' is not an RFC 3339 timestamp", r.start),
            )
        })?
        .with_timezone(&Utc);
    let unix = start.timestamp();
    if start.timestamp_subsec_nanos() != 0 || unix.rem_euclid(i64::from(seconds)) != 0 {
        return Err(Issue::row(
            row,
            Some("start"),
            format!("{} is not aligned to the window length of {seconds} s (a whole multiple since the Unix epoch)", r.start),
        ));
    }
    if unix + i64::from(seconds) > now.timestamp() + CLOCK_SKEW_SECONDS {
        return Err(Issue::row(
            row,
            Some("start"),
            format!(
                "the window starting {} has not ended yet; send windows once complete",
                r.start
            ),
        ));
    }
    let (data, implied) = window_data(row, r, seconds)?;
    match layout {
        None => *layout = Some(implied),
        Some(l) => layout_matches(row, l, &implied)?,
    }
    Ok(SeriesWindow {
        row,
        start: unix,
        data,
    })
}

/// A window must have the series' kind, window length and bucket bounds.
fn layout_matches(row: u64, expected: &SeriesLayout, got: &SeriesLayout) -> Result<(), Issue> {
    if got.kind != expected.kind {
        let field = match expected.kind {
            SeriesKind::Histogram => "buckets",
            SeriesKind::Events => "good",
            SeriesKind::Values => "value",
        };
        return Err(Issue::row(
            row,
            Some(field),
            format!(
                "this metric's series holds {} windows; got {}",
                expected.kind, got.kind
            ),
        ));
    }
    if got.seconds != expected.seconds {
        return Err(Issue::row(
            row,
            Some("seconds"),
            format!(
                "this metric's windows are {} s long; got {}",
                expected.seconds, got.seconds
            ),
        ));
    }
    if got.bounds != expected.bounds {
        let i = got
            .bounds
            .iter()
            .zip(&expected.bounds)
            .position(|(a, b)| a != b)
            .unwrap_or(got.bounds.len().min(expected.bounds.len()));
        return Err(Issue::row(
            row,
            Some(&format!("buckets[{i}].le")),
            format!(
                "this metric's histogram has the bounds {:?} (+Inf); every window must use them",
                expected.bounds
            ),
        ));
    }
    Ok(())
}

/// A validated series upload and its layout (the stored one, or set by its first row).
pub struct ValidSeries {
    pub upload: ValidUpload<SeriesWindow>,
    pub layout: Option<SeriesLayout>,
}

/// Validates rows one by one, staging the valid ones while none is invalid.
struct Collect {
    layout: Option<SeriesLayout>,
    /// The range a KPI window's value must lie in (its metric's value type), if any.
    range: Option<(f64, f64)>,
    records: Spool<SeriesWindow>,
    staging: AppResult<()>,
    problems: Problems,
    now: DateTime<Utc>,
}

impl Collect {
    fn new(stored: Option<&SeriesLayout>, now: DateTime<Utc>) -> Collect {
        Collect {
            layout: stored.cloned(),
            range: None,
            records: Spool::default(),
            staging: Ok(()),
            problems: Problems::default(),
            now,
        }
    }

    fn take(&mut self, row: u64, parsed: Result<SeriesRow, RowError>) {
        let checked = parsed
            .map_err(|r| reading_issue(row, r))
            .and_then(|r| check_row(row, &r, &mut self.layout, self.now))
            .and_then(|w| self.in_range(row, w));
        match checked {
            Ok(rec) if self.problems.count == 0 && self.staging.is_ok() => {
                self.staging = self.records.push(rec)
            }
            Ok(_) => {}
            Err(issue) => self.problems.add(issue),
        }
    }

    /// A KPI window whose mean lies outside its metric's range is refused.
    fn in_range(&self, row: u64, w: SeriesWindow) -> Result<SeriesWindow, Issue> {
        if let (Some((lo, hi)), WindowData::Values { units, sum }) = (self.range, &w.data) {
            let v = sum / units;
            if v < lo - 1e-12 || v > hi + 1e-12 {
                return Err(Issue::row(
                    row,
                    Some("value"),
                    format!("{v} is outside the metric's range {lo} to {hi}"),
                ));
            }
        }
        Ok(w)
    }

    fn finish(self, received: u64) -> AppResult<ValidSeries> {
        self.staging?;
        if self.problems.count > 0 {
            return Err(self.problems.into_error(received, "window"));
        }
        Ok(ValidSeries {
            upload: ValidUpload {
                received,
                records: self.records,
            },
            layout: self.layout,
        })
    }
}

/// Reads and validates an upload of windows for a metric whose stored layout is `stored`; a
/// KPI window's value (its mean) must lie in `range` when given.
pub fn windows(
    stored: Option<&SeriesLayout>,
    input: impl Read,
    format: Format,
    (now, range): (DateTime<Utc>, Option<(f64, f64)>),
) -> AppResult<ValidSeries> {
    let mut collect = Collect::new(stored, now);
    collect.range = range;
    let received = read_rows::<SeriesRow>(input, format, |row, parsed| collect.take(row, parsed))?;
    collect.finish(received)
}

/// Validates windows built in memory (pulled from Prometheus) like uploaded ones.
pub fn rows(
    stored: Option<&SeriesLayout>,
    rows: Vec<SeriesRow>,
    now: DateTime<Utc>,
) -> AppResult<ValidSeries> {
    let mut collect = Collect::new(stored, now);
    let received = rows.len() as u64;
    for (i, r) in rows.into_iter().enumerate() {
        collect.take(i as u64 + 1, Ok(r));
    }
    collect.finish(received)
}
