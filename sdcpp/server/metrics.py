"""Prometheus metrics (``GET /metrics``), and the liveness probe ``GET /livez``.

One ``Metrics`` per app, on its own ``CollectorRegistry`` (never the process-global one, so
several apps in one process — tests — keep separate counts). Three sources feed it:

- counters and histograms of finished jobs, crashes and sampling steps, from the event bus
  (``observe``, a synchronous listener: no event is lost to a slow subscriber queue);
- HTTP requests by route *template* (``/api/queue/job/{job_id:str}``, never the raw path: the
  label set stays bounded whatever clients send) and status, from the access middleware
  (``logs.AccessLogMiddleware`` calls ``observe_request``);
- gauges read at scrape time (``_Live``): queue depth by state, the worker's state, restarts and
  memory, loaded models, the running job's steps/s.

Who may scrape is ``--metrics-access`` (``auth/permissions.py``: the ``loopback`` level).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from .. import __version__
from .auth.permissions import METRICS, PUBLIC
from .progress import SAMPLING_PHASES
from .routing import Endpoint, starlette_routes

logger = logging.getLogger(__name__)

FINISHED = ("completed", "failed", "cancelled")
# seconds: from a tiny test job to a long video
JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_SEEN = 4096  # finished job ids remembered, so a job published twice is counted once
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int | None) -> int | None:
    """A process's resident set size from /proc (None: no such process, or not Linux)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "sdcpp_http_requests",
            "HTTP requests by route template, method and status",
            ("route", "method", "status"),
            registry=r,
        )
        self.http_duration = Histogram(
            "sdcpp_http_request_duration_seconds",
            "HTTP request duration by route template (streams: until they end)",
            ("route",),
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.jobs = Counter(
            "sdcpp_jobs", "Finished jobs by kind and outcome", ("kind", "outcome"), registry=r
        )
        self.crashes = Counter(
            "sdcpp_job_crashes", "Worker crashes under a job, by kind", ("kind",), registry=r
        )
        self.latency = Histogram(
            "sdcpp_job_latency_seconds",
            "Seconds from submission to the end of a finished job, by kind",
            ("kind",),
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.engine_time = Histogram(
            "sdcpp_job_engine_seconds",
            "Seconds a completed job spent in the engine (model loading excluded), by kind",
            ("kind",),
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.load_time = Histogram(
            "sdcpp_model_load_seconds",
            "Seconds jobs spent loading models (only jobs that loaded one)",
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.steps = Counter(
            "sdcpp_sampling_steps", "Sampling steps done (rate() of it: steps/s)", registry=r
        )
        ProcessCollector(registry=r)  # process_* of the server: CPU, RSS, open files
        self._state: Any = None  # app.state, once the lifespan has filled it
        self._seen: OrderedDict[str, None] = OrderedDict()
        # running job -> (its phase, pass and total; the last sampling step counted)
        self._steps: dict[str, tuple[Any, int]] = {}
        r.register(_Live(self))

    def bind(self, state: Any) -> None:
        """Read the live gauges from ``state`` (app.state: jobs, engine, store, registry)."""
        self._state = state

    # -- event bus listener ---------------------------------------------------------------
    def observe(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        data = event.get("data") or {}
        if kind == "job_update":
            self._job_update(data)
        elif kind == "job_crash":
            job = self._state.jobs.store.get(data.get("job_id")) if self._state else None
            self.crashes.labels(job.kind if job else "unknown").inc()

    def _job_update(self, data: dict[str, Any]) -> None:
        job_id, status = str(data.get("id")), data.get("status")
        if status == "processing" and data.get("phase") in SAMPLING_PHASES:
            # A new pass (hires) or batch image starts its steps again from 0 or 1.
            step = int(data.get("current_step") or 0)
            segment = (data.get("phase"), data.get("sampling_pass"), data.get("total_steps"))
            last_segment, done = self._steps.get(job_id, (None, 0))
            if segment != last_segment or step < done:
                done = 0
            if step > done:
                self.steps.inc(step - done)
            self._steps[job_id] = (segment, max(step, done))
            return
        if status not in FINISHED or job_id in self._seen:
            return
        self._steps.pop(job_id, None)
        self._seen[job_id] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        kind = str(data.get("type") or "unknown")
        self.jobs.labels(kind, status).inc()
        queued, ended = data.get("queued_time"), data.get("end_time")
        if queued is not None and ended is not None:
            self.latency.labels(kind).observe(max(0.0, float(ended) - float(queued)))
        result = data.get("result") or {}
        if status == "completed" and isinstance(result, dict):
            if isinstance(result.get("generation_time"), int | float):
                self.engine_time.labels(kind).observe(float(result["generation_time"]))
            load = result.get("load_time")
            if isinstance(load, int | float) and load > 0:
                self.load_time.observe(float(load))

    # -- HTTP -----------------------------------------------------------------------------
    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route).observe(seconds)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header (text format, or OpenMetrics if asked
        for) and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _Live:
    """Gauges computed at scrape time from the running server."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration: collect() reads state that isn't there yet

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("sdcpp_build_info", "sdcpp version", labels=("version",))
        info.add_metric((__version__,), 1)
        yield info
        state = self.metrics._state
        if state is None:
            return
        jobs, engine = state.jobs, state.engine
        queue = GaugeMetricFamily("sdcpp_queue_jobs", "Jobs by state", labels=("state",))
        for status, n in jobs.store.counts().items():
            queue.add_metric((status,), n)
        yield queue
        worker = GaugeMetricFamily(
            "sdcpp_worker_state", "The engine worker's state (1: current)", labels=("state",)
        )
        current = str(engine.state)
        for name in ("starting", "ready", "busy", "restarting", "stopped"):
            worker.add_metric((name,), 1 if name == current else 0)
        yield worker
        yield CounterMetricFamily(
            "sdcpp_worker_restarts", "Worker processes replaced", value=int(engine.restarts)
        )
        rss = GaugeMetricFamily(
            "sdcpp_resident_memory_bytes", "Resident memory", labels=("process",)
        )
        for name, pid in (("server", os.getpid()), ("worker", engine.pid)):
            value = resident_bytes(pid)
            if value is not None:
                rss.add_metric((name,), value)
        yield rss
        yield GaugeMetricFamily(
            "sdcpp_loaded_models", "Model files the worker holds", value=len(jobs.loaded_models)
        )
        yield GaugeMetricFamily(
            "sdcpp_models_available", "Models in the registry", value=len(state.registry)
        )
        speed = 0.0
        running = jobs.current
        live = jobs.live.get(running) if running else None
        if live is not None:
            speed = float(live.view().get("speed") or 0.0)
        yield GaugeMetricFamily(
            "sdcpp_steps_per_second", "The running job's sampling speed (0: none)", value=speed
        )
        yield GaugeMetricFamily(
            "sdcpp_uptime_seconds", "Seconds since start", value=time.time() - state.started
        )
        if (workers := getattr(jobs, "workers", None)) is not None:  # a PostgreSQL queue
            from .cluster import worker_metrics

            yield from worker_metrics(workers())


async def metrics(request: Request) -> Response:
    """Prometheus text exposition format (OpenMetrics when the scraper asks for it)."""
    render = request.app.state.metrics.render
    body, content_type = await run_in_threadpool(render, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})


async def livez(request: Request) -> JSONResponse:
    """The process is up and answering; depends on nothing (no worker, no database)."""
    return JSONResponse({"status": "alive"})


# /metrics follows --metrics-access (loopback, public or admin); /livez is for any prober
ENDPOINTS: list[Endpoint] = [
    Endpoint("/metrics", metrics, access=METRICS),
    Endpoint("/livez", livez, access=PUBLIC),
]


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
