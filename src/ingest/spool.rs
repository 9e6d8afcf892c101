//! Bounded-memory staging of an upload's validated rows.
//!
//! An upload may be 512 MiB of terse rows (tens of millions). Its rows are validated as they
//! stream in; up to [`BATCH_ROWS`] are kept in memory, and each full batch is appended to an
//! anonymous temporary file (removed by the OS when the request ends, however it ends). Once the
//! whole body has been read and every row is valid, the rows are read back in upload order, one
//! batch at a time, and written in one transaction. Memory stays at a batch or two whatever the
//! upload's size, and no database lock is held while a slow client is still sending.
//!
//! The file format is private and short-lived: fixed-width little-endian fields, strings
//! length-prefixed.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use chrono::{DateTime, NaiveDateTime};

use crate::domain::experiment::Period;
use crate::domain::series::{SeriesWindow, WindowData};
use crate::domain::upload::{AssignmentRecord, ObservationRecord};
use crate::error::{AppError, AppResult};

/// Rows held in memory and written per batch.
pub const BATCH_ROWS: usize = 50_000;

/// A row that can be staged in the spool file.
pub trait Record: Sized {
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(input: &mut impl Read) -> io::Result<Self>;
}

/// Validated rows of one upload, in upload order.
pub struct Spool<R> {
    batch: Vec<R>,
    file: Option<BufWriter<File>>,
    spilled: u64,
    scratch: Vec<u8>,
}

impl<R: Record> Default for Spool<R> {
    fn default() -> Self {
        Spool {
            batch: Vec::new(),
            file: None,
            spilled: 0,
            scratch: Vec::new(),
        }
    }
}

fn spool_error(e: io::Error) -> AppError {
    AppError::Internal(anyhow::Error::new(e).context("cannot stage the upload in a temporary file"))
}

impl<R: Record> Spool<R> {
    /// Adds a row; a full batch moves to the temporary file.
    pub fn push(&mut self, row: R) -> AppResult<()> {
        self.batch.push(row);
        if self.batch.len() >= BATCH_ROWS {
            self.spill().map_err(spool_error)?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self
                .file
                .insert(BufWriter::with_capacity(1 << 20, tempfile::tempfile()?)),
        };
        for row in self.batch.drain(..) {
            self.scratch.clear();
            row.encode(&mut self.scratch);
            file.write_all(&self.scratch)?;
            self.spilled += 1;
        }
        Ok(())
    }

    /// Hands every row to `write`, in upload order, [`BATCH_ROWS`] at a time.
    pub fn drain(self, mut write: impl FnMut(&[R]) -> AppResult<()>) -> AppResult<()> {
        if let Some(file) = self.file {
            let mut file = file.into_inner().map_err(|e| spool_error(e.into_error()))?;
            file.seek(SeekFrom::Start(0)).map_err(spool_error)?;
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            for _ in 0..self.spilled {
                batch.push(R::decode(&mut reader).map_err(spool_error)?);
                if batch.len() == BATCH_ROWS {
                    write(&batch)?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                write(&batch)?;
            }
        }
        if !self.batch.is_empty() {
            write(&self.batch)?;
        }
        Ok(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_time(out: &mut Vec<u8>, t: Option<NaiveDateTime>) {
    match t {
        None => out.push(0),
        Some(t) => {
            let t = t.and_utc();
            out.push(1);
            out.extend_from_slice(&t.timestamp().to_le_bytes());
            out.extend_from_slice(&t.timestamp_subsec_nanos().to_le_bytes());
        }
    }
}

fn take<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    input.read_exact(&mut b)?;
    Ok(b)
}

fn take_str(input: &mut impl Read) -> io::Result<String> {
    let len = u32::from_le_bytes(take(input)?) as usize;
    let mut b = vec![0u8; len];
    input.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn take_time(input: &mut impl Read) -> io::Result<Option<NaiveDateTime>> {
    if take::<1>(input)?[0] == 0 {
        return Ok(None);
    }
    let secs = i64::from_le_bytes(take(input)?);
    let nanos = u32::from_le_bytes(take(input)?);
    DateTime::from_timestamp(secs, nanos)
        .map(|t| Some(t.naive_utc()))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "timestamp out of range"))
}

impl Record for AssignmentRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.row.to_le_bytes());
        put_str(out, &self.unit_id);
        out.extend_from_slice(&self.variant_id.to_le_bytes());
        put_time(out, self.assigned_at);
    }

    fn decode(input: &mut impl Read) -> io::Result<Self> {
        Ok(AssignmentRecord {
            row: u64::from_le_bytes(take(input)?),
            unit_id: take_str(input)?,
            variant_id: i64::from_le_bytes(take(input)?),
            assigned_at: take_time(input)?,
        })
    }
}

