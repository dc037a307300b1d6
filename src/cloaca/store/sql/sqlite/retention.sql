-- Retention: pruning what is older than a cutoff (SQLite).
-- An execution is pruned when it is terminal and ended before the cutoff, together with
-- its task executions, their attempts, and the trigger fire and cron slot records that
-- point at it (deleted first: a cron record whose execution vanished would look like a
-- lost hand-off to recovery). Nothing active is touched: Pending and Running executions
-- stay, and so does every fire that holds a dedup hold. Each statement handles one batch
-- (ids picked by prune_pick_executions, or a LIMIT), so a large prune is many short
-- transactions.

-- name: prune_pick_executions
SELECT id FROM cloaca_executions
WHERE status IN ('Completed', 'Failed', 'Cancelled')
  AND created_at < :cutoff AND completed_at < :cutoff
ORDER BY created_at
LIMIT :limit

-- name: prune_cron_of_executions
DELETE FROM cloaca_cron_executions WHERE workflow_execution_id
    IN (SELECT value FROM json_each(:ids))

-- name: prune_fires_of_executions
DELETE FROM cloaca_trigger_executions
WHERE workflow_execution_id
    IN (SELECT value FROM json_each(:ids)) AND holds_dedup IS NULL

-- name: prune_attempts_of_executions
-- Only run when the table exists (it comes with the task attempts migration).
DELETE FROM cloaca_task_attempts WHERE execution_id
    IN (SELECT value FROM json_each(:ids))

-- name: prune_tasks_of_executions
DELETE FROM cloaca_task_executions WHERE execution_id
    IN (SELECT value FROM json_each(:ids))

-- name: prune_executions
DELETE FROM cloaca_executions
WHERE id
    IN (SELECT value FROM json_each(:ids))
  AND status IN ('Completed', 'Failed', 'Cancelled')

-- name: prune_orphan_fires
-- Fires older than the cutoff whose execution is gone, never one holding a dedup hold.
DELETE FROM cloaca_trigger_executions WHERE id IN (
    SELECT te.id FROM cloaca_trigger_executions te
    LEFT JOIN cloaca_executions e ON e.id = te.workflow_execution_id
    WHERE te.created_at < :cutoff AND te.holds_dedup IS NULL AND e.id IS NULL
    LIMIT :limit)

-- name: prune_orphan_cron_records
-- Cron slot records with no execution, older than the cutoff and than the oldest slot
-- recovery would still hand off again (:recovery_horizon).
DELETE FROM cloaca_cron_executions WHERE id IN (
    SELECT id FROM cloaca_cron_executions
    WHERE workflow_execution_id IS NULL AND scheduled_time < :cutoff
      AND scheduled_time < :recovery_horizon
    LIMIT :limit)

-- name: prune_evaluations
DELETE FROM cloaca_trigger_evaluations WHERE id IN (
    SELECT id FROM cloaca_trigger_evaluations WHERE evaluated_at < :cutoff
    ORDER BY id LIMIT :limit)

-- name: prune_count_executions
SELECT COUNT(*) AS n FROM cloaca_executions
WHERE status IN ('Completed', 'Failed', 'Cancelled')
  AND created_at < :cutoff AND completed_at < :cutoff

-- name: prune_count_tasks
SELECT COUNT(*) AS n FROM cloaca_task_executions t
JOIN cloaca_executions e ON e.id = t.execution_id
WHERE e.status IN ('Completed', 'Failed', 'Cancelled')
  AND e.created_at < :cutoff AND e.completed_at < :cutoff

-- name: prune_count_attempts
SELECT COUNT(*) AS n FROM cloaca_task_attempts a
JOIN cloaca_executions e ON e.id = a.execution_id
WHERE e.status IN ('Completed', 'Failed', 'Cancelled')
  AND e.created_at < :cutoff AND e.completed_at < :cutoff

-- name: prune_count_fires
SELECT COUNT(*) AS n FROM cloaca_trigger_executions te
LEFT JOIN cloaca_executions e ON e.id = te.workflow_execution_id
WHERE te.holds_dedup IS NULL
  AND ((e.id IS NULL AND te.created_at < :cutoff)
       OR (e.id IS NOT NULL AND e.status IN ('Completed', 'Failed', 'Cancelled')
  AND e.created_at < :cutoff AND e.completed_at < :cutoff))

-- name: prune_count_cron_records
SELECT COUNT(*) AS n FROM cloaca_cron_executions ce
LEFT JOIN cloaca_executions e ON e.id = ce.workflow_execution_id
WHERE (ce.workflow_execution_id IS NULL AND ce.scheduled_time < :cutoff
       AND ce.scheduled_time < :recovery_horizon)
   OR (e.id IS NOT NULL AND e.status IN ('Completed', 'Failed', 'Cancelled')
  AND e.created_at < :cutoff AND e.completed_at < :cutoff)

-- name: prune_count_evaluations
SELECT COUNT(*) AS n FROM cloaca_trigger_evaluations WHERE evaluated_at < :cutoff
