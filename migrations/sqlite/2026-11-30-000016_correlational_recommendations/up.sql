-- A recommendation rests on an experiment's analysis or on an observational (correlational)
-- analysis of production history: exactly one of the two ids is set. SQLite cannot drop a
-- NOT NULL, so the table is rebuilt (SQLite's documented 12-step procedure): foreign keys are
-- switched off outside the transaction, which copies every row unchanged.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE recommendations_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id BIGINT REFERENCES analyses (id),
    observational_analysis_id BIGINT REFERENCES observational_analyses (id),
    sli_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    kpi_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    status TEXT NOT NULL CHECK (status IN ('proposed', 'approved', 'rejected')),
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    document TEXT NOT NULL,
    CHECK ((analysis_id IS NULL) <> (observational_analysis_id IS NULL))
);
INSERT INTO recommendations_new
    (id, analysis_id, sli_metric_id, kpi_metric_id, status, created_at, created_by, document)
    SELECT id, analysis_id, sli_metric_id, kpi_metric_id, status, created_at, created_by, document
    FROM recommendations;
DROP TABLE recommendations;
ALTER TABLE recommendations_new RENAME TO recommendations;
CREATE INDEX recommendations_by_status ON recommendations (status, id);
COMMIT;
PRAGMA foreign_keys = ON;
