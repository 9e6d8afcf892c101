//! Streaming readers for the three upload formats. Each hands rows to a callback one at a time,
//! so an upload is never held whole in memory as text.
//!
//! - `application/json`: one JSON array of row objects.
//! - `application/x-ndjson`: one row object per line; blank lines are skipped.
//! - `text/csv`: a header line naming the columns, then one row per line (RFC 4180 quoting).
//!
//! Rows are numbered from 1 in the order they appear (a CSV header is not a row).

use std::io::{BufRead, BufReader, Read};

use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::{AppError, AppResult};

/// An upload format, chosen by the request's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    /// The content types accepted for uploads, for error messages.
    pub const ACCEPTED: &'static str = "application/json, application/x-ndjson, text/csv";

    /// Maps a MIME essence (no parameters) to a format.
    pub fn from_mime(essence: &str) -> Option<Format> {
        match essence.to_ascii_lowercase().as_str() {
            "application/json" => Some(Format::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Format::Ndjson),
            "text/csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// The fields of one CSV record by column name; empty fields read as absent.
pub struct CsvFields<'a> {
    headers: &'a [String],
    record: &'a csv::StringRecord,
}

impl CsvFields<'_> {
    /// The field as written (not trimmed), when the column exists.
    fn raw(&self, name: &str) -> Option<&str> {
        let i = self.headers.iter().position(|h| h == name)?;
        self.record.get(i)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).map(str::trim).filter(|s| !s.is_empty())
    }

    /// Every (column, trimmed non-empty field) pair of the record, in header order.
    pub fn present(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .zip(self.record.iter())
            .map(|(h, v)| (h.as_str(), v.trim()))
            .filter(|(_, v)| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, RowError> {
        self.get(name).ok_or_else(|| RowError::missing(name))
    }

    /// A required field exactly as written (not trimmed), for identifiers: surrounding spaces
    /// are then seen and refused, as in JSON.
    pub fn required_raw(&self, name: &str) -> Result<&str, RowError> {
        self.get(name)
            .and(self.raw(name))
            .ok_or_else(|| RowError::missing(name))
    }
}

/// A row type that can be read from any upload format.
pub trait UploadRow: DeserializeOwned {
    /// CSV columns this row accepts, and whether each is required.
    const CSV_COLUMNS: &'static [(&'static str, bool)];
    /// Builds the row from one CSV record.
    fn from_csv(fields: &CsvFields<'_>) -> Result<Self, RowError>;
    /// Whether a CSV header may name this column (beyond [`Self::CSV_COLUMNS`] for rows
    /// with columns named by data, such as histogram buckets `le_<bound>`).
    fn csv_column_known(name: &str) -> bool {
        Self::CSV_COLUMNS.iter().any(|(c, _)| *c == name)
    }
}

/// Reads every row of `input`, calling `each(row_number, parsed_or_reason)`. Returns the number
/// of rows. A document that cannot be read as the format at all (a JSON syntax error outside a
/// row, a CSV header naming unknown columns) is a 400; a malformed row is reported to `each`.
pub fn read_rows<T: UploadRow>(
    input: impl Read,
    format: Format,
    mut each: impl FnMut(u64, Result<T, RowError>),
) -> AppResult<u64> {
    let input = RowBound::new(input, format);
    match format {
        Format::Json => read_json_array(input, &mut each),
        Format::Ndjson => read_ndjson(input, &mut each),
        Format::Csv => read_csv(input, &mut each),
    }
}

