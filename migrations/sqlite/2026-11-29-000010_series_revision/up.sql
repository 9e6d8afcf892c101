-- A token changed by every write to a metric's windows (a random number, so a metric deleted
-- and created again cannot reuse one), the token before that write and the earliest window
-- start the write touched: readers that keep decoded windows in memory check the token, and
-- after one write re-read only the windows from that start on.
ALTER TABLE sli_series ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sli_series ADD COLUMN previous_revision BIGINT;
ALTER TABLE sli_series ADD COLUMN changed_from BIGINT;
