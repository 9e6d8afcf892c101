DROP TABLE observations;
DROP TABLE assignments;
DROP TABLE variants;
DROP TABLE experiment_metrics;
DROP TABLE experiments;
DROP TABLE metric_parents;
DROP TABLE metrics;
