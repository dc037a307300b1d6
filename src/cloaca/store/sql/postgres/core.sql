-- Core named queries (PostgreSQL, psycopg 3). Parameters are bound by name as %(name)s;
-- never formatted in. A parameter that may be NULL where PostgreSQL cannot infer its type
-- carries an explicit CAST. JSON id lists arrive as JSON text arrays.
-- LIMIT/OFFSET follow SQLite: a negative LIMIT means "no limit" (NULL here) and a negative
-- OFFSET counts as 0, where PostgreSQL would reject both.

-- name: list_tables
SELECT table_name AS name FROM information_schema.tables
WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'

-- name: schema_version_current
SELECT MAX(version) AS version FROM cloaca_schema_version

-- name: schema_version_insert
INSERT INTO cloaca_schema_version (version, applied_at) VALUES (%(version)s, %(applied_at)s)

-- name: workflow_upsert
INSERT INTO cloaca_workflows (name, version, definition, updated_at)
VALUES (%(name)s, %(version)s, %(definition)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET version = excluded.version,
    definition = excluded.definition, updated_at = excluded.updated_at
WHERE cloaca_workflows.version != excluded.version

-- name: workflow_get
SELECT name, version, definition, updated_at FROM cloaca_workflows WHERE name = %(name)s

-- name: workflow_version_insert
INSERT INTO cloaca_workflow_versions (name, version, definition, recorded_at)
VALUES (%(name)s, %(version)s, %(definition)s, %(now)s)
ON CONFLICT (name, version) DO NOTHING

-- name: workflow_version_get
SELECT definition FROM cloaca_workflow_versions
WHERE name = %(name)s AND version = %(version)s

-- name: runner_insert
INSERT INTO cloaca_runners (id, hostname, pid, started_at, heartbeat_at, stale_at)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(now)s, %(now)s, %(stale_at)s)

-- name: runner_heartbeat
UPDATE cloaca_runners SET heartbeat_at = %(now)s, stale_at = %(stale_at)s WHERE id = %(id)s

-- name: runner_delete
DELETE FROM cloaca_runners WHERE id = %(id)s

-- name: runners_stale_delete
-- Each runner is judged by the threshold it declared (stale_at); a row of an older cloaca
-- without one, by the caller's.
DELETE FROM cloaca_runners
WHERE id != %(self_id)s
  AND (stale_at < %(now)s OR (stale_at IS NULL AND heartbeat_at < %(threshold)s))

-- name: task_fail_orphaned_exhausted
-- A dead runner's attempt counts (the claim incremented attempt): one that was the last
-- allowed fails instead of running once more. Returned for the caller to plan on.
UPDATE cloaca_task_executions
SET status = 'Failed', claimed_by = NULL, sub_status = NULL, completed_at = %(now)s,
    traceback = NULL,
    error = 'runner died during the attempt (attempt ' || CAST(attempt AS TEXT) || ' of '
        || CAST(max_attempts AS TEXT) || ')'
WHERE status = 'Running'
  AND attempt >= max_attempts
  AND claimed_by != %(self_id)s
  AND claimed_by NOT IN (SELECT id FROM cloaca_runners)
  AND execution_id IN (SELECT id FROM cloaca_executions WHERE status IN ('Pending', 'Running'))
RETURNING id, execution_id, workflow_name, workflow_version, task_id, attempt, max_attempts

-- name: task_requeue_orphaned
UPDATE cloaca_task_executions
SET status = 'Ready', claimed_by = NULL, ready_at = %(now)s, sub_status = NULL, traceback = NULL,
    error = 'runner died during the attempt (attempt ' || CAST(attempt AS TEXT) || ' of '
        || CAST(max_attempts AS TEXT) || ')'
WHERE status = 'Running'
  AND attempt < max_attempts
  AND claimed_by != %(self_id)s
  AND claimed_by NOT IN (SELECT id FROM cloaca_runners)
  AND execution_id IN (SELECT id FROM cloaca_executions WHERE status IN ('Pending', 'Running'))

-- name: task_attempt_record_orphaned
-- The attempts of runners just declared dead, in the attempt history (before the
-- statements above and below re-queue, fail or abandon them).
INSERT INTO cloaca_task_attempts
    (execution_id, task_id, attempt, runner_id, started_at, completed_at, outcome, error)
