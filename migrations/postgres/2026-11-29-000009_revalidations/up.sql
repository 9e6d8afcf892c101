-- Re-validations of published SLOs: a newer analysis of the same SLI and KPI, and whether it
-- confirms the evidence the SLO was published on. The SLO keeps its latest outcome.
CREATE TABLE slo_revalidations (
    id BIGSERIAL PRIMARY KEY,
    slo_id BIGINT NOT NULL REFERENCES slos (id),
    analysis_id BIGINT NOT NULL REFERENCES analyses (id),
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('confirmed', 'stale')),
    -- JSON array of {code, message}
    reasons TEXT NOT NULL
);
CREATE INDEX slo_revalidations_by_slo ON slo_revalidations (slo_id, id);

ALTER TABLE slos ADD COLUMN validation TEXT CHECK (validation IN ('confirmed', 'stale'));
ALTER TABLE slos ADD COLUMN revalidation_id BIGINT REFERENCES slo_revalidations (id);
