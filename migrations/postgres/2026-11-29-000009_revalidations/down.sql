ALTER TABLE slos DROP COLUMN revalidation_id;
ALTER TABLE slos DROP COLUMN validation;
DROP TABLE slo_revalidations;
