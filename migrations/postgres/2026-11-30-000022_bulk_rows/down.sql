ALTER TABLE observations
    ADD CONSTRAINT observations_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES experiments (id),
    ADD CONSTRAINT observations_metric_id_fkey FOREIGN KEY (metric_id) REFERENCES metrics (id);
ALTER TABLE assignments
    ADD CONSTRAINT assignments_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES experiments (id),
    ADD CONSTRAINT assignments_variant_id_fkey FOREIGN KEY (variant_id) REFERENCES variants (id);
