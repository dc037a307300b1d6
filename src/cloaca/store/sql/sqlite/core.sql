-- Core named queries (SQLite). Parameters are bound by name; never formatted in.

-- name: list_tables
SELECT name FROM sqlite_master WHERE type = 'table'

-- name: schema_version_current
SELECT MAX(version) AS version FROM cloaca_schema_version

-- name: schema_version_insert
INSERT INTO cloaca_schema_version (version, applied_at) VALUES (:version, :applied_at)

-- name: workflow_upsert
INSERT INTO cloaca_workflows (name, version, definition, updated_at)
VALUES (:name, :version, :definition, :now)
ON CONFLICT (name) DO UPDATE SET version = excluded.version,
    definition = excluded.definition, updated_at = excluded.updated_at
WHERE cloaca_workflows.version != excluded.version

-- name: workflow_get
SELECT name, version, definition, updated_at FROM cloaca_workflows WHERE name = :name

-- name: workflow_version_insert
INSERT INTO cloaca_workflow_versions (name, version, definition, recorded_at)
VALUES (:name, :version, :definition, :now)
ON CONFLICT (name, version) DO NOTHING

-- name: workflow_version_get
SELECT definition FROM cloaca_workflow_versions WHERE name = :name AND version = :version

-- name: runner_insert
INSERT INTO cloaca_runners (id, hostname, pid, started_at, heartbeat_at, stale_at)
VALUES (:id, :hostname, :pid, :now, :now, :stale_at)

-- name: runner_heartbeat
UPDATE cloaca_runners SET heartbeat_at = :now, stale_at = :stale_at WHERE id = :id

-- name: runner_delete
DELETE FROM cloaca_runners WHERE id = :id

-- name: runners_stale_delete
-- Each runner is judged by the threshold it declared (stale_at); a row of an older cloaca
-- without one, by the caller's.
DELETE FROM cloaca_runners
WHERE id != :self_id
  AND (stale_at < :now OR (stale_at IS NULL AND heartbeat_at < :threshold))

-- name: task_fail_orphaned_exhausted
-- A dead runner's attempt counts (the claim incremented attempt): one that was the last
-- allowed fails instead of running once more. Returned for the caller to plan on.
UPDATE cloaca_task_executions
SET status = 'Failed', claimed_by = NULL, sub_status = NULL, completed_at = :now,
    traceback = NULL,
    error = 'runner died during the attempt (attempt ' || CAST(attempt AS TEXT) || ' of '
        || CAST(max_attempts AS TEXT) || ')'
WHERE status = 'Running'
  AND attempt >= max_attempts
  AND claimed_by != :self_id
  AND claimed_by NOT IN (SELECT id FROM cloaca_runners)
  AND execution_id IN (SELECT id FROM cloaca_executions WHERE status IN ('Pending', 'Running'))
RETURNING id, execution_id, workflow_name, workflow_version, task_id, attempt, max_attempts

-- name: task_requeue_orphaned
UPDATE cloaca_task_executions
SET status = 'Ready', claimed_by = NULL, ready_at = :now, sub_status = NULL, traceback = NULL,
    error = 'runner died during the attempt (attempt ' || CAST(attempt AS TEXT) || ' of '
        || CAST(max_attempts AS TEXT) || ')'
WHERE status = 'Running'
  AND attempt < max_attempts
  AND claimed_by != :self_id
  AND claimed_by NOT IN (SELECT id FROM cloaca_runners)
  AND execution_id IN (SELECT id FROM cloaca_executions WHERE status IN ('Pending', 'Running'))

-- name: task_attempt_record_orphaned
-- The attempts of runners just declared dead, in the attempt history (before the
-- statements above and below re-queue, fail or abandon them).
INSERT INTO cloaca_task_attempts
    (execution_id, task_id, attempt, runner_id, started_at, completed_at, outcome, error)
SELECT execution_id, task_id, attempt, claimed_by, started_at, :now, 'runner_died',
       'runner died during the attempt (attempt ' || CAST(attempt AS TEXT) || ' of '
           || CAST(max_attempts AS TEXT) || ')'
FROM cloaca_task_executions
WHERE status = 'Running'
  AND claimed_by != :self_id
  AND claimed_by NOT IN (SELECT id FROM cloaca_runners)
ON CONFLICT (execution_id, task_id, attempt) DO NOTHING

-- name: task_abandon_orphaned
UPDATE cloaca_task_executions
SET status = 'Skipped', claimed_by = NULL, sub_status = NULL, completed_at = :now,
    error = COALESCE(error, 'abandoned: its runner died after the execution had ended')
WHERE status = 'Running'
  AND claimed_by != :self_id
  AND claimed_by NOT IN (SELECT id FROM cloaca_runners)

-- name: execution_insert
INSERT INTO cloaca_executions
    (id, workflow_name, workflow_version, status, context, remaining_tasks, created_at,
     started_at)
