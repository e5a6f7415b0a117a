"""Server rows for cancellation: how soon a running job stops, and what 20 cancels leave behind.

Each job is cancelled from ``POST /api/queue/cancel`` while it samples. The engine checks the
cancel flag before every sampling step (third_party/patches/0001), so the latency is the rest
of the step in flight plus the way back (worker -> server -> database -> SSE); it is given in
milliseconds and in that job's own sampling steps. The cancel lands at an offset spread evenly
across a step (stratified), so the median describes an average moment, not a lucky one.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from .events import JobEvents
from .table import Row, fmt, verdict

if TYPE_CHECKING:
    from .run import Bench
    from .server import Servers

STEPS = 40  # far more than are ever sampled: a job that ignores the cancel shows as completed
CANCELS = 20  # the "memory stability ... after 20 cancels"
WARM_UP = 2  # first cancels, before the "before" RSS sample: one-time allocations on that path


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
    events = s.events
    assert events is not None
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
