ALTER TABLE journeys DROP COLUMN budget_split;
ALTER TABLE journeys DROP COLUMN updated_by;
ALTER TABLE journeys DROP COLUMN updated_at;
ALTER TABLE calendars DROP COLUMN updated_by;
ALTER TABLE calendars DROP COLUMN updated_at;