fn read_json_array<T: UploadRow>(
    input: impl Read,
    each: &mut dyn FnMut(u64, Result<T, RowError>),
) -> AppResult<u64> {
    use serde::de::{Deserializer as _, SeqAccess, Visitor};
    struct Rows<'a, T>(&'a mut dyn FnMut(u64, Result<T, RowError>));
    impl<'de, T: UploadRow> Visitor<'de> for Rows<'_, T> {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of row objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
            let mut n = 0;
            while let Some(raw) = seq.next_element::<Box<serde_json::value::RawValue>>()? {
                n += 1;
                (self.0)(
                    n,
                    serde_json::from_str::<T>(raw.get()).map_err(|e| row_error::<T>(raw.get(), &e)),
                );
            }
            Ok(n)
        }
    }
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 16, input));
    let n = de
        .deserialize_seq(Rows(each))
        .map_err(|e| AppError::BadRequest(format!("malformed JSON body: {e}")))?;
    de.end()
        .map_err(|e| AppError::BadRequest(format!("malformed JSON body: {e}")))?;
    Ok(n)
}

fn read_ndjson<T: UploadRow>(
    input: impl Read,
    each: &mut dyn FnMut(u64, Result<T, RowError>),
) -> AppResult<u64> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut line = Vec::with_capacity(256);
    let mut n = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| AppError::BadRequest(format!("cannot read the body: {e}")))?;
        if read == 0 {
            return Ok(n);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        n += 1;
        let Ok(text) = std::str::from_utf8(&line) else {
            return Err(AppError::BadRequest(format!(
                "malformed NDJSON: row {n} is not valid UTF-8"
            )));
        };
        match serde_json::from_str::<T>(text) {
            Ok(row) => each(n, Ok(row)),
            // A line that is not JSON at all (or not UTF-8) is a syntax error of the document:
            // 400, like a malformed JSON array; valid JSON of the wrong shape is a row issue.
            Err(e) if matches!(e.classify(), Category::Syntax | Category::Eof) => {
                return Err(AppError::BadRequest(format!(
                    "malformed NDJSON: row {n} is not valid JSON: {}",
                    strip_position(&e)
                )))
            }
            Err(e) => each(n, Err(row_error::<T>(text, &e))),
        }
    }
}

fn read_csv<T: UploadRow>(
    input: impl Read,
    each: &mut dyn FnMut(u64, Result<T, RowError>),
) -> AppResult<u64> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| AppError::BadRequest(format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut issues = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if headers[..i].contains(h) {
            issues.push(crate::error::Issue::field(
                format!("header[{i}]"),
                format!("column '{h}' appears more than once"),
            ));
        } else if !T::csv_column_known(h) {
            issues.push(crate::error::Issue::field(
                format!("header[{i}]"),
                format!("unknown column '{h}'"),
            ));
        }
    }
    for (c, required) in T::CSV_COLUMNS {
        if *required && !headers.iter().any(|h| h == c) {
            issues.push(crate::error::Issue::field(
                "header",
                format!("required column '{c}' is missing"),
            ));
        }
    }
    if !issues.is_empty() {
        let expected: Vec<&str> = T::CSV_COLUMNS.iter().map(|c| c.0).collect();
        return Err(AppError::invalid(
            format!(
                "the CSV header must name columns among: {}",
                expected.join(", ")
            ),
            issues,
        ));
    }
    let mut record = csv::StringRecord::new();
    let mut n = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(n),
            Ok(true) => {
                n += 1;
                if record.len() != headers.len() {
                    each(
                        n,
                        Err(RowError::from(format!(
                            "has {} fields; the header has {}",
                            record.len(),
                            headers.len()
                        ))),
                    );
                } else {
                    each(
                        n,
                        T::from_csv(&CsvFields {
                            headers: &headers,
                            record: &record,
                        }),
                    );
                }
            }
            Err(e) if e.is_io_error() => {
                return Err(AppError::BadRequest(format!("cannot read the body: {e}")))
            }
            Err(e) => {
                n += 1;
                each(n, Err(RowError::from(format!("malformed CSV: {e}"))));
            }
        }
    }
}

/// Why a row could not be read: the reason and, when known, the field it concerns as a path
/// into the row (`buckets[3].count`).
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub field: Option<String>,
    pub message: String,
}

impl RowError {
    /// A field of the row is missing or empty.
    pub fn missing(name: &str) -> RowError {
        RowError::of(name, format!("missing field `{name}`"))
    }

