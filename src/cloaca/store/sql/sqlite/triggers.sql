-- Trigger schedules, fires (trigger executions) and the evaluation log (SQLite).

-- name: trigger_schedule_upsert
-- Re-registering keeps the enabled flag, cursor, pause reason and history. A shorter
-- interval pulls the next poll in.
INSERT INTO cloaca_trigger_schedules
    (id, trigger_name, workflow_name, poll_interval_ms, allow_concurrent, on_failed_run,
     enabled, next_poll_at, created_at, updated_at)
VALUES (:id, :trigger_name, :workflow_name, :poll_interval_ms, :allow_concurrent,
        :on_failed_run, 1, :now, :now, :now)
ON CONFLICT (trigger_name) DO UPDATE SET
    workflow_name = excluded.workflow_name,
    poll_interval_ms = excluded.poll_interval_ms,
    allow_concurrent = excluded.allow_concurrent,
    on_failed_run = excluded.on_failed_run,
    next_poll_at = MIN(cloaca_trigger_schedules.next_poll_at, :next_if_updated),
    updated_at = excluded.updated_at
WHERE cloaca_trigger_schedules.workflow_name != excluded.workflow_name
   OR cloaca_trigger_schedules.poll_interval_ms != excluded.poll_interval_ms
   OR cloaca_trigger_schedules.allow_concurrent != excluded.allow_concurrent
   OR cloaca_trigger_schedules.on_failed_run != excluded.on_failed_run

-- name: trigger_schedule_get
SELECT id, trigger_name, workflow_name, poll_interval_ms, allow_concurrent, on_failed_run,
       enabled, cursor, last_poll_at, next_poll_at, consecutive_errors, paused_reason,
       lease_owner, lease_until, created_at, updated_at
FROM cloaca_trigger_schedules WHERE trigger_name = :trigger_name

-- name: trigger_schedule_list
SELECT id, trigger_name, workflow_name, poll_interval_ms, allow_concurrent, on_failed_run,
       enabled, cursor, last_poll_at, next_poll_at, consecutive_errors, paused_reason,
       lease_owner, lease_until, created_at, updated_at
FROM cloaca_trigger_schedules
WHERE (:enabled IS NULL OR enabled = :enabled)
ORDER BY trigger_name
LIMIT :limit OFFSET :offset

-- name: trigger_schedules_active
SELECT id, trigger_name, poll_interval_ms, next_poll_at, lease_owner, lease_until
FROM cloaca_trigger_schedules
WHERE enabled = 1 AND trigger_name IN (SELECT value FROM json_each(:names))

-- name: trigger_schedules_version
-- What the scheduler's view compares to notice other processes' schedule changes.
SELECT COUNT(*) AS n, MAX(updated_at) AS at FROM cloaca_trigger_schedules

-- name: trigger_schedule_enable
-- Enabling clears a pause (reason and error count) and makes the trigger due at once.
UPDATE cloaca_trigger_schedules
SET enabled = 1, paused_reason = NULL, consecutive_errors = 0, updated_at = :now,
    next_poll_at = CASE WHEN enabled = 0 THEN :now ELSE next_poll_at END
WHERE trigger_name = :trigger_name

-- name: trigger_schedule_disable
UPDATE cloaca_trigger_schedules SET enabled = 0, updated_at = :now
WHERE trigger_name = :trigger_name

-- name: trigger_claim
-- The claim: only one runner can move next_poll_at on from the value it read. The lease
-- it takes ends at that next due instant, so a poll that finishes in time needs no
-- release, and a runner that dies mid-poll blocks nobody beyond it. A poll still running
-- by half its interval has its lease extended (trigger_extend_leases). :claims is a JSON
-- array of [schedule id, expected next_poll_at, new next_poll_at].
UPDATE cloaca_trigger_schedules
SET next_poll_at = c.claim_next, last_poll_at = :now, lease_owner = :runner_id,
    lease_until = c.claim_next
FROM (SELECT json_extract(value, '$[0]') AS claim_id, json_extract(value, '$[1]') AS claim_due,
             json_extract(value, '$[2]') AS claim_next
      FROM json_each(:claims)) AS c
WHERE cloaca_trigger_schedules.id = c.claim_id
  AND cloaca_trigger_schedules.next_poll_at = c.claim_due
  AND enabled = 1
  AND (lease_owner IS NULL OR lease_owner = :runner_id OR lease_until <= c.claim_due
       OR lease_until <= :now)
RETURNING id, trigger_name, workflow_name, allow_concurrent, on_failed_run, cursor,
          consecutive_errors

-- name: trigger_extend_leases
UPDATE cloaca_trigger_schedules SET lease_until = :until
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_owner = :runner_id