impl Record for ObservationRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.row.to_le_bytes());
        put_str(out, &self.unit_id);
        out.extend_from_slice(&self.metric_id.to_le_bytes());
        out.push(u8::from(self.period == Period::Pre));
        out.extend_from_slice(&self.value.to_bits().to_le_bytes());
        put_time(out, self.observed_at);
    }

    fn decode(input: &mut impl Read) -> io::Result<Self> {
        Ok(ObservationRecord {
            row: u64::from_le_bytes(take(input)?),
            unit_id: take_str(input)?,
            metric_id: i64::from_le_bytes(take(input)?),
            period: if take::<1>(input)?[0] == 1 {
                Period::Pre
            } else {
                Period::Post
            },
            value: f64::from_bits(u64::from_le_bytes(take(input)?)),
            observed_at: take_time(input)?,
        })
    }
}

fn put_f64(out: &mut Vec<u8>, x: f64) {
    out.extend_from_slice(&x.to_bits().to_le_bytes());
}

fn take_f64(input: &mut impl Read) -> io::Result<f64> {
    Ok(f64::from_bits(u64::from_le_bytes(take(input)?)))
}

impl Record for SeriesWindow {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.row.to_le_bytes());
        out.extend_from_slice(&self.start.to_le_bytes());
        match &self.data {
            WindowData::Histogram {
                count,
                sum,
                cumulative,
            } => {
                out.push(0);
                put_f64(out, *count);
                put_f64(out, sum.unwrap_or(f64::NAN));
                out.extend_from_slice(&(cumulative.len() as u32).to_le_bytes());
                for c in cumulative {
                    put_f64(out, *c);
                }
            }
            WindowData::Events { good, total } => {
                out.push(1);
                put_f64(out, *good);
                put_f64(out, *total);
            }
            WindowData::Values { units, sum } => {
                out.push(2);
                put_f64(out, *units);
                put_f64(out, *sum);
            }
        }
    }

    fn decode(input: &mut impl Read) -> io::Result<Self> {
        let row = u64::from_le_bytes(take(input)?);
        let start = i64::from_le_bytes(take(input)?);
        let tag = take::<1>(input)?[0];
        let data = if tag == 2 {
            WindowData::Values {
                units: take_f64(input)?,
                sum: take_f64(input)?,
            }
        } else if tag == 0 {
            let count = take_f64(input)?;
            let sum = Some(take_f64(input)?).filter(|s| !s.is_nan());
            let n = u32::from_le_bytes(take(input)?) as usize;
            let cumulative = (0..n).map(|_| take_f64(input)).collect::<io::Result<_>>()?;
            WindowData::Histogram {
                count,
                sum,
                cumulative,
            }
        } else {
            WindowData::Events {
                good: take_f64(input)?,
                total: take_f64(input)?,
            }
        };
        Ok(SeriesWindow { row, start, data })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn observation(i: u64) -> ObservationRecord {
        ObservationRecord {
            row: i + 1,
            unit_id: format!("ü {i}"),
            metric_id: (i % 3) as i64,
            period: if i % 2 == 0 {
                Period::Pre
            } else {
                Period::Post
            },
            value: i as f64 * 0.1 - 7.0,
            observed_at: (i % 5 == 0).then(|| {
                DateTime::from_timestamp(1_764_000_000 + i as i64, 123_456_789)
                    .unwrap()
                    .naive_utc()
            }),
        }
    }

    /// Rows come back exactly and in order, across spilled batches and the in-memory tail.
    #[test]
    fn rows_round_trip_in_order_across_batches() {
        let n = BATCH_ROWS as u64 * 2 + 17;
        let mut spool = Spool::default();
        for i in 0..n {
            spool.push(observation(i)).unwrap();
        }
        let mut back = Vec::new();
        let mut sizes = Vec::new();
        spool
            .drain(|batch| {
                sizes.push(batch.len());
                back.extend_from_slice(batch);
                Ok(())
            })
            .unwrap();
        assert_eq!(sizes, vec![BATCH_ROWS, BATCH_ROWS, 17]);
        assert_eq!(back.len() as u64, n);
        for (i, r) in back.iter().enumerate() {
            assert_eq!(*r, observation(i as u64));
        }
    }
}
