DROP TABLE slos;
DROP TABLE recommendation_events;
DROP TABLE recommendations;
ALTER TABLE metrics DROP COLUMN prometheus_good_events;
ALTER TABLE metrics DROP COLUMN prometheus_total_events;
