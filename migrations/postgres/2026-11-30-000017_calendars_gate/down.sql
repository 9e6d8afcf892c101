DROP TABLE deploy_checks;
ALTER TABLE slos DROP COLUMN calendar_id;
DROP TABLE calendars;
