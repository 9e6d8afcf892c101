-- Fails (CHECK) while value series exist.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE sli_series_rebuilt (
    metric_id BIGINT PRIMARY KEY NOT NULL REFERENCES metrics (id),
    kind TEXT NOT NULL CHECK (kind IN ('histogram', 'events')),
    seconds INTEGER NOT NULL CHECK (seconds > 0),
    bounds TEXT,
    revision BIGINT NOT NULL DEFAULT 0,
    previous_revision BIGINT,
    changed_from BIGINT
);
INSERT INTO sli_series_rebuilt (metric_id, kind, seconds, bounds, revision, previous_revision, changed_from)
SELECT metric_id, kind, seconds, bounds, revision, previous_revision, changed_from FROM sli_series;
DROP TABLE sli_series;
ALTER TABLE sli_series_rebuilt RENAME TO sli_series;
COMMIT;
PRAGMA foreign_keys = ON;
