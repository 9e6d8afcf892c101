-- Production time series of SLIs. One layout per metric, fixed by its first upload: the kind
-- (histogram windows or good/total event windows), the window length, and the histogram's
-- finite bucket bounds (JSON array, in the metric's unit). Then one row per window.
CREATE TABLE sli_series (
    metric_id BIGINT PRIMARY KEY NOT NULL REFERENCES metrics (id),
    kind TEXT NOT NULL CHECK (kind IN ('histogram', 'events')),
    seconds INTEGER NOT NULL CHECK (seconds > 0),
    bounds TEXT
);

-- start_at: Unix seconds, aligned to the window length. total: events in the window (a
-- histogram's count); good: good events (event windows); value_sum: a histogram's sum;
-- counts: a histogram's cumulative count per finite bound, little-endian f64s.
CREATE TABLE sli_windows (
    metric_id BIGINT NOT NULL REFERENCES sli_series (metric_id),
    start_at BIGINT NOT NULL,
    total DOUBLE PRECISION NOT NULL,
    good DOUBLE PRECISION,
    value_sum DOUBLE PRECISION,
    counts BYTEA,
    PRIMARY KEY (metric_id, start_at)
);

-- Where a metric's production series can be pulled from (JSON: Prometheus base URL and series
-- selectors).
ALTER TABLE metrics ADD COLUMN prometheus_source TEXT;
