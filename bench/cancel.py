"""Server rows for cancellation: how soon a running job stops, and what 20 cancels leave behind.

Each job is cancelled from ``POST /api/queue/cancel`` while it samples. The engine checks the
cancel flag before every sampling step (third_party/patches/0001), so the latency is the rest
of the step in flight plus the way back (worker -> server -> database -> SSE); it is given in
milliseconds and in that job's own sampling steps. The cancel lands at an offset spread evenly
across a step (stratified), so the median describes an average moment, not a lucky one.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx2 as httpx

from .run import Row, fmt, verdict

if TYPE_CHECKING:
    from .run import Bench
    from .server import Servers

STEPS = 40  # far more than are ever sampled: a job that ignores the cancel shows as completed
CANCELS = 20  # the "memory stability ... after 20 cancels"
WARM_UP = 2  # first cancels, before the "before" RSS sample: one-time allocations on that path
FINAL = ("completed", "failed", "cancelled")


class JobEvents:
    """Our SSE stream read in a thread: perf_counter times of each job's sampling steps and of
    its final status."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.steps: dict[str, list[tuple[float, int]]] = {}
        self.final: dict[str, tuple[float, str]] = {}
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        if not self.subscribed.wait(30):
            raise RuntimeError("SSE stream did not open")
        time.sleep(0.3)  # let the server register the subscriber before the first job

    def _run(self) -> None:
        try:
            with httpx.stream(
                "GET", self.url + "/api/events", timeout=httpx.Timeout(10, read=None)
            ) as stream:
                self.subscribed.set()
                event = ""
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event == "job_update":
                        self._record(time.perf_counter(), json.loads(line[5:]))
        except httpx.HTTPError:
            pass  # the server stopped: the stream ends with it

    def _record(self, now: float, data: dict[str, Any]) -> None:
        job_id, status = data["job_id"], data.get("status")
        with self.cond:
            if status in FINAL:
                self.final.setdefault(job_id, (now, status))
            elif data.get("phase") == "sampling" and data.get("current_step"):
                seen = self.steps.setdefault(job_id, [])
                if not seen or seen[-1][1] != data["current_step"]:
                    seen.append((now, int(data["current_step"])))
            self.cond.notify_all()

    def wait_step(self, job_id: str, step: int, timeout: float = 120) -> None:
        with self.cond:
            if not self.cond.wait_for(
                lambda: (
                    job_id in self.final or any(s >= step for _, s in self.steps.get(job_id, []))
                ),
                timeout,
            ):
                raise RuntimeError(f"job {job_id} never reached sampling step {step}")
            if job_id in self.final:
                raise RuntimeError(f"job {job_id} ended early: {self.final[job_id][1]}")

    def wait_final(self, job_id: str, timeout: float = 120) -> tuple[float, str]:
        with self.cond:
            if not self.cond.wait_for(lambda: job_id in self.final, timeout):
                raise RuntimeError(f"job {job_id} did not end")
            return self.final[job_id]

    def steps_after(self, job_id: str, since: float) -> int:
        """How many of this job's sampling steps ended (were reported) after ``since``."""
        with self.cond:
            return sum(t > since for t, _ in self.steps.get(job_id, []))

    def step_time(self, job_id: str) -> float:
        """Median time between this job's consecutive sampling steps."""
        with self.cond:
            times = [t for t, _ in self.steps[job_id]]
        return statistics.median(b - a for a, b in itertools.pairwise(times))


def cancel_one(s: Servers, events: JobEvents, seed: int, offset: float) -> dict[str, Any]:
    """Submit, let it sample 4 steps, cancel ``offset`` of a step later; what happened."""
    assert s.ours is not None
    job_id = s.submit(s.ours.url, STEPS, seed=seed)
    events.wait_step(job_id, 4)
    step = events.step_time(job_id)
    time.sleep(offset * step)
    started = time.perf_counter()
    response = s.http.post(s.ours.url + "/api/queue/cancel", json={"job_id": job_id})
    response.raise_for_status()
    ended, status = events.wait_final(job_id)
    return {
        "status": status,
        "state": response.json().get("state"),
        "latency": ended - started,
        "step": events.step_time(job_id),
        "after": events.steps_after(job_id, started),
    }


def worker(s: Servers) -> tuple[int, int]:
    """(pid, restarts) of our engine worker: a cancel that needed a kill would change them."""
    assert s.ours is not None
    info = s.http.get(s.ours.url + "/api/status").json()["worker"]
    return int(info["pid"]), int(info["restarts"])


def cancels(bench: Bench, s: Servers) -> None:
    """(e) cancel latency of running jobs and (f) RSS after 20 of them, on the warm server."""
    assert s.ours is not None
    events = JobEvents(s.ours.url)
    for i in range(WARM_UP):
        cancel_one(s, events, 1000 + i, 0.5)
    time.sleep(0.5)  # let the last job's bookkeeping settle before sampling
    before, pid_before = s.ours.rss_mb(), worker(s)
    results = [cancel_one(s, events, 2000 + i, (i + 0.5) / CANCELS) for i in range(CANCELS)]
    time.sleep(0.5)
    after, pid_after = s.ours.rss_mb(), worker(s)

    done = [r for r in results if r["status"] == "cancelled" and r["state"] == "cancelling"]
    missed = len(results) - len(done)
    restarted = pid_after != pid_before  # a kill after the grace period, not a cancel
    note = f", {missed} of {len(results)} not cancelled while running" if missed else ""
    note += ", the worker was restarted" if restarted else ""
    ms = [r["latency"] * 1000 for r in done]
    in_steps = [r["latency"] / r["step"] for r in done]
    step_ms = [r["step"] * 1000 for r in done]
    if done:
        # The goal is the engine's promise: the step in flight ends, no further step begins, so
        # every cancel ends its job within one step time. Judged on the measured latency: step
        # reports that arrive after the cancel are no proof of a step that began after it (the
        # report of a step that ended just before the cancel can trail it by a millisecond).
        most = max(r["after"] for r in done)
        bench.add(
            Row(
                f"server: cancel a running job -> `cancelled` (64x64, at step 4 + 0..1 step{note})",
                f"{fmt(ms, 'ms', 1)} = {statistics.median(in_steps):.2f} steps "
                f"(max {max(in_steps):.2f})",
                f"one sampling step: {fmt(step_ms, 'ms', 1)}",
                f"step reports after the cancel: at most {most}",
                "<= 1 step (max)",
                verdict(max(in_steps) <= 1 and not missed and not restarted),
            )
        )
    growth = after / before - 1
    bench.add(
        Row(
            f"server: RSS (server + worker) after {CANCELS} cancelled running jobs vs before "
            f"them{note}",
            f"{after:.1f} MB",
            f"{before:.1f} MB",
            f"{growth * 100:+.2f}%",
            "<= +2%",
            verdict(growth <= 0.02 and not restarted),
        )
    )