    /// What is wrong with the field `name`.
    pub fn of(name: &str, message: String) -> RowError {
        RowError {
            field: Some(name.to_owned()),
            message,
        }
    }
}

impl From<String> for RowError {
    fn from(message: String) -> RowError {
        RowError {
            field: None,
            message,
        }
    }
}

/// A JSON row that does not fit `T`: the message, and the field found by reading the row again
/// while tracking the path (only on error, so valid rows are read at full speed).
fn row_error<T: UploadRow>(text: &str, e: &serde_json::Error) -> RowError {
    let mut de = serde_json::Deserializer::from_str(text);
    let field = serde_path_to_error::deserialize::<_, T>(&mut de)
        .err()
        .map(|e| e.path().to_string())
        .filter(|p| p != "." && !p.is_empty() && p != "?");
    RowError {
        field,
        message: strip_position(e),
    }
}

/// serde_json's messages end in "at line 1 column 42"; inside one row that position only
/// confuses, since rows are reported by number.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Longest accepted row, in bytes of the body. Every parser buffers a row (or one of its
/// strings) whole, so without this one 500 MB row would take 500 MB of memory.
pub const MAX_ROW_BYTES: usize = 65_536;

/// A reader that fails once a row of the body grows past [`MAX_ROW_BYTES`]. Rows end at a
/// newline (NDJSON), at a newline outside quotes (CSV), or at a comma between the elements of
/// the top-level array (JSON, tracking strings and nesting).
struct RowBound<R> {
    inner: R,
    format: Format,
    since: usize,
    row: u64,
    in_string: bool,
    escape: bool,
    depth: u32,
}

impl<R: Read> RowBound<R> {
    fn new(inner: R, format: Format) -> Self {
        RowBound {
            inner,
            format,
            since: 0,
            row: 1,
            in_string: false,
            escape: false,
            depth: 0,
        }
    }

    /// Whether byte `b` ends a row.
    fn boundary(&mut self, b: u8) -> bool {
        match self.format {
            Format::Ndjson => b == b'\n',
            Format::Csv => {
                if b == b'"' {
                    self.in_string = !self.in_string;
                }
                b == b'\n' && !self.in_string
            }
            Format::Json => {
                if self.in_string {
                    match (self.escape, b) {
                        (true, _) => self.escape = false,
                        (false, b'\\') => self.escape = true,
                        (false, b'"') => self.in_string = false,
                        _ => {}
                    }
                    return false;
                }
                match b {
                    b'"' => self.in_string = true,
                    b'[' | b'{' => {
                        self.depth += 1;
                        return self.depth == 1;
                    }
                    b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                    b',' => return self.depth == 1,
                    _ => {}
                }
                false
            }
        }
    }
}

impl<R: Read> RowBound<R> {
    fn too_long(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "row {} is longer than {MAX_ROW_BYTES} bytes",
                // A CSV header is not a row; JSON's opening bracket is counted.
                match self.format {
                    Format::Ndjson => self.row,
                    Format::Csv | Format::Json => self.row.saturating_sub(1),
                }
            ),
        )
    }
}

impl<R: Read> Read for RowBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.format == Format::Ndjson {
            // Rows end at every newline: measure the runs between them (no per-byte state).
            let mut last = 0;
            for at in memchr::memchr_iter(b'\n', &buf[..n]) {
                self.since += at - last;
                if self.since > MAX_ROW_BYTES {
                    return Err(self.too_long());
                }
                self.row += 1;
                self.since = 0;
                last = at + 1;
            }
            self.since += n - last;
            if self.since > MAX_ROW_BYTES {
                return Err(self.too_long());
            }
            return Ok(n);
        }
        for &b in &buf[..n] {
            if self.boundary(b) {
                self.since = 0;
                self.row += 1;
            } else {
                self.since += 1;
                if self.since > MAX_ROW_BYTES {
                    return Err(self.too_long());
                }
            }
        }
        Ok(n)
    }
}
