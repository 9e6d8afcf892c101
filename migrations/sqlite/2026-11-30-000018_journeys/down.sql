DROP TABLE journeys;
