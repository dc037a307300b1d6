"""The translation of the client's errors into HTTP errors, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from starlette.exceptions import HTTPException

T = TypeVar("T")


@contextmanager
def as_http_errors() -> Iterator[None]:
    """ValueError/KeyError from the client → 400 with its message (it names the value and
    what is accepted)."""
    try:
        yield
    except (ValueError, KeyError) as exc:
        raise HTTPException(400, str(exc.args[0] if exc.args else exc)) from exc


def lookup(find: Callable[[], T | None], what: str) -> T:
    """``find()``'s result; a ValueError from it, or None, is a 404 page."""
    try:
        found = find()
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc
    if found is None:
        raise HTTPException(404, f"{what} not found")
    return found
