ALTER TABLE metrics ADD COLUMN prometheus_good_events TEXT;
ALTER TABLE metrics ADD COLUMN prometheus_total_events TEXT;

CREATE TABLE recommendations (
    id BIGSERIAL PRIMARY KEY,
    analysis_id BIGINT NOT NULL REFERENCES analyses (id),
    sli_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    kpi_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    status TEXT NOT NULL CHECK (status IN ('proposed', 'approved', 'rejected')),
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX recommendations_by_status ON recommendations (status, id);

CREATE TABLE recommendation_events (
    id BIGSERIAL PRIMARY KEY,
    recommendation_id BIGINT NOT NULL REFERENCES recommendations (id),
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('proposed', 'approved', 'rejected', 'published', 'superseded')),
    comment TEXT
);
CREATE INDEX recommendation_events_by_recommendation ON recommendation_events (recommendation_id, id);

CREATE TABLE slos (
    id BIGSERIAL PRIMARY KEY,
    recommendation_id BIGINT NOT NULL UNIQUE REFERENCES recommendations (id),
    sli_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    kpi_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    status TEXT NOT NULL CHECK (status IN ('active', 'superseded')),
    published_at TIMESTAMP NOT NULL,
    superseded_at TIMESTAMP,
    superseded_by BIGINT REFERENCES slos (id)
);
CREATE INDEX slos_by_pair ON slos (sli_metric_id, kpi_metric_id, status);
