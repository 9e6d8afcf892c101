ALTER TABLE assignments RENAME TO assignments_numbered;
ALTER TABLE assignments_numbered RENAME CONSTRAINT assignments_pkey TO assignments_numbered_pkey;
CREATE TABLE assignments (
    experiment_id BIGINT NOT NULL,
    unit_id TEXT NOT NULL,
    variant_id BIGINT NOT NULL,
    assigned_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id)
);
INSERT INTO assignments (experiment_id, unit_id, variant_id, assigned_at)
SELECT a.experiment_id, u.key, a.variant_id, a.assigned_at
FROM assignments_numbered a JOIN units u ON u.experiment_id = a.experiment_id AND u.id = a.unit_id;
DROP TABLE assignments_numbered;

ALTER TABLE observations RENAME TO observations_numbered;
ALTER TABLE observations_numbered RENAME CONSTRAINT observations_pkey TO observations_numbered_pkey;
ALTER TABLE observations_numbered RENAME CONSTRAINT observations_period_check TO observations_numbered_period_check;
CREATE TABLE observations (
    experiment_id BIGINT NOT NULL,
    unit_id TEXT NOT NULL,
    metric_id BIGINT NOT NULL,
    period TEXT NOT NULL CONSTRAINT observations_period_check CHECK (period IN ('pre', 'post')),
    value DOUBLE PRECISION NOT NULL,
    observed_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id, metric_id, period)
);
INSERT INTO observations (experiment_id, unit_id, metric_id, period, value, observed_at)
SELECT o.experiment_id, u.key, o.metric_id, o.period, o.value, o.observed_at
FROM observations_numbered o JOIN units u ON u.experiment_id = o.experiment_id AND u.id = o.unit_id;
DROP TABLE observations_numbered;

DROP TABLE units;
