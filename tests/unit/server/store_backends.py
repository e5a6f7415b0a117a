"""Types of the store fixtures (conftest.py), importable by the tests that use them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sdcpp.server.store import JobQueries


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class OpenStore(Protocol):
    """Opens one more store on the test's database (a new connection, as another process)."""

    def __call__(self, when: Callable[[], float] | None = None) -> JobQueries: ...


class RawSql(Protocol):
    def __call__(self, *statements: str) -> None: ...
