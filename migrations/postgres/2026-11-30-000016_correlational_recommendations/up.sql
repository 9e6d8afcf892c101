-- A recommendation rests on an experiment's analysis or on an observational (correlational)
-- analysis of production history: exactly one of the two ids is set.
ALTER TABLE recommendations ALTER COLUMN analysis_id DROP NOT NULL;
ALTER TABLE recommendations ADD COLUMN observational_analysis_id BIGINT REFERENCES observational_analyses (id);
ALTER TABLE recommendations ADD CONSTRAINT recommendations_one_source
    CHECK ((analysis_id IS NULL) <> (observational_analysis_id IS NULL));
