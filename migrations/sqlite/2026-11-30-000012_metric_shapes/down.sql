-- Fails (CHECK) while ordinal or ratio metrics exist: they have no earlier form.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE metrics_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('sli', 'kpi')),
    value_type TEXT NOT NULL CHECK (value_type IN ('continuous', 'binary', 'count')),
    unit TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('lower_is_better', 'higher_is_better')),
    layer TEXT NOT NULL CHECK (layer IN ('business', 'journey', 'platform', 'infrastructure')),
    created_at TIMESTAMP NOT NULL,
    prometheus_good_events TEXT,
    prometheus_total_events TEXT,
    prometheus_buckets TEXT,
    prometheus_source TEXT
);
INSERT INTO metrics_rebuilt (id, key, name, description, kind, value_type, unit, direction, layer,
                             created_at, prometheus_good_events, prometheus_total_events,
                             prometheus_buckets, prometheus_source)
SELECT id, key, name, description, kind, value_type, unit, direction, layer, created_at,
       prometheus_good_events, prometheus_total_events, prometheus_buckets, prometheus_source
FROM metrics;
DROP TABLE metrics;
ALTER TABLE metrics_rebuilt RENAME TO metrics;
COMMIT;
PRAGMA foreign_keys = ON;
