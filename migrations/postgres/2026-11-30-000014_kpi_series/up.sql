-- KPIs get production series too: windows of kind 'values' (total = units, value_sum = the
-- sum of the KPI's values).
ALTER TABLE sli_series DROP CONSTRAINT sli_series_kind_check;
ALTER TABLE sli_series ADD CONSTRAINT sli_series_kind_check
    CHECK (kind IN ('histogram', 'events', 'values'));
