-- Integer unit ids. Each experiment's text unit ids are stored once, in `units`, numbered
-- 1, 2, ... in the order uploads first name them; assignments and observations carry the
-- number, so rows are smaller and joins and GROUP BYs compare integers. Existing data is
-- numbered in bytewise order of its ids. As the bulk tables (022), `units` has no foreign key: the
-- service checks every row before writing it.
CREATE TABLE units (
    experiment_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (experiment_id, id),
    UNIQUE (experiment_id, key)
);

INSERT INTO units (experiment_id, id, key)
SELECT experiment_id, ROW_NUMBER() OVER (PARTITION BY experiment_id ORDER BY unit_id COLLATE "C"), unit_id
FROM (SELECT experiment_id, unit_id FROM assignments
      UNION SELECT experiment_id, unit_id FROM observations) k;

ALTER TABLE assignments RENAME TO assignments_named;
ALTER TABLE assignments_named RENAME CONSTRAINT assignments_pkey TO assignments_named_pkey;
CREATE TABLE assignments (
    experiment_id BIGINT NOT NULL,
    unit_id BIGINT NOT NULL,
    variant_id BIGINT NOT NULL,
    assigned_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id)
);
INSERT INTO assignments (experiment_id, unit_id, variant_id, assigned_at)
SELECT a.experiment_id, u.id, a.variant_id, a.assigned_at
FROM assignments_named a JOIN units u ON u.experiment_id = a.experiment_id AND u.key = a.unit_id;
DROP TABLE assignments_named;

ALTER TABLE observations RENAME TO observations_named;
ALTER TABLE observations_named RENAME CONSTRAINT observations_pkey TO observations_named_pkey;
ALTER TABLE observations_named RENAME CONSTRAINT observations_period_check TO observations_named_period_check;
CREATE TABLE observations (
    experiment_id BIGINT NOT NULL,
    unit_id BIGINT NOT NULL,
    metric_id BIGINT NOT NULL,
    period TEXT NOT NULL CONSTRAINT observations_period_check CHECK (period IN ('pre', 'post')),
    value DOUBLE PRECISION NOT NULL,
    observed_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id, metric_id, period)
);
INSERT INTO observations (experiment_id, unit_id, metric_id, period, value, observed_at)
SELECT o.experiment_id, u.id, o.metric_id, o.period, o.value, o.observed_at
FROM observations_named o JOIN units u ON u.experiment_id = o.experiment_id AND u.key = o.unit_id;
DROP TABLE observations_named;
