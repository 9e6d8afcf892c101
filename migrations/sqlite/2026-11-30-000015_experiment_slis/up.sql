-- Experiments whose arms change several SLIs on purpose (a factorial design): the SLIs after
-- the experiment's first (`experiments.sli_metric_id`), and each variant's dose of them.
CREATE TABLE experiment_slis (
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    metric_id BIGINT NOT NULL REFERENCES metrics (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (experiment_id, metric_id)
);

CREATE TABLE variant_doses (
    variant_id BIGINT NOT NULL REFERENCES variants (id),
    metric_id BIGINT NOT NULL REFERENCES metrics (id),
    dose DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (variant_id, metric_id)
);
