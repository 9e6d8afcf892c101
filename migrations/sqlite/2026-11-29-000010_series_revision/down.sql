ALTER TABLE sli_series DROP COLUMN changed_from;
ALTER TABLE sli_series DROP COLUMN previous_revision;
ALTER TABLE sli_series DROP COLUMN revision;
