"""The benchmarks' view of our server's job events (SSE), timed as they arrive."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from typing import Any

import httpx2 as httpx

FINAL = ("completed", "failed", "cancelled")


class JobEvents:
    """Our SSE stream read in a thread: perf_counter times of each job's sampling steps and of
    its final status.

    SSE rather than polling: a poll interval would add up to one interval to every figure.
    """

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

    def wait(self, ids: list[str], timeout: float = 300) -> float:
        """perf_counter time the last of ``ids`` ended; every one must have completed."""
        with self.cond:
            if not self.cond.wait_for(lambda: all(i in self.final for i in ids), timeout):
                raise RuntimeError(f"jobs {ids} did not finish")
            bad = [(i, self.final[i][1]) for i in ids if self.final[i][1] != "completed"]
            if bad:
                raise RuntimeError(f"jobs did not complete: {bad}")
            return max(self.final[i][0] for i in ids)

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
