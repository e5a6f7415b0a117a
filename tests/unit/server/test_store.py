from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest
from store_backends import Clock, OpenStore, RawSql

from sdcpp.server.sqlite import SqlStore
from sdcpp.server.store import (
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    Job,
    JobQueries,
    JobStore,
    QueueFull,
)

# Every test taking ``store`` or ``open_store`` runs on SQLite and on PostgreSQL (conftest.py).


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "sdcpp.db"


@pytest.fixture
def store(open_store: OpenStore) -> JobQueries:
    return open_store()


def fill(store: JobQueries, n: int, owner: str | None = None) -> list[Job]:
    return [store.create("txt2img", {"prompt": f"p{i}"}, owner=owner) for i in range(n)]


def test_sqlite_file_and_pragmas(db: Path) -> None:
    with JobStore(db) as s:
        assert db.exists()  # parent directory created
        assert not s.shared  # the data dir lock makes this process the only server
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_create_get_list_counts(store: JobQueries, clock: Clock) -> None:
    job = store.create("txt2img", {"prompt": "a cat"}, owner="u1")
    assert re.fullmatch(r"[0-9a-f]{32}", job.id)
    assert (job.status, job.kind, job.owner, job.created_at) == (
        "queued",
        "txt2img",
        "u1",
        clock.now,
    )
    assert (job.attempts, job.crashes, job.outputs, job.result) == (0, 0, [], {})
    assert job.started_at is None and job.lease_owner is None
    assert store.get(job.id) == job
    assert store.get("0" * 32) is None
    other = store.create("upscale", {"scale": 4})
    assert other.seq > job.seq
    assert [j.id for j in store.list()] == [other.id, job.id]
    assert [j.id for j in store.list(newest_first=False)] == [job.id, other.id]
    assert [j.id for j in store.list(owner="u1")] == [job.id]
    assert [j.id for j in store.list(limit=1, offset=1)] == [job.id]
    assert store.list(status="completed") == []
    assert len(store.list(status=["queued", "failed"])) == 2
    assert store.counts() == {s: (2 if s == "queued" else 0) for s in STATUSES}
    assert store.count(owner="u1") == 1 and store.count(status="queued") == 2
    with pytest.raises(ValueError, match="unknown job status"):
        store.count(status="running")
    d = job.to_dict()
    d["params"]["prompt"] = "changed"
    assert job.params == {"prompt": "a cat"}  # to_dict copies


def test_create_validates_kind_and_id(store: JobQueries) -> None:
    with pytest.raises(ValueError, match="kind"):
        store.create("txt2image", {})
    with pytest.raises(ValueError, match="hex"):
        store.create("txt2img", {}, job_id="../../etc")
    job = store.create("txt2img", {}, job_id="ab" * 16)
    assert job.id == "ab" * 16
    with pytest.raises(ValueError, match="exists"):
        store.create("txt2img", {}, job_id="ab" * 16)
    with pytest.raises(ValueError):
        store.create("txt2img", {"cfg": float("nan")})
    assert store.count() == 1  # nothing half-written by the failures


def test_json_params_round_trip(store: JobQueries, open_store: OpenStore) -> None:
    params = {
        "prompt": 'ünïcødé 猫 "quotes" \n',
        "cfg_scale": 7.25,
        "seed": -1,
        "size": [512, 768],
        "loras": [{"name": "x", "weight": 0.5}],
        "hires": None,
        "flag": True,
    }
    job = store.create("img2img", params)
    store.close()
    got = open_store().get(job.id)
    assert got is not None and got.params == params


def test_fifo_claim_order(store: JobQueries, clock: Clock) -> None:
    jobs = fill(store, 5)
    claimed = []
    while (job := store.claim_next("w1", lease_seconds=60)) is not None:
        claimed.append(job)
    assert [j.id for j in claimed] == [j.id for j in jobs]
    first = claimed[0]
    assert first.status == "processing" and first.attempts == 1
    assert (first.started_at, first.lease_owner, first.lease_expires) == (
        clock.now,
        "w1",
        clock.now + 60,
    )
    assert store.claim_next("w1") is None


