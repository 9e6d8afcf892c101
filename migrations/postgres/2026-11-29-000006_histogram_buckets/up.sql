-- The bucket bounds (in the metric's unit, JSON array) of an SLI's Prometheus histogram, so an
-- SLO's threshold can be snapped to a bound that exists.
ALTER TABLE metrics ADD COLUMN prometheus_buckets TEXT;
