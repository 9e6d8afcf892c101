-- Correlational analyses of an SLI's and a KPI's production series (the document as JSON).
CREATE TABLE observational_analyses (
    id BIGSERIAL PRIMARY KEY,
    sli_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    kpi_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    created_at TIMESTAMP NOT NULL,
    result TEXT NOT NULL
);
