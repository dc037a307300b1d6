-- Failures are visible (SPEC 10): the traceback of a task execution's last failure, and
-- a row per attempt that did not simply succeed the first time.
--
-- A first attempt that completes writes no attempt row (the task execution row says all
-- there is to say), but every failed, timed-out or lost attempt does, and so does the attempt
-- that ends a task execution after earlier ones failed. Rows go with their execution
-- (ON DELETE CASCADE, and the SQLite driver turns foreign keys on for every connection).
ALTER TABLE cloaca_task_executions ADD COLUMN traceback TEXT;

CREATE TABLE cloaca_task_attempts (
    id INTEGER PRIMARY KEY,
    execution_id TEXT NOT NULL REFERENCES cloaca_executions (id) ON DELETE CASCADE,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    runner_id TEXT,
    started_at TEXT,
    completed_at TEXT,
    -- completed, failed, timed_out or runner_died
    outcome TEXT NOT NULL,
    error TEXT,
    traceback TEXT,
    UNIQUE (execution_id, task_id, attempt)
);
