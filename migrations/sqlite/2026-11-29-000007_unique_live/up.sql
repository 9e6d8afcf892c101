-- At most one active SLO per (SLI, KPI): two approvals racing on different connections can no
-- longer both publish. Databases written before this rule keep the newest active SLO of a pair;
-- older ones are marked superseded by it, as of its publication.
UPDATE slos SET status = 'superseded',
    superseded_by = (SELECT MAX(n.id) FROM slos n
                     WHERE n.sli_metric_id = slos.sli_metric_id
                       AND n.kpi_metric_id = slos.kpi_metric_id AND n.status = 'active'),
    superseded_at = (SELECT n.published_at FROM slos n
                     WHERE n.id = (SELECT MAX(m.id) FROM slos m
                                   WHERE m.sli_metric_id = slos.sli_metric_id
                                     AND m.kpi_metric_id = slos.kpi_metric_id
                                     AND m.status = 'active'))
WHERE status = 'active' AND id < (SELECT MAX(n.id) FROM slos n
                                  WHERE n.sli_metric_id = slos.sli_metric_id
                                    AND n.kpi_metric_id = slos.kpi_metric_id
                                    AND n.status = 'active');
CREATE UNIQUE INDEX slos_one_active_per_pair ON slos (sli_metric_id, kpi_metric_id)
    WHERE status = 'active';

-- Token names are the actor of review decisions: unique among live tokens. Older duplicates
-- (allowed before this rule) of the service's own names are revoked (the service recreates its
-- token); other older duplicates get their id appended, so no one loses access.
UPDATE api_tokens SET revoked_at = created_at
WHERE revoked_at IS NULL AND name IN ('bootstrap-admin', 'initial-admin')
  AND id > (SELECT MIN(o.id) FROM api_tokens o
            WHERE o.name = api_tokens.name AND o.revoked_at IS NULL);
UPDATE api_tokens SET name = SUBSTR(name, 1, 80) || ' #' || CAST(id AS TEXT)
WHERE revoked_at IS NULL AND id > (SELECT MIN(o.id) FROM api_tokens o
                                   WHERE o.name = api_tokens.name AND o.revoked_at IS NULL);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
