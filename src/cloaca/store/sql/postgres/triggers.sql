-- Trigger schedules, fires (trigger executions) and the evaluation log (PostgreSQL).
-- Batched statements take a JSON text array of rows: jsonb_array_elements stands in for
-- SQLite's json_each, and value ->> n for json_extract(value, '$[n]').

-- name: trigger_schedule_upsert
-- Re-registering keeps the enabled flag, cursor, pause reason and history. A shorter
-- interval pulls the next poll in.
INSERT INTO cloaca_trigger_schedules
    (id, trigger_name, workflow_name, poll_interval_ms, allow_concurrent, on_failed_run,
     enabled, next_poll_at, created_at, updated_at)
VALUES (%(id)s, %(trigger_name)s, %(workflow_name)s, %(poll_interval_ms)s,
        %(allow_concurrent)s, %(on_failed_run)s, 1, %(now)s, %(now)s, %(now)s)
ON CONFLICT (trigger_name) DO UPDATE SET
    workflow_name = excluded.workflow_name,
    poll_interval_ms = excluded.poll_interval_ms,
    allow_concurrent = excluded.allow_concurrent,
    on_failed_run = excluded.on_failed_run,
    next_poll_at = LEAST(cloaca_trigger_schedules.next_poll_at,
                         CAST(%(next_if_updated)s AS TEXT)),
    updated_at = excluded.updated_at
WHERE cloaca_trigger_schedules.workflow_name != excluded.workflow_name
   OR cloaca_trigger_schedules.poll_interval_ms != excluded.poll_interval_ms
   OR cloaca_trigger_schedules.allow_concurrent != excluded.allow_concurrent
   OR cloaca_trigger_schedules.on_failed_run != excluded.on_failed_run

-- name: trigger_schedule_get
SELECT id, trigger_name, workflow_name, poll_interval_ms, allow_concurrent, on_failed_run,
       enabled, cursor, last_poll_at, next_poll_at, consecutive_errors, paused_reason,
       lease_owner, lease_until, created_at, updated_at
FROM cloaca_trigger_schedules WHERE trigger_name = %(trigger_name)s

-- name: trigger_schedule_list
SELECT id, trigger_name, workflow_name, poll_interval_ms, allow_concurrent, on_failed_run,
       enabled, cursor, last_poll_at, next_poll_at, consecutive_errors, paused_reason,
       lease_owner, lease_until, created_at, updated_at
FROM cloaca_trigger_schedules
WHERE (CAST(%(enabled)s AS INTEGER) IS NULL OR enabled = CAST(%(enabled)s AS INTEGER))
ORDER BY trigger_name
LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)
OFFSET GREATEST(CAST(%(offset)s AS BIGINT), 0)

-- name: trigger_schedules_active
SELECT id, trigger_name, poll_interval_ms, next_poll_at, lease_owner, lease_until
FROM cloaca_trigger_schedules
WHERE enabled = 1
  AND trigger_name IN (SELECT jsonb_array_elements_text(CAST(%(names)s AS jsonb)))

-- name: trigger_schedules_version
-- What the scheduler's view compares to notice other processes' schedule changes.
SELECT COUNT(*) AS n, MAX(updated_at) AS at FROM cloaca_trigger_schedules

-- name: trigger_schedule_enable
-- Enabling clears a pause (reason and error count) and makes the trigger due at once.
UPDATE cloaca_trigger_schedules
SET enabled = 1, paused_reason = NULL, consecutive_errors = 0, updated_at = %(now)s,
    next_poll_at = CASE WHEN enabled = 0 THEN CAST(%(now)s AS TEXT) ELSE next_poll_at END
WHERE trigger_name = %(trigger_name)s

-- name: trigger_schedule_disable
UPDATE cloaca_trigger_schedules SET enabled = 0, updated_at = %(now)s
WHERE trigger_name = %(trigger_name)s

