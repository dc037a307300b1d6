-- A claim takes the oldest Ready task executions first, by (ready_at, id). Indexed by
-- ready_at alone, a claim read and sorted every Ready row of a wide execution (all of its
-- roots share one ready_at) to take the first few: 2 ms for 1,000 rows. In index order
-- it stops at its limit.
DROP INDEX cloaca_task_executions_ready;
CREATE INDEX cloaca_task_executions_ready ON cloaca_task_executions (ready_at, id)
    WHERE status = 'Ready';
