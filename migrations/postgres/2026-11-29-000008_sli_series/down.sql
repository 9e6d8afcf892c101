DROP TABLE sli_windows;
DROP TABLE sli_series;
ALTER TABLE metrics DROP COLUMN prometheus_source;
