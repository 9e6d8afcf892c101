//! Analyses as jobs: a request answered 202 is queued in the database and computed by one of
//! a fixed set of job workers (never an HTTP worker), which take the same analysis slots as
//! synchronous analyses, so at most `SLOPROOF_MAX_CONCURRENT_ANALYSES` compute at once; jobs
//! leave one of them to requests when there are two or more. A job
//! reports its stage and progress; a DELETE asks it to stop (at once while queued, at its next
//! stage while running, nothing stored); at start-up the jobs a stopped process left running
//! are marked failed and the queued ones are queued again, so none stays "running".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{self, AnalysisLimits, Stage};
use crate::analysis::AnalysisRequest;
use crate::domain::text_enum;
use crate::error::{AppError, AppResult};
use crate::store::jobs::{self as store, StoredJob};
use crate::store::Db;

text_enum! {
    /// Where a job is: `queued`, `running`, then `succeeded`, `failed` or `cancelled`.
    JobState { Queued => "queued", Running => "running", Succeeded => "succeeded", Failed => "failed", Cancelled => "cancelled" }
}

/// An analysis job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: i64,
    /// `analysis`.
    pub kind: String,
    /// The experiment's key.
    pub experiment: String,
    pub state: JobState,
    /// `queued`, `loading` (reading the data), `computing`, `storing`, or the final state.
    pub stage: String,
    /// 0–100, by stage: loading 5, computing 35, storing 95, done 100.
    pub progress_percent: f64,
    /// A DELETE asked the job to stop; it does at its next stage.
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    /// Who submitted it (the token's name).
    pub created_by: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// While computing: when it should finish, extrapolated from the time the stages so far
    /// took (rough: the computing stage is most of the work).
    pub eta: Option<DateTime<Utc>>,
    /// When succeeded: the stored analysis and its URL.
    pub analysis_id: Option<i64>,
    pub analysis_href: Option<String>,
    /// When failed: why.
    pub error: Option<String>,
}

/// Analysis slots: how many analyses compute now, shared by requests and job workers.
#[derive(Clone)]
pub struct Slots {
    running: Arc<AtomicUsize>,
    max: usize,
}

/// One slot of [`Slots`], released when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots {
            running: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot, or None when `max` analyses are computing.
    pub fn try_take(&self) -> Option<Slot> {
        self.take_below(self.max)
    }

    /// A slot for a job worker: jobs leave one slot to requests when there are two or more,
    /// so a synchronous analysis is not refused because jobs hold every slot.
    pub fn try_take_for_job(&self) -> Option<Slot> {
        let limit = if self.max >= 2 {
            self.max - 1
        } else {
            self.max
        };
        self.take_below(limit)
    }

    fn take_below(&self, limit: usize) -> Option<Slot> {
        let before = self.running.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(self.running.clone());
        (before < limit).then_some(slot)
    }
}

/// The job workers' queue.
pub struct JobRunner {
    queue: Mutex<Sender<i64>>,
}

fn time(t: chrono::NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn view(row: &StoredJob) -> AppResult<Job> {
    let state = JobState::parse(&row.state).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!("job {} has state '{}'", row.id, row.state))
    })?;
    let eta = match (state, row.started_at) {
        (JobState::Running, Some(started)) if row.progress >= 0.3 => {
            let elapsed = (Utc::now() - time(started)).num_milliseconds().max(0) as f64;
            let left = elapsed * (1.0 - row.progress) / row.progress;
            Some(Utc::now() + chrono::TimeDelta::milliseconds(left as i64))
        }
        _ => None,
    };
    Ok(Job {
        id: row.id,
        kind: row.kind.clone(),
        experiment: row.experiment_key.clone(),
        state,
        stage: row.stage.clone(),
        progress_percent: (row.progress * 100.0).round(),
        cancel_requested: row.cancel_requested,
        created_at: time(row.created_at),
        created_by: row.created_by.clone(),
        started_at: row.started_at.map(time),
        finished_at: row.finished_at.map(time),
        eta,
        analysis_id: row.analysis_id,
        analysis_href: row.analysis_id.map(|id| format!("/api/v1/analyses/{id}")),
        error: row.error.clone(),
    })
}

