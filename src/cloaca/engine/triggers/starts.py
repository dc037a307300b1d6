"""Starting what a fire asks for: per fired context, the failed-run policy and the dedup
hold decide whether an execution starts; if so, the trigger execution record, the execution
and the link between them are written in the caller's fire transaction (``fire.py``).

When this process runs the workflow and has free task slots, the fire transaction also
claims the new executions' roots, as a ``start()`` does: their tasks start as soon as the
fire commits, without a claim transaction of the executor's own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloaca.clock import rfc3339
from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context, check_context_size
from cloaca.engine.executor import Claim, root_claims
from cloaca.engine.planner import CreateExecution
from cloaca.engine.shape import Shape
from cloaca.engine.triggers.failed_runs import RUNS_READ, Suppressed, decide
from cloaca.store.core import Store
from cloaca.store.db import Later, Tx
from cloaca.store.trigger_records import EvaluationOutcome
from cloaca.triggers.results import context_hash, with_trigger_metadata


@dataclass(frozen=True, slots=True)
class FireResult:
    """What one fire transaction did: executions started, dedup holders hit, contexts the
    failed-run policy held back, and the claims of started roots with their input (read
    once the transaction committed: :func:`claimed_roots`)."""

    execution_ids: tuple[str, ...]
    holders: tuple[str | None, ...]
    suppressed: tuple[Suppressed, ...] = ()
    claims: tuple[tuple[Later, str], ...] = ()
    #: Started roots left Ready (not claimed here): the executor must look for them.
    unclaimed: bool = False


def claimed_roots(fire: FireResult) -> list[Claim]:
    """The root tasks a committed fire transaction claimed, each with its input (the
    execution's input context)."""
    return [claim for later, text in fire.claims for claim in root_claims(later, text)]


class FireStarter:
    """Starts the executions of fires, for one runner's recorder."""

    def __init__(
        self, store: Store, config: DefaultRunnerConfig, create_execution: CreateExecution
    ) -> None:
        self._store = store
        self._config = config
        self._create_execution = create_execution

    def start(
        self,
        tx: Tx,
        schedule_id: str,
        name: str,
        allow_concurrent: bool,
        shape: Shape,
        prepared: Sequence[tuple[str, str]],
        now: datetime,
        policy: str | None = None,
        roots: int = 0,
        reserved: int = 0,
    ) -> FireResult:
        """Start an execution per prepared context (see :func:`prepare`) unless the
        failed-run ``policy`` (None: a manual fire, no policy) or the dedup hold refuses it.
        Runs inside the caller's fire transaction, which claims the ``roots`` of each
        started execution while the ``reserved`` slots last."""
        started: list[str] = []
        claims: list[tuple[Later, str]] = []
        unclaimed = False
        holders: list[str | None] = []
        suppressed: list[Suppressed] = []
        for digest, text in prepared:
            if policy is not None and policy != "refire":
                refused = decide(
                    policy,
                    self._store.triggers.context_runs(tx, name, digest, RUNS_READ),
                    now,
                    allow_concurrent=allow_concurrent,
                    base=timedelta(seconds=self._config.trigger_failed_run_backoff_seconds),
                    cap=timedelta(seconds=self._config.trigger_failed_run_backoff_max_seconds),
                )
                if refused is not None:
                    suppressed.append(refused)
                    continue
            trigger_execution_id = str(uuid.uuid4())
            # The unique partial index decides; reading the row count is the only check.
            if not self._store.triggers.insert_execution(
                tx,
                trigger_execution_id=trigger_execution_id,
                schedule_id=schedule_id,
                trigger_name=name,
                context_hash=digest,
                hold=not allow_concurrent,
                now=now,
            ):
                holders.append(self._store.triggers.dedup_holder(tx, name, digest))
                continue
            take = min(roots, reserved)
            reserved -= take
            # Roots this transaction claims need no notification to other runners.
            execution_id = self._create_execution(
                tx, shape, text, now, notify_ready=take < roots, running=take > 0
            )
            self._store.triggers.link_execution(tx, trigger_execution_id, execution_id, now)
            if take:
                # Claimed as this process's runner (the Store's origin); the rows come back
                # with the COMMIT. A root's input is the execution's.
                tasks = self._store.tasks
                later = tasks.claim_execution_later(tx, self._store.origin, execution_id, take, now)
                claims.append((later, text))
            unclaimed = unclaimed or take < roots or not roots
            started.append(execution_id)
        return FireResult(
            tuple(started), tuple(holders), tuple(suppressed), tuple(claims), unclaimed
        )


def prepare(
    shape: Shape, contexts: Sequence[Context | None], name: str, now: datetime, max_bytes: int
) -> list[tuple[str, str]]:
    """``(dedup hash, execution input JSON)`` per fired context; raises for non-JSON,
    ParamsError for inputs the workflow does not accept, and ContextLimitError for an input
    over ``max_bytes`` (then none of them fires)."""
    stamp = rfc3339(now)
    out = []
    for i, ctx in enumerate(contexts):
        data = shape.bind_params(with_trigger_metadata(ctx, name, stamp or ""))
        what = f"the context fired by trigger {name!r}"
        if len(contexts) > 1:
            what = f"context {i} of the {len(contexts)} fired by trigger {name!r}"
        text = check_context_size(json.dumps(data, allow_nan=False), max_bytes, what)
        out.append((context_hash(ctx), text))
    return out


def fire_outcome(fire: FireResult) -> tuple[EvaluationOutcome, str | None]:
    held = fire.holders
    if not held and not fire.suppressed:
        return EvaluationOutcome.FIRED, None
    reasons = [s.message for s in fire.suppressed]
    if held:
        holders = ", ".join(str(h) for h in held)
        reasons.append(f"an execution with the same context is still active: {holders}")
    if not fire.execution_ids:
        outcome = fire.suppressed[0].outcome if fire.suppressed else EvaluationOutcome.DEDUPLICATED
        return outcome, "; ".join(reasons)
    refused = len(held) + len(fire.suppressed)
    total = refused + len(fire.execution_ids)
    if not fire.suppressed:
        return (
            EvaluationOutcome.FIRED,
            f"{len(held)} of {total} contexts deduplicated (still active: {holders})",
        )
    return EvaluationOutcome.FIRED, f"{refused} of {total} contexts not fired: " + "; ".join(
        reasons
    )
