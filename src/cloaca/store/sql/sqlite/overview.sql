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

-- name: execution_counts
SELECT status, COUNT(*) AS n FROM cloaca_executions GROUP BY status

-- name: task_counts
SELECT status, COUNT(*) AS n FROM cloaca_task_executions GROUP BY status

-- name: task_ready_count
SELECT COUNT(*) AS n FROM cloaca_task_executions WHERE status = 'Ready'

-- name: evaluation_counts
SELECT trigger_name, outcome, COUNT(*) AS n
FROM cloaca_trigger_evaluations GROUP BY trigger_name, outcome

-- name: task_duration_buckets
-- Finished attempts' durations in seconds, counted per histogram bucket (:b0 < :b1 < ...;
-- bucket 8 is +Inf) with the sum, in one pass.
SELECT CASE WHEN d <= :b0 THEN 0 WHEN d <= :b1 THEN 1 WHEN d <= :b2 THEN 2
            WHEN d <= :b3 THEN 3 WHEN d <= :b4 THEN 4 WHEN d <= :b5 THEN 5
            WHEN d <= :b6 THEN 6 WHEN d <= :b7 THEN 7 ELSE 8 END AS bucket,
       COUNT(*) AS n, SUM(d) AS total
FROM (SELECT (julianday(completed_at) - julianday(started_at)) * 86400.0 AS d
      FROM cloaca_task_executions
      WHERE completed_at IS NOT NULL AND started_at IS NOT NULL)
GROUP BY bucket

-- name: cron_lateness_buckets
-- How long after its scheduled time each cron slot was claimed, per bucket as above.
SELECT CASE WHEN d <= :b0 THEN 0 WHEN d <= :b1 THEN 1 WHEN d <= :b2 THEN 2
            WHEN d <= :b3 THEN 3 WHEN d <= :b4 THEN 4 WHEN d <= :b5 THEN 5
            WHEN d <= :b6 THEN 6 WHEN d <= :b7 THEN 7 ELSE 8 END AS bucket,
       COUNT(*) AS n, SUM(d) AS total
FROM (SELECT MAX(0.0, (julianday(claimed_at) - julianday(scheduled_time)) * 86400.0) AS d
      FROM cloaca_cron_executions)
GROUP BY bucket
