DROP TABLE observational_analyses;