-- name: trigger_claim
-- The claim: only one runner can move next_poll_at on from the value it read (a
-- concurrent UPDATE of the same row waits, then re-checks the WHERE on the new row). The
-- lease it takes ends at that next due instant, so a poll that finishes in time needs no
-- release, and a runner that dies mid-poll blocks nobody beyond it. A poll still running
-- by half its interval has its lease extended (trigger_extend_leases). claims is a JSON
-- array of [schedule id, expected next_poll_at, new next_poll_at].
UPDATE cloaca_trigger_schedules
SET next_poll_at = c.claim_next, last_poll_at = %(now)s, lease_owner = %(runner_id)s,
    lease_until = c.claim_next
FROM (SELECT item ->> 0 AS claim_id, item ->> 1 AS claim_due, item ->> 2 AS claim_next
      FROM jsonb_array_elements(CAST(%(claims)s AS jsonb)) AS j (item)) AS c
WHERE cloaca_trigger_schedules.id = c.claim_id
  AND cloaca_trigger_schedules.next_poll_at = c.claim_due
  AND enabled = 1
  AND (lease_owner IS NULL OR lease_owner = CAST(%(runner_id)s AS TEXT)
       OR lease_until <= c.claim_due OR lease_until <= CAST(%(now)s AS TEXT))
RETURNING id, trigger_name, workflow_name, allow_concurrent, on_failed_run, cursor,
          consecutive_errors

-- name: trigger_extend_leases
UPDATE cloaca_trigger_schedules SET lease_until = %(until)s
WHERE id IN (SELECT jsonb_array_elements_text(CAST(%(ids)s AS jsonb)))
  AND lease_owner = %(runner_id)s

-- name: trigger_poll_done
-- Ends claimed polls. ends is a JSON array of [schedule id, failed, retry_at,
-- pause_reason, set_cursor, cursor], one per poll (failed and set_cursor are JSON
-- booleans). Right-hand sides see each row as it was, so the pause test counts this
-- error too.
UPDATE cloaca_trigger_schedules
SET consecutive_errors = CASE WHEN e.e_failed THEN consecutive_errors + 1 ELSE 0 END,
    next_poll_at = CASE WHEN e.e_failed THEN GREATEST(next_poll_at, e.e_retry_at)
                        ELSE next_poll_at END,
    enabled = CASE WHEN e.e_failed AND consecutive_errors + 1 >= %(max_errors)s
                   THEN 0 ELSE enabled END,
    paused_reason = CASE WHEN e.e_failed AND consecutive_errors + 1 >= %(max_errors)s
                         THEN e.e_pause_reason ELSE paused_reason END,
    cursor = CASE WHEN e.e_set_cursor THEN e.e_cursor ELSE cursor END,
    lease_owner = NULL, lease_until = NULL
FROM (SELECT item ->> 0 AS e_id, CAST(item ->> 1 AS BOOLEAN) AS e_failed,
             item ->> 2 AS e_retry_at, item ->> 3 AS e_pause_reason,
             CAST(item ->> 4 AS BOOLEAN) AS e_set_cursor, item ->> 5 AS e_cursor
      FROM jsonb_array_elements(CAST(%(ends)s AS jsonb)) AS j (item)) AS e
WHERE cloaca_trigger_schedules.id = e.e_id AND lease_owner = %(runner_id)s
RETURNING id, enabled, consecutive_errors, next_poll_at

-- name: trigger_fired_poll_done
-- Ends a poll that fired, in its fire transaction, which holds the row locked with this
-- runner's lease (trigger_schedule_state): trigger_poll_done for a poll that did not fail.
UPDATE cloaca_trigger_schedules
SET consecutive_errors = 0,
    cursor = CASE WHEN CAST(%(set_cursor)s AS INTEGER) = 1 THEN CAST(%(cursor)s AS TEXT)
                  ELSE cursor END,
    lease_owner = NULL, lease_until = NULL
WHERE id = %(id)s AND lease_owner = %(runner_id)s

-- name: trigger_schedule_state
-- Read by a fire transaction to check it still holds the poll's lease. FOR UPDATE keeps
-- it held until the fire commits: another runner's claim of the expired lease waits, then
-- reads the cursor this fire moved, instead of polling the old cursor and firing the same
-- item again.
SELECT enabled, lease_owner, next_poll_at FROM cloaca_trigger_schedules WHERE id = %(id)s
FOR UPDATE

