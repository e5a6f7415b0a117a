"""The worker's engine thread: every call into the engine runs on it, at the configured priority.

Generation saturates every core for seconds. Optionally it runs niced and in Linux's
SCHED_IDLE class (``worker_nice``, ``worker_idle_priority``), so the API process (health
checks, queue polls, SSE) gets the CPU the moment it wants it: GET p99 during generation
5-6 ms in the idle class against 8-9 ms at nice 5 (bench/server.py, control plane). Neither is
the default: beside any other CPU work the idle class starved generation outright (a 64x64
job past 60 s, bench/priority.py), and at nice 5 it gets a quarter of a core it shares with a
busy process.
Threads the engine starts (OpenMP's) inherit the class and niceness from this one.

Only the engine's calls, though: the worker's own work around a job (reading the request,
encoding and writing the images, reporting) takes about a millisecond per job and stays at the
worker's normal priority. In the idle class it waited behind every runnable task of the server
and of its clients, which put ~0.7 ms on every job's latency (submit -> ready, traced).

One thread, so the engine's process-global callbacks (progress, preview, log) are only ever
set by one call at a time, and every native context is used from the thread that made it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def lower_priority(nice: int, idle: bool) -> None:
    """Lower the calling thread's priority: ``nice`` more niceness, and the idle class if
    ``idle`` (Linux only). Failures are logged, never raised: a worker at normal priority is
    slower to share, not broken."""
    try:
        if nice > 0:
            os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
        if idle and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError as exc:
        logger.warning("could not lower the engine thread's priority: %s", exc)


class EngineThread:
    """Runs callables on one long-lived, low-priority thread; ``run`` blocks until done and
    returns (or raises) what the callable did."""

    def __init__(self, nice: int = 0, idle: bool = False) -> None:
        # On Linux, setpriority(PRIO_PROCESS, 0) and sched_setscheduler(0) act on the calling
        # thread only: the initializer lowers the executor's thread and nothing else.
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="sdcpp-engine",
            initializer=lower_priority,
            initargs=(nice, idle),
        )

    def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.start(fn, *args, **kwargs).result()

    def start(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn`` there and return at once: the caller may do light work meanwhile."""
        return self._executor.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
