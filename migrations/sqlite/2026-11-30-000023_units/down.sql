CREATE TABLE assignments_named (
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    unit_id TEXT NOT NULL,
    variant_id BIGINT NOT NULL REFERENCES variants (id),
    assigned_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id)
) WITHOUT ROWID;
INSERT INTO assignments_named (experiment_id, unit_id, variant_id, assigned_at)
SELECT a.experiment_id, u.key, a.variant_id, a.assigned_at
FROM assignments a JOIN units u ON u.experiment_id = a.experiment_id AND u.id = a.unit_id;
DROP TABLE assignments;
ALTER TABLE assignments_named RENAME TO assignments;

CREATE TABLE observations_named (
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    unit_id TEXT NOT NULL,
    metric_id BIGINT NOT NULL REFERENCES metrics (id),
    period TEXT NOT NULL CHECK (period IN ('pre', 'post')),
    value DOUBLE PRECISION NOT NULL,
    observed_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id, metric_id, period)
) WITHOUT ROWID;
INSERT INTO observations_named (experiment_id, unit_id, metric_id, period, value, observed_at)
SELECT o.experiment_id, u.key, o.metric_id, o.period, o.value, o.observed_at
FROM observations o JOIN units u ON u.experiment_id = o.experiment_id AND u.id = o.unit_id;
DROP TABLE observations;
ALTER TABLE observations_named RENAME TO observations;

DROP TABLE units;