SELECT execution_id, task_id, attempt, claimed_by, started_at, %(now)s, 'runner_died',
       'runner died during the attempt (attempt ' || CAST(attempt AS TEXT) || ' of '
           || CAST(max_attempts AS TEXT) || ')'
FROM cloaca_task_executions
WHERE status = 'Running'
  AND claimed_by != %(self_id)s
  AND claimed_by NOT IN (SELECT id FROM cloaca_runners)
ON CONFLICT (execution_id, task_id, attempt) DO NOTHING

-- name: task_abandon_orphaned
UPDATE cloaca_task_executions
SET status = 'Skipped', claimed_by = NULL, sub_status = NULL, completed_at = %(now)s,
    error = COALESCE(error, 'abandoned: its runner died after the execution had ended')
WHERE status = 'Running'
  AND claimed_by != %(self_id)s
  AND claimed_by NOT IN (SELECT id FROM cloaca_runners)

-- name: execution_insert
INSERT INTO cloaca_executions
    (id, workflow_name, workflow_version, status, context, remaining_tasks, created_at,
     started_at)
VALUES (%(id)s, %(workflow_name)s, %(version)s, %(status)s, %(context)s, %(remaining)s, %(now)s,
        %(started_at)s)

-- name: task_insert
INSERT INTO cloaca_task_executions
    (execution_id, workflow_name, workflow_version, task_id, position, status, max_attempts,
     ready_at, completed_at, error)
VALUES (%(execution_id)s, %(workflow_name)s, %(version)s, %(task_id)s, %(position)s,
        %(status)s, %(max_attempts)s, %(ready_at)s, %(completed_at)s, %(error)s)

-- name: task_claim_ready_marking
-- task_claim_ready and execution_mark_running in ONE statement, so a claim can travel with
-- the COMMIT (its rows are read after it): the claimed rows, oldest first by id.
WITH claimed AS (
    UPDATE cloaca_task_executions
    SET status = 'Running', claimed_by = %(runner_id)s, attempt = attempt + 1,
        started_at = %(now)s, sub_status = NULL
    WHERE id IN (
        SELECT id FROM cloaca_task_executions
        WHERE status = 'Ready' AND ready_at <= %(now)s
          AND workflow_name IN (SELECT jsonb_array_elements_text(CAST(%(workflows)s AS jsonb)))
        ORDER BY ready_at, id
        LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, execution_id, workflow_name, workflow_version, task_id, attempt, max_attempts
), marked AS (
    UPDATE cloaca_executions SET status = 'Running', started_at = %(now)s
    WHERE id IN (
        SELECT id FROM cloaca_executions
        WHERE id IN (SELECT execution_id FROM claimed) AND status = 'Pending'
        FOR UPDATE SKIP LOCKED
    )
)
SELECT * FROM claimed ORDER BY id

-- name: task_claim_execution
-- The Ready task executions of one execution (its roots, claimed by the transaction that
-- creates it, for slots free in the creating process).
UPDATE cloaca_task_executions
SET status = 'Running', claimed_by = %(runner_id)s, attempt = attempt + 1,
    started_at = %(now)s, sub_status = NULL
WHERE id IN (
    SELECT id FROM cloaca_task_executions
    WHERE execution_id = %(execution_id)s AND status = 'Ready' AND ready_at <= %(now)s
    ORDER BY id
    LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)
    FOR UPDATE SKIP LOCKED
)
RETURNING id, execution_id, workflow_name, workflow_version, task_id, attempt, max_attempts

-- name: task_next_ready_at
SELECT MIN(ready_at) AS ready_at FROM cloaca_task_executions
WHERE status = 'Ready'
  AND workflow_name IN (SELECT jsonb_array_elements_text(CAST(%(workflows)s AS jsonb)))

-- name: task_statuses
SELECT task_id, status FROM cloaca_task_executions WHERE execution_id = %(execution_id)s

-- name: task_statuses_of
SELECT task_id, status FROM cloaca_task_executions
WHERE execution_id = %(execution_id)s
  AND task_id IN (SELECT jsonb_array_elements_text(CAST(%(task_ids)s AS jsonb)))

-- name: execution_lock_count_finished
-- A task finished: count it and lock the execution for the planning step that follows
-- (one statement for both; see execution_lock for why planning steps are serialised).
UPDATE cloaca_executions SET remaining_tasks = remaining_tasks - %(finished)s
WHERE id = %(id)s
RETURNING status, remaining_tasks

