DELETE FROM recommendation_events WHERE recommendation_id IN
    (SELECT id FROM recommendations WHERE analysis_id IS NULL);
DELETE FROM recommendations WHERE analysis_id IS NULL;
ALTER TABLE recommendations DROP CONSTRAINT recommendations_one_source;
ALTER TABLE recommendations DROP COLUMN observational_analysis_id;
ALTER TABLE recommendations ALTER COLUMN analysis_id SET NOT NULL;