VALUES (:id, :workflow_name, :version, :status, :context, :remaining, :now,
        :started_at)

-- name: task_insert
INSERT INTO cloaca_task_executions
    (execution_id, workflow_name, workflow_version, task_id, position, status, max_attempts,
     ready_at, completed_at, error)
VALUES (:execution_id, :workflow_name, :version, :task_id, :position, :status, :max_attempts,
        :ready_at, :completed_at, :error)

-- name: task_claim_ready
UPDATE cloaca_task_executions
SET status = 'Running', claimed_by = :runner_id, attempt = attempt + 1,
    started_at = :now, sub_status = NULL
WHERE id IN (
    SELECT id FROM cloaca_task_executions
    WHERE status = 'Ready' AND ready_at <= :now
      AND workflow_name IN (SELECT value FROM json_each(:workflows))
    ORDER BY ready_at, id
    LIMIT :limit
)
RETURNING id, execution_id, workflow_name, workflow_version, task_id, attempt, max_attempts

-- name: task_claim_execution
-- The Ready task executions of one execution (its roots, claimed by the transaction that
-- creates it, for slots free in the creating process).
UPDATE cloaca_task_executions
SET status = 'Running', claimed_by = :runner_id, attempt = attempt + 1,
    started_at = :now, sub_status = NULL
WHERE id IN (
    SELECT id FROM cloaca_task_executions
    WHERE execution_id = :execution_id AND status = 'Ready' AND ready_at <= :now
    ORDER BY id
    LIMIT :limit
)
RETURNING id, execution_id, workflow_name, workflow_version, task_id, attempt, max_attempts

-- name: execution_mark_running
UPDATE cloaca_executions SET status = 'Running', started_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'Pending'

-- name: task_next_ready_at
SELECT MIN(ready_at) AS ready_at FROM cloaca_task_executions
WHERE status = 'Ready' AND workflow_name IN (SELECT value FROM json_each(:workflows))

-- name: task_statuses
SELECT task_id, status FROM cloaca_task_executions WHERE execution_id = :execution_id

-- name: task_statuses_of
SELECT task_id, status FROM cloaca_task_executions
WHERE execution_id = :execution_id AND task_id IN (SELECT value FROM json_each(:task_ids))

-- name: execution_lock_count_finished
-- A task finished: count it and lock the execution for the planning step that follows
-- (one statement for both; see execution_lock for why planning steps are serialised).
UPDATE cloaca_executions SET remaining_tasks = remaining_tasks - :finished
WHERE id = :id
RETURNING status, remaining_tasks

-- name: execution_count_finished
UPDATE cloaca_executions SET remaining_tasks = remaining_tasks - :finished
WHERE id = :id
RETURNING remaining_tasks

-- name: task_outputs
SELECT task_id, output FROM cloaca_task_executions
WHERE execution_id = :execution_id AND task_id IN (SELECT value FROM json_each(:task_ids))

-- name: task_finish_attempt
UPDATE cloaca_task_executions
SET status = :status, output = :output, error = :error, ready_at = :ready_at,
    traceback = :traceback,
    completed_at = :completed_at, claimed_by = NULL, sub_status = NULL
WHERE id = :id AND status = 'Running' AND attempt = :attempt AND claimed_by = :runner_id

-- name: task_attempt_record
-- One attempt in the history, written just before task_finish_attempt in the same
-- transaction and under the same condition (this runner still owns the attempt).
INSERT INTO cloaca_task_attempts
    (execution_id, task_id, attempt, runner_id, started_at, completed_at, outcome, error,
     traceback)
SELECT execution_id, task_id, attempt, claimed_by, started_at, :completed_at, :outcome,
       :error, :traceback
FROM cloaca_task_executions
WHERE id = :id AND status = 'Running' AND attempt = :attempt AND claimed_by = :runner_id
ON CONFLICT (execution_id, task_id, attempt) DO NOTHING

-- name: task_set_status
UPDATE cloaca_task_executions
SET status = :status, error = :error, ready_at = :ready_at, completed_at = :completed_at
WHERE execution_id = :execution_id AND task_id = :task_id AND status = 'NotStarted'

-- name: task_set_sub_status
UPDATE cloaca_task_executions SET sub_status = :sub_status
WHERE id = :id AND status = 'Running' AND attempt = :attempt

-- name: task_cancel_pending
UPDATE cloaca_task_executions
SET status = 'Skipped', error = 'cancelled', traceback = NULL, completed_at = :now,
    claimed_by = NULL
WHERE execution_id = :execution_id AND status IN ('NotStarted', 'Ready')

