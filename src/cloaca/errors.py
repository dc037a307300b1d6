"""Every exception cloaca raises, under one root: ``except cloaca.CloacaError`` catches them all.

Where the SPEC (and upstream ``cloaca``) promises a builtin type, the class derives from it
too, so ``except ValueError`` / ``TypeError`` / ``KeyError`` keep working: bad input is a
:class:`ValidationError` (a ``ValueError``), a value of the wrong type a
:class:`WrongTypeError` (a ``TypeError``), a missing key a :class:`MissingKeyError` (a
``KeyError``).

This module imports nothing from cloaca, so every layer can use it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BadTaskResult",
    "CloacaError",
    "ConnectionFailed",
    "ContextLimitError",
    "MissingKeyError",
    "NotACloacaDatabase",
    "OperationError",
    "ParamsError",
    "RunnerShutDown",
    "SchemaTooNew",
    "StoreError",
    "TaskTimedOut",
    "TransientStoreError",
    "TriggerError",
    "ValidationError",
    "WrongTypeError",
]


class CloacaError(Exception):
    """The root of every exception cloaca raises."""


# -- bad input ----------------------------------------------------------------------------------


class ValidationError(CloacaError, ValueError):
    """A value the caller passed is not accepted; the message names it and what is."""


class WrongTypeError(CloacaError, TypeError):
    """A value of a type cloaca cannot take (a context value that is not JSON, ...)."""


class MissingKeyError(CloacaError, KeyError):
    """A key or variable that is not there (``ctx["missing"]``, ``cloaca.var("X")``)."""


class ContextLimitError(ValidationError):
    """A context is too deeply nested or too large (``max_context_bytes``)."""


class ParamsError(ValidationError):
    """An execution's inputs do not match the workflow's ``@workflow_params``; ``problems``
    lists every one (a missing required input, a value of the wrong type)."""

    def __init__(self, workflow_name: str, problems: Sequence[str]) -> None:
        self.workflow_name = workflow_name
        self.problems = tuple(problems)
        super().__init__(
            f"invalid inputs for workflow {workflow_name!r}: " + "; ".join(self.problems)
        )


# -- the database -------------------------------------------------------------------------------


class StoreError(CloacaError):
    """A persistence failure the engine cannot interpret further."""


class TransientStoreError(StoreError):
    """A failure that may pass if the whole transaction is tried again: a lost connection,
    a serialization failure or deadlock, a database locked by another writer. Drivers raise
    it; :func:`cloaca.store.retry.retrying` retries it."""


class ConnectionFailed(StoreError, ValueError):
    """The database cannot be reached or refuses us: a wrong host, port, name or password
    (the message names the URL, password masked, and the server's reason)."""


class NotACloacaDatabase(StoreError, ValueError):
    """The database holds tables but none of cloaca's schema bookkeeping."""


class SchemaTooNew(StoreError, ValueError):
    """The database was migrated by a newer cloaca than this one."""


# -- running tasks and triggers -----------------------------------------------------------------


class TaskTimedOut(CloacaError):
    """An attempt ran past its timeout."""


class BadTaskResult(CloacaError, TypeError):
    """A task body returned something the engine cannot use; retrying cannot fix that."""


class OperationError(CloacaError, RuntimeError):
    """Something that cannot be done in the current state: waiting on a runner that is
    driven by hand, a server that did not come up."""


class RunnerShutDown(CloacaError, RuntimeError):
    """The runner was shut down (or is shutting down) while this was asked of it."""


class TriggerError(CloacaError):
    """A poll failed; raised by user ``poll()`` code (any other exception is treated alike)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
