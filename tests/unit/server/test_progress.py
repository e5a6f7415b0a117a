"""Honest progress: one monotonic fraction over the whole job, phases, step counts and ETA;
the worker's naming of the engine's passes; and per-job SSE that closes after the final event.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import test_app
from starlette.testclient import TestClient

from sdcpp.jobspec import ImageSpec
from sdcpp.options import HiresFix
from sdcpp.server.progress import RUNNING_CAP, ProgressTracker
from sdcpp.server.worker.reporting import Passes

FINISHED = ("completed", "failed", "cancelled")
# the native app over the fake engine, as test_app serves it
engine, client, wait_done = test_app.engine, test_app.client, test_app.wait_done


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def feed(tracker: ProgressTracker, clock: Clock, events: list[tuple[str, int, int]]) -> list[float]:
    seen = []
    for phase, step, total in events:
        clock.now += 0.5
        tracker.update(phase, step, total)
        seen.append(tracker.fraction)
    return seen


def steps(phase: str, total: int) -> list[tuple[str, int, int]]:
    return [(phase, s, total) for s in range(total + 1)]


# ---- the tracker ---------------------------------------------------------------------------


def test_fraction_is_monotonic_over_load_sampling_hires_decode_and_save() -> None:
    clock = Clock()
    tracker = ProgressTracker("txt2img", {"steps": 4, "hires": {"upscaler": "Latent"}}, clock)
    events = [
        *steps("loading", 3),  # tensors loaded reach 3/3 (the old view showed 1.0 here)
        *steps("sampling", 4),
        *steps("hires", 4),
        ("decoding", 0, 1),
        ("saving", 0, 2),
        ("saving", 1, 2),
    ]
    seen = feed(tracker, clock, events)
    assert seen == sorted(seen), seen  # never backwards
    assert seen[3] == pytest.approx(0.10)  # loading done: its share, not 1.0
    assert seen[-1] < 1.0 and max(seen) <= RUNNING_CAP  # 1.0 only when completed
    assert seen[3 + 5] == pytest.approx(0.50)  # sampling done: loading + sampling shares
    assert tracker.phase == "saving" and (tracker.step, tracker.total) == (1, 2)
    assert tracker.view()["sampling_pass"] == 2  # sampling, then hires
    assert tracker.final("completed") == {
        "phase": "done",
        "progress": 1.0,
        "step": 4,  # the last sampling phase's counts, not 0
        "total_steps": 4,
    }


def test_a_late_report_of_an_earlier_phase_does_not_lower_the_fraction() -> None:
    clock = Clock()
    tracker = ProgressTracker("txt2img", {"steps": 4}, clock)
    feed(tracker, clock, [*steps("sampling", 4), ("decoding", 0, 1)])
    before = tracker.fraction
    feed(tracker, clock, [("sampling", 1, 4)])
    assert tracker.fraction == before and tracker.phase == "sampling"


def test_a_cached_model_starts_at_sampling_from_zero() -> None:
    clock = Clock()
    tracker = ProgressTracker("txt2img", {"steps": 10}, clock)
    seen = feed(tracker, clock, steps("sampling", 10))
    assert seen[0] == 0.0 and seen[5] == pytest.approx(0.5 * 0.8 / 0.9)  # loading's share gone
    assert seen == sorted(seen)


def test_eta_comes_from_the_measured_step_rate() -> None:
    clock = Clock()
    tracker = ProgressTracker("txt2img", {"steps": 10}, clock)
    tracker.update("loading", 0, 3)
    clock.now += 5
    tracker.update("loading", 3, 3)
    assert tracker.eta_s() is None  # a loading rate says nothing about sampling
    tracker.update("sampling", 0, 10)
    assert tracker.eta_s() is None  # no step measured yet
    for step in range(1, 6):
        clock.now += 2.0  # 2 s per step
        tracker.update("sampling", step, 10)
    eta = tracker.eta_s()
    # 5 steps left at 2 s, plus decode and save at the same rate of the fraction
    assert eta is not None and 10.0 < eta < 13.0
    view = tracker.view()
    assert view["speed"] == pytest.approx(0.5)
    assert view["time_remaining"] == int(eta * 1000) and view["eta_s"] == round(eta, 1)
    assert view["step"] == view["current_step"] == 5 and view["total_steps"] == 10


def test_a_completed_job_whose_last_report_was_step_0_shows_its_phase_done() -> None:
    clock = Clock()
    tracker = ProgressTracker("upscale", {}, clock)  # the upscaler reports "sampling" 0/1 only
    feed(tracker, clock, [("loading", 0, 1), ("sampling", 0, 1), ("saving", 0, 1)])
    assert tracker.final("completed") == {
        "phase": "done",
        "progress": 1.0,
        "step": 1,
        "total_steps": 1,
    }


def test_a_failed_job_keeps_where_it_stopped() -> None:
    clock = Clock()
    tracker = ProgressTracker("txt2img", {"steps": 8}, clock)
    feed(tracker, clock, steps("sampling", 8)[:4])
    final = tracker.final("failed")
    assert final["phase"] == "sampling" and (final["step"], final["total_steps"]) == (3, 8)
    assert 0 < final["progress"] < 1


# ---- the worker's passes -------------------------------------------------------------------


def test_passes_name_batch_and_hires_passes_and_sum_their_steps() -> None:
    sent: list[tuple[str, int, int]] = []

    def report(phase: str, step: int, total: int, *, force: bool = False) -> None:
        sent.append((phase, step, total))

    passes = Passes(report, images=2, hires=True)  # type: ignore[arg-type]
    for _ in range(2):  # the engine: each image's pass restarts at step 0
        for step in range(4):
            passes(step, 3)
    for _ in range(2):
        for step in range(3):
            passes(step, 2)
    for step in (0, 1, 2, 2):  # tiled VAE decoding
        passes(step, 2)
    phases = [phase for phase, _, _ in sent]
    assert phases.index("hires") > max(i for i, p in enumerate(phases) if p == "sampling")
    sampling = [(s, t) for p, s, t in sent if p == "sampling"]
    assert sampling[-1] == (6, 6) and [s for s, _ in sampling] == sorted(s for s, _ in sampling)
    hires = [(s, t) for p, s, t in sent if p == "hires"]
    assert hires[0] == (0, 4) and hires[-1] == (4, 4)
    decoding = [(s, t) for p, s, t in sent if p == "decoding"]
    assert decoding[0] == (0, 1) and decoding[-1] == (2, 2)  # announced, then the tiles
    assert sent.index(("decoding", 0, 1)) == sent.index(("hires", 4, 4)) + 1


# ---- through the server (fake engine) -----------------------------------------------------


def test_job_updates_are_monotonic_and_a_completed_job_keeps_its_counts(
    client: TestClient,
) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()  # connected
        # the spec every dialect builds (the native schema has no hires field)
        spec = ImageSpec(prompt="x", steps=5, hires=HiresFix(scale=2.0))
        job_id = client.app.state.generation.submit_spec(spec).id  # type: ignore[attr-defined]
        updates: list[dict[str, Any]] = []
        while not updates or updates[-1]["status"] not in FINISHED:
            message = ws.receive_json()
            if message["type"] == "job_update" and message["data"]["job_id"] == job_id:
                updates.append(message["data"])
    fractions = [u["progress"] for u in updates]
    assert fractions == sorted(fractions), fractions
    phases = [u["phase"] for u in updates]
    order = ["starting", "loading", "sampling", "hires", "decoding", "done"]
    assert [p for p in order if p in phases] == order  # every phase, in this order
    assert all(u["current_step"] == u["step"] for u in updates)
    assert all(u["progress"] < 1.0 for u in updates[:-1])
    job = wait_done(client, job_id)
    assert job["status"] == "completed" and job["phase"] == "done" and job["progress"] == 1.0
    assert (job["step"], job["current_step"], job["total_steps"]) == (5, 5, 5)
    assert job["eta_s"] == 0.0 and "progress" not in job["result"]


def read_sse(client: TestClient, url: str, timeout: float = 10) -> list[tuple[str, Any]]:
    """Every event of the stream, which must end by itself within ``timeout``."""
    events: list[tuple[str, Any]] = []
    done = threading.Event()

    def read() -> None:
        with client.stream("GET", url) as response:
            assert response.status_code == 200
            name = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((name or "", json.loads(line.split(":", 1)[1])))
        done.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert done.wait(timeout), f"the stream did not close; got {events}"
    return events


def test_job_sse_sends_the_state_at_once_and_closes_after_the_final_event(
    client: TestClient,
) -> None:
    job_id = client.post("/api/generate/text2img", json={"prompt": "x", "steps": 30}).json()[
        "job_id"
    ]
    events = read_sse(client, f"/api/events/{job_id}")
    assert all(name == "job_update" and data["job_id"] == job_id for name, data in events)
    assert events[0][1]["status"] in ("queued", "processing")  # the state at connection
    assert len(events) > 2  # then its updates
    assert events[-1][1]["status"] == "completed" and events[-1][1]["phase"] == "done"


def test_a_finished_jobs_sse_sends_its_final_event_and_closes(client: TestClient) -> None:
    job_id = client.post("/api/generate/text2img", json={"prompt": "x", "steps": 3}).json()[
        "job_id"
    ]
    wait_done(client, job_id)
    events = read_sse(client, f"/api/events/{job_id}", timeout=5)
    assert len(events) == 1
    name, data = events[0]
    assert name == "job_update" and data["status"] == "completed"
    assert (data["phase"], data["current_step"], data["total_steps"]) == ("done", 3, 3)


def test_an_unknown_jobs_sse_is_a_404(client: TestClient) -> None:
    r = client.get(f"/api/events/{'0' * 32}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "JOB_NOT_FOUND"
