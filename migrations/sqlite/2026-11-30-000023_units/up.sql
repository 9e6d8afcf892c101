-- Integer unit ids. Each experiment's text unit ids are stored once, in `units`, numbered
-- 1, 2, ... in the order uploads first name them; assignments and observations carry the
-- number. Rows are smaller and joins compare integers. Existing data is numbered in
-- bytewise order of its ids.
--
-- The bulk tables have no foreign keys. The service checks every row's experiment, variant,
-- metric and unit before writing it, and SQLite would otherwise look up the parent rows once
-- per inserted row. Experiments, variants and metrics are never deleted.
CREATE TABLE units (
    experiment_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (experiment_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX units_by_key ON units (experiment_id, key);

INSERT INTO units (experiment_id, id, key)
SELECT experiment_id, ROW_NUMBER() OVER (PARTITION BY experiment_id ORDER BY unit_id), unit_id
FROM (SELECT experiment_id, unit_id FROM assignments
      UNION SELECT experiment_id, unit_id FROM observations);

CREATE TABLE assignments_numbered (
    experiment_id BIGINT NOT NULL,
    unit_id BIGINT NOT NULL,
    variant_id BIGINT NOT NULL,
    assigned_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id)
) WITHOUT ROWID;
INSERT INTO assignments_numbered (experiment_id, unit_id, variant_id, assigned_at)
SELECT a.experiment_id, u.id, a.variant_id, a.assigned_at
FROM assignments a JOIN units u ON u.experiment_id = a.experiment_id AND u.key = a.unit_id;
DROP TABLE assignments;
ALTER TABLE assignments_numbered RENAME TO assignments;

CREATE TABLE observations_numbered (
    experiment_id BIGINT NOT NULL,
    unit_id BIGINT NOT NULL,
    metric_id BIGINT NOT NULL,
    period TEXT NOT NULL CHECK (period IN ('pre', 'post')),
    value DOUBLE PRECISION NOT NULL,
    observed_at TIMESTAMP,
    PRIMARY KEY (experiment_id, unit_id, metric_id, period)
) WITHOUT ROWID;
INSERT INTO observations_numbered (experiment_id, unit_id, metric_id, period, value, observed_at)
SELECT o.experiment_id, u.id, o.metric_id, o.period, o.value, o.observed_at
FROM observations o JOIN units u ON u.experiment_id = o.experiment_id AND u.key = o.unit_id;
DROP TABLE observations;
ALTER TABLE observations_numbered RENAME TO observations;
