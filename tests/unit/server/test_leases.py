"""Schema 3 (lease heartbeat, crash record) and the data dir lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from store_backends import OpenStore, RawSql

from sdcpp.server.datadir import DataDirBusy, DataDirLock
from sdcpp.server.store import SCHEMA_VERSION

# The store tests run on SQLite and on PostgreSQL (conftest.py).

V2_JOBS = """CREATE TABLE jobs (id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, kind TEXT NOT NULL,
status TEXT NOT NULL, params TEXT NOT NULL, owner TEXT, created_at DOUBLE PRECISION NOT NULL,
started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, attempts INTEGER NOT NULL DEFAULT 0,
crashes INTEGER NOT NULL DEFAULT 0, error TEXT, outputs TEXT NOT NULL DEFAULT '[]',
result TEXT NOT NULL DEFAULT '{}', lease_owner TEXT, lease_expires DOUBLE PRECISION)"""


def test_a_version_2_database_migrates_in_place(open_store: OpenStore, raw_sql: RawSql) -> None:
    raw_sql(
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "INSERT INTO schema_version VALUES (2)",
        V2_JOBS,
        "INSERT INTO jobs (id, seq, kind, status, params, created_at, attempts, lease_owner) "
        f"VALUES ('{'a' * 32}', 1, 'txt2img', 'processing', '{{}}', 1.0, 1, 'old')",
    )
    with open_store() as s:
        assert s.schema_version == SCHEMA_VERSION == 4
        job = s.get("a" * 32)
        assert job is not None and (job.heartbeat_at, job.last_error) == (None, None)
        assert s.recover() == (["a" * 32], [])
        job = s.get("a" * 32)
        assert job is not None and job.status == "queued"
        assert job.last_error is not None and "lease of old lost" in job.last_error


def test_heartbeat_and_expired_only_recovery(open_store: OpenStore) -> None:
    now = [100.0]
    with open_store(lambda: now[0]) as s:
        a = s.create("txt2img", {})
        b = s.create("txt2img", {})
        s.claim_next("me", lease_seconds=10)
        s.claim_next("other", lease_seconds=10)
        assert s.get(a.id).heartbeat_at == 100.0  # type: ignore[union-attr]
        now[0] = 105.0
        assert s.renew_lease(a.id, "me", lease_seconds=10)
        assert s.get(a.id).heartbeat_at == 105.0  # type: ignore[union-attr]
        assert s.recover(expired_only=True) == ([], [])  # nothing expired yet
        now[0] = 200.0
        # our own running job is never swept; the other holder's expired lease is
        assert s.recover(expired_only=True, keep_owner="me") == ([b.id], [])
        assert s.get(a.id).status == "processing"  # type: ignore[union-attr]


def test_crash_recorded_even_when_requeued(open_store: OpenStore) -> None:
    with open_store() as s:
        a = s.create("txt2img", {})
        s.claim_next("w")
        again = s.record_crash(a.id, "worker crashed: SIGKILL")
        assert (again.status, again.crashes, again.last_error) == (
            "queued",
            1,
            "worker crashed: SIGKILL",
        )
        assert again.last_error_at is not None


def test_release_gives_the_attempt_back(open_store: OpenStore) -> None:
    with open_store() as s:
        a = s.create("txt2img", {})
        s.claim_next("w")
        assert s.release(a.id, "nobody", "shutdown") is None
        back = s.release(a.id, "w", "stopped by a server shutdown")
        assert back is not None and (back.status, back.attempts) == ("queued", 0)


def test_second_lock_names_the_holder(tmp_path: Path) -> None:
    with DataDirLock(tmp_path):
        code = (
            "import sys; from sdcpp.server.datadir import DataDirLock, DataDirBusy\n"
            "try:\n DataDirLock(sys.argv[1]).acquire()\n"
            "except DataDirBusy as e:\n print(e); sys.exit(3)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
        )
        assert done.returncode == 3
        assert f"pid {os.getpid()}" in done.stdout
    with DataDirLock(tmp_path) as again:  # released: free again
        assert again.held


def test_lock_in_same_process_is_refused(tmp_path: Path) -> None:
    with DataDirLock(tmp_path), pytest.raises(DataDirBusy):
        DataDirLock(tmp_path).acquire()
