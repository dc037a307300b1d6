-- A claim takes the oldest Ready task executions first, by (ready_at, id). SQLite's index
-- on ready_at already ends with the rowid (id), so it is in that order. The index is
-- rebuilt with the same name and columns as PostgreSQL's.
DROP INDEX cloaca_task_executions_ready;
CREATE INDEX cloaca_task_executions_ready ON cloaca_task_executions (ready_at, id)
    WHERE status = 'Ready';
