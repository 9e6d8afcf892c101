//! Bulk uploads: `POST /api/v1/experiments/{key}/assignments` and `.../observations`.
//!
//! The body is streamed: the async handler forwards chunks through a bounded channel to a
//! blocking task that parses, validates and stores the rows, so a large upload is never held in
//! memory as text and the async workers never block.

use std::io::{self, Read};

use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::caller::{Access, Caller, Operation};
use super::AppState;
use crate::error::{AppError, AppResult};
use crate::ingest::read::Format;
use crate::ingest::service::{self, Upload};
use crate::ingest::{AssignmentRow, IngestSummary, ObservationRow, OnConflict};

pub const INGEST_ASSIGNMENTS: Operation = Operation::new(
    "ingest_assignments",
    "POST",
    "/api/v1/experiments/{key}/assignments",
    Access::Write,
);
pub const INGEST_OBSERVATIONS: Operation = Operation::new(
    "ingest_observations",
    "POST",
    "/api/v1/experiments/{key}/observations",
    Access::Write,
);

/// Chunks buffered between the network and the parser.
const CHANNEL_CHUNKS: usize = 32;

/// What the async side sends the parser.
pub enum Piece {
    Data(Bytes),
    /// The whole body was received.
    End,
    /// The body could not be read to its end.
    Abort,
}

/// A `Read` over body chunks sent from the async side. The body ends only at an explicit
/// [`Piece::End`]: an abort, or a sender that went away without one (the request was dropped,
/// say at shutdown), is an error, so a truncated upload can never be mistaken for a complete one.
pub struct ChannelReader {
    rx: mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(chunk)) => self.current = chunk,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Abort) => return Err(io::Error::other("upload aborted")),
                None => {
                    return Err(io::Error::other(
                        "upload aborted: the request ended before its body",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// What to do when an uploaded observation differs from the stored one.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Reject the whole upload (422) and list the conflicting rows.
    #[default]
    Reject,
    /// Overwrite the stored value.
    Replace,
}

impl From<ConflictPolicy> for OnConflict {
    fn from(p: ConflictPolicy) -> OnConflict {
        match p {
            ConflictPolicy::Reject => OnConflict::Reject,
            ConflictPolicy::Replace => OnConflict::Replace,
        }
    }
}

/// Query parameters of an observation upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ObservationQuery {
    /// `reject` (default) or `replace`.
    #[serde(default)]
    pub on_conflict: ConflictPolicy,
}

pub(super) fn format_of(req: &HttpRequest) -> AppResult<Format> {
    let unsupported = |got: String| AppError::UnsupportedMediaType {
        got,
        expected: Format::ACCEPTED,
    };
    let mime = req
        .mime_type()
        .map_err(|_| unsupported("(unparseable)".into()))?;
    let mime = mime.ok_or_else(|| unsupported("(none)".into()))?;
    Format::from_mime(mime.essence_str()).ok_or_else(|| unsupported(mime.essence_str().to_owned()))
}

/// Loads the experiment, then streams the body into the upload on a blocking thread.
async fn stream_upload(
    state: web::Data<AppState>,
    key: String,
    req: HttpRequest,
    payload: web::Payload,
    kind: Upload,
) -> AppResult<IngestSummary> {
    let format = format_of(&req)?;
    check_declared_length(&state, &req)?;
    let experiment = state.run(move |db| service::experiment(db, &key)).await?;
    stream_body(&state, payload, move |db, reader| {
        service::upload(db, &experiment, kind, reader, format)
    })
    .await
}

/// A 413 before reading when the declared length is over the upload limit.
pub(super) fn check_declared_length(state: &AppState, req: &HttpRequest) -> AppResult<()> {
    let limit = state.limits.ingest_body_bytes;
    let declared: Option<usize> = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::PayloadTooLarge { limit });
    }
    Ok(())
}

