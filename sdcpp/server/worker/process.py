"""The engine worker: the child process that owns the loaded model(s).

Three threads. The *receiver* reads the pipe: ``run``, ``load`` and ``unload`` go into one
queue (so a load never overlaps a generation), ``cancel`` is acted on at once (it must reach a
generation that is running), ``shutdown`` or a closed pipe stops the worker. The process's
main thread takes jobs from that queue one at a time: it reads the request, reports, and writes
the outputs. Everything that calls into the engine (loading, generating, unloading) it hands to
the *engine* thread (``engine_thread``), which runs at the lowest priority: the engine's
callbacks are process-global, so one thread owns every native context.

Started by ``client.EngineClient`` with the spawn method (a fork of the threaded server would
copy locks held by other threads). Nothing here is imported by the server process itself.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import queue
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from ...errors import Cancelled, InvalidArgument
from ...registry import ModelRegistry
from ...stable_diffusion import StableDiffusion
from ...upscaler import Upscaler
from . import jobs, protocol
from .engine_thread import EngineThread
from .failures import (
    ALLOCATION_FAILED,
    DISK_FULL,
    ERROR_CODES,
    MEMORY_LIMIT_ENV,
    OOM,
    failure,
    limit_memory,
)
from .model_cache import ModelCache
from .reporting import ForwardHandler
from .runs import JobRunner, _Job, _native_cancel, _test_hooks

logger = logging.getLogger(__name__)

Queued = protocol.Run | protocol.Load | protocol.Unload
ORPHAN_GRACE = 5.0  # seconds a job may run on after the server went away


def worker_main(conn: Connection, settings: dict[str, Any]) -> None:
    """Entry point of the worker process. ``settings``: ``env`` (variables to set first),
    ``nice`` and ``idle_priority`` (of the engine thread), the model cache's
    ``max_loaded_models``, ``model_memory_mb`` and ``keep_alive`` (seconds), ``memory_mb`` (the
    process's address-space cap, ``limit_memory``), and ``n_threads``
    and other StableDiffusion keywords used when a job leaves them out."""
    settings = dict(settings)
    for key, value in (settings.pop("env", None) or {}).items():
        os.environ[str(key)] = str(value)
    # Ctrl-C in a terminal reaches the whole process group; the server decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()  # a segfault leaves a Python traceback on stderr
    limit_memory(int(settings.pop("memory_mb", None) or 0))
    Worker(conn, settings).serve()


class Worker(JobRunner):
    def __init__(self, conn: Connection, settings: dict[str, Any]) -> None:
        settings = dict(settings)
        self._models: ModelCache[StableDiffusion] = ModelCache(
            max_models=int(settings.pop("max_loaded_models", None) or 1),
            budget_bytes=int(float(settings.pop("model_memory_mb", None) or 0) * 2**20),
            keep_alive=float(settings.pop("keep_alive", None) or 0),
        )
        self._engine = EngineThread(
            nice=int(settings.pop("nice", None) or 0),
            idle=bool(settings.pop("idle_priority", False)),
        )
        self._conn = conn
        self._defaults = {k: v for k, v in settings.items() if k != "env"}
        self._send_lock = threading.Lock()  # progress, logs and results come from any thread
        self._state_lock = threading.Lock()  # guards _current against cancel()
        self._current: _Job | None = None
        # Cancels that arrived after a run was queued but before it started (the receiver
        # sees both before the generation thread picks the run up).
        self._early_cancels: set[str] = set()
        self._runs: queue.Queue[Queued | None] = queue.Queue()
        self._stopping = threading.Event()
        self._upscalers: ModelCache[Upscaler] = ModelCache(max_models=1)  # one at a time
        self._registries: dict[str, ModelRegistry] = {}  # video jobs plan from models dirs
        self._reported: tuple[list[str], int] = ([], 0)  # what the server was last told

    # -- plumbing -------------------------------------------------------------------------
    def send(self, message: protocol.Message) -> None:
        # A failure means the server is gone; the receiver sees EOF and stops us.
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self._conn.send(protocol.encode(message))

    def serve(self) -> None:
        handler = ForwardHandler(self.send)
        handler.addFilter(self._forwardable)
        # the server's --log-level decides: warnings and worse, or everything (server/logs.py)
        level = logging.getLevelName(os.environ.get("SDCPP_WORKER_LOG_LEVEL", "WARNING").upper())
        level = level if isinstance(level, int) else logging.WARNING
        handler.setLevel(level)
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
        logging.getLogger("sdcpp.native").addFilter(self._note_allocation_failure)
        threading.Thread(target=self._receive, name="sdcpp-worker-receiver", daemon=True).start()
        self.send(protocol.Ready(pid=os.getpid()))
        try:
            while (item := self._next()) is not None:
                if isinstance(item, protocol.Run):
                    if self._stopping.is_set():
                        self.send(protocol.Cancelled(job_id=item.job_id))
                    else:
                        self._execute(item)
                else:
                    self._manage(item)
        finally:
            self._engine.run(self._models.clear)
            self._engine.run(self._upscalers.clear)
            self._engine.close()
            root.removeHandler(handler)
            self._conn.close()

    def _next(self) -> Queued | None:
        """The next queued request; while waiting, models idle past keep_alive are closed."""
        while True:
            try:
                return self._runs.get(timeout=self._models.seconds_to_next_expiry())
            except queue.Empty:
                self._engine.run(self._models.evict_idle)
                self._report_model()

    def _receive(self) -> None:
        while True:
            try:
                data = self._conn.recv()
            except (EOFError, OSError):
                # The server died without a shutdown: stop soon, however the job behaves.
                self._stop()
                watchdog = threading.Timer(ORPHAN_GRACE, os._exit, args=(1,))
                watchdog.daemon = True  # a clean exit before it fires must not wait for it
                watchdog.start()
                return
            try:
                message = protocol.decode(data)
            except protocol.ProtocolError as exc:
                logger.error("ignoring a malformed message: %s", exc)
                continue
            if isinstance(message, protocol.Run | protocol.Load | protocol.Unload):
                self._runs.put(message)
            elif isinstance(message, protocol.Cancel):
                self.cancel(message.job_id)
            elif isinstance(message, protocol.Shutdown):
                self._stop()
                return

    def _stop(self) -> None:
        self._stopping.set()
        with self._state_lock:
            job = self._current
        if job is not None:
            self.cancel(job.run.job_id)
        self._runs.put(None)

    def cancel(self, job_id: str) -> None:
        with self._state_lock:
            job = self._current
            if job is None or job.run.job_id != job_id:
                self._early_cancels.add(job_id)
                return
            job.cancel_requested.set()
            engine = job.engine
        if engine is not None:
            _native_cancel(engine)

    # -- jobs -----------------------------------------------------------------------------
    def _execute(self, run: protocol.Run) -> None:
        job = _Job(run)
        with self._state_lock:
            self._current = job
            if run.job_id in self._early_cancels or self._stopping.is_set():
                job.cancel_requested.set()
            # Only this job's id can matter from now on: the client sends one run at a time.
            self._early_cancels.clear()
        final: protocol.Message
        try:
            if run.kind in protocol.IMAGE_KINDS:
                final = self._image(job)
            elif run.kind == "upscale":
                final = self._upscale(job)
            elif run.kind == "video":
                final = self._video(job)
            else:
                raise InvalidArgument(f"unknown job kind {run.kind!r}")
        except Cancelled:
            final = protocol.Cancelled(job_id=run.job_id)
        except Exception as exc:
            final = failure(run.job_id, exc, job.allocation_failure)
        finally:
            with self._state_lock:
                self._current = None
        self._report_model()  # before the final event, so the client knows when run() returns
        self.send(final)

    def _manage(self, message: protocol.Load | protocol.Unload) -> None:
        """An explicit load or unload, between jobs. A load checks the files before closing the
        loaded model (``ModelCache.get``), so a bad one leaves the loaded models usable."""
        final: protocol.Message
        try:
            if self._stopping.is_set():
                raise RuntimeError("the worker is stopping")
            if isinstance(message, protocol.Unload):
                if message.model is None:
                    self._engine.run(self._models.clear)
                else:
                    self._engine.run(self._models.remove, message.model)
                final = protocol.Unloaded(job_id=message.job_id)
            else:
                context = jobs.parse_load(message.params, self._defaults)
                started = time.perf_counter()
                _, loaded = self._engine.run(
                    self._models.get,
                    jobs.cache_key(context),
                    lambda: StableDiffusion(**context),
                    lambda: jobs.check_files(context),
                    label=jobs.model_label(context),
                    size=jobs.context_bytes(context),
                )
                load_time = time.perf_counter() - started if loaded else 0.0
                label = jobs.model_label(context) or ""
                final = protocol.Loaded(job_id=message.job_id, model=label, load_time=load_time)
        except Exception as exc:
            final = failure(message.job_id, exc)
        self._report_model()
        self.send(final)

    def _report_model(self) -> None:
        # Sent only on change; a failed load that got past the checks has cleared the slot too.
        state = (self._models.labels, self._models.loads)
        if state != self._reported:
            self._reported = state
            labels, loads = state
            self.send(protocol.ModelState(loaded=self._models.label, models=labels, loads=loads))

    def _note_allocation_failure(self, record: logging.LogRecord) -> bool:
        job = self._current  # a plain read: this runs inside native log callbacks
        if job is not None and job.allocation_failure is None:
            text = record.getMessage()
            if any(s in text for s in ALLOCATION_FAILED):
                job.allocation_failure = text.split(" - ", 1)[-1].strip()
        return True

    def _forwardable(self, record: logging.LogRecord) -> bool:
        """A cancelled generation makes the engine log "generation cancelled" and "sampling
        failed": that is the cancel working, not something for the server's error log."""
        job = self._current  # a plain read: this runs inside native log callbacks
        cancelling = job is not None and job.cancel_requested.is_set()
        return not (cancelling and record.name == "sdcpp.native")


__all__ = [  # the names tests and the client reach through this module
    "DISK_FULL",
    "ERROR_CODES",
    "MEMORY_LIMIT_ENV",
    "OOM",
    "Worker",
    "_test_hooks",
    "limit_memory",
    "worker_main",
]
