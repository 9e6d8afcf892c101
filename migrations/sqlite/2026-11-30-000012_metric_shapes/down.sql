ALTER TABLE metrics DROP COLUMN ordinal_scale;
ALTER TABLE metrics DROP COLUMN ratio_of;
