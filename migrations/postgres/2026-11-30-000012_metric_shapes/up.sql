-- A ratio metric's parts ({"numerator": key, "denominator": key}) and an ordinal metric's
-- scale ({"min", "max", "top_box"}), as JSON.
ALTER TABLE metrics ADD COLUMN ratio_of TEXT;
ALTER TABLE metrics ADD COLUMN ordinal_scale TEXT;
