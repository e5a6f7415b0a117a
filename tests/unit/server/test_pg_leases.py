"""Leases on a shared queue: only the lease holder completes a job, and on PostgreSQL every
lease time is the database's clock, whatever the process's clock says."""

from __future__ import annotations

import time

import pytest
from pg_server import PgServer
from store_backends import Clock, OpenStore

from sdcpp.server.store import JobQueries

psycopg = pytest.importorskip("psycopg", reason="pip install 'sdcpp[postgres]'")


def _taken_over(open_store: OpenStore, clock: Clock) -> tuple[JobQueries, JobQueries, str]:
    """Worker a's lease expires, the sweep re-queues its job and worker b claims it."""
    a, b = open_store(), open_store()
    job = a.create("txt2img", {"prompt": "x"})
    a.claim_next("a", lease_seconds=10)
    clock.now += 60
    assert b.recover(expired_only=True, keep_owner="b") == ([job.id], [])
    again = b.claim_next("b", lease_seconds=10)
    assert again is not None and again.id == job.id and again.lease_owner == "b"
    return a, b, job.id


def test_a_worker_whose_lease_was_taken_over_cannot_complete(
    open_store: OpenStore, clock: Clock
) -> None:
    a, b, job_id = _taken_over(open_store, clock)
    assert a.finish(job_id, "completed", outputs=["a.png"], worker_id="a") is None
    still = b.get(job_id)
    assert still is not None
    assert (still.status, still.lease_owner, still.outputs) == ("processing", "b", [])
    done = b.finish(job_id, "completed", outputs=["b.png"], worker_id="b")
    assert done is not None and (done.status, done.outputs) == ("completed", ["b.png"])


def test_a_crash_report_of_the_old_holder_leaves_the_new_one_alone(
    open_store: OpenStore, clock: Clock
) -> None:
    a, b, job_id = _taken_over(open_store, clock)
    with pytest.raises(ValueError, match="held by b, not a"):
        a.record_crash(job_id, "worker killed by SIGKILL", worker_id="a")
    still = b.get(job_id)
    assert still is not None
    assert (still.status, still.crashes, still.lease_owner) == ("processing", 0, "b")


def _database_now(url: str) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
    assert row is not None
    return float(row[0])


def test_leases_are_on_the_database_clock_whatever_the_hosts_clock(postgres: PgServer) -> None:
    from sdcpp.server.pgstore import PgJobStore

    url = postgres.fresh_url()
    # A host whose clock is an hour behind, and one exact: they agree on every lease.
    behind = PgJobStore(url, local_clock=lambda: time.time() - 3600)
    exact = PgJobStore(url)
    try:
        job = behind.create("txt2img", {})
        claimed = behind.claim_next("slow-clock", lease_seconds=30)
        now = _database_now(url)
        assert claimed is not None and claimed.lease_expires is not None
        assert abs(claimed.lease_expires - (now + 30)) < 5  # not an hour early
        assert abs(job.created_at - now) < 5
        assert exact.expired_leases() == []  # still held, as seen from the other host
        assert exact.recover(expired_only=True) == ([], [])
    finally:
        behind.close()
        exact.close()


def test_the_database_clock_is_read_again_after_a_minute(postgres: PgServer) -> None:
    from sdcpp.server.pgstore import PgJobStore

    url = postgres.fresh_url()
    local = [0.0]  # a local clock that stands still, then jumps: only the readings move it
    store = PgJobStore(url, local_clock=lambda: local[0])
    try:
        assert abs(store._database_time() - _database_now(url)) < 5
        local[0] += 3600  # between readings the local clock carries it forward ...
        assert store._database_time() - _database_now(url) > 3000
        store.counts()  # ... and the next call after a minute reads the database's again
        assert abs(store._database_time() - _database_now(url)) < 5
    finally:
        store.close()


def test_a_worker_with_models_claims_only_their_jobs(postgres: PgServer) -> None:
    from sdcpp.server.pgstore import PgJobStore

    url = postgres.fresh_url()
    only_a = PgJobStore(url, models=("tiny-a",))  # by name without extension ...
    only_b = PgJobStore(url, models=("tiny-b.safetensors",))  # ... or with it
    try:
        a = only_a.create("txt2img", {"model": "/m/checkpoints/tiny-a.safetensors"})
        b = only_a.create("txt2img", {"model": "/elsewhere/tiny-b.safetensors"})
        claimed_b = only_b.claim_next("wb")
        assert claimed_b is not None and claimed_b.id == b.id  # skipped the older a job
        assert only_b.claim_next("wb") is None
        claimed_a = only_a.claim_next("wa")
        assert claimed_a is not None and claimed_a.id == a.id
    finally:
        only_a.close()
        only_b.close()


def test_every_api_process_on_the_database_signs_with_one_secret(postgres: PgServer) -> None:
    from sdcpp.server.pgstore import PgAuthStore

    url = postgres.fresh_url()
    first, second = PgAuthStore(url), PgAuthStore(url)
    try:
        secret = first.shared_secret()
        assert len(secret) >= 32 and second.shared_secret() == secret == first.shared_secret()
    finally:
        first.close()
        second.close()