-- name: execution_count_finished
UPDATE cloaca_executions SET remaining_tasks = remaining_tasks - %(finished)s
WHERE id = %(id)s
RETURNING remaining_tasks

-- name: task_outputs
SELECT task_id, output FROM cloaca_task_executions
WHERE execution_id = %(execution_id)s
  AND task_id IN (SELECT jsonb_array_elements_text(CAST(%(task_ids)s AS jsonb)))

-- name: task_finish_attempt
UPDATE cloaca_task_executions
SET status = %(status)s, output = %(output)s, error = %(error)s, ready_at = %(ready_at)s,
    traceback = %(traceback)s,
    completed_at = %(completed_at)s, claimed_by = NULL, sub_status = NULL
WHERE id = %(id)s AND status = 'Running' AND attempt = %(attempt)s
  AND claimed_by = %(runner_id)s

-- name: task_finish_counting
-- task_finish_attempt with a final status, execution_lock_count_finished and (when that
-- leaves no task unfinished) execution_finish_inputs, in ONE statement: a task's outcome and
-- the count that may end its execution cost one round trip. The first row (task_id NULL)
-- says whether this runner still owned the attempt, and the execution's status and count
-- as locked; the others are the execution's other task executions as of this statement's
-- snapshot, which predates the lock: the caller reads them anew if one is unfinished there
-- (a task that finished meanwhile). ``dependants``: tasks this one, Completed, decides
-- alone (each waits for it only, under the default rule): they become Ready here as
-- task_set_status makes them, while the execution is active, and the count cannot reach
-- zero then. ``claim_by``: a runner id that claims those dependants in the same update
-- (Running, its next attempt: the finishing attempt hands its slot on, as a claim after it
-- would take them), or NULL to leave them Ready; rows with ``claimed_id`` are the claimed
-- ones. The updates run in this order (task row, execution row, dependants), as the
-- separate statements do. The conditions on the dependants' array and on ``ending`` take
-- only parameters and CTE results, so even the generic plan of the prepared statement
-- checks them once, before it reads any task row: otherwise it scans every task of a wide
-- execution for each outcome (1,000 rows, 0.5 ms and more).
WITH t AS (
    UPDATE cloaca_task_executions
    SET status = %(status)s, output = %(output)s, error = %(error)s, ready_at = %(ready_at)s,
        traceback = %(traceback)s,
        completed_at = %(completed_at)s, claimed_by = NULL, sub_status = NULL
    WHERE id = %(id)s AND status = 'Running' AND attempt = %(attempt)s
      AND claimed_by = %(runner_id)s
    RETURNING id
), e AS (
    UPDATE cloaca_executions SET remaining_tasks = remaining_tasks - 1
    WHERE id = %(execution_id)s AND EXISTS (SELECT 1 FROM t)
    RETURNING status, remaining_tasks, context,
              remaining_tasks <= 0 AND status IN ('Pending', 'Running') AS ending
), d AS (
    UPDATE cloaca_task_executions
    SET status = CASE WHEN CAST(%(claim_by)s AS TEXT) IS NULL THEN 'Ready' ELSE 'Running' END,
        claimed_by = %(claim_by)s,
        attempt = attempt + CASE WHEN CAST(%(claim_by)s AS TEXT) IS NULL THEN 0 ELSE 1 END,
        started_at = CASE WHEN CAST(%(claim_by)s AS TEXT) IS NULL THEN started_at
                          ELSE %(completed_at)s END,
        sub_status = NULL, error = NULL, ready_at = %(completed_at)s, completed_at = NULL
    WHERE execution_id = %(execution_id)s AND task_id = ANY(%(dependants)s)
      AND status = 'NotStarted'
      AND cardinality(CAST(%(dependants)s AS TEXT[])) > 0
      AND EXISTS (SELECT 1 FROM e WHERE e.status IN ('Pending', 'Running'))
    RETURNING id, task_id, attempt, max_attempts
)
SELECT (SELECT COUNT(*) FROM t) AS owned, e.status, e.remaining_tasks,
       CASE WHEN e.ending THEN e.context END AS context, CAST(NULL AS TEXT) AS task_id,
       CAST(NULL AS TEXT) AS task_status, CAST(NULL AS TEXT) AS output,
       CAST(NULL AS TEXT) AS error, CAST(NULL AS BIGINT) AS claimed_id,
       CAST(NULL AS BIGINT) AS attempt, CAST(NULL AS BIGINT) AS max_attempts
