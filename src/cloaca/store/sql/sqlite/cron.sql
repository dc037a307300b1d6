-- Cron schedules and cron executions (SQLite). Parameters are bound by name.

-- name: cron_schedule_insert
INSERT INTO cloaca_cron_schedules
    (id, workflow_name, instance_name, cron_expression, timezone, catchup_policy, params,
     enabled, next_run_at, created_at, updated_at)
VALUES (:id, :workflow_name, :instance_name, :cron_expression, :timezone, :catchup_policy,
        :params, 1, :next_run_at, :now, :now)
ON CONFLICT DO NOTHING

-- name: cron_schedule_find
SELECT id FROM cloaca_cron_schedules
WHERE workflow_name = :workflow_name
  AND ((:instance_name IS NULL AND instance_name IS NULL
        AND cron_expression = :cron_expression AND timezone = :timezone)
       OR instance_name = :instance_name)

-- name: cron_schedule_reregister
UPDATE cloaca_cron_schedules
SET next_run_at = CASE WHEN cron_expression != :cron_expression OR timezone != :timezone
                       THEN :next_run_at ELSE next_run_at END,
    cron_expression = :cron_expression, timezone = :timezone,
    catchup_policy = :catchup_policy, params = :params, updated_at = :now
WHERE id = :id
  AND (cron_expression != :cron_expression OR timezone != :timezone
       OR catchup_policy != :catchup_policy OR params IS NOT :params)

-- name: cron_schedule_get
SELECT id, workflow_name, instance_name, cron_expression, timezone, catchup_policy, params,
       enabled, next_run_at, last_run_at, created_at, updated_at
FROM cloaca_cron_schedules WHERE id = :id

-- name: cron_schedule_list
SELECT id, workflow_name, instance_name, cron_expression, timezone, catchup_policy, params,
       enabled, next_run_at, last_run_at, created_at, updated_at
FROM cloaca_cron_schedules
WHERE (:enabled_only = 0 OR enabled = 1)
ORDER BY created_at, rowid
LIMIT :limit OFFSET :offset

-- name: cron_schedule_set_expression
UPDATE cloaca_cron_schedules
SET cron_expression = :cron_expression, timezone = :timezone, next_run_at = :next_run_at,
    updated_at = :now
WHERE id = :id

-- name: cron_schedule_set_enabled
UPDATE cloaca_cron_schedules
SET next_run_at = CASE WHEN :enabled = 1 AND enabled = 0 THEN :next_run_at
                       ELSE next_run_at END,
    updated_at = CASE WHEN enabled != :enabled THEN :now ELSE updated_at END,
    enabled = :enabled
WHERE id = :id

-- name: cron_schedule_delete
DELETE FROM cloaca_cron_schedules WHERE id = :id

-- name: cron_due_workflows
SELECT DISTINCT workflow_name FROM cloaca_cron_schedules
WHERE enabled = 1 AND next_run_at <= :now

-- name: cron_due
SELECT id, workflow_name, instance_name, cron_expression, timezone, catchup_policy, params,
       enabled, next_run_at, last_run_at, created_at, updated_at
FROM cloaca_cron_schedules
WHERE enabled = 1 AND next_run_at <= :now
ORDER BY next_run_at, id
LIMIT :limit

-- name: cron_next_run_at
SELECT MIN(next_run_at) AS next_run_at FROM cloaca_cron_schedules WHERE enabled = 1

-- name: cron_schedule_advance
UPDATE cloaca_cron_schedules
SET next_run_at = :next_run_at, last_run_at = COALESCE(:last_run_at, last_run_at)
WHERE id = :id AND next_run_at = :expected AND enabled = 1

-- name: cron_schedule_advance_many
-- :moves is a JSON array of [schedule id, expected next_run_at, new next_run_at,
-- last_run_at or null]: cron_schedule_advance for a whole firing batch in one statement.
UPDATE cloaca_cron_schedules
SET next_run_at = m.m_next, last_run_at = COALESCE(m.m_last, last_run_at)
FROM (SELECT json_extract(value, '$[0]') AS m_id, json_extract(value, '$[1]') AS m_expected,
             json_extract(value, '$[2]') AS m_next, json_extract(value, '$[3]') AS m_last
      FROM json_each(:moves)) AS m
