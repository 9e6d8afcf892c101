-- At most one active SLO per (SLI, KPI): two approvals racing on different connections can no
-- longer both publish. Databases written before this rule keep the newest active SLO of a pair
-- and mark the older ones superseded by it.
UPDATE slos SET status = 'superseded',
    superseded_at = published_at,
    superseded_by = (SELECT MAX(n.id) FROM slos n
                     WHERE n.sli_metric_id = slos.sli_metric_id
                       AND n.kpi_metric_id = slos.kpi_metric_id AND n.status = 'active')
WHERE status = 'active' AND id < (SELECT MAX(n.id) FROM slos n
                                  WHERE n.sli_metric_id = slos.sli_metric_id
                                    AND n.kpi_metric_id = slos.kpi_metric_id
                                    AND n.status = 'active');
CREATE UNIQUE INDEX slos_one_active_per_pair ON slos (sli_metric_id, kpi_metric_id)
    WHERE status = 'active';

-- Token names are the actor of review decisions: unique among live tokens. Older duplicates
-- (allowed before this rule) get their id appended, so no one loses access.
UPDATE api_tokens SET name = name || ' #' || CAST(id AS TEXT)
WHERE revoked_at IS NULL AND id > (SELECT MIN(o.id) FROM api_tokens o
                                   WHERE o.name = api_tokens.name AND o.revoked_at IS NULL);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
