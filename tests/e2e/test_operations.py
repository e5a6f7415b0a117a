"""Issue 17 items 7 and 8 against a real ``sdcpp serve`` with its real worker: the JSON log file
holds the engine's and the worker's lines tagged with the job that caused them, a crashed job's
lines carry its id, one access line per request; /metrics counts what happened."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent))  # the e2e helpers live beside this file
from test_serve import REQUEST, Server, data_dir  # noqa: F401 (fixture)


def test_logs_and_metrics_of_a_real_server(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "logs" / "server.log"
    monkeypatch.setenv("SDCPP_LOG_FILE", str(log))
    monkeypatch.setenv("SDCPP_LOG_FORMAT", "json")
    monkeypatch.setenv("SDCPP_LOG_LEVEL", "debug")
    monkeypatch.setenv("SDCPP_MAX_CRASHES", "1")  # the first crash fails the job
    srv = Server(data_dir).start()
    try:
        done = srv.post("/api/generate/text2img", REQUEST).json()["job_id"]
        assert srv.wait(done)["status"] == "completed"
        crashed = srv.post("/api/generate/text2img", {**REQUEST, "prompt": "__crash__"})
        crashed_id = crashed.json()["job_id"]
        assert srv.wait(crashed_id)["status"] == "failed"
        text = srv.get("/metrics").text
    finally:
        srv.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("sdcpp_jobs_total", (("kind", "txt2img"), ("outcome", "completed")))] == 1
    assert samples[("sdcpp_jobs_total", (("kind", "txt2img"), ("outcome", "failed")))] == 1
    assert samples[("sdcpp_job_crashes_total", (("kind", "txt2img"),))] == 1
    assert samples[("sdcpp_model_load_seconds_count", ())] >= 1
    assert samples[("sdcpp_worker_restarts_total", ())] >= 1
    assert samples[("sdcpp_resident_memory_bytes", (("process", "worker"),))] > 10 * 2**20

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    engine = [x for x in lines if x.get("source") == "engine" and x.get("job_id") == done]
    assert engine, "the engine's lines of the completed job are not in the server's log"
    assert all(isinstance(x.get("worker_pid"), int) for x in engine)
    crash = [x for x in lines if x.get("job_id") == crashed_id]
    assert any(x["level"] == "error" and "SIGABRT" in x["message"] for x in crash), crash
    assert any(x["level"] == "warning" and "failed" in x["message"] for x in crash), crash
    posts = [x for x in lines if x["logger"] == "sdcpp.access" and x.get("method") == "POST"]
    assert [x["route"] for x in posts] == ["/api/generate/text2img"] * 2
    assert all(x["status"] == 202 and x["request_id"] for x in posts)
