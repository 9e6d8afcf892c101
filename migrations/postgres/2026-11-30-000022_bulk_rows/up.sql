-- Bulk rows without per-row foreign-key triggers. A foreign key fires a trigger for every
-- inserted row; on 1M observations the two of them cost ~9 s of a ~2 s COPY (measured on this
-- project's 2-core machine). Every row's experiment, metric and variant is checked by the
-- service before it is written (a metric must belong to the experiment, which a foreign key
-- cannot say), and experiments, metrics and variants are never deleted.
ALTER TABLE observations
    DROP CONSTRAINT observations_experiment_id_fkey,
    DROP CONSTRAINT observations_metric_id_fkey;
ALTER TABLE assignments
    DROP CONSTRAINT assignments_experiment_id_fkey,
    DROP CONSTRAINT assignments_variant_id_fkey;
