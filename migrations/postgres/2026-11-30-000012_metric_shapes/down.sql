-- Fails (CHECK) while ordinal or ratio metrics exist: they have no earlier form.
ALTER TABLE metrics DROP COLUMN ordinal_scale;
ALTER TABLE metrics DROP COLUMN ratio_of;
ALTER TABLE metrics DROP CONSTRAINT metrics_value_type_check;
ALTER TABLE metrics ADD CONSTRAINT metrics_value_type_check
    CHECK (value_type IN ('continuous', 'binary', 'count'));
