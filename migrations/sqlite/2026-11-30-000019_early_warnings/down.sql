DROP TABLE early_warnings;
