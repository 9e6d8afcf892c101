-- Analyses as jobs: a request answered 202 is computed on a job worker, never on an HTTP
-- worker. The state machine: queued → running → succeeded | failed | cancelled (a DELETE sets
-- cancel_requested; the worker stops at its next stage). A restart fails the jobs that were
-- running and queues again those that were queued, so none stays "running".
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('analysis')),
    experiment_key TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    stage TEXT NOT NULL,
    progress DOUBLE PRECISION NOT NULL,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    analysis_id BIGINT REFERENCES analyses (id),
    error TEXT
);

CREATE INDEX jobs_unfinished ON jobs (state);
