"""Fixtures shared by the engine tests."""

from __future__ import annotations

from typing import Any

import pytest

import cloaca
from cloaca import Context


@pytest.fixture
def fired() -> list[dict[str, Any]]:
    """Registers the ``report`` workflow; returns the contexts its task received, in order."""
    seen: list[dict[str, Any]] = []

    @cloaca.task(id="record")
    def record(context: Context) -> None:
        seen.append(context.to_dict())

    cloaca.workflow("report", [record])
    return seen
