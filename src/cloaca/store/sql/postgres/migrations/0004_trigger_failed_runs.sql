-- What a trigger does with a context whose last run failed or was cancelled
-- (refire | backoff | hold), and the index the fire transaction reads that last run by.
ALTER TABLE cloaca_trigger_schedules
    ADD COLUMN on_failed_run TEXT COLLATE "C" NOT NULL DEFAULT 'backoff';
CREATE INDEX cloaca_trigger_executions_by_context
    ON cloaca_trigger_executions (trigger_name, context_hash, created_at, seq);
