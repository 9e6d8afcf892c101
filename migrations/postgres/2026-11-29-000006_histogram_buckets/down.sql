ALTER TABLE metrics DROP COLUMN prometheus_buckets;
