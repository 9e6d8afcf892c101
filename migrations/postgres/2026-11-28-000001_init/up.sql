CREATE TABLE metrics (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('sli', 'kpi')),
    value_type TEXT NOT NULL CHECK (value_type IN ('continuous', 'binary', 'count')),
    unit TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('lower_is_better', 'higher_is_better')),
    layer TEXT NOT NULL CHECK (layer IN ('business', 'journey', 'platform', 'infrastructure')),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE metric_parents (
    metric_id BIGINT NOT NULL REFERENCES metrics (id),
    parent_id BIGINT NOT NULL REFERENCES metrics (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (metric_id, parent_id)
);

CREATE TABLE experiments (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    hypothesis TEXT NOT NULL,
    journey TEXT,
    sli_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE experiment_metrics (
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    metric_id BIGINT NOT NULL REFERENCES metrics (id),
    role TEXT NOT NULL CHECK (role IN ('kpi', 'guardrail')),
    position INTEGER NOT NULL,
    PRIMARY KEY (experiment_id, metric_id)
);

CREATE TABLE variants (
    id BIGSERIAL PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    key TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    is_control BOOLEAN NOT NULL,
    dose DOUBLE PRECISION NOT NULL,
    position INTEGER NOT NULL,
    UNIQUE (experiment_id, key)
);

CREATE TABLE assignments (
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    unit_id TEXT NOT NULL,
    variant_id BIGINT NOT NULL REFERENCES variants (id),
    assigned_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id)
);

CREATE TABLE observations (
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    unit_id TEXT NOT NULL,
    metric_id BIGINT NOT NULL REFERENCES metrics (id),
    period TEXT NOT NULL CHECK (period IN ('pre', 'post')),
    value DOUBLE PRECISION NOT NULL,
    observed_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id, metric_id, period)
);
