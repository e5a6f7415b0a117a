"""``ConvertRunner``: runs one ``convert`` job in a short-lived child process of its own.

Conversion reads a whole model through the engine, whose failed asserts end the process; a
child per job keeps that away from the API and from the engine worker's loaded models. The job
service calls ``run()`` from its dispatcher (so a conversion queues like a generation) and
``cancel()`` from any thread.

Files: the child writes into a hidden staging folder beside the output (``.convert-{job_id}``,
which the registry scan skips); only a finished conversion is moved into place (a rename, or a
hard link that refuses to replace a file that appeared meanwhile unless overwrite was asked
for). Cancel kills the child; any failure, cancel or crash removes the staging folder, so no
partial file is ever left. The result is registered at once (a registry refresh) and reported
with its detected architecture.

The child side (``convert_main``) imports the library; this module's parent side does not.
"""

from __future__ import annotations

import contextlib
import faulthandler
import inspect
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from ..conversion import STAGING_PREFIX, staging_dir
from ..errors import DISK_FULL
from . import protocol

logger = logging.getLogger(__name__)

Event = dict[str, Any]
OnEvent = Callable[[Event], None]
ChildTarget = Callable[[Connection, dict[str, Any], str], None]
POLL_SECONDS = 0.25


class ConvertRunner:
    """Runs conversions one at a time, each in a fresh spawned child.

    ``registry``: the server's model registry, refreshed when a conversion lands.
    ``env``: variables for the child (``SDCPP_TEST_HOOKS``); ``nice``: its niceness.
    ``target``: the child's entry point (tests swap in one without the engine).
    """

    def __init__(
        self,
        registry: Any,
        *,
        env: dict[str, str] | None = None,
        nice: int = 0,
        target: ChildTarget | None = None,
    ) -> None:
        self._registry = registry
        self._env = dict(env or {})
        self._nice = nice
        self._target = target or convert_main
        self._mp = multiprocessing.get_context("spawn")  # never fork a threaded server
        self._lock = threading.Lock()
        self._job_id: str | None = None
        self._process: BaseProcess | None = None
        self._cancelled = False
        # A cancel that came between the claim and the child's start (the dispatcher names the
        # job current before it calls run): honoured when that job's conversion begins.
        self._pending_cancel: str | None = None

    def run(
        self,
        job_id: str,
        kind: str,
        params: dict[str, Any],
        output_dir: str,
        on_event: OnEvent | None = None,
    ) -> Event:
        """Convert; block until done. The final event: ``done`` (result: the registered model),
        ``failed`` {error, code} or ``cancelled``. ``output_dir`` (the job's outputs folder)
        is unused: the result goes into the models dir."""
        emit = on_event or (lambda _event: None)
        output = Path(params["output"])
        staging = staging_dir(output, job_id)
        shutil.rmtree(staging, ignore_errors=True)  # a re-queued job's leftovers
        try:
            staging.mkdir()
        except OSError as exc:
            return _failed(job_id, f"cannot create {staging}: {exc}", "INTERNAL_ERROR")
        staged = staging / output.name
        started = time.perf_counter()
        try:
            emit(_progress(job_id, "converting", 0, 0, started))
            final = self._convert(job_id, params, staged, started, emit)
            if final is not None:
                return final
            emit(_progress(job_id, "saving", 0, 1, started))
            return self._place(job_id, params, staged, output, time.perf_counter() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def cancel(self, job_id: str) -> bool:
        """Kill the child converting ``job_id``. Called only for this runner's current job
        (``JobService.cancel``): one whose child has not started yet is stopped before it
        does."""
        with self._lock:
            if self._job_id != job_id:
                self._pending_cancel = job_id
                return True
            self._cancelled = True
            process = self._process
        if process is not None and process.is_alive():
            process.kill()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Shutdown: kill a running conversion (its job is re-queued at the next start)."""
        with self._lock:
            process = self._process
        if process is not None and process.is_alive():
            process.kill()
            process.join(timeout)

    # -- internals --------------------------------------------------------------------------
    def _convert(
        self, job_id: str, params: dict[str, Any], staged: Path, started: float, emit: OnEvent
    ) -> Event | None:
        """Run the child; None when it converted, else the job's final event."""
        parent, child = self._mp.Pipe(duplex=False)
        process = self._mp.Process(
            target=_child_entry,
            args=(self._target, child, params, str(staged), self._env, self._nice),
            name="sdcpp-convert",
            daemon=True,
        )
        with self._lock:
            pending, self._pending_cancel = self._pending_cancel, None
            if pending == job_id:
                return encode_cancelled(job_id)
            self._job_id, self._process, self._cancelled = job_id, process, False
        try:
            process.start()
            child.close()  # the child holds the only write end now: its death reads as EOF
            outcome = self._pump(job_id, process, parent, started, emit)
        finally:
            if process.pid is not None:  # started (a failed start raises from start())
                if process.is_alive():
                    process.kill()
                process.join(5.0)
            child.close()
            parent.close()
            with self._lock:
                cancelled = self._cancelled
                self._job_id, self._process = None, None
        if cancelled:
            return encode_cancelled(job_id)
        if outcome is None:
            reason = protocol.exit_reason(process.exitcode).replace("worker", "converter")
            return _failed(job_id, reason, "CONVERSION_FAILED")
        if outcome.get("type") == "failed":
            return _failed(job_id, str(outcome.get("error")), str(outcome.get("code")))
        if not staged.is_file():
            return _failed(job_id, "the converter wrote no file", "CONVERSION_FAILED")
        return None

    def _pump(
        self,
        job_id: str,
        process: BaseProcess,
        conn: Connection,
        started: float,
        emit: OnEvent,
    ) -> Event | None:
        while True:
            ready = wait([conn, process.sentinel], timeout=POLL_SECONDS)
            if not ready:
                continue
            if conn not in ready:
                return None  # died with nothing left to say
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return None
            if not isinstance(message, dict):
                continue
            if message.get("type") == "progress":
                step, total = int(message["step"]), int(message["total"])
                emit(_progress(job_id, "converting", step, total, started))
            elif message.get("type") in ("converted", "failed"):
                return message

    def _place(
        self, job_id: str, params: dict[str, Any], staged: Path, output: Path, seconds: float
    ) -> Event:
        try:
            if params.get("overwrite"):
                os.replace(staged, output)
            else:
                os.link(staged, output)  # fails if a file appeared there since the request
            _fsync_dir(output.parent)
        except FileExistsError:
            return _failed(job_id, f"{params['output_rel']} appeared meanwhile", "OUTPUT_EXISTS")
        except OSError as exc:
            return _failed(job_id, f"cannot write {params['output_rel']}: {exc}", "INTERNAL_ERROR")
        result: dict[str, Any] = {
            "output_path": params["output_rel"],
            "quantization_type": params["quantization_type"],
            "size": output.stat().st_size,
            "seconds": round(seconds, 3),
        }
        try:
            self._registry.refresh()
            entry = self._registry.get(params["output_rel"])
            result.update(model_id=entry.id, name=entry.name, architecture=entry.architecture)
            result["type"] = entry.type.slug
        except Exception as exc:  # the file is in place; a listing problem must not hide that
            logger.exception("converted %s but could not register it", params["output_rel"])
            result["register_error"] = str(exc)
        return {"type": "done", "job_id": job_id, "outputs": [], "result": result}


def encode_cancelled(job_id: str) -> Event:
    return protocol.encode(protocol.Cancelled(job_id=job_id))


def _failed(job_id: str, error: str, code: str) -> Event:
    return {"type": "failed", "job_id": job_id, "error": error, "code": code}


def _progress(job_id: str, phase: str, step: int, total: int, started: float) -> Event:
    return {
        "type": "progress",
        "job_id": job_id,
        "phase": phase,
        "step": step,
        "total": total,
        "elapsed": time.perf_counter() - started,
    }


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_staging(root: Path) -> int:
    """Remove staging folders a killed server left behind (at start-up, when no job runs)."""
    removed = 0
    for folder, dirs, _files in os.walk(root):
        for name in [d for d in dirs if d.startswith(STAGING_PREFIX)]:
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            dirs.remove(name)
            removed += 1
    return removed


# -- the child ------------------------------------------------------------------------------
def _child_entry(
    target: ChildTarget,
    conn: Connection,
    params: dict[str, Any],
    staged: str,
    env: dict[str, str],
    nice: int,
) -> None:
    for key, value in env.items():
        os.environ[key] = value
    if nice > 0:
        os.nice(nice)  # as the engine worker: the API keeps answering during a conversion
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when we stop
    faulthandler.enable()
    try:
        target(conn, params, staged)
    finally:
        conn.close()


def convert_main(conn: Connection, params: dict[str, Any], staged: str) -> None:
    """The child: ``sdcpp.convert`` into ``staged``, with per-tensor progress when the library
    offers it; reports ``converted`` or ``failed`` {error, code} over ``conn``."""
    from ...convert import convert
    from ...errors import InvalidArgument, ModelLoadError

    held: list[bool] = []

    def on_progress(*args: Any) -> None:
        # (tensors done, total); a Progress object (step, total) is accepted as well.
        step, total = (args[0].step, args[0].total) if len(args) == 1 else args[:2]
        with contextlib.suppress(OSError, ValueError):
            conn.send({"type": "progress", "step": int(step), "total": int(total)})
        if not held:
            held.append(_test_hold())  # mid-conversion: tensors read, nothing written yet

    options: dict[str, Any] = {
        "type": params["quantization_type"],
        "vae": params.get("vae"),
        "tensor_type_rules": params.get("tensor_type_rules"),
    }
    if "progress" in inspect.signature(convert).parameters:
        options["progress"] = on_progress
    # else TODO: no per-tensor progress until sdcpp.convert() forwards the engine's callback.
    try:
        convert(params["input"], staged, **options)
    except (InvalidArgument, ModelLoadError) as exc:
        code = "INVALID_PARAMETERS" if isinstance(exc, InvalidArgument) else "MODEL_LOAD_FAILED"
        conn.send({"type": "failed", "error": str(exc), "code": code})
        return
    except Exception as exc:
        if "failed to write" in str(exc) or getattr(exc, "errno", None) in DISK_FULL:
            # the engine's writer reports a full disk only as a failed write; its message
            # names the hidden staging file, which means nothing to the caller
            error = f"could not write {params['output_rel']}: the disk is full or not writable"
            conn.send({"type": "failed", "error": error, "code": "INSUFFICIENT_STORAGE"})
            return
        conn.send({"type": "failed", "error": str(exc) or repr(exc), "code": "CONVERSION_FAILED"})
        return
    if not held:
        _test_hold()  # without progress: the staged file is complete but not yet in place
    conn.send({"type": "converted"})


def _test_hold() -> bool:
    """Cancel tests need a conversion that is still running (a tiny model converts in
    milliseconds): sleep SDCPP_TEST_CONVERT_HOLD seconds; inert unless SDCPP_TEST_HOOKS=1."""
    if os.environ.get("SDCPP_TEST_HOOKS") == "1":
        hold = float(os.environ.get("SDCPP_TEST_CONVERT_HOLD") or 0)
        if hold > 0:
            time.sleep(hold)
    return True
