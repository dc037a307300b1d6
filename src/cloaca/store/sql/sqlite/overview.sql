-- Reads for overviews (dashboard pages, metrics): keyset pages and aggregate counts.

-- name: execution_page
-- Newest first from just below the :before execution (keyset: no OFFSET scan), with who
-- started each one. :started_by is 'trigger', 'cron', 'api' (neither) or NULL (any).
SELECT e.id, e.workflow_name, e.workflow_version, e.status, e.context, e.final_context,
       e.error_message, e.created_at, e.started_at, e.completed_at,
       (SELECT t.trigger_name FROM cloaca_trigger_executions t
        WHERE t.workflow_execution_id = e.id LIMIT 1) AS trigger_name,
       (SELECT c.schedule_id FROM cloaca_cron_executions c
        WHERE c.workflow_execution_id = e.id LIMIT 1) AS cron_schedule_id
FROM cloaca_executions e
WHERE (:workflow_name IS NULL OR e.workflow_name = :workflow_name)
  AND (:status IS NULL OR e.status = :status)
  AND (:before IS NULL OR (e.created_at, e.rowid) <
       (SELECT b.created_at, b.rowid FROM cloaca_executions b WHERE b.id = :before))
  AND (:started_by IS NULL
       OR (:started_by = 'trigger' AND EXISTS (SELECT 1 FROM cloaca_trigger_executions t
                                               WHERE t.workflow_execution_id = e.id))
       OR (:started_by = 'cron' AND EXISTS (SELECT 1 FROM cloaca_cron_executions c
                                            WHERE c.workflow_execution_id = e.id))
       OR (:started_by = 'api'
           AND NOT EXISTS (SELECT 1 FROM cloaca_trigger_executions t
                           WHERE t.workflow_execution_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM cloaca_cron_executions c
                           WHERE c.workflow_execution_id = e.id)))
ORDER BY e.created_at DESC, e.rowid DESC
LIMIT :limit

-- name: execution_summary
SELECT e.id, e.workflow_name, e.workflow_version, e.status, e.context, e.final_context,
       e.error_message, e.created_at, e.started_at, e.completed_at,
       (SELECT t.trigger_name FROM cloaca_trigger_executions t
        WHERE t.workflow_execution_id = e.id LIMIT 1) AS trigger_name,
       (SELECT c.schedule_id FROM cloaca_cron_executions c
        WHERE c.workflow_execution_id = e.id LIMIT 1) AS cron_schedule_id
FROM cloaca_executions e
WHERE e.id = :id

-- name: execution_ids_with_prefix
-- Ids starting with a prefix, for tools that accept a shortened id. Ids are hex digits and
-- dashes compared bytewise, so they lie in [prefix, prefix || '~'): a primary-key range scan.
SELECT id FROM cloaca_executions
WHERE id >= :prefix AND id < :prefix_end
ORDER BY id
LIMIT :limit

-- The metrics count what happens while they are served: each "tail" reads the rows added
-- after a position (an ever-growing integer), in order; ``final`` rows will not change.

-- name: active_execution_counts
SELECT status, COUNT(*) AS n FROM cloaca_executions
WHERE status IN ('Pending', 'Running') GROUP BY status

-- name: task_queue_counts
-- One count per status, each matching its partial index (an IN over both scans the table).
SELECT 'Ready' AS status, (SELECT COUNT(*) FROM cloaca_task_executions
                           WHERE status = 'Ready') AS n
UNION ALL
SELECT 'Running', (SELECT COUNT(*) FROM cloaca_task_executions WHERE status = 'Running')

-- name: tail_end_executions
SELECT COALESCE(MAX(rowid), 0) AS pos FROM cloaca_executions

-- name: tail_executions
SELECT rowid AS pos, status IN ('Completed', 'Failed', 'Cancelled') AS final, status
FROM cloaca_executions WHERE rowid > :after ORDER BY rowid LIMIT :limit

-- name: tail_end_tasks
SELECT COALESCE(MAX(id), 0) AS pos FROM cloaca_task_executions

-- name: tail_tasks
SELECT id AS pos, status IN ('Completed', 'Failed', 'Skipped') AS final, status, started_at,
       completed_at
FROM cloaca_task_executions WHERE id > :after ORDER BY id LIMIT :limit

-- name: tail_end_evaluations
SELECT COALESCE(MAX(id), 0) AS pos FROM cloaca_trigger_evaluations

-- name: tail_evaluations
SELECT id AS pos, TRUE AS final, trigger_name, outcome
FROM cloaca_trigger_evaluations WHERE id > :after ORDER BY id LIMIT :limit

-- name: tail_end_cron_slots
SELECT COALESCE(MAX(rowid), 0) AS pos FROM cloaca_cron_executions

-- name: tail_cron_slots
SELECT rowid AS pos, TRUE AS final, scheduled_time, claimed_at
FROM cloaca_cron_executions WHERE rowid > :after ORDER BY rowid LIMIT :limit
