"""Workflow definitions as recorded by runners: the latest per name, and every version."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cloaca.clock import to_db_time
from cloaca.store.db import Tx
from cloaca.store.group import QueryGroup


class WorkflowQueries(QueryGroup):
    """``Store.workflows``: recorded workflow definitions."""

    def record(self, name: str, version: str, definition: dict[str, Any], now: datetime) -> None:
        """Record a workflow's definition: the latest per name, and every version ever seen."""
        params = {
            "name": name,
            "version": version,
            "definition": json.dumps(definition),
            "now": to_db_time(now),
        }
        with self.db.write() as tx:
            tx.send("workflow_upsert", params)
            tx.send("workflow_version_insert", params)

    def definition(self, name: str, version: str | None = None) -> dict[str, Any] | None:
        """The recorded definition of ``name`` (latest, or the given ``version``), or None."""
        with self.db.read() as tx:
            if version is None:
                row = tx.one("workflow_get", {"name": name})
                return json.loads(row["definition"]) if row else None
            return self.version_definition(tx, name, version)

    def version_definition(self, tx: Tx, name: str, version: str) -> dict[str, Any] | None:
        """The recorded definition of version ``version`` of ``name``, or None (in ``tx``)."""
        row = tx.one("workflow_version_get", {"name": name, "version": version})
        return json.loads(row["definition"]) if row else None
