-- Reads for management tools (CLI, dashboard): what is recorded, who is running.

-- name: workflow_list
SELECT name, version, definition, updated_at FROM cloaca_workflows ORDER BY name

-- name: runner_list
-- Each runner row with what it holds: running task executions and trigger poll leases.
SELECT r.id, r.hostname, r.pid, r.started_at, r.heartbeat_at,
    (SELECT COUNT(*) FROM cloaca_task_executions t
     WHERE t.status = 'Running' AND t.claimed_by = r.id) AS running_tasks,
    (SELECT COUNT(*) FROM cloaca_trigger_schedules s
     WHERE s.lease_owner = r.id) AS trigger_leases
FROM cloaca_runners r
ORDER BY r.started_at, r.id
