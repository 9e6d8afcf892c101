-- Calendars and journeys can be replaced in place: who changed them last and when. A journey
-- states how its error budget is split across its steps ('cost': in proportion to each step's
-- cost per unit of error, as before; 'inverse_cost': costlier steps get less; 'equal').
ALTER TABLE calendars ADD COLUMN updated_at TIMESTAMP;
ALTER TABLE calendars ADD COLUMN updated_by TEXT;
ALTER TABLE journeys ADD COLUMN updated_at TIMESTAMP;
ALTER TABLE journeys ADD COLUMN updated_by TEXT;
ALTER TABLE journeys ADD COLUMN budget_split TEXT NOT NULL DEFAULT 'cost'
    CHECK (budget_split IN ('cost', 'inverse_cost', 'equal'));
