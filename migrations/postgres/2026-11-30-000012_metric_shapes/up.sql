-- Value types 'ordinal' and 'ratio', with a ratio metric's parts ({"numerator": key,
-- "denominator": key}) and an ordinal metric's scale ({"min", "max", "top_box"}) as JSON.
ALTER TABLE metrics DROP CONSTRAINT metrics_value_type_check;
ALTER TABLE metrics ADD CONSTRAINT metrics_value_type_check
    CHECK (value_type IN ('continuous', 'binary', 'count', 'ordinal', 'ratio'));
ALTER TABLE metrics ADD COLUMN ratio_of TEXT;
ALTER TABLE metrics ADD COLUMN ordinal_scale TEXT;