-- name: trigger_poll_done
-- Ends claimed polls. :ends is a JSON array of [schedule id, failed, retry_at,
-- pause_reason, set_cursor, cursor], one per poll. Right-hand sides see each row as it
-- was, so the pause test counts this error too.
UPDATE cloaca_trigger_schedules
SET consecutive_errors = CASE WHEN e.e_failed THEN consecutive_errors + 1 ELSE 0 END,
    next_poll_at = CASE WHEN e.e_failed THEN MAX(next_poll_at, e.e_retry_at)
                        ELSE next_poll_at END,
    enabled = CASE WHEN e.e_failed AND consecutive_errors + 1 >= :max_errors
                   THEN 0 ELSE enabled END,
    paused_reason = CASE WHEN e.e_failed AND consecutive_errors + 1 >= :max_errors
                         THEN e.e_pause_reason ELSE paused_reason END,
    cursor = CASE WHEN e.e_set_cursor THEN e.e_cursor ELSE cursor END,
    lease_owner = NULL, lease_until = NULL
FROM (SELECT json_extract(value, '$[0]') AS e_id, json_extract(value, '$[1]') AS e_failed,
             json_extract(value, '$[2]') AS e_retry_at,
             json_extract(value, '$[3]') AS e_pause_reason,
             json_extract(value, '$[4]') AS e_set_cursor,
             json_extract(value, '$[5]') AS e_cursor
      FROM json_each(:ends)) AS e
WHERE cloaca_trigger_schedules.id = e.e_id AND lease_owner = :runner_id
RETURNING id, enabled, consecutive_errors, next_poll_at

-- name: trigger_fired_poll_done
-- Ends a poll that fired, in its fire transaction, which holds the row locked with this
-- runner's lease (trigger_schedule_state): trigger_poll_done for a poll that did not fail.
UPDATE cloaca_trigger_schedules
SET consecutive_errors = 0,
    cursor = CASE WHEN :set_cursor = 1 THEN :cursor ELSE cursor END,
    lease_owner = NULL, lease_until = NULL
WHERE id = :id AND lease_owner = :runner_id

-- name: trigger_schedule_state
SELECT enabled, lease_owner, next_poll_at FROM cloaca_trigger_schedules WHERE id = :id

-- name: trigger_release_leases
UPDATE cloaca_trigger_schedules SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = :runner_id

-- name: trigger_execution_insert
-- holds_dedup = 1 takes the dedup hold (the unique partial index refuses a second
-- active one), while NULL (allow_concurrent) never conflicts. The caller reads the row count.
INSERT INTO cloaca_trigger_executions
    (id, schedule_id, trigger_name, context_hash, holds_dedup, created_at)
VALUES (:id, :schedule_id, :trigger_name, :context_hash, :holds_dedup, :now)
ON CONFLICT DO NOTHING

-- name: trigger_execution_holder
SELECT workflow_execution_id FROM cloaca_trigger_executions
WHERE trigger_name = :trigger_name AND context_hash = :context_hash AND holds_dedup = 1

-- name: trigger_context_runs
-- The newest fires of one (trigger, context hash) with their executions' status, read by
-- the fire transaction to apply on_failed_run. A fire whose execution was pruned has a
-- NULL status.
SELECT te.workflow_execution_id, e.status, e.completed_at
FROM cloaca_trigger_executions te
LEFT JOIN cloaca_executions e ON e.id = te.workflow_execution_id
WHERE te.trigger_name = :trigger_name AND te.context_hash = :context_hash
ORDER BY te.created_at DESC, te.rowid DESC
LIMIT :limit

-- name: trigger_execution_link
UPDATE cloaca_trigger_executions SET workflow_execution_id = :execution_id, started_at = :now
WHERE id = :id

-- name: trigger_execution_history
SELECT id, schedule_id, trigger_name, context_hash, workflow_execution_id, holds_dedup,
       started_at, completed_at, created_at
FROM cloaca_trigger_executions
WHERE trigger_name = :trigger_name
ORDER BY created_at DESC, rowid DESC
LIMIT :limit OFFSET :offset

-- name: trigger_evaluation_insert_one
-- One evaluation; the store runs it once per row where that is cheaper than unpacking
-- trigger_evaluation_insert's JSON (SQLite).
INSERT INTO cloaca_trigger_evaluations
    (trigger_name, runner_id, scheduled_at, evaluated_at, duration_ms, outcome, message,
     execution_ids)
VALUES (:trigger_name, :runner_id, :scheduled_at, :evaluated_at, :duration_ms, :outcome,
        :message, :execution_ids)

-- name: trigger_evaluation_list
SELECT id, trigger_name, runner_id, scheduled_at, evaluated_at, duration_ms, outcome,
       message, execution_ids
FROM cloaca_trigger_evaluations
WHERE trigger_name = :trigger_name
ORDER BY id DESC
LIMIT :limit

-- name: trigger_evaluation_prune_many
-- Deletes all but the newest keep evaluations of every trigger named in the JSON text array :names, in one
-- statement: the scheduler prunes the triggers of a whole batch at once.
DELETE FROM cloaca_trigger_evaluations
WHERE id IN (
    SELECT e.id
    FROM json_each(:names) AS n
    JOIN cloaca_trigger_evaluations AS e ON e.trigger_name = n.value
    WHERE e.id <= (SELECT id FROM cloaca_trigger_evaluations
                   WHERE trigger_name = n.value
                   ORDER BY id DESC LIMIT 1 OFFSET :keep))
