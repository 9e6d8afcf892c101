-- Business calendars (periods and their policies as a JSON array), the calendar an SLO follows,
-- and every deploy check the gate answered (request and answer as JSON).
CREATE TABLE calendars (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    periods TEXT NOT NULL
);

ALTER TABLE slos ADD COLUMN calendar_id BIGINT REFERENCES calendars (id);

CREATE TABLE deploy_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'needs_approval')),
    document TEXT NOT NULL
);
