"""The engine worker process with the real engine and the small synthetic model.

One worker serves the module (spawning one costs about a second); tests that crash or kill it
check that the client replaced it. SDCPP_TEST_HOOKS=1 reaches the child through the settings.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from sdcpp import esrgan_ncnn, read_parameters
from sdcpp.server.worker import EngineClient, Event, WorkerStopped

SETTINGS = {"n_threads": 2, "nice": 3, "idle_priority": True, "env": {"SDCPP_TEST_HOOKS": "1"}}


@pytest.fixture(scope="module")
def client() -> Iterator[EngineClient]:
    engine = EngineClient(SETTINGS, cancel_grace=30.0)
    engine.start()
    yield engine
    engine.stop()
    assert engine.state == "stopped" and engine.pid is None


@pytest.fixture
def base(tiny_path: Path) -> dict[str, Any]:
    # cfg_scale 1 skips the unconditional pass: half the work per step.
    return {
        "model": str(tiny_path),
        "prompt": "a lighthouse",
        "width": 64,
        "height": 64,
        "steps": 1,
        "cfg_scale": 1.0,
        "seed": 7,
    }


class Job:
    """One run(): its final event, the events before it, and its wall time."""

    def __init__(
        self,
        client: EngineClient,
        out: Path,
        params: dict[str, Any],
        kind: str,
        job_id: str | None,
        on_event: Callable[[Event], None] | None,
    ) -> None:
        self.id = job_id or uuid.uuid4().hex
        self.dir = out / self.id
        self.events: list[Event] = []

        def collect(event: Event) -> None:
            self.events.append(event)
            if on_event is not None:
                on_event(event)

        started = time.perf_counter()
        self.final = client.run(self.id, kind, params, str(self.dir), collect)
        self.seconds = time.perf_counter() - started

    @property
    def phases(self) -> list[str]:
        return [e["phase"] for e in self.events if e["type"] == "progress"]


def run(
    client: EngineClient,
    out: Path,
    params: dict[str, Any],
    kind: str = "txt2img",
    *,
    job_id: str | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Job:
    return Job(client, out, params, kind, job_id, on_event)


def test_the_engine_runs_at_lower_priority_and_the_rest_does_not(
    client: EngineClient, base: dict[str, Any], tmp_path: Path
) -> None:
    assert run(client, tmp_path, base).final["type"] == "done"
    assert client.pid is not None
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    threads = [int(t) for t in os.listdir(f"/proc/{client.pid}/task")]
    idle = [t for t in threads if os.sched_getscheduler(t) == os.SCHED_IDLE]
    # the engine thread and the compute thread the engine started from it (n_threads 2):
    # in the idle class, niced as well (it counts where the idle class does not exist)
    assert len(idle) >= 2
    assert {os.getpriority(os.PRIO_PROCESS, t) for t in idle} == {min(ours + 3, 19)}
    # the main thread (reading requests, writing outputs) and the pipe's reader do not wait
    # behind the server and its clients
    assert os.sched_getscheduler(client.pid) == os.SCHED_OTHER
    assert os.getpriority(os.PRIO_PROCESS, client.pid) == ours


def test_txt2img_then_the_model_stays_loaded(
    client: EngineClient, base: dict[str, Any], tmp_path: Path
) -> None:
    # A context option no other test uses: this test always starts with a load.
    params = {**base, "keep_clip_on_cpu": True}
    first = run(client, tmp_path, params)
    assert first.final["type"] == "done", first.final
    assert first.final["outputs"] == ["image_0.png"]
    result = first.final["result"]
    assert result["seeds"] == [7] and (result["width"], result["height"]) == (64, 64)
    saved = read_parameters(first.dir / "image_0.png")
    assert (saved["prompt"], saved["seed"], saved["steps"]) == ("a lighthouse", 7, 1)
    assert result["parameters"][0].startswith("a lighthouse\n")
    phases = first.phases
    assert phases[0] == "loading" and "sampling" in phases
    assert phases.index("sampling") > max(i for i, p in enumerate(phases) if p == "loading")
    assert phases[-1] == "decoding"  # one image: saved at once, "done" says so
    elapsed = [e["elapsed"] for e in first.events if e["type"] == "progress"]
    assert elapsed == sorted(elapsed)
    (preview,) = [e for e in first.events if e["type"] == "preview"]
    with Image.open(io.BytesIO(preview["png"])) as small:
        assert small.format == "PNG" and max(small.size) <= 256
    assert result["load_time"] > 0

    pid = client.pid
    second = run(client, tmp_path, {**params, "output_format": "jpeg", "output_quality": 80})
    assert second.final["type"] == "done", second.final
    assert "loading" not in second.phases and second.final["result"]["load_time"] == 0
    assert client.pid == pid and client.state == "ready"
    with Image.open(second.dir / "image_0.jpg") as image:
        assert image.format == "JPEG" and image.size == (64, 64)
    # What the pipe, the events and writing the file add to the engine's own time.
    overhead = second.seconds - second.final["result"]["generation_time"]
    assert 0 <= overhead < 2.0


def test_invalid_parameters_fail_before_any_work(
    client: EngineClient, base: dict[str, Any], tmp_path: Path
) -> None:
    pid = client.pid
    for params, kind, match in (
        ({**base, "width": 65}, "txt2img", "width must be a multiple of 8"),
        ({**base, "bogus": 1}, "txt2img", "unknown parameter 'bogus'"),
        (base, "paint-by-numbers", "unknown job kind"),
    ):
        job = run(client, tmp_path, params, kind)
        assert job.final["type"] == "failed" and job.final["code"] == "INVALID_PARAMETERS"
        assert match in job.final["error"]
        assert not job.dir.exists() and not job.phases
    assert client.pid == pid


def test_missing_model_fails_and_keeps_the_loaded_one(
    client: EngineClient, base: dict[str, Any], tmp_path: Path
) -> None:
    warm = run(client, tmp_path, {**base, "output_format": "webp"})
    assert warm.final["type"] == "done", warm.final
    with Image.open(warm.dir / "image_0.webp") as image:
        assert image.format == "WEBP"
    missing = run(client, tmp_path, {**base, "model": str(tmp_path / "gone.safetensors")})
    assert missing.final["type"] == "failed"
    assert missing.final["code"] == "MODEL_LOAD_FAILED"
    assert "not found" in missing.final["error"]
    again = run(client, tmp_path, base)
    assert again.final["type"] == "done" and "loading" not in again.phases


def test_cancel_a_running_job(client: EngineClient, base: dict[str, Any], tmp_path: Path) -> None:
    pid, restarts = client.pid, client.restarts
    sampling = threading.Event()
    cancelled_at: list[float] = []

    def cancel_when_sampling() -> None:
        if sampling.wait(120):
            cancelled_at.append(time.perf_counter())
            client.cancel("long")

    def watch(event: Event) -> None:
        if event["type"] == "progress" and event["phase"] == "sampling" and event["step"] > 0:
            sampling.set()

    canceller = threading.Thread(target=cancel_when_sampling)
    canceller.start()
    job = run(client, tmp_path, {**base, "steps": 50}, job_id="long", on_event=watch)
    returned = time.perf_counter()
    sampling.set()  # lets the canceller end whatever happened
    canceller.join()
    assert job.final == {"type": "cancelled", "job_id": "long", "forced": False}
    steps = [e["step"] for e in job.events if e["type"] == "progress" and e["phase"] == "sampling"]
    assert max(steps) < 50
    assert returned - cancelled_at[0] < 15  # the engine stops at its next step
    assert (client.pid, client.restarts) == (pid, restarts)  # stopped, not killed
    assert not client.cancel("long") and not client.cancel("nobody")

    after = run(client, tmp_path, {**base, "batch_count": 2})
    assert after.final["type"] == "done", after.final
    assert after.final["outputs"] == ["image_0.png", "image_1.png"]
    saving = [(e["step"], e["total"]) for e in after.events if e.get("phase") == "saving"]
    assert saving == [(0, 2), (1, 2)]  # a batch reports each saved image but the last
    assert after.final["result"]["seeds"] == [7, 8]


def test_a_crash_fails_the_job_and_restarts_the_worker(
    client: EngineClient, base: dict[str, Any], tmp_path: Path
) -> None:
    pid, restarts = client.pid, client.restarts
    crash = run(client, tmp_path, {**base, "prompt": "__crash__"})
    expected = {"type": "crashed", "job_id": crash.id, "error": "worker crashed: SIGABRT"}
    assert crash.final == expected
    assert client.restarts == restarts + 1
    assert client.pid not in (None, pid) and client.state == "ready"
    after = run(client, tmp_path, base)
    assert after.final["type"] == "done", after.final
    assert after.phases[0] == "loading"  # a new process loads the model again


def test_a_job_that_ignores_cancel_is_killed_after_the_grace(
    client: EngineClient, base: dict[str, Any], tmp_path: Path
) -> None:
    pid, restarts = client.pid, client.restarts
    job_id = "hang"
    cancelled_at: list[float] = []

    def cancel_soon() -> None:
        while not client.cancel(job_id, grace=1.0):  # False until run() has started the job
            time.sleep(0.05)
        cancelled_at.append(time.perf_counter())

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    hang = run(client, tmp_path, {**base, "prompt": "__hang__"}, job_id=job_id)
    canceller.join()
    assert hang.final == {"type": "cancelled", "job_id": job_id, "forced": True}
    assert 1.0 <= time.perf_counter() - cancelled_at[0] < 10
    assert client.restarts == restarts + 1 and client.pid not in (None, pid)
    after = run(client, tmp_path, base)
    assert after.final["type"] == "done", after.final


def test_upscale_job(client: EngineClient, tmp_path: Path) -> None:
    (model,) = [p for p in esrgan_ncnn.import_all(tmp_path / "esrgan") if "anime" in p.name]
    source = Image.new("RGB", (48, 48), (30, 60, 200))
    ImageDraw.Draw(source).ellipse((8, 8, 32, 32), fill=(250, 220, 40))
    source.info["parameters"] = "a disc\nSteps: 4, Seed: 3, Size: 48x48"
    from sdcpp._pngmeta import save_png

    save_png(source, tmp_path / "source.png")
    params = {"upscaler": str(model), "image_path": str(tmp_path / "source.png"), "prompt": ""}
    job = run(client, tmp_path, params, "upscale")
    assert job.final["type"] == "done", job.final
    result = job.final["result"]
    assert (result["width"], result["height"]) == (192, 192)
    with Image.open(job.dir / "image_0.png") as big:
        assert big.size == (192, 192)
        assert read_parameters(big)["seed"] == 3  # the source's parameters carry over


def test_video_of_an_image_model_is_invalid_parameters(
    client: EngineClient, base: dict[str, Any], tmp_path: Path
) -> None:
    # No video model is small enough to build here; the real engine still has to refuse an
    # image model (SDXS) asked for video, after loading it, with nothing written.
    pid = client.pid
    bad = run(client, tmp_path, {**base, "width": 72}, "video")
    assert bad.final["code"] == "INVALID_PARAMETERS" and "multiple of 16" in bad.final["error"]
    assert not bad.phases  # refused before any loading
    job = run(client, tmp_path, {**base, "video_frames": 5, "fps": 8}, "video")
    assert job.final["type"] == "failed", job.final
    assert job.final["code"] == "INVALID_PARAMETERS"
    assert "generates images" in job.final["error"]
    assert not job.dir.exists() and client.pid == pid


def test_lifecycle_idle_death_stop_and_stop_during_a_job(
    base: dict[str, Any], tmp_path: Path
) -> None:
    engine = EngineClient(SETTINGS, cancel_grace=30.0)
    assert engine.state == "stopped"
    engine.start()
    first = engine.pid
    assert engine.state == "ready" and first is not None
    os.kill(first, signal.SIGKILL)  # the OOM killer, between jobs
    deadline = time.monotonic() + 10
    while engine.state != "restarting" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.state == "restarting"
    job = run(engine, tmp_path, {**base, "width": 65})  # the next job gets a new worker
    assert job.final["code"] == "INVALID_PARAMETERS"
    assert engine.pid not in (None, first) and engine.restarts == 1

    finals: list[Event] = []
    loaded = threading.Event()  # the hang starts right after the model is loaded

    def watch(event: Event) -> None:
        if event.get("phase") == "loading" and event["step"] == event["total"] > 1:
            loaded.set()

    params = {**base, "prompt": "__hang__"}
    runner = threading.Thread(
        target=lambda: finals.append(engine.run("stuck", "txt2img", params, str(tmp_path), watch))
    )
    runner.start()
    assert loaded.wait(60)
    time.sleep(0.2)
    engine.stop(timeout=1.0)  # the hung job ignores the shutdown's cancel: killed
    runner.join(15)
    assert finals == [{"type": "cancelled", "job_id": "stuck", "forced": True}]
    assert engine.state == "stopped" and engine.pid is None and engine.restarts == 1
    with pytest.raises(WorkerStopped):
        engine.run("late", "txt2img", base, str(tmp_path / "late"))
