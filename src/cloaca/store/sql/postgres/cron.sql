-- Cron schedules and cron executions (PostgreSQL). Parameters are bound by name.

-- name: cron_schedule_insert
INSERT INTO cloaca_cron_schedules
    (id, workflow_name, instance_name, cron_expression, timezone, catchup_policy, params,
     enabled, next_run_at, created_at, updated_at)
VALUES (%(id)s, %(workflow_name)s, %(instance_name)s, %(cron_expression)s, %(timezone)s,
        %(catchup_policy)s, %(params)s, 1, %(next_run_at)s, %(now)s, %(now)s)
ON CONFLICT DO NOTHING

-- name: cron_schedule_find
SELECT id FROM cloaca_cron_schedules
WHERE workflow_name = %(workflow_name)s
  AND ((CAST(%(instance_name)s AS TEXT) IS NULL AND instance_name IS NULL
        AND cron_expression = CAST(%(cron_expression)s AS TEXT)
        AND timezone = CAST(%(timezone)s AS TEXT))
       OR instance_name = CAST(%(instance_name)s AS TEXT))

-- name: cron_schedule_reregister
-- IS DISTINCT FROM is SQLite's IS NOT: params may be NULL on either side.
UPDATE cloaca_cron_schedules
SET next_run_at = CASE WHEN cron_expression != CAST(%(cron_expression)s AS TEXT)
                            OR timezone != CAST(%(timezone)s AS TEXT)
                       THEN CAST(%(next_run_at)s AS TEXT) ELSE next_run_at END,
    cron_expression = %(cron_expression)s, timezone = %(timezone)s,
    catchup_policy = %(catchup_policy)s, params = %(params)s, updated_at = %(now)s
WHERE id = %(id)s
  AND (cron_expression != CAST(%(cron_expression)s AS TEXT)
       OR timezone != CAST(%(timezone)s AS TEXT)
       OR catchup_policy != CAST(%(catchup_policy)s AS TEXT)
       OR params IS DISTINCT FROM CAST(%(params)s AS TEXT))

-- name: cron_schedule_get
SELECT id, workflow_name, instance_name, cron_expression, timezone, catchup_policy, params,
       enabled, next_run_at, last_run_at, created_at, updated_at
FROM cloaca_cron_schedules WHERE id = %(id)s

-- name: cron_schedule_list
-- seq is the insertion order (SQLite orders by rowid here).
SELECT id, workflow_name, instance_name, cron_expression, timezone, catchup_policy, params,
       enabled, next_run_at, last_run_at, created_at, updated_at
FROM cloaca_cron_schedules
WHERE (CAST(%(enabled_only)s AS INTEGER) = 0 OR enabled = 1)
ORDER BY created_at, seq
LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)
OFFSET GREATEST(CAST(%(offset)s AS BIGINT), 0)

-- name: cron_schedule_set_expression
UPDATE cloaca_cron_schedules
SET cron_expression = %(cron_expression)s, timezone = %(timezone)s,
    next_run_at = %(next_run_at)s, updated_at = %(now)s
WHERE id = %(id)s

-- name: cron_schedule_set_enabled
UPDATE cloaca_cron_schedules
SET next_run_at = CASE WHEN CAST(%(enabled)s AS INTEGER) = 1 AND enabled = 0
                       THEN CAST(%(next_run_at)s AS TEXT) ELSE next_run_at END,
    updated_at = CASE WHEN enabled != CAST(%(enabled)s AS INTEGER)
                      THEN CAST(%(now)s AS TEXT) ELSE updated_at END,
    enabled = %(enabled)s
WHERE id = %(id)s

-- name: cron_schedule_delete
DELETE FROM cloaca_cron_schedules WHERE id = %(id)s

-- name: cron_due_workflows
SELECT DISTINCT workflow_name FROM cloaca_cron_schedules
WHERE enabled = 1 AND next_run_at <= %(now)s

-- name: cron_due
-- Read inside the firing transaction, which then advances each row with a conditional
-- UPDATE: SKIP LOCKED leaves schedules another runner is firing right now to that runner.
SELECT id, workflow_name, instance_name, cron_expression, timezone, catchup_policy, params,
       enabled, next_run_at, last_run_at, created_at, updated_at
FROM cloaca_cron_schedules
WHERE enabled = 1 AND next_run_at <= %(now)s
ORDER BY next_run_at, id
LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)
FOR UPDATE SKIP LOCKED

-- name: cron_next_run_at
SELECT MIN(next_run_at) AS next_run_at FROM cloaca_cron_schedules WHERE enabled = 1

-- name: cron_schedule_advance
UPDATE cloaca_cron_schedules
SET next_run_at = %(next_run_at)s,
    last_run_at = COALESCE(CAST(%(last_run_at)s AS TEXT), last_run_at)
