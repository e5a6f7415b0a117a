"""``EngineClient``: the server's one handle on the engine worker process.

The worker (``process.py``) is a spawned child owning the loaded models. The engine ends its
process on failed asserts, CUDA errors and some out-of-memory paths; here such a death becomes
the job's final event (``crashed``, "worker crashed: SIGABRT") and a fresh worker is started
before ``run()`` returns, so the queue goes on and the API stays up.

Threads: one ``run()``, ``load()`` or ``unload()`` at a time (each blocks until the worker
answers; a load waits for the running job, behind the same lock); ``cancel()``, ``state``,
``pid``, ``loaded_model(s)``, ``load_count`` and ``stop()`` may be called from any thread.
This module does not import the engine: the child imports ``process`` itself.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from . import protocol

logger = logging.getLogger(__name__)

Event = dict[str, Any]
OnEvent = Callable[[Event], None]
State = Literal["starting", "ready", "busy", "restarting", "stopped"]

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

__all__ = ["EngineClient", "Event", "WorkerError", "WorkerStartError", "WorkerStopped"]


class WorkerError(RuntimeError):
    """The engine worker could not be used."""


class WorkerStartError(WorkerError):
    """A worker process did not come up (exited, or sent no ``ready`` in time)."""


class WorkerStopped(WorkerError):
    """``run()`` after ``stop()``."""


def _child_entry(conn: Connection, settings: dict[str, Any]) -> None:
    # Imported here so that only the child process loads the engine-facing code.
    from .process import worker_main

    worker_main(conn, settings)


class EngineClient:
    """Supervises one worker process and runs jobs on it.

    ``settings`` go to the worker: ``env`` (environment variables for the child, e.g.
    ``{"SDCPP_TEST_HOOKS": "1"}``) and defaults for StableDiffusion keywords (``n_threads``).
    ``cancel_grace``: seconds a cancelled job may take to stop before the worker is killed.
    """

    def __init__(
        self,
        settings: dict[str, Any] | None = None,
        *,
        start_timeout: float = 60.0,
        cancel_grace: float = 10.0,
        poll_interval: float = 0.5,
    ) -> None:
        self._settings = dict(settings or {})
        self._start_timeout = start_timeout
        self._cancel_grace = cancel_grace
        self._poll_interval = poll_interval
        self._mp = multiprocessing.get_context("spawn")  # never fork a threaded server
        self._run_lock = threading.Lock()  # one job at a time
        self._lock = threading.Lock()  # the fields below
        self._send_lock = threading.Lock()  # run() and cancel() both write to the pipe
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._pid: int | None = None
        self._state: State = "stopped"
        self._closed = False
        self._restarts = 0
        self._job_id: str | None = None
        self._cancel_timer: threading.Timer | None = None
        self._killed_for_cancel = False
        self._loaded_model: str | None = None
        self._loaded_models: list[str] = []
        self._load_count = 0

    # -- status ---------------------------------------------------------------------------
    @property
    def state(self) -> State:
        with self._lock:
            process = self._process
            if self._state == "ready" and process is not None and not process.is_alive():
                return "restarting"  # died while idle: the next run() starts a new one
            return self._state

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def loaded_model(self) -> str | None:
        """The most recently used model file the worker holds (None: none, or no worker)."""
        self._drain_idle()
        return self._loaded_model

    @property
    def loaded_models(self) -> list[str]:
        """Every model file the worker holds loaded, most recently used first."""
        self._drain_idle()
        return list(self._loaded_models)

    @property
    def load_count(self) -> int:
        """Contexts the current worker created (a cached model used again does not count)."""
        self._drain_idle()
        return self._load_count

    @property
    def restarts(self) -> int:
        """How many times a worker was replaced after dying or being killed."""
        return self._restarts

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker and wait for its ``ready`` (WorkerStartError if it does not)."""
        with self._run_lock:
            self._closed = False
            self._ensure_running()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to finish (a running job is cancelled), then kill it if needed."""
        with self._lock:
            self._closed = True
            process, conn = self._process, self._conn
        if process is None or conn is None:
            self._set_state("stopped")
            return
        self._try_send(conn, protocol.Shutdown())
        process.join(timeout)
        if process.is_alive():
            logger.warning(
                "worker pid %s did not stop within %.1fs; killing it", process.pid, timeout
            )
            process.kill()
            process.join(5.0)
        # A run() still pumping owns the pipe; it releases the process when it sees the end.
        if self._run_lock.acquire(timeout=timeout):
            try:
                self._release(process)
            finally:
                self._run_lock.release()

    def __enter__(self) -> EngineClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- jobs -----------------------------------------------------------------------------
    def run(
        self,
        job_id: str,
        kind: str,
        params: dict[str, Any],
        output_dir: str,
        on_event: OnEvent | None = None,
    ) -> Event:
        """Run one job; block until it ends and return its final event as a dict:
        ``done``, ``failed``, ``cancelled`` or ``crashed`` (the worker died; a new one has
        been started by the time this returns). Other events go to ``on_event``."""
        message = protocol.Run(job_id=job_id, kind=kind, params=params, output_dir=output_dir)
        return self._request(job_id, message, on_event)

    def load(self, params: dict[str, Any]) -> Event:
        """Load a model (``params``: ``model`` path plus context options, as a job's). Waits
        for the running job. Returns ``loaded`` {model, load_time}, ``failed`` {error, code}
        (the previous model stays loaded when the files fail their checks) or ``crashed``."""
        request_id = f"load-{uuid.uuid4().hex}"
        return self._request(request_id, protocol.Load(job_id=request_id, params=params), None)

    def unload(self, model: str | None = None) -> Event:
        """Close that loaded model file, or every one (waits for the running job):
        ``unloaded`` or ``crashed``."""
        request_id = f"unload-{uuid.uuid4().hex}"
        message = protocol.Unload(job_id=request_id, model=model)
        return self._request(request_id, message, None)

    def _request(self, job_id: str, message: protocol.Message, on_event: OnEvent | None) -> Event:
        with self._run_lock:
            if self._closed:
                raise WorkerStopped("the engine client was stopped")
            self._ensure_running()
            with self._lock:
                process, conn = self._process, self._conn
                if process is None or conn is None:
                    raise WorkerError("no worker process")  # stop() raced this run()
                self._job_id, self._killed_for_cancel = job_id, False
                self._state = "busy"
            self._try_send(conn, message)  # if the worker is dead, the pump notices
            try:
                final = self._pump(process, conn, job_id, on_event)
                if final is None:
                    return self._after_death(process, job_id)
                return final
            finally:
                self._end_job()  # also when something unexpected escapes the pump
                with self._lock:
                    if self._state == "busy":
                        self._state = "stopped" if self._closed else "ready"

    def cancel(self, job_id: str, *, grace: float | None = None) -> bool:
        """Ask the worker to stop ``job_id``; False if it is not the running job. If the job
        has not ended ``grace`` seconds later (default ``cancel_grace``), the worker is killed
        and restarted. Repeated calls resend the cancel but keep the first deadline."""
        grace = self._cancel_grace if grace is None else grace
        with self._lock:
            if self._job_id != job_id or self._process is None or self._conn is None:
                return False
            process, conn = self._process, self._conn
            if self._cancel_timer is None:
                timer = threading.Timer(grace, self._grace_expired, (job_id, process, grace))
                timer.daemon = True
                timer.start()
                self._cancel_timer = timer
        self._try_send(conn, protocol.Cancel(job_id=job_id))
        return True

    # -- internals ------------------------------------------------------------------------
    def _pump(
        self, process: BaseProcess, conn: Connection, job_id: str, on_event: OnEvent | None
    ) -> Event | None:
        """Deliver events until the job's final one (returned) or the worker's death (None).

        Waiting on the process sentinel as well as the pipe notices a death even if something
        else (a grandchild) still holds the pipe's other end open.
        """
        while True:
            ready = wait([conn, process.sentinel], timeout=self._poll_interval)
            if not ready:
                continue
            if conn not in ready:  # dead, and nothing left to read
                return None
            try:
                data = conn.recv()
            except (EOFError, OSError):
                return None
            try:
                message = protocol.decode(data)
            except protocol.ProtocolError as exc:
                logger.error("ignoring a malformed message from the worker: %s", exc)
                continue
            if isinstance(message, protocol.ModelState):
                self._model_state(message)
                continue
            if isinstance(message, protocol.Log):
                self._log(message)
            elif getattr(message, "job_id", job_id) != job_id:
                continue  # late events of an earlier job
            if message.TYPE in protocol.FINAL_TYPES:
                self._end_job()
                return dict(data)
            if on_event is not None and not isinstance(message, protocol.Ready):
                try:
                    on_event(data)
                except Exception:
                    logger.exception("on_event failed for a %s event", message.TYPE)

    def _model_state(self, message: protocol.ModelState) -> None:
        self._loaded_model = message.loaded
        self._loaded_models = list(message.models)
        self._load_count = message.loads

    def _drain_idle(self) -> None:
        """Read what the worker said between requests (keep-alive unloads). Only while no
        request pumps the pipe: then the pump reads it, and this returns at once."""
        if not self._run_lock.acquire(blocking=False):
            return
        try:
            conn = self._conn
            while conn is not None and conn.poll(0):
                try:
                    message = protocol.decode(conn.recv())
                except (EOFError, OSError, protocol.ProtocolError):
                    return  # a dead worker: the next request notices and restarts it
                if isinstance(message, protocol.ModelState):
                    self._model_state(message)
                elif isinstance(message, protocol.Log):
                    self._log(message)
        finally:
            self._run_lock.release()

    def _after_death(self, process: BaseProcess, job_id: str) -> Event:
        process.join(5.0)
        with self._lock:
            forced = self._killed_for_cancel or self._closed
            closing = self._closed
            self._state = "stopped" if closing else "restarting"
        self._end_job()
        self._release(process)
        final: protocol.Message
        if forced:
            final = protocol.Cancelled(job_id=job_id, forced=True)
        else:
            reason = protocol.exit_reason(process.exitcode)
            logger.error("job %s: %s (pid %s)", job_id, reason, process.pid)
            final = protocol.Crashed(job_id=job_id, error=reason)
        if not closing:
            self._restarts += 1
            try:
                self._spawn()
            except WorkerStopped:
                pass
            except WorkerStartError:
                logger.exception("restarting the worker failed; the next job tries again")
                self._set_state("stopped")
        return protocol.encode(final)

    def _ensure_running(self) -> None:
        """Called holding the run lock: start a worker unless a live one is there."""
        with self._lock:
            process = self._process
        if process is not None and process.is_alive():
            return
        if process is not None:
            logger.warning(
                "worker pid %s died while idle (%s); restarting",
                process.pid,
                protocol.exit_reason(process.exitcode),
            )
            self._restarts += 1
            self._release(process)
        self._spawn()

    def _spawn(self) -> None:
        self._set_state("starting" if self._restarts == 0 else "restarting")
        parent, child = self._mp.Pipe(duplex=True)
        process = self._mp.Process(
            target=_child_entry, args=(child, self._settings), name="sdcpp-worker", daemon=True
        )
        started = time.perf_counter()
        process.start()
        child.close()  # only the child holds this end now: its death reads as EOF here
        try:
            pid = self._await_ready(process, parent)
        except BaseException:
            if process.is_alive():
                process.kill()
            process.join(5.0)
            parent.close()
            self._set_state("stopped")
            raise
        with self._lock:
            closed = self._closed
            if not closed:
                self._process, self._conn, self._pid = process, parent, pid
                self._state = "ready"
        if closed:  # stop() ran while this worker was starting: it must not outlive the client
            self._try_send(parent, protocol.Shutdown())
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
            parent.close()
            self._set_state("stopped")
            raise WorkerStopped("the engine client was stopped while a worker started")
        logger.info("worker pid %s ready in %.2fs", pid, time.perf_counter() - started)

    def _await_ready(self, process: BaseProcess, conn: Connection) -> int:
        deadline = time.monotonic() + self._start_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            ready = wait([conn, process.sentinel], timeout=min(remaining, self._poll_interval))
            if conn in ready:
                try:
                    message = protocol.decode(conn.recv())
                except (EOFError, OSError, protocol.ProtocolError):
                    break
                if isinstance(message, protocol.Ready):
                    return message.pid
                if isinstance(message, protocol.Log):
                    self._log(message)
            elif ready:
                break
        else:
            raise WorkerStartError(f"worker sent no ready within {self._start_timeout:.0f}s")
        # The sentinel (or EOF) can come a moment before the process is reaped: join first.
        process.join(5.0)
        reason = protocol.exit_reason(process.exitcode).replace("crashed", "failed to start")
        raise WorkerStartError(reason)

    def _grace_expired(self, job_id: str, process: BaseProcess, grace: float) -> None:
        with self._lock:
            if self._job_id != job_id or self._process is not process:
                return  # the job ended in time
            self._killed_for_cancel = True
            # Under the lock: a final event read after this point still finds the flag set.
            process.kill()
        logger.warning(
            "job %s ignored cancel for %.1fs; killed worker pid %s",
            job_id,
            grace,
            process.pid,
        )

    def _end_job(self) -> None:
        with self._lock:
            self._job_id = None
            timer, self._cancel_timer = self._cancel_timer, None
        if timer is not None:
            timer.cancel()

    def _release(self, process: BaseProcess) -> None:
        """Forget a dead worker and close our end of its pipe."""
        with self._lock:
            if self._process is not process:
                return
            conn, self._process, self._conn, self._pid = self._conn, None, None, None
            self._loaded_model = None  # the models died with the process
            self._loaded_models, self._load_count = [], 0
            if self._closed:
                self._state = "stopped"
        if conn is not None:
            conn.close()

    def _try_send(self, conn: Connection, message: protocol.Message) -> None:
        # A failure means the worker is gone (or the pipe closed); the pump reports it.
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            conn.send(protocol.encode(message))

    def _set_state(self, state: State) -> None:
        with self._lock:
            self._state = state

    def _log(self, message: protocol.Log) -> None:
        """A forwarded worker record, in the server's stream: tagged ``source`` (``engine``
        for the engine's own lines) and ``worker_pid``; the job id comes from the dispatcher's
        context (``logs.job_context``) when a job is running."""
        level = _LOG_LEVELS.get(message.level, logging.WARNING)
        source = "engine" if message.text.startswith("sdcpp.native:") else "worker"
        extra = {"source": source, "worker_pid": self._pid}
        logger.log(level, "worker pid %s: %s", self._pid, message.text, extra=extra)
