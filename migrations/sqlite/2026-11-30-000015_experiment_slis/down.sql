DROP TABLE variant_doses;
DROP TABLE experiment_slis;