WHERE id = %(id)s AND next_run_at = %(expected)s AND enabled = 1

-- name: cron_schedule_advance_many
-- moves is a JSON array of [schedule id, expected next_run_at, new next_run_at,
-- last_run_at or null]: cron_schedule_advance for a whole firing batch in one statement.
UPDATE cloaca_cron_schedules
SET next_run_at = m.m_next, last_run_at = COALESCE(m.m_last, last_run_at)
FROM (SELECT item ->> 0 AS m_id, item ->> 1 AS m_expected, item ->> 2 AS m_next,
             item ->> 3 AS m_last
      FROM jsonb_array_elements(CAST(%(moves)s AS jsonb)) AS j (item)) AS m
WHERE cloaca_cron_schedules.id = m.m_id AND next_run_at = m.m_expected AND enabled = 1

-- name: cron_execution_claim
-- claims is a JSON array of [claim id, schedule id, scheduled time]: one statement claims
-- the slots of a whole firing batch. The unique key decides; RETURNING names the winners.
INSERT INTO cloaca_cron_executions (id, schedule_id, scheduled_time, claimed_at, claimed_by)
SELECT item ->> 0, item ->> 1, item ->> 2, %(now)s, %(runner_id)s
FROM jsonb_array_elements(CAST(%(claims)s AS jsonb)) AS j (item)
ON CONFLICT (schedule_id, scheduled_time) DO NOTHING
RETURNING id

-- name: cron_execution_link
UPDATE cloaca_cron_executions SET workflow_execution_id = %(execution_id)s
WHERE id = %(id)s

-- name: cron_execution_link_many
-- links is a JSON array of [claim id, execution id]: a firing batch links every slot it
-- started in one statement.
UPDATE cloaca_cron_executions SET workflow_execution_id = l.l_execution_id
FROM (SELECT item ->> 0 AS l_id, item ->> 1 AS l_execution_id
      FROM jsonb_array_elements(CAST(%(links)s AS jsonb)) AS j (item)) AS l
WHERE cloaca_cron_executions.id = l.l_id

-- name: cron_execution_history
-- seq is the insertion order (SQLite orders by rowid here).
SELECT ce.id, ce.schedule_id, ce.scheduled_time, ce.workflow_execution_id, ce.claimed_at,
       ce.claimed_by, ce.lost, ce.recovery_attempts, ce.recovered_at,
       e.status AS execution_status, e.started_at, e.completed_at
FROM cloaca_cron_executions ce
LEFT JOIN cloaca_executions e ON e.id = ce.workflow_execution_id
WHERE ce.schedule_id = %(schedule_id)s
ORDER BY ce.scheduled_time DESC, ce.seq DESC
LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)
OFFSET GREATEST(CAST(%(offset)s AS BIGINT), 0)

-- name: cron_execution_stats
SELECT COUNT(*) AS total,
       COALESCE(SUM(CASE WHEN e.status = 'Completed' THEN 1 ELSE 0 END), 0) AS successful,
       COALESCE(SUM(CASE WHEN e.status = 'Failed' THEN 1 ELSE 0 END), 0) AS failed,
       COALESCE(SUM(CASE WHEN e.status IN ('Pending', 'Running') THEN 1 ELSE 0 END), 0)
           AS in_progress,
       COALESCE(SUM(CASE WHEN ce.lost = 1
                          OR (e.id IS NULL AND ce.claimed_at < %(lost_before)s)
                    THEN 1 ELSE 0 END), 0) AS lost,
       COALESCE(SUM(CASE WHEN ce.recovered_at IS NOT NULL AND e.id IS NOT NULL
                    THEN 1 ELSE 0 END), 0) AS recovered
FROM cloaca_cron_executions ce
LEFT JOIN cloaca_executions e ON e.id = ce.workflow_execution_id
WHERE ce.scheduled_time >= %(since)s

-- name: cron_lost_candidates
SELECT ce.id, ce.schedule_id, ce.scheduled_time, ce.recovery_attempts, s.workflow_name,
       s.cron_expression, s.timezone, s.params
FROM cloaca_cron_executions ce
JOIN cloaca_cron_schedules s ON s.id = ce.schedule_id
WHERE ce.workflow_execution_id IS NULL
  AND ce.claimed_at < %(claimed_before)s
  AND ce.scheduled_time >= %(scheduled_after)s
  AND ce.recovery_attempts < %(max_attempts)s
ORDER BY ce.scheduled_time, ce.id
LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)

-- name: cron_lost_mark
UPDATE cloaca_cron_executions
SET recovery_attempts = recovery_attempts + 1, lost = 1, recovered_at = %(now)s
WHERE id = %(id)s AND recovery_attempts = %(attempts)s AND workflow_execution_id IS NULL
