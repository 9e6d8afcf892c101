-- Early-warning rules: an upstream SLI that leads an SLO's SLI, attached to that SLO with the
-- level that warns (the derivation and its replay on history as a JSON document). One per SLO
-- and indicator; it belongs to that SLO (its level was derived from that SLO's threshold).
CREATE TABLE early_warnings (
    id BIGSERIAL PRIMARY KEY,
    slo_id BIGINT NOT NULL REFERENCES slos (id),
    indicator_metric_id BIGINT NOT NULL REFERENCES metrics (id),
    document TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (slo_id, indicator_metric_id)
);
