"""LISTEN/NOTIFY on the shared queue (``cluster_notify``): a queued job, a worker's progress
and a new cancel request are announced on the schema's channel, and a listener whose
connection the server drops reconnects and hears what comes after; previews cross processes
through ``job_live``."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest
from pg_server import PgServer

psycopg = pytest.importorskip("psycopg", reason="pip install 'sdcpp[postgres]'")

from sdcpp.server.cluster_notify import Listener  # noqa: E402
from sdcpp.server.cluster_store import ClusterStore  # noqa: E402
from sdcpp.server.pgstore import PgJobStore  # noqa: E402

WAIT = 10.0  # seconds a notification may take on a loaded machine before the test fails


class Heard:
    def __init__(self) -> None:
        self.notes: queue.Queue[tuple[str, str]] = queue.Queue()

    def __call__(self, kind: str, job_id: str) -> None:
        self.notes.put((kind, job_id))

    def next(self) -> tuple[str, str]:
        return self.notes.get(timeout=WAIT)

    def drain(self) -> list[tuple[str, str]]:
        out = []
        while not self.notes.empty():
            out.append(self.notes.get_nowait())
        return out


@pytest.fixture
def url(postgres: PgServer) -> str:
    return postgres.fresh_url()


@pytest.fixture
def stores(url: str) -> Iterator[tuple[PgJobStore, ClusterStore]]:
    jobs = PgJobStore(url)
    cluster = ClusterStore(url)  # installs the triggers
    try:
        yield jobs, cluster
    finally:
        cluster.close()
        jobs.close()


@pytest.fixture
def heard(url: str) -> Iterator[Heard]:
    got = Heard()
    listener = Listener(url, got)
    listener.start()
    try:
        assert listener.connected.wait(WAIT)
        yield got
    finally:
        listener.stop()


def test_queued_progress_and_a_new_cancel_are_announced(
    stores: tuple[PgJobStore, ClusterStore], heard: Heard
) -> None:
    jobs, cluster = stores
    job = jobs.create("txt2img", {"prompt": "x"})
    assert heard.next() == ("queued", "")
    assert jobs.claim_next("w1") is not None
    cluster.report(job.id, "w1", {"step": 1})
    assert heard.next() == ("live", job.id)
    cluster.request_cancel(job.id)
    assert heard.next() == ("cancel", job.id)
    assert cluster.report(job.id, "w1", {"step": 2}) is True  # the worker reads it back ...
    assert heard.next() == ("live", job.id)  # ... and its write is no second cancel
    cluster.ended(job.id, "w1")
    assert heard.next() == ("live", job.id)
    assert ("cancel", job.id) not in heard.drain()


def test_another_schema_on_the_same_server_is_not_heard(
    postgres: PgServer, stores: tuple[PgJobStore, ClusterStore], heard: Heard
) -> None:
    other_url = postgres.fresh_url()
    other_jobs, other_cluster = PgJobStore(other_url), ClusterStore(other_url)
    try:
        other_jobs.create("txt2img", {})
        mine = stores[0].create("txt2img", {})  # sent after the other one
        assert heard.next() == ("queued", "")
        stores[1].report(mine.id, "w", {})
        assert heard.next() == ("live", mine.id)
        assert heard.drain() == []  # nothing more: the other schema's job was never heard
    finally:
        other_cluster.close()
        other_jobs.close()


def test_a_dropped_listener_reconnects_and_hears_what_follows(
    url: str, stores: tuple[PgJobStore, ClusterStore]
) -> None:
    got = Heard()
    listener = Listener(url, got)
    listener.start()
    try:
        assert listener.connected.wait(WAIT)
        with psycopg.connect(url, autocommit=True) as admin:  # what a server restart does to it
            dropped = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'sdcpp-listen' AND datname = current_database()"
            ).fetchall()
        assert dropped == [(True,)]
        heard_again = False
        for _ in range(int(WAIT / 0.5)):  # a job queued while it was away may be missed ...
            stores[0].create("txt2img", {})
            try:
                heard_again = got.notes.get(timeout=0.5) == ("queued", "")
            except queue.Empty:
                continue
            break
        assert heard_again and listener.connected.is_set()  # ... later ones are heard
    finally:
        listener.stop()


def test_a_preview_written_by_the_worker_is_read_by_any_process(
    url: str, stores: tuple[PgJobStore, ClusterStore]
) -> None:
    jobs, cluster = stores
    job = jobs.create("txt2img", {})
    jobs.claim_next("w1")
    cluster.report(job.id, "w1", {"step": 1, "has_preview": True})
    elsewhere = ClusterStore(url)
    try:
        assert elsewhere.read_preview(job.id) is None
        cluster.preview(job.id, "w1", b"\x89PNG one")
        assert elsewhere.read_preview(job.id) == b"\x89PNG one"
        cluster.preview(job.id, "another-worker", b"stale")  # not its job: ignored
        assert elsewhere.read_preview(job.id) == b"\x89PNG one"
        cluster.ended(job.id, "w1")
        assert elsewhere.read_preview(job.id) is None  # dropped with the job's end
    finally:
        elsewhere.close()


def test_every_worker_is_in_metrics_with_its_heartbeat_age(
    stores: tuple[PgJobStore, ClusterStore],
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from sdcpp.server.cluster import worker_metrics

    _, cluster = stores
    cluster.beat(
        "w1", host="gpu-box-1", pid=41, models=["tiny-a"], loaded=["/m/tiny-a.safetensors"],
        state="busy", current_job="job-7",
    )  # fmt: skip
    cluster.beat("w2", host="gpu-box-2", pid=42, models=[], loaded=[], state="ready",
                 current_job=None)  # fmt: skip
    rows = [w.to_dict(cluster.now() + 1.5, lease_seconds=30) for w in cluster.workers()]
    assert [(w["host"], w["device"], w["current_job"]) for w in rows] == [
        ("gpu-box-1", "cpu", "job-7"),
        ("gpu-box-2", "cpu", None),
    ]
    assert all(1.0 < w["heartbeat_age_s"] < 10 for w in rows)

    class Collector:
        def collect(self) -> object:
            return worker_metrics(rows)

    registry = CollectorRegistry()
    registry.register(Collector())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert (
        'sdcpp_cluster_worker{current_job="job-7",device="cpu",host="gpu-box-1",'
        'loaded="/m/tiny-a.safetensors",models="tiny-a",pid="41",state="busy",worker="w1"} 1.0'
    ) in text
    assert 'sdcpp_cluster_worker_heartbeat_age_seconds{host="gpu-box-2",worker="w2"}' in text