FROM (SELECT 1) AS one LEFT JOIN e ON TRUE
UNION ALL
SELECT NULL, NULL, NULL, NULL, x.task_id, x.status, x.output, x.error, NULL, NULL, NULL
FROM cloaca_task_executions x
WHERE x.execution_id = %(execution_id)s AND x.id <> %(id)s
  AND EXISTS (SELECT 1 FROM e WHERE e.ending)
UNION ALL
SELECT NULL, NULL, NULL, NULL, d.task_id, 'Running', NULL, NULL, d.id, d.attempt, d.max_attempts
FROM d WHERE CAST(%(claim_by)s AS TEXT) IS NOT NULL

-- name: task_attempt_record
-- One attempt in the history, written just before task_finish_attempt in the same
-- transaction and under the same condition (this runner still owns the attempt).
INSERT INTO cloaca_task_attempts
    (execution_id, task_id, attempt, runner_id, started_at, completed_at, outcome, error,
     traceback)
SELECT execution_id, task_id, attempt, claimed_by, started_at, %(completed_at)s, %(outcome)s,
       %(error)s, %(traceback)s
FROM cloaca_task_executions
WHERE id = %(id)s AND status = 'Running' AND attempt = %(attempt)s AND claimed_by = %(runner_id)s
ON CONFLICT (execution_id, task_id, attempt) DO NOTHING

-- name: task_set_status
UPDATE cloaca_task_executions
SET status = %(status)s, error = %(error)s, ready_at = %(ready_at)s,
    completed_at = %(completed_at)s
WHERE execution_id = %(execution_id)s AND task_id = %(task_id)s AND status = 'NotStarted'

-- name: task_set_sub_status
UPDATE cloaca_task_executions SET sub_status = %(sub_status)s
WHERE id = %(id)s AND status = 'Running' AND attempt = %(attempt)s

-- name: task_cancel_pending
UPDATE cloaca_task_executions
SET status = 'Skipped', error = 'cancelled', traceback = NULL, completed_at = %(now)s,
    claimed_by = NULL
WHERE execution_id = %(execution_id)s AND status IN ('NotStarted', 'Ready')

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
 AND (%(with_tasks)s = 1 OR e.status NOT IN ('Pending', 'Running'))
WHERE e.id = %(id)s
ORDER BY t.position

-- name: task_list
SELECT id, execution_id, task_id, position, status, sub_status, attempt, max_attempts,
       ready_at, claimed_by, started_at, completed_at, error, traceback
FROM cloaca_task_executions WHERE execution_id = %(execution_id)s ORDER BY position

-- name: task_attempts_list
SELECT task_id, attempt, runner_id, started_at, completed_at, outcome, error, traceback
FROM cloaca_task_attempts WHERE execution_id = %(execution_id)s
ORDER BY task_id, attempt

-- name: execution_get
SELECT id, workflow_name, workflow_version, status, context, final_context, error_message,
       created_at, started_at, completed_at
FROM cloaca_executions WHERE id = %(id)s

-- name: execution_status
SELECT status FROM cloaca_executions WHERE id = %(id)s

-- name: execution_lock
-- Serialises every planning step of one execution: concurrent finishes of a fan-in's
-- dependencies each see the others' committed outcomes (READ COMMITTED reads anew after the
-- lock is granted), so exactly one of them makes the join task Ready.
SELECT status FROM cloaca_executions WHERE id = %(id)s FOR UPDATE

-- name: execution_statuses
SELECT id, status FROM cloaca_executions
WHERE id IN (SELECT jsonb_array_elements_text(CAST(%(ids)s AS jsonb)))

-- name: execution_context
SELECT context FROM cloaca_executions WHERE id = %(id)s

-- name: execution_contexts
-- The input contexts of several executions (the roots a claim took), in one read.
SELECT id, context FROM cloaca_executions WHERE id IN (SELECT jsonb_array_elements_text(CAST(%(ids)s AS jsonb)))

-- name: execution_finish
UPDATE cloaca_executions
SET status = %(status)s, final_context = %(final_context)s, error_message = %(error)s,
    completed_at = %(now)s, started_at = COALESCE(started_at, CAST(%(now)s AS TEXT))
