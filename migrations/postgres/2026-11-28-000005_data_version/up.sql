-- Bumped by every upload that changes an experiment's assignments or observations, so an
-- analysis that reads in several transactions can tell that they saw the same data.
ALTER TABLE experiments ADD COLUMN data_version BIGINT NOT NULL DEFAULT 0;
