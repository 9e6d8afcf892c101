-- Composite journey SLOs: an ordered list of published SLOs (JSON array of ids) and an optional
-- objective (default: the product of the steps' targets).
CREATE TABLE journeys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    objective DOUBLE PRECISION,
    steps TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL
);
