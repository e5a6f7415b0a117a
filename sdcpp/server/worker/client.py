"""``EngineClient``: the server's one handle on the engine worker process.

The worker (``process.py``) is a spawned child owning the loaded models. The engine ends its
process on failed asserts, CUDA errors and some out-of-memory paths; here such a death becomes
the job's final event (``crashed``, "worker crashed: SIGABRT") and a fresh worker is started
before ``run()`` returns, so the queue goes on and the API stays up.

Threads: one ``run()``, ``load()`` or ``unload()`` at a time (each blocks until the worker
answers; a load waits for the running job, behind the same lock); ``cancel()``, ``state``,
``pid``, ``loaded_model(s)``, ``load_count`` and ``stop()`` may be called from any thread.
This module does not import the engine: the child imports ``process`` itself. Spawning,
death and restart are ``supervisor.WorkerSupervisor``'s; requests and the pipe pump are here.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from . import protocol
from .supervisor import (
    Event,
    State,
    WorkerError,
    WorkerStartError,
    WorkerStopped,
    WorkerSupervisor,
)

logger = logging.getLogger(__name__)

OnEvent = Callable[[Event], None]

__all__ = ["EngineClient", "Event", "WorkerError", "WorkerStartError", "WorkerStopped"]


class EngineClient(WorkerSupervisor):
    """Supervises one worker process and runs jobs on it.

    ``settings`` go to the worker: ``env`` (environment variables for the child, e.g.
    ``{"SDCPP_TEST_HOOKS": "1"}``) and defaults for StableDiffusion keywords (``n_threads``).
    ``cancel_grace``: seconds a cancelled job may take to stop before the worker is killed.
    """

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
