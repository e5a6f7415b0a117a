"""The job store under test, on each database it supports: SQLite (always) and PostgreSQL (a
throw-away server, tests/unit/pg_server.py; each test on a schema of its own)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_backends import Clock, OpenStore, RawSql

from sdcpp.server.auth.store import AuthQueries, AuthStore
from sdcpp.server.store import JobQueries, JobStore


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Path | str:
    """The test's database: an SQLite file path, or a PostgreSQL URL on a fresh schema."""
    if backend == "sqlite":
        return tmp_path / "data" / "sdcpp.db"
    return str(request.getfixturevalue("postgres").fresh_url())


@pytest.fixture
def open_store(database: Path | str, clock: Clock) -> Iterator[OpenStore]:
    opened: list[JobQueries] = []

    def open_(when: Callable[[], float] | None = None) -> JobQueries:
        when = clock if when is None else when
        if isinstance(database, Path):
            opened.append(JobStore(database, clock=when))
        else:
            from sdcpp.server.pgstore import PgJobStore

            opened.append(PgJobStore(database, clock=when))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def open_auth(database: Path | str) -> Iterator[Callable[[], AuthQueries]]:
    """Opens one more auth store (users, keys, revocations) on the test's database."""
    opened: list[AuthQueries] = []

    def open_() -> AuthQueries:
        if isinstance(database, Path):
            opened.append(AuthStore(database))
        else:
            from sdcpp.server.pgstore import PgAuthStore

            opened.append(PgAuthStore(database))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def raw_sql(database: Path | str) -> RawSql:
    """Runs statements on the test's database past the store (as an older sdcpp wrote it),
    in one transaction."""

    def run(*statements: str) -> None:
        if isinstance(database, Path):
            database.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(database)
            try:
                for statement in statements:
                    conn.execute(statement)
                conn.commit()
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(database) as pg:  # committed on exit
            for statement in statements:
                pg.execute(statement)  # type: ignore[arg-type]

    return run


# SDCPP_TEST_STORE=postgres: every app the server tests create keeps its jobs, users and keys in
# PostgreSQL (a schema per test) instead of the data dir's SQLite file, so the same suite shows
# the same results on both: ``SDCPP_TEST_STORE=postgres pytest tests/unit/server``.
STORE_ENV = "SDCPP_TEST_STORE"


@pytest.fixture
def own_store() -> None:
    """Asked for by tests that choose their app's store themselves (the data dir's SQLite file,
    opened with sqlite3; a ``database_url`` of their own): ``SDCPP_TEST_STORE=postgres`` leaves
    their apps alone."""


@pytest.fixture(autouse=True)
def _apps_on_postgres(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get(STORE_ENV, "sqlite") != "postgres":
        return
    if "backend" in request.fixturenames or "own_store" in request.fixturenames:
        return
    from sdcpp.server import app as app_module
    from sdcpp.server.auth import service as auth_service
    from sdcpp.server.auth import store as auth_store
    from sdcpp.server.pgstore import PgAuthStore, PgJobStore

    url: list[str] = []

    def test_url() -> str:
        if not url:
            url.append(request.getfixturevalue("postgres").fresh_url())
        return url[0]

    monkeypatch.setattr(app_module, "open_job_store", lambda settings: PgJobStore(test_url()))
    for module in (auth_service, auth_store):
        monkeypatch.setattr(module, "open_auth_store", lambda settings: PgAuthStore(test_url()))