@pytest.mark.parametrize(
    ("backend", "returning"),
    [("sqlite", True), ("sqlite", False), ("postgres", True)],
    ids=["sqlite-returning", "sqlite-select-update", "postgres"],
    indirect=["backend"],
)
def test_concurrent_claims_never_share_a_job(open_store: OpenStore, returning: bool) -> None:
    # Four threads on one store, plus four stores on the same database (separate connections,
    # as separate processes would have): every job is claimed exactly once.
    stores = [open_store() for _ in range(4)]
    shared = stores[0]
    try:
        ids = {j.id for j in fill(shared, 50)}
        for s in stores:
            s._use_returning = returning and s._use_returning
        got: list[list[str]] = [[] for _ in range(8)]
        barrier = threading.Barrier(8)

        def claim(i: int, s: JobQueries) -> None:
            barrier.wait()
            while (job := s.claim_next(f"w{i}")) is not None:
                got[i].append(job.id)

        threads = [threading.Thread(target=claim, args=(i, shared)) for i in range(4)]
        threads += [threading.Thread(target=claim, args=(4 + i, s)) for i, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        flat = [job_id for ids_ in got for job_id in ids_]
        assert len(flat) == 50 and set(flat) == ids
        assert shared.count(status="processing") == 50
        assert all(j.attempts == 1 for j in shared.list(limit=100))
    finally:
        for s in stores:
            s.close()


def test_queue_full(store: JobQueries, clock: Clock) -> None:
    fill(store, 3)
    with pytest.raises(QueueFull) as info:
        store.create("txt2img", {}, max_queue=3)
    assert info.value.retry_after >= 1
    assert store.count() == 3
    # Running and finished jobs don't count against the queue.
    job = store.claim_next("w")
    assert job is not None
    assert store.create("txt2img", {}, max_queue=3).status == "queued"
    clock.now += 40
    store.finish(job.id, "completed")
    store.claim_next("w")
    store.create("txt2img", {}, max_queue=3)
    clock.now += 10
    with pytest.raises(QueueFull) as info:
        store.create("txt2img", {}, max_queue=3)
    # Jobs take ~40 s; the running one started 10 s ago.
    assert info.value.retry_after == 30


def test_position(store: JobQueries) -> None:
    a, b, c = fill(store, 3)
    assert [store.position(j.id) for j in (a, b, c)] == [1, 2, 3]
    store.claim_next("w")
    assert store.position(a.id) is None
    assert [store.position(b.id), store.position(c.id)] == [1, 2]
    store.cancel(b.id)
    assert store.position(c.id) == 1
    assert store.position("f" * 32) is None


def test_finish_transitions(store: JobQueries, clock: Clock) -> None:
    a, b = fill(store, 2)
    with pytest.raises(ValueError):
        store.finish(a.id, "processing")
    assert store.finish(a.id, "completed") is None  # queued jobs can't complete
    assert store.finish("0" * 32, "failed") is None
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == a.id
    clock.now += 3
    done = store.finish(a.id, "completed", outputs=["0.png"], result={"seeds": [42]})
    assert done is not None
    assert (done.status, done.finished_at, done.outputs, done.result) == (
        "completed",
        clock.now,
        ["0.png"],
        {"seeds": [42]},
    )
    assert done.lease_owner is None and done.lease_expires is None and done.error is None
    assert store.finish(a.id, "failed", error="late") is None  # finished is final
    assert store.finish(a.id, "cancelled") is None
    store.claim_next("w")
    failed = store.finish(b.id, "failed", error="boom")
    assert failed is not None and (failed.status, failed.error, failed.outputs) == (
        "failed",
        "boom",
        [],
    )


def test_cancel_queued_vs_processing(store: JobQueries) -> None:
    a, b, c = fill(store, 3)
    store.claim_next("w")
    assert store.cancel(a.id) is None  # running: the caller goes through the worker
    assert store.get(a.id).status == "processing"  # type: ignore[union-attr]
    cancelled = store.cancel(b.id)
    assert cancelled is not None and cancelled.status == "cancelled" and cancelled.finished_at
    assert store.cancel(b.id) is None
    # The worker, asked to stop, reports the running job cancelled; a queued one may be too.
    assert store.finish(a.id, "cancelled").status == "cancelled"  # type: ignore[union-attr]
    assert store.finish(c.id, "cancelled").status == "cancelled"  # type: ignore[union-attr]
    assert store.claim_next("w") is None


def test_clear_queued(store: JobQueries) -> None:
    mine = fill(store, 3, owner="u1")
    theirs = fill(store, 2, owner="u2")
    store.claim_next("w")  # mine[0] is running and stays so
    assert store.clear_queued(owner="u1") == 2
    assert store.get(mine[0].id).status == "processing"  # type: ignore[union-attr]
    assert {store.get(j.id).status for j in mine[1:]} == {"cancelled"}  # type: ignore[union-attr]
    assert store.count(status="queued") == 2
    assert store.clear_queued() == 2
    assert store.count(status="queued") == 0
    assert store.get(theirs[0].id) is not None  # records kept


def test_delete_rules(store: JobQueries) -> None:
    a, b, c = fill(store, 3)
    store.claim_next("w")
    for job in (a, b):  # processing, queued
        with pytest.raises(ValueError, match="only finished"):
            store.delete(job.id)
    store.finish(a.id, "completed", outputs=["x.png"])
    store.cancel(b.id)
    store.claim_next("w")
    store.finish(c.id, "failed", error="e")
    for job in (a, b, c):
        assert store.delete(job.id) is True
        assert store.get(job.id) is None
    assert store.delete(a.id) is False
    assert store.count() == 0


def test_record_crash_requeues_then_fails(store: JobQueries) -> None:
    a, b = fill(store, 2)
    store.claim_next("w")
    again = store.record_crash(a.id, "worker exited with SIGSEGV")
    assert (again.status, again.crashes, again.error, again.lease_owner) == (
        "queued",
        1,
        None,
        None,
    )
    assert store.position(a.id) == 1  # keeps its place: runs before b
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == a.id and claimed.attempts == 2
    dead = store.record_crash(a.id, "worker exited with SIGSEGV")
    assert (dead.status, dead.crashes) == ("failed", 2)
    assert dead.error == "worker exited with SIGSEGV (not retried: crashed the worker 2 times)"
    assert dead.finished_at is not None
    with pytest.raises(ValueError, match="not processing"):
        store.record_crash(b.id, "x")
    with pytest.raises(KeyError):
        store.record_crash("0" * 32, "x")
    assert store.claim_next("w").id == b.id  # type: ignore[union-attr]


def test_recover_after_restart(open_store: OpenStore) -> None:
    with open_store() as s:
        a, b, c = fill(s, 3)
        s.claim_next("w")  # a runs when the server "dies"
    with open_store() as s:
        assert s.recover() == ([a.id], [])
        assert [s.position(j.id) for j in (a, b, c)] == [1, 2, 3]
        assert s.get(a.id).started_at is None  # type: ignore[union-attr]
        claimed = s.claim_next("w")
        assert claimed is not None and claimed.id == a.id and claimed.attempts == 2
    with open_store() as s:
        assert s.recover() == ([], [a.id])
        dead = s.get(a.id)
        assert dead is not None and dead.status == "failed"
        assert dead.error == "interrupted by a server restart"
        assert s.recover() == ([], [])
        assert s.count(status="queued") == 2  # queued jobs continue


def test_leases_expire_and_renew(store: JobQueries, clock: Clock) -> None:
    a, b = fill(store, 2)
    store.claim_next("w1", lease_seconds=10)
    store.claim_next("w2", lease_seconds=100)
    assert store.expired_leases() == []
    clock.now += 11
    assert [j.id for j in store.expired_leases()] == [a.id]
    assert store.renew_lease(a.id, "w2") is False  # not its lease
    assert store.renew_lease(a.id, "w1", lease_seconds=30) is True
    assert store.get(a.id).lease_expires == clock.now + 30  # type: ignore[union-attr]
    assert store.expired_leases() == []
    assert [j.id for j in store.expired_leases(now=clock.now + 1000)] == [a.id, b.id]
    store.finish(a.id, "completed")
    assert store.renew_lease(a.id, "w1") is False  # finished jobs hold no lease
    assert [j.id for j in store.expired_leases(now=clock.now + 1000)] == [b.id]


def test_persistence_and_versions(open_store: OpenStore) -> None:
    with open_store() as s:
        job = s.create("video", {"frames": 16}, owner="u")
        s.claim_next("w")
        s.finish(job.id, "completed", outputs=["v.webm"], result={"generation_time": 1.5})
        queued = s.create("convert", {"type": "q8_0"})
        assert s.schema_version == SCHEMA_VERSION == 4
    with open_store() as s:
        done = s.get(job.id)
        assert done is not None and done.outputs == ["v.webm"]
        assert done.result == {"generation_time": 1.5}
        assert s.get(queued.id) == queued
        assert s.create("txt2img", {}).seq == queued.seq + 1
    with open_store() as s, pytest.raises(Exception, match="the job store is closed"):
        s.close()
        s.get(job.id)
    with open_store() as s, s._write() as cur:
        cur.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(RuntimeError, match="newer"):
        open_store()


def test_schema_is_portable_sql() -> None:
    ddl = SCHEMA.upper()
    for construct in (
        "AUTOINCREMENT",
        "WITHOUT ROWID",
        "STRICT",
        "PRAGMA",
        "BOOLEAN",
        "DATETIME",
        "BLOB",
        "JSON",
        "ROWID",
        "INSERT OR",
        " REAL",
    ):
        assert construct not in ddl, construct
    types = set(re.findall(r"^ +\w+ +([A-Z]+(?: PRECISION)?)", ddl, re.MULTILINE))
    assert types == {"TEXT", "INTEGER", "BIGINT", "DOUBLE PRECISION"}


def test_list_reuses_decoded_finished_jobs_only(store: JobQueries, clock: Clock) -> None:
    a, b = fill(store, 2)
    store.claim_next("w")
    clock.now += 1
    store.finish(a.id, "completed", outputs=["0.png"], result={"seeds": [1]})
    first = {job.id: job for job in store.list()}
    second = {job.id: job for job in store.list()}
    assert first[a.id] == store.get(a.id) and first[a.id].outputs == ["0.png"]
    assert second[a.id] is first[a.id]  # finished: decoded once
    assert second[b.id] is not first[b.id]  # queued: read afresh, it may change any moment
    store.claim_next("w")
    assert {job.id: job.status for job in store.list()}[b.id] == "processing"
    store.finish(b.id, "failed", error="boom")
    assert {job.id: job.error for job in store.list()}[b.id] == "boom"
    assert store.delete(a.id)
    assert [job.id for job in store.list()] == [b.id]


def counted(other: SqlStore) -> dict[str, int]:
    """Jobs per status counted from the table itself, as a second connection sees them."""
    found = dict(other._read("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
    return {status: int(found.get(status, 0)) for status in STATUSES}


def test_counts_follow_every_transition(store: JobQueries, open_store: OpenStore) -> None:
    other = open_store()
    jobs = fill(store, 6, owner="u1")
    checks = [
        lambda: store.claim_next("w"),
        lambda: store.finish(jobs[0].id, "completed", outputs=["a.png"]),
        lambda: store.claim_next("w"),
        lambda: store.record_crash(jobs[1].id, "SIGSEGV"),  # back to queued
        lambda: store.claim_next("w"),
        lambda: store.record_crash(jobs[1].id, "SIGSEGV"),  # failed for good
        lambda: store.cancel(jobs[2].id),
        lambda: store.claim_next("w"),
        lambda: store.finish(jobs[3].id, "completed"),
        lambda: store.finish(jobs[3].id, "failed"),  # refused: already finished
        lambda: store.delete(jobs[0].id),
        lambda: store.claim_next("w"),
        lambda: store.recover(max_attempts=1),  # processing -> failed
        lambda: store.clear_queued(owner="u1"),
    ]
    for step in checks:
        step()
        assert store.counts() == counted(other)
    assert store.counts() == {
        "queued": 0,
        "processing": 0,
        "completed": 1,
        "failed": 2,
        "cancelled": 2,
    }


def test_a_version_1_database_gets_its_counts(
    open_store: OpenStore, raw_sql: RawSql, backend: str
) -> None:
    with open_store() as s:
        a, b, _ = fill(s, 3)
        s.claim_next("w")
        s.finish(a.id, "completed")
    # what version 1 wrote: the jobs table alone, no counts
    if backend == "sqlite":
        triggers = ("job_counts_insert", "job_counts_delete", "job_counts_update")
        drops = [f"DROP TRIGGER {trigger}" for trigger in triggers]
    else:
        drops = ["DROP TRIGGER job_counts_change ON jobs", "DROP FUNCTION sdcpp_job_counts"]
    raw_sql(*drops, "DROP TABLE job_counts", "UPDATE schema_version SET version = 1")
    with open_store() as s:
        other = open_store()
        assert s.schema_version == SCHEMA_VERSION
        assert (
            s.counts()
            == counted(other)
            == {
                "queued": 2,
                "processing": 0,
                "completed": 1,
                "failed": 0,
                "cancelled": 0,
            }
        )
        s.cancel(b.id)
        assert s.counts() == counted(other)
