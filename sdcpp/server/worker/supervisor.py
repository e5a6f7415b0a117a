"""The worker process's life: spawning it, waiting for ``ready``, noticing its death and
starting the next one, killing it when a cancel's grace runs out.

``WorkerSupervisor`` holds the state ``client.EngineClient`` shares with it (the process, its
pipe, the job id, the loaded models as last reported) under ``_lock``; the client adds the
requests and the pipe pump. This module does not import the engine.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from . import protocol

logger = logging.getLogger("sdcpp.server.worker.client")  # one name for the client's records

Event = dict[str, Any]
State = Literal["starting", "ready", "busy", "restarting", "stopped"]

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


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


class WorkerSupervisor:
    """One worker process at a time and the state about it (see the module docstring)."""

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