WHERE cloaca_cron_schedules.id = m.m_id AND next_run_at = m.m_expected AND enabled = 1

-- name: cron_execution_claim
-- claims is a JSON array of [claim id, schedule id, scheduled time]: one statement claims
-- the slots of a whole firing batch. The unique key decides; RETURNING names the winners.
-- (WHERE true keeps SQLite from reading ON CONFLICT as a join constraint.)
INSERT INTO cloaca_cron_executions (id, schedule_id, scheduled_time, claimed_at, claimed_by)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       :now, :runner_id
FROM json_each(:claims) WHERE true
ON CONFLICT (schedule_id, scheduled_time) DO NOTHING
RETURNING id

-- name: cron_execution_link
UPDATE cloaca_cron_executions SET workflow_execution_id = :execution_id WHERE id = :id

-- name: cron_execution_link_many
-- :links is a JSON array of [claim id, execution id]: a firing batch links every slot it
-- started in one statement.
UPDATE cloaca_cron_executions SET workflow_execution_id = l.l_execution_id
FROM (SELECT json_extract(value, '$[0]') AS l_id, json_extract(value, '$[1]') AS l_execution_id
      FROM json_each(:links)) AS l
WHERE cloaca_cron_executions.id = l.l_id

-- name: cron_execution_history
SELECT ce.id, ce.schedule_id, ce.scheduled_time, ce.workflow_execution_id, ce.claimed_at,
       ce.claimed_by, ce.lost, ce.recovery_attempts, ce.recovered_at,
       e.status AS execution_status, e.started_at, e.completed_at
FROM cloaca_cron_executions ce
LEFT JOIN cloaca_executions e ON e.id = ce.workflow_execution_id
WHERE ce.schedule_id = :schedule_id
ORDER BY ce.scheduled_time DESC, ce.rowid DESC
LIMIT :limit OFFSET :offset

-- name: cron_execution_stats
SELECT COUNT(*) AS total,
       COALESCE(SUM(CASE WHEN e.status = 'Completed' THEN 1 ELSE 0 END), 0) AS successful,
       COALESCE(SUM(CASE WHEN e.status = 'Failed' THEN 1 ELSE 0 END), 0) AS failed,
       COALESCE(SUM(CASE WHEN e.status IN ('Pending', 'Running') THEN 1 ELSE 0 END), 0)
           AS in_progress,
       COALESCE(SUM(CASE WHEN ce.lost = 1
                          OR (e.id IS NULL AND ce.claimed_at < :lost_before)
                    THEN 1 ELSE 0 END), 0) AS lost,
       COALESCE(SUM(CASE WHEN ce.recovered_at IS NOT NULL AND e.id IS NOT NULL
                    THEN 1 ELSE 0 END), 0) AS recovered
FROM cloaca_cron_executions ce
LEFT JOIN cloaca_executions e ON e.id = ce.workflow_execution_id
WHERE ce.scheduled_time >= :since

-- name: cron_lost_candidates
SELECT ce.id, ce.schedule_id, ce.scheduled_time, ce.recovery_attempts, s.workflow_name,
       s.cron_expression, s.timezone, s.params
FROM cloaca_cron_executions ce
JOIN cloaca_cron_schedules s ON s.id = ce.schedule_id
WHERE ce.workflow_execution_id IS NULL
  AND ce.claimed_at < :claimed_before
  AND ce.scheduled_time >= :scheduled_after
  AND ce.recovery_attempts < :max_attempts
ORDER BY ce.scheduled_time, ce.id
LIMIT :limit

-- name: cron_lost_mark
UPDATE cloaca_cron_executions
SET recovery_attempts = recovery_attempts + 1, lost = 1, recovered_at = :now
WHERE id = :id AND recovery_attempts = :attempts AND workflow_execution_id IS NULL
