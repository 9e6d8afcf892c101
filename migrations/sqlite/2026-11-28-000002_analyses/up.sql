CREATE TABLE analyses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    created_at TIMESTAMP NOT NULL,
    seed BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    parameters TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX analyses_by_experiment ON analyses (experiment_id, id);
