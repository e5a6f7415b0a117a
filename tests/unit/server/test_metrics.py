"""/metrics, /livez and /readyz: what the counters count, bounded labels, who may scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app
from sdcpp.server.metrics import Metrics

REMOTE = ("203.0.113.7", 40000)  # TEST-NET-3: not loopback
LOCAL = ("127.0.0.1", 40000)


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True, exist_ok=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    return Settings(data_dir=tmp_path / "data", shutdown_grace=0.5, **kw)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path), engine=FakeEngine()), client=LOCAL) as c:
        yield c


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def wait_done(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while (job := client.get(f"/api/queue/job/{job_id}").json())["status"] not in (
        "completed",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return job


def submit(client: TestClient, prompt: str, steps: int = 3) -> str:
    r = client.post("/api/generate/text2img", json={"prompt": prompt, "steps": steps})
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


def test_jobs_by_kind_and_outcome_latency_engine_time_and_steps(client: TestClient) -> None:
    wait_done(client, submit(client, "a fox", steps=4))
    wait_done(client, submit(client, "__fail__"))
    crashed = wait_done(client, submit(client, "__crash__"))  # re-queued once, then failed
    assert crashed["crashes"] == 2 and crashed["status"] == "failed"
    found = samples(client)
    assert value(found, "sdcpp_jobs_total", kind="txt2img", outcome="completed") == 1
    assert value(found, "sdcpp_jobs_total", kind="txt2img", outcome="failed") == 2
    assert value(found, "sdcpp_job_crashes_total", kind="txt2img") == 2
    assert value(found, "sdcpp_job_latency_seconds_count", kind="txt2img") == 3
    assert value(found, "sdcpp_job_engine_seconds_count", kind="txt2img") == 1
    assert value(found, "sdcpp_job_engine_seconds_sum", kind="txt2img") == pytest.approx(0.01)
    assert value(found, "sdcpp_sampling_steps_total") == 4  # the completed job's 4 steps
    assert value(found, "sdcpp_worker_state", state="ready") == 1
    assert value(found, "sdcpp_worker_restarts_total") >= 1  # the fake counts the crash
    assert value(found, "sdcpp_resident_memory_bytes", process="server") > 10 * 2**20
    assert value(found, "sdcpp_models_available") == 1
    assert ("sdcpp_steps_per_second", frozenset()) in found
    assert ("process_resident_memory_bytes", frozenset()) in found
    queued = sum(v for (n, _), v in found.items() if n == "sdcpp_queue_jobs")
    assert queued == len(client.app.state.jobs.store.list(limit=100))  # type: ignore[attr-defined]


def test_http_requests_are_labelled_by_route_template_not_path(client: TestClient) -> None:
    ids = [uuid for uuid in ("0" * 32, "1" * 32, "2" * 32)]
    for job_id in ids:
        assert client.get(f"/api/queue/job/{job_id}").status_code == 404
    client.get("/no/such/thing/at/all")
    found = samples(client)
    route = "/api/queue/job/{job_id:str}"
    assert value(found, "sdcpp_http_requests_total", route=route, method="GET", status="404") == 3
    assert (
        value(found, "sdcpp_http_requests_total", route="unmatched", method="GET", status="404")
        == 1
    )
    text = client.get("/metrics").text
    assert not any(job_id in text for job_id in ids)  # raw ids never become labels
    assert "/no/such" not in text
    assert value(found, "sdcpp_http_request_duration_seconds_count", route=route) == 3


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    one = create_app(_settings(tmp_path / "a"), engine=FakeEngine())
    two = create_app(_settings(tmp_path / "b"), engine=FakeEngine())
    with TestClient(one, client=LOCAL) as a, TestClient(two, client=LOCAL) as b:
        for _ in range(3):
            a.get("/livez")
        b.get("/livez")
        got_a, got_b = samples(a), samples(b)
    labels = {"route": "/livez", "method": "GET", "status": "200"}
    assert value(got_a, "sdcpp_http_requests_total", **labels) == 3
    assert value(got_b, "sdcpp_http_requests_total", **labels) == 1


def test_livez_and_readyz(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["reasons"] == []
    client.app.state.engine.state = "restarting"  # type: ignore[attr-defined]
    client.app.state.jobs.drain()  # type: ignore[attr-defined]
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["reasons"] == [
        "the engine worker is restarting",
        "the server is shutting down",
    ]
    assert client.get("/livez").status_code == 200  # alive whatever the dependencies say


def test_readyz_says_when_the_database_takes_no_writes(client: TestClient) -> None:
    client.app.state.jobs.store.close()  # type: ignore[attr-defined]
    r = client.get("/readyz")
    assert r.status_code == 503
    assert "the database takes no writes" in r.json()["reasons"][0]
    assert client.get("/livez").status_code == 200


@pytest.mark.parametrize(
    ("access", "peer", "expected"),
    [
        ("loopback", LOCAL, 200),
        ("loopback", REMOTE, 401),
        ("public", REMOTE, 200),
        ("admin", LOCAL, 401),
    ],
)
def test_metrics_access(tmp_path: Path, access: str, peer: tuple[str, int], expected: int) -> None:
    settings = _settings(tmp_path, auth=("jwt",), metrics_access=access)
    with TestClient(create_app(settings, engine=FakeEngine()), client=peer) as c:
        r = c.get("/metrics")
        assert r.status_code == expected, r.text
        if expected != 200:
            assert r.json()["error"]["code"] == "AUTH_REQUIRED"
            auth = c.app.state.auth  # type: ignore[attr-defined]
            admin = auth.store.add_user("root", role="admin")
            token, _ = auth.issue_token(admin)
            r = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200  # an admin may scrape from anywhere
            user = auth.store.add_user("joe", role="user")
            token, _ = auth.issue_token(user)
            r = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 403
            assert "admin" in r.json()["error"]["message"]


def test_scrape_time(client: TestClient) -> None:
    for _ in range(20):
        client.get("/livez")
    started = time.perf_counter()
    for _ in range(20):
        client.get("/metrics")
    per_scrape = (time.perf_counter() - started) / 20
    print(f"\n/metrics scrape: {per_scrape * 1000:.2f} ms")
    assert per_scrape < 0.25


def test_sampling_steps_count_every_pass_and_batch_image() -> None:
    metrics = Metrics()

    def progress(phase: str, sampling_pass: int, step: int, total: int) -> None:
        data = {"id": "j", "status": "processing", "phase": phase, "current_step": step}
        data |= {"sampling_pass": sampling_pass, "total_steps": total}
        metrics.observe({"type": "job_update", "data": data})

    for _image in range(2):  # a batch of two: each image's steps start again at 1
        for step in (1, 2, 2, 3, 4):  # a repeated report counts once
            progress("sampling", 1, step, 4)
    for step in (1, 2):  # the hires pass
        progress("hires", 2, step, 2)
    progress("decoding", 2, 0, 1)
    assert metrics.registry.get_sample_value("sdcpp_sampling_steps_total") == 4 + 4 + 2