-- name: execution_with_tasks
-- An execution and its task executions in one statement (one row per task, the task
-- columns prefixed t_). with_tasks = 0 joins the tasks only once the execution is terminal.
SELECT e.id, e.workflow_name, e.workflow_version, e.status, e.context, e.final_context,
       e.error_message, e.created_at, e.started_at, e.completed_at,
       t.id AS t_id, t.execution_id AS t_execution_id, t.task_id AS t_task_id,
       t.position AS t_position, t.status AS t_status, t.sub_status AS t_sub_status,
       t.attempt AS t_attempt, t.max_attempts AS t_max_attempts, t.ready_at AS t_ready_at,
       t.claimed_by AS t_claimed_by, t.started_at AS t_started_at, t.completed_at AS t_completed_at,
       t.error AS t_error, t.traceback AS t_traceback
FROM cloaca_executions e
LEFT JOIN cloaca_task_executions t
  ON t.execution_id = e.id
 AND (:with_tasks = 1 OR e.status NOT IN ('Pending', 'Running'))
WHERE e.id = :id
ORDER BY t.position

-- name: task_list
SELECT id, execution_id, task_id, position, status, sub_status, attempt, max_attempts,
       ready_at, claimed_by, started_at, completed_at, error, traceback
FROM cloaca_task_executions WHERE execution_id = :execution_id ORDER BY position

-- name: task_attempts_list
SELECT task_id, attempt, runner_id, started_at, completed_at, outcome, error, traceback
FROM cloaca_task_attempts WHERE execution_id = :execution_id
ORDER BY task_id, attempt

-- name: execution_get
SELECT id, workflow_name, workflow_version, status, context, final_context, error_message,
       created_at, started_at, completed_at
FROM cloaca_executions WHERE id = :id

-- name: execution_status
SELECT status FROM cloaca_executions WHERE id = :id

-- name: execution_lock
-- Write transactions begin IMMEDIATE, so the database write lock already serialises them.
SELECT status FROM cloaca_executions WHERE id = :id

-- name: execution_statuses
SELECT id, status FROM cloaca_executions WHERE id IN (SELECT value FROM json_each(:ids))

-- name: execution_context
SELECT context FROM cloaca_executions WHERE id = :id

-- name: execution_contexts
-- The input contexts of several executions (the roots a claim took), in one read.
SELECT id, context FROM cloaca_executions WHERE id IN (SELECT value FROM json_each(:ids))

-- name: execution_finish
UPDATE cloaca_executions
SET status = :status, final_context = :final_context, error_message = :error,
    completed_at = :now, started_at = COALESCE(started_at, :now)
WHERE id = :id AND status IN ('Pending', 'Running')

-- name: execution_list
SELECT id, workflow_name, workflow_version, status, context, final_context, error_message,
       created_at, started_at, completed_at
FROM cloaca_executions
WHERE (:workflow_name IS NULL OR workflow_name = :workflow_name)
  AND (:status IS NULL OR status = :status)
ORDER BY created_at DESC, rowid DESC
LIMIT :limit OFFSET :offset

-- name: execution_list_timed_out
SELECT id FROM cloaca_executions
WHERE status IN ('Pending', 'Running') AND created_at <= :threshold

-- name: execution_oldest_active
SELECT MIN(created_at) AS created_at FROM cloaca_executions
WHERE status IN ('Pending', 'Running')

-- name: trigger_release_holds
UPDATE cloaca_trigger_executions
SET holds_dedup = NULL, completed_at = :now
WHERE workflow_execution_id = :execution_id AND completed_at IS NULL

-- name: execution_finish_inputs
-- Everything finishing an execution needs, in one read: each task execution's status,
-- output and error, and (in the row whose task_id is NULL) the execution's input context.
SELECT task_id, status, output, error, CAST(NULL AS TEXT) AS context
FROM cloaca_task_executions WHERE execution_id = :execution_id
UNION ALL
SELECT NULL, NULL, NULL, NULL, context FROM cloaca_executions WHERE id = :execution_id

-- name: migrate_lock
-- SQLite serialises migrations through the write transaction itself: nothing to lock.
SELECT 1

-- name: execution_stalled
-- Active executions nothing will move on: no task Ready or Running, none started or
-- finished since :threshold (the active-status index keeps this cheap).
SELECT e.id, e.workflow_name, e.workflow_version FROM cloaca_executions e
WHERE e.status IN ('Pending', 'Running') AND e.created_at <= :threshold
  AND NOT EXISTS (
    SELECT 1 FROM cloaca_task_executions t
    WHERE t.execution_id = e.id
      AND (t.status IN ('Ready', 'Running')
           OR t.started_at > :threshold OR t.completed_at > :threshold))
ORDER BY e.created_at
LIMIT :limit

-- name: execution_recount_remaining
UPDATE cloaca_executions SET remaining_tasks = (
    SELECT COUNT(*) FROM cloaca_task_executions
    WHERE execution_id = :id AND status NOT IN ('Completed', 'Failed', 'Skipped'))
WHERE id = :id
RETURNING remaining_tasks