-- name: trigger_release_leases
UPDATE cloaca_trigger_schedules SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = %(runner_id)s

-- name: trigger_execution_insert
-- holds_dedup = 1 takes the dedup hold (the unique partial index refuses a second
-- active one), while NULL (allow_concurrent) never conflicts. The caller reads the row count.
INSERT INTO cloaca_trigger_executions
    (id, schedule_id, trigger_name, context_hash, holds_dedup, created_at)
VALUES (%(id)s, %(schedule_id)s, %(trigger_name)s, %(context_hash)s, %(holds_dedup)s,
        %(now)s)
ON CONFLICT DO NOTHING

-- name: trigger_execution_holder
SELECT workflow_execution_id FROM cloaca_trigger_executions
WHERE trigger_name = %(trigger_name)s AND context_hash = %(context_hash)s AND holds_dedup = 1

-- name: trigger_context_runs
-- The newest fires of one (trigger, context hash) with their executions' status, read by
-- the fire transaction to apply on_failed_run. A fire whose execution was pruned has a
-- NULL status.
SELECT te.workflow_execution_id, e.status, e.completed_at
FROM cloaca_trigger_executions te
LEFT JOIN cloaca_executions e ON e.id = te.workflow_execution_id
WHERE te.trigger_name = %(trigger_name)s AND te.context_hash = %(context_hash)s
ORDER BY te.created_at DESC, te.seq DESC
LIMIT %(limit)s

-- name: trigger_execution_link
UPDATE cloaca_trigger_executions
SET workflow_execution_id = %(execution_id)s, started_at = %(now)s
WHERE id = %(id)s

-- name: trigger_execution_history
-- seq is the insertion order (SQLite orders by rowid here).
SELECT id, schedule_id, trigger_name, context_hash, workflow_execution_id, holds_dedup,
       started_at, completed_at, created_at
FROM cloaca_trigger_executions
WHERE trigger_name = %(trigger_name)s
ORDER BY created_at DESC, seq DESC
LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)
OFFSET GREATEST(CAST(%(offset)s AS BIGINT), 0)

-- name: trigger_evaluation_insert
-- rows is a JSON array of [trigger_name, scheduled_at, evaluated_at, duration_ms,
-- outcome, message, execution_ids JSON text], so one statement records a batch. Rows are
-- inserted in array order, so ids follow it as they do in SQLite.
INSERT INTO cloaca_trigger_evaluations
    (trigger_name, runner_id, scheduled_at, evaluated_at, duration_ms, outcome, message,
     execution_ids)
SELECT item ->> 0, CAST(%(runner_id)s AS TEXT), item ->> 1, item ->> 2,
       CAST(item ->> 3 AS DOUBLE PRECISION), item ->> 4, item ->> 5, item ->> 6
FROM jsonb_array_elements(CAST(%(rows)s AS jsonb)) WITH ORDINALITY AS j (item, ord)
ORDER BY ord

-- name: trigger_evaluation_list
SELECT id, trigger_name, runner_id, scheduled_at, evaluated_at, duration_ms, outcome,
       message, execution_ids
FROM cloaca_trigger_evaluations
WHERE trigger_name = %(trigger_name)s
ORDER BY id DESC
LIMIT NULLIF(GREATEST(CAST(%(limit)s AS BIGINT), -1), -1)

-- name: trigger_evaluation_prune_many
-- Deletes all but the newest keep evaluations of every trigger named in the JSON text array names, in one
-- statement: the scheduler prunes the triggers of a whole batch at once.
DELETE FROM cloaca_trigger_evaluations
USING (SELECT n.name,
              (SELECT id FROM cloaca_trigger_evaluations
               WHERE trigger_name = n.name
               ORDER BY id DESC LIMIT 1 OFFSET GREATEST(CAST(%(keep)s AS BIGINT), 0)) AS cutoff
       FROM jsonb_array_elements_text(CAST(%(names)s AS jsonb)) AS n (name)) AS c
WHERE cloaca_trigger_evaluations.trigger_name = c.name
  AND cloaca_trigger_evaluations.id <= c.cutoff