impl JobRunner {
    /// Starts `workers` job workers on `db`, sharing `slots`; fails the jobs a previous process
    /// left running and queues again the ones it left queued.
    pub fn start(db: &Db, workers: usize, slots: &Slots, limits: AnalysisLimits) -> JobRunner {
        let (tx, rx) = channel::<i64>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let (db, rx, slots) = (db.clone(), rx.clone(), slots.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("sloproof-job-{i}"))
                .spawn(move || work(&db, &rx, &slots, limits));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a job worker");
            }
        }
        let recovered = (|| -> AppResult<_> {
            let c = &mut *db.conn()?;
            Ok((store::fail_interrupted(c)?, store::in_state(c, "queued")?))
        })();
        match recovered {
            Ok((failed, queued)) => {
                if failed > 0 {
                    tracing::warn!(
                        failed,
                        "analysis jobs interrupted by a restart marked failed"
                    );
                }
                for job in queued {
                    let _ = tx.send(job.id);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot recover analysis jobs"),
        }
        JobRunner {
            queue: Mutex::new(tx),
        }
    }

    /// Queues an analysis of `key` (already admitted) and answers the job.
    pub fn submit(
        &self,
        db: &Db,
        key: &str,
        request: &AnalysisRequest,
        actor: &str,
        max_queued: usize,
    ) -> AppResult<Job> {
        let conn = &mut *db.conn()?;
        if store::unfinished(conn)? >= max_queued as i64 {
            return Err(AppError::busy(
                format!("{max_queued} analysis jobs are queued or running, the most this server holds (SLOPROOF_MAX_QUEUED_JOBS)"),
                30,
            ));
        }
        let text = serde_json::to_string(request).map_err(|e| AppError::Internal(e.into()))?;
        let row = store::insert(conn, key, &text, actor)?;
        self.queue
            .lock()
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the job queue is poisoned")))?
            .send(row.id)
            .map_err(|_| AppError::Internal(anyhow::anyhow!("no job worker is running")))?;
        view(&row)
    }
}

/// The job with this id, or 404.
pub fn get(db: &Db, id: i64) -> AppResult<Job> {
    view(&store::get(&mut *db.conn()?, id)?)
}

/// Asks job `id` to stop (409 when it has finished).
pub fn cancel(db: &Db, id: i64) -> AppResult<Job> {
    view(&store::cancel(&mut *db.conn()?, id)?)
}

fn work(db: &Db, rx: &Mutex<Receiver<i64>>, slots: &Slots, limits: AnalysisLimits) {
    loop {
        let next = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(id) = next else { return };
        let slot = loop {
            if let Some(s) = slots.try_take_for_job() {
                break s;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(db, id, limits)));
        drop(slot);
        let failed = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("the analysis panicked".to_owned()),
        };
        if let Some(why) = failed {
            tracing::error!(job = id, error = %why, "analysis job failed");
            let opaque = "an internal error stopped the analysis; the server's log has the details";
            if let Ok(mut c) = db.conn() {
                let _ = store::finish(&mut c, id, "failed", None, Some(opaque));
            }
        }
    }
}

/// Runs job `id` if it is still queued; its own failures (bad data, a cancel) are recorded
/// on it, and only internal errors come back.
fn run_job(db: &Db, id: i64, limits: AnalysisLimits) -> AppResult<()> {
    let job = {
        let conn = &mut *db.conn()?;
        if !store::start(conn, id)? {
            return Ok(());
        }
        store::get(conn, id)?
    };
    let request: AnalysisRequest = serde_json::from_str(&job.request)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("job {id}'s request: {e}")))?;
    let mut cancelled = false;
    let mut stage = |s: Stage| {
        let (name, progress) = match s {
            Stage::Loading => ("loading", 0.05),
            Stage::Computing => ("computing", 0.35),
            Stage::Storing => ("storing", 0.95),
        };
        if store::progress(&mut *db.conn()?, id, name, progress)? {
            cancelled = true;
            return Err(AppError::Conflict(format!("job {id} was cancelled")));
        }
        Ok(())
    };
    let result = service::run_staged(db, &job.experiment_key, &request, limits, &mut stage);
    let conn = &mut *db.conn()?;
    match result {
        Ok(stored) => store::finish(conn, id, "succeeded", Some(stored.id), None),
        Err(_) if cancelled => store::finish(conn, id, "cancelled", None, None),
        Err(AppError::Internal(e)) => Err(AppError::Internal(e)),
        Err(e) => store::finish(conn, id, "failed", None, Some(&e.to_string())),
    }
}