WHERE id = %(id)s AND status IN ('Pending', 'Running')

-- name: execution_list
-- seq is the insertion order (SQLite orders by rowid here).
SELECT id, workflow_name, workflow_version, status, context, final_context, error_message,
       created_at, started_at, completed_at
FROM cloaca_executions
WHERE (CAST(%(workflow_name)s AS TEXT) IS NULL
       OR workflow_name = CAST(%(workflow_name)s AS TEXT))
  AND (CAST(%(status)s AS TEXT) IS NULL OR status = CAST(%(status)s AS TEXT))
ORDER BY created_at DESC, seq DESC
LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)
OFFSET GREATEST(CAST(%(offset)s AS BIGINT), 0)

-- name: execution_list_timed_out
SELECT id FROM cloaca_executions
WHERE status IN ('Pending', 'Running') AND created_at <= %(threshold)s

-- name: execution_oldest_active
SELECT MIN(created_at) AS created_at FROM cloaca_executions
WHERE status IN ('Pending', 'Running')

-- name: execution_finish_counted
-- execution_finish for an execution whose last task a statement earlier in the same
-- transaction counted (task_finish_counting): it ends only if that count left no task
-- unfinished, so nothing changes when the task's claim had been lost.
UPDATE cloaca_executions
SET status = %(status)s, final_context = %(final_context)s, error_message = %(error)s,
    completed_at = %(now)s, started_at = COALESCE(started_at, CAST(%(now)s AS TEXT))
WHERE id = %(id)s AND status IN ('Pending', 'Running') AND remaining_tasks <= 0

-- name: trigger_release_holds_ended
-- trigger_release_holds once the execution has ended (by a statement earlier in the same
-- transaction, or before).
UPDATE cloaca_trigger_executions
SET holds_dedup = NULL, completed_at = %(now)s
WHERE workflow_execution_id = %(execution_id)s AND completed_at IS NULL
  AND EXISTS (SELECT 1 FROM cloaca_executions
              WHERE id = %(execution_id)s AND status NOT IN ('Pending', 'Running'))

-- name: trigger_release_holds
UPDATE cloaca_trigger_executions
SET holds_dedup = NULL, completed_at = %(now)s
WHERE workflow_execution_id = %(execution_id)s AND completed_at IS NULL

-- name: execution_finish_inputs
-- Everything finishing an execution needs, in one read: each task execution's status,
-- output and error, and (in the row whose task_id is NULL) the execution's input context.
SELECT task_id, status, output, error, CAST(NULL AS TEXT) AS context
FROM cloaca_task_executions WHERE execution_id = %(execution_id)s
UNION ALL
SELECT NULL, NULL, NULL, NULL, context FROM cloaca_executions WHERE id = %(execution_id)s

-- name: migrate_lock
-- Serialises concurrent migrations of one schema: held until the migrating transaction
-- ends. A lock_timeout in the connection's options (meant for the engine's statements)
-- must not fail a process that starts while another one migrates: this wait has none.
SELECT set_config('lock_timeout', '0', true),
       pg_advisory_xact_lock(823117, hashtext(current_schema()))

-- name: notify
SELECT pg_notify(%(channel)s, %(payload)s)

-- name: data_version
-- The server's WAL insert position: it moves whenever anything is committed.
SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS v

-- name: execution_stalled
-- Active executions nothing will move on: no task Ready or Running, none started or
-- finished since threshold (the active-status index keeps this cheap).
SELECT e.id, e.workflow_name, e.workflow_version FROM cloaca_executions e
WHERE e.status IN ('Pending', 'Running') AND e.created_at <= %(threshold)s
  AND NOT EXISTS (
    SELECT 1 FROM cloaca_task_executions t
    WHERE t.execution_id = e.id
      AND (t.status IN ('Ready', 'Running')
           OR t.started_at > %(threshold)s OR t.completed_at > %(threshold)s))
ORDER BY e.created_at
LIMIT %(limit)s

-- name: execution_recount_remaining
UPDATE cloaca_executions SET remaining_tasks = (
    SELECT COUNT(*) FROM cloaca_task_executions
    WHERE execution_id = %(id)s AND status NOT IN ('Completed', 'Failed', 'Skipped'))
WHERE id = %(id)s
RETURNING remaining_tasks
