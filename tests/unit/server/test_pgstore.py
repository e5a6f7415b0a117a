"""PgJobStore where PostgreSQL differs from SQLite: many processes on one queue at once.

Each store is a separate connection, as a separate API process or worker would have; threads
drive them at the same time. (The behaviour both stores share is tested on both by
test_store.py and test_leases.py.)
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import PgServer

from sdcpp.server.pgstore import DatabaseUnavailable, PgAuthStore, PgJobStore, redact
from sdcpp.server.store import STATUSES, QueueFull

psycopg = pytest.importorskip("psycopg", reason="pip install 'sdcpp[postgres]'")


@pytest.fixture
def url(postgres: PgServer) -> str:
    return postgres.fresh_url()


@pytest.fixture
def stores(url: str) -> Iterator[list[PgJobStore]]:
    """Two stores on one database: two API processes."""
    opened = [PgJobStore(url), PgJobStore(url)]
    yield opened
    for s in opened:
        s.close()


def together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i in range(n) on n threads released at once; their results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def table_counts(s: PgJobStore) -> dict[str, int]:
    found = dict(s._read("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
    return {status: int(found.get(status, 0)) for status in STATUSES}


def test_two_stores_four_threads_claim_each_job_once(stores: list[PgJobStore]) -> None:
    a, b = stores
    ids = {a.create("txt2img", {"i": i}).id for i in range(50)}

    def claim_all(i: int) -> list[str]:
        mine = []
        while (job := stores[i % 2].claim_next(f"w{i}")) is not None:
            mine.append(job.id)
        return mine

    got = together(4, claim_all)
    flat = [job_id for ids_ in got for job_id in ids_]
    assert len(flat) == 50 and set(flat) == ids  # each exactly once
    assert all(got), "every claimer got work: SKIP LOCKED let them proceed side by side"
    jobs = b.list(limit=100)
    assert {j.status for j in jobs} == {"processing"} and {j.attempts for j in jobs} == {1}
    holders = Counter(j.lease_owner for j in jobs)
    assert sum(holders.values()) == 50 and set(holders) == {f"w{i}" for i in range(4)}
    assert a.counts()["processing"] == 50 == table_counts(a)["processing"]


def test_concurrent_creates_keep_seq_and_queue_limit_exact(stores: list[PgJobStore]) -> None:
    def create_25(i: int) -> list[int]:
        return [stores[i % 2].create("txt2img", {}).seq for _ in range(25)]

    seqs = [seq for batch in together(4, create_25) for seq in batch]
    assert sorted(seqs) == list(range(1, 101))  # MAX(seq) + 1 never collided
    assert stores[0].counts()["queued"] == 100 == table_counts(stores[0])["queued"]
    # The queue length check and the insert are one step: never more than max_queue queued.
    stores[0].clear_queued()

    def create_until_full(i: int) -> int:
        made = 0
        try:
            while True:
                stores[i % 2].create("txt2img", {}, max_queue=30)
                made += 1
        except QueueFull:
            return made

    assert sum(together(4, create_until_full)) == 30
    assert stores[1].count(status="queued") == 30


def test_two_sweeps_recover_each_expired_job_once(url: str) -> None:
    now = [1000.0]
    sweepers = [PgJobStore(url, clock=lambda: now[0]) for _ in range(2)]
    try:
        first = sweepers[0]
        jobs = [first.create("txt2img", {}) for _ in range(20)]
        for _ in jobs:
            first.claim_next("dead-worker", lease_seconds=10)
        now[0] += 60  # every lease has expired
        results = together(2, lambda i: sweepers[i].recover(expired_only=True))
        requeued = [job_id for done, failed in results for job_id in done]
        assert all(failed == [] for _, failed in results)
        assert sorted(requeued) == sorted(j.id for j in jobs)  # once each, by one sweeper
        assert first.counts()["queued"] == 20 == table_counts(first)["queued"]
    finally:
        for s in sweepers:
            s.close()


def test_mixed_transitions_from_many_stores_never_deadlock(url: str) -> None:
    # Claims, finishes, crashes (re-queue and fail), cancels and sweeps in parallel on six
    # connections: the count trigger takes its two rows in status order, so no transaction
    # waits in a cycle (a deadlock would raise psycopg.errors.DeadlockDetected here).
    stores = [PgJobStore(url) for _ in range(6)]
    for i in range(300):
        stores[i % 2].create("txt2img", {"i": i})

    def churn(i: int) -> int:
        s, done = stores[i], 0
        while (job := s.claim_next(f"w{i}")) is not None:
            step = job.seq % 4
            if step == 0:
                s.finish(job.id, "completed", outputs=["0.png"])
            elif step == 1:
                # ValueError: another thread's recover() below failed it in between
                with contextlib.suppress(ValueError):
                    s.record_crash(job.id, "SIGKILL", max_crashes=2)
            elif step == 2:
                s.finish(job.id, "failed", error="boom")
            else:
                s.cancel(job.id)  # running: refused, it stays processing
                s.recover(max_attempts=1)  # every processing job of every worker fails
            done += 1
        return done

    try:
        assert sum(together(6, churn)) >= 300
        assert stores[0].counts() == table_counts(stores[0])
        assert stores[0].count(status=["queued", "processing"]) == 0
    finally:
        for s in stores:
            s.close()


def test_errors_are_clear_and_never_show_the_password(postgres: PgServer) -> None:
    closed_port = postgres.port + 1 if postgres.port < 65535 else postgres.port - 1
    bad = f"postgresql://sdcpp:s3cret@127.0.0.1:{closed_port}/nowhere"
    with pytest.raises(DatabaseUnavailable) as info:
        PgJobStore(bad, connect_timeout=2)
    message = str(info.value)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://sdcpp:***@127.0.0.1")
    assert "s3cret" not in message and "Traceback" not in message
    assert redact(bad) in message
    with pytest.raises(ValueError, match="postgresql:// URL"):
        PgJobStore("mysql://u:p@h/db")
    with pytest.raises(DatabaseUnavailable, match="no_such_db"):
        PgJobStore(postgres.url.rsplit("/", 1)[0] + "/no_such_db")


def test_missing_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    with pytest.raises(DatabaseUnavailable, match=r"pip install 'sdcpp\[postgres\]'"):
        PgJobStore(url)


def test_a_lost_connection_is_replaced(stores: list[PgJobStore], postgres: PgServer) -> None:
    a, _ = stores
    job = a.create("txt2img", {})
    assert a._conn is not None
    pid = a._conn.info.backend_pid
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        a.get(job.id)  # the call that meets the dead connection fails ...
    got = a.get(job.id)  # ... the next one connects again
    assert got is not None and got.id == job.id
    assert a._conn.info.backend_pid != pid
    assert a.shared  # the job service sweeps only expired leases on a shared queue


def test_procrastinate_schema_lives_beside_ours(url: str) -> None:
    # The next step dispatches through procrastinate (issue 19): its tables, types and
    # functions go in the same database without touching ours, in either order.
    from procrastinate.schema import SchemaManager

    def tables() -> set[str]:
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        return {name for (name,) in found}

    with PgJobStore(url) as jobs, PgAuthStore(url):
        ours = tables()
        job = jobs.create("txt2img", {})
    with psycopg.connect(url) as conn:
        conn.execute(SchemaManager.get_schema())
    theirs = tables() - ours
    assert ours == {
        "schema_version", "jobs", "job_counts", "users", "api_keys", "revoked_tokens",
        "signing_secret",
    }  # fmt: skip
    assert theirs and all(name.startswith("procrastinate_") for name in theirs)
    with PgJobStore(url) as jobs:  # reopened (migration re-run) beside procrastinate's schema
        claimed = jobs.claim_next("w")
        assert claimed is not None and claimed.id == job.id
        assert jobs.counts()["processing"] == 1


def test_the_dispatcher_survives_a_lost_database_connection(
    tmp_path: Path, postgres: PgServer, url: str, own_store: None
) -> None:
    # A worker that loses the database takes no job meanwhile and resumes once it is back.
    from fake_engine import FakeEngine
    from starlette.testclient import TestClient

    from sdcpp.server import Settings, create_app

    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True)
    (models / "tiny.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    settings = Settings(data_dir=tmp_path / "data", database_url=url, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        assert isinstance(store, PgJobStore) and store._conn is not None
        with psycopg.connect(postgres.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))
        time.sleep(2.5)  # the dispatcher polls every second: it meets the dead connection
        body = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "seed": 1}
        job_id = client.post("/api/generate/text2img", json=body).json()["job_id"]
        deadline = time.monotonic() + 20
        while (job := client.get(f"/api/queue/job/{job_id}").json())["status"] != "completed":
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["attempts"] == 1


def test_no_postgresql_skips_on_a_laptop_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import pg_server

    monkeypatch.setattr(pg_server, "find_bindir", lambda: None)
    monkeypatch.delenv(pg_server.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt install postgresql"):
        pg_server.start_server()
    monkeypatch.setenv(pg_server.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"cannot run.*SDCPP_REQUIRE_ROOT_TESTS"):
        pg_server.start_server()