/// Streams the request body to `work`, which reads it on a blocking thread; the body counts
/// as whole only once its last chunk arrived, and is capped at the upload limit.
pub(super) async fn stream_body<T: Send + 'static>(
    state: &web::Data<AppState>,
    mut payload: web::Payload,
    work: impl FnOnce(&crate::store::Db, ChannelReader) -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    let limit = state.limits.ingest_body_bytes;
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
        ended: false,
    };
    let work = state.run(move |db| work(db, reader));
    let pump = async move {
        let mut total = 0usize;
        let mut draining = false;
        while let Some(chunk) = payload.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(_) if draining => break,
                Err(e) => {
                    let _ = tx.send(Piece::Abort).await;
                    return Err(AppError::BadRequest(format!(
                        "cannot read the request body: {e}"
                    )));
                }
            };
            total += chunk.len();
            if draining {
                if total > limit {
                    break;
                }
                continue;
            }
            if total > limit {
                let _ = tx.send(Piece::Abort).await;
                return Err(AppError::PayloadTooLarge { limit });
            }
            if tx.send(Piece::Data(chunk)).await.is_err() {
                // The parser stopped early and its result says why; read (and drop) the rest
                // of the body, up to the limit, so a client still sending gets that answer
                // instead of a reset connection.
                draining = true;
            }
        }
        if !draining {
            // Only now is the body known to be whole.
            let _ = tx.send(Piece::End).await;
        }
        Ok(())
    };
    let (pumped, worked) = futures_util::join!(pump, work);
    pumped?;
    worked
}

const CSV_ASSIGNMENTS: &str = "unit_id,variant,assigned_at\nu-1,control,2026-11-01T10:00:00Z\n";
const CSV_OBSERVATIONS: &str = "unit_id,metric,value,period\nu-1,checkout-latency,312.5,post\n";

/// Uploads unit assignments, all or nothing.
///
/// Rows may come as a JSON array, NDJSON or CSV with a header. Re-sending an identical row is a
/// no-op counted in `duplicates`; assigning a stored unit to a different variant is rejected.
#[utoipa::path(
    post, path = "/api/v1/experiments/{key}/assignments", operation_id = "ingest_assignments", tag = "ingestion",
    params(("key" = String, Path, description = "Experiment key")),
    request_body(description = "Assignment rows", content(
        (Vec<AssignmentRow> = "application/json"),
        (AssignmentRow = "application/x-ndjson"),
        (String = "text/csv", example = json!(CSV_ASSIGNMENTS)),
    )),
    responses((status = 200, description = "All rows were stored or were duplicates", body = IngestSummary))
)]
pub async fn ingest_assignments(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<web::Json<IngestSummary>> {
    caller.require(&INGEST_ASSIGNMENTS)?;
    let summary = stream_upload(state, key.into_inner(), req, payload, Upload::Assignments).await?;
    Ok(web::Json(summary))
}

/// Uploads unit-level observations, all or nothing.
///
/// One value per (unit, metric, period). Re-sending an identical row is a no-op counted in
/// `duplicates`; a different value for a stored key is rejected unless `on_conflict=replace`.
#[utoipa::path(
    post, path = "/api/v1/experiments/{key}/observations", operation_id = "ingest_observations", tag = "ingestion",
    params(("key" = String, Path, description = "Experiment key"), ObservationQuery),
    request_body(description = "Observation rows", content(
        (Vec<ObservationRow> = "application/json"),
        (ObservationRow = "application/x-ndjson"),
        (String = "text/csv", example = json!(CSV_OBSERVATIONS)),
    )),
    responses((status = 200, description = "All rows were stored, replaced or were duplicates", body = IngestSummary))
)]
pub async fn ingest_observations(
    state: web::Data<AppState>,
    caller: Caller,
    key: web::Path<String>,
    query: super::query::Query<ObservationQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<web::Json<IngestSummary>> {
    caller.require(&INGEST_OBSERVATIONS)?;
    let kind = Upload::Observations(query.on_conflict.into());
    let summary = stream_upload(state, key.into_inner(), req, payload, kind).await?;
    Ok(web::Json(summary))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reader(pieces: Vec<Piece>) -> ChannelReader {
        let (tx, rx) = mpsc::channel(pieces.len().max(1));
        for p in pieces {
            tx.try_send(p).ok().unwrap();
        }
        ChannelReader {
            rx,
            current: Bytes::new(),
            ended: false,
        }
    }

    /// A body ends only at its explicit end: a sender dropped without it (the request future
    /// dropped mid-body, e.g. at shutdown) is an error even when the bytes so far end on a row
    /// boundary, so a truncated upload is never committed as complete.
    #[test]
    fn a_body_without_its_end_is_an_error() {
        let rows = Bytes::from_static(b"{\"unit_id\":\"u1\",\"variant\":\"a\"}\n");
        let mut whole = String::new();
        reader(vec![Piece::Data(rows.clone()), Piece::End])
            .read_to_string(&mut whole)
            .unwrap();
        assert_eq!(whole.as_bytes(), &rows[..]);
        let mut cut = String::new();
        assert!(reader(vec![Piece::Data(rows.clone())])
            .read_to_string(&mut cut)
            .is_err());
        assert!(reader(vec![Piece::Data(rows), Piece::Abort])
            .read_to_string(&mut String::new())
            .is_err());
    }
}
