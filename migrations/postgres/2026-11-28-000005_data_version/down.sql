ALTER TABLE experiments DROP COLUMN data_version;
