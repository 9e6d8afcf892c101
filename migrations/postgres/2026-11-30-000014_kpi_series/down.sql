-- Fails (CHECK) while value series exist.
ALTER TABLE sli_series DROP CONSTRAINT sli_series_kind_check;
ALTER TABLE sli_series ADD CONSTRAINT sli_series_kind_check CHECK (kind IN ('histogram', 'events'));
