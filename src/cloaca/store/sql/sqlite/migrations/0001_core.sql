-- Core schema: workflow definitions, runners, executions, task executions,
-- and the trigger tables whose dedup hold is released when an execution ends.
CREATE TABLE cloaca_workflows (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    definition TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every version ever recorded: an execution is planned with the structure it started
-- with, even after its workflow was re-registered with a different one.
CREATE TABLE cloaca_workflow_versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    definition TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE cloaca_runners (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);

CREATE TABLE cloaca_executions (
    id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    status TEXT NOT NULL,
    context TEXT NOT NULL,
    final_context TEXT,
    error_message TEXT,
    remaining_tasks INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT
);
CREATE INDEX cloaca_executions_created ON cloaca_executions (created_at);
CREATE INDEX cloaca_executions_workflow ON cloaca_executions (workflow_name, created_at);
CREATE INDEX cloaca_executions_active ON cloaca_executions (status)
    WHERE status IN ('Pending', 'Running');

CREATE TABLE cloaca_task_executions (
    id INTEGER PRIMARY KEY,
    execution_id TEXT NOT NULL REFERENCES cloaca_executions (id) ON DELETE CASCADE,
    workflow_name TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    task_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    sub_status TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    ready_at TEXT,
    claimed_by TEXT,
    started_at TEXT,
    completed_at TEXT,
    error TEXT,
    output TEXT,
    UNIQUE (execution_id, task_id)
);
CREATE INDEX cloaca_task_executions_ready ON cloaca_task_executions (ready_at)
    WHERE status = 'Ready';
CREATE INDEX cloaca_task_executions_running ON cloaca_task_executions (claimed_by)
    WHERE status = 'Running';

CREATE TABLE cloaca_trigger_schedules (
    id TEXT PRIMARY KEY,
    trigger_name TEXT NOT NULL UNIQUE,
    workflow_name TEXT NOT NULL,
    poll_interval_ms INTEGER NOT NULL,
    allow_concurrent INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    -- The trigger's own persisted position (SPEC 6.5), committed with the fire it led to.
    cursor TEXT,
    last_poll_at TEXT,
    -- Claiming a poll moves next_poll_at forward with a conditional UPDATE, so among
    -- several runners on one database exactly one polls each due instant.
    next_poll_at TEXT NOT NULL,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    paused_reason TEXT,
    -- Set while a poll runs, so no other runner starts an overlapping poll of the same
    -- trigger. It expires (poll timeout + margin) if the polling process dies.
    lease_owner TEXT,
    lease_until TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE cloaca_trigger_executions (
    id TEXT PRIMARY KEY,
    schedule_id TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    context_hash TEXT NOT NULL,
    workflow_execution_id TEXT,
    holds_dedup INTEGER,
    started_at TEXT,
    completed_at TEXT,
    created_at TEXT NOT NULL
);
-- The dedup hold: at most one active fire per (trigger, context hash) when
-- allow_concurrent is false. holds_dedup is 1 while held and NULL once released.
CREATE UNIQUE INDEX cloaca_trigger_executions_hold
    ON cloaca_trigger_executions (trigger_name, context_hash) WHERE holds_dedup = 1;
CREATE INDEX cloaca_trigger_executions_by_execution
    ON cloaca_trigger_executions (workflow_execution_id);
CREATE INDEX cloaca_trigger_executions_by_trigger
    ON cloaca_trigger_executions (trigger_name, created_at);

-- Every poll and manual fire with its outcome, pruned to the newest
-- trigger_evaluation_retention rows per trigger.
CREATE TABLE cloaca_trigger_evaluations (
    id INTEGER PRIMARY KEY,
    trigger_name TEXT NOT NULL,
    runner_id TEXT,
    scheduled_at TEXT,
    evaluated_at TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT,
    execution_ids TEXT
);
CREATE INDEX cloaca_trigger_evaluations_by_trigger
    ON cloaca_trigger_evaluations (trigger_name, id);
