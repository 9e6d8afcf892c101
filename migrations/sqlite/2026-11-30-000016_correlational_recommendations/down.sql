PRAGMA foreign_keys = OFF;
BEGIN;
DELETE FROM recommendation_events WHERE recommendation_id IN
    (SELECT id FROM recommendations WHERE analysis_id IS NULL);
DELETE FROM recommendations WHERE analysis_id IS NULL;
CREATE TABLE recommendations_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id BIGINT NOT NULL REFERENCES analyses (id),
    sli_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    kpi_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    status TEXT NOT NULL CHECK (status IN ('proposed', 'approved', 'rejected')),
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    document TEXT NOT NULL
);
INSERT INTO recommendations_old
    SELECT id, analysis_id, sli_metric_id, kpi_metric_id, status, created_at, created_by, document
    FROM recommendations;
DROP TABLE recommendations;
ALTER TABLE recommendations_old RENAME TO recommendations;
CREATE INDEX recommendations_by_status ON recommendations (status, id);
COMMIT;
PRAGMA foreign_keys = ON;
