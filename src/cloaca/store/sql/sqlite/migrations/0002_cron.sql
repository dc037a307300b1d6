-- Cron schedules and the record of every claimed slot.
-- A plain schedule is identified by (workflow, expression, timezone), so registering the
-- same schedule again at every start of an app finds the existing row. A workflow
-- instance is identified by (workflow, instance name).
CREATE TABLE cloaca_cron_schedules (
    id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    instance_name TEXT,
    cron_expression TEXT NOT NULL,
    timezone TEXT NOT NULL,
    catchup_policy TEXT NOT NULL,
    params TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    next_run_at TEXT NOT NULL,
    last_run_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX cloaca_cron_schedules_plain
    ON cloaca_cron_schedules (workflow_name, cron_expression, timezone)
    WHERE instance_name IS NULL;
CREATE UNIQUE INDEX cloaca_cron_schedules_instance
    ON cloaca_cron_schedules (workflow_name, instance_name)
    WHERE instance_name IS NOT NULL;
CREATE INDEX cloaca_cron_schedules_due ON cloaca_cron_schedules (next_run_at)
    WHERE enabled = 1;

-- One row per claimed (schedule, scheduled_time): the UNIQUE key is what makes a slot
-- fire exactly once however many runners share the database. The row, the execution it
-- starts and the schedule's next_run_at commit in one transaction.
-- lost = 1 once recovery found the hand-off missing (no live execution).
CREATE TABLE cloaca_cron_executions (
    id TEXT PRIMARY KEY,
    schedule_id TEXT NOT NULL REFERENCES cloaca_cron_schedules (id) ON DELETE CASCADE,
    scheduled_time TEXT NOT NULL,
    -- Set NULL if the execution row is ever deleted, so "no live execution" is always
    -- "workflow_execution_id IS NULL" and recovery reads a small partial index.
    workflow_execution_id TEXT REFERENCES cloaca_executions (id) ON DELETE SET NULL,
    claimed_at TEXT NOT NULL,
    claimed_by TEXT,
    lost INTEGER NOT NULL DEFAULT 0,
    recovery_attempts INTEGER NOT NULL DEFAULT 0,
    recovered_at TEXT,
    UNIQUE (schedule_id, scheduled_time)
);
CREATE INDEX cloaca_cron_executions_by_time ON cloaca_cron_executions (scheduled_time);
CREATE INDEX cloaca_cron_executions_by_execution
    ON cloaca_cron_executions (workflow_execution_id);
CREATE INDEX cloaca_cron_executions_unlinked ON cloaca_cron_executions (scheduled_time)
    WHERE workflow_execution_id IS NULL;
