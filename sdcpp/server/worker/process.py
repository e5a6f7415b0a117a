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
import errno
import faulthandler
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from PIL import Image

from ... import _native
from ..._files import check_model_file
from ...errors import (
    Cancelled,
    InvalidArgument,
    ModelLoadError,
    UnsupportedError,
)
from ...registry import ModelRegistry
from ...stable_diffusion import Progress, StableDiffusion
from ...upscaler import Upscaler
from ..memory import rss_mb
from . import jobs, protocol, video
from .engine_thread import EngineThread
from .model_cache import ModelCache
from .reporting import ForwardHandler, Passes, Reporter

logger = logging.getLogger(__name__)

# Exception -> failed.code, first match wins. Unsupported requests (a video model asked for an
# image) are the caller's to fix, like invalid ones; anything else is our fault.
ERROR_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (InvalidArgument, "INVALID_PARAMETERS"),
    (UnsupportedError, "INVALID_PARAMETERS"),
    (ModelLoadError, "MODEL_LOAD_FAILED"),
)
Queued = protocol.Run | protocol.Load | protocol.Unload
ORPHAN_GRACE = 5.0  # seconds a job may run on after the server went away
# The engine's lines when an allocation fails; the error it raises then only names the step.
ALLOCATION_FAILED = ("insufficient memory", "failed to allocate")
MEMORY_LIMIT_ENV = "SDCPP_WORKER_MEMORY_LIMIT_MB"


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


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space (``--worker-memory-mb``; 0: no cap): an allocation
    past it fails here (a failed job, or a crash the server records) instead of the machine
    swapping or the kernel's OOM killer choosing a victim."""
    if megabytes > 0:
        import resource

        limit = megabytes * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.environ[MEMORY_LIMIT_ENV] = str(megabytes)  # for the failure message


class _Job:
    def __init__(self, run: protocol.Run) -> None:
        self.run = run
        self.started = time.perf_counter()
        self.cancel_requested = threading.Event()
        self.engine: StableDiffusion | None = None  # set while generate() runs
        self.allocation_failure: str | None = None  # the engine's first "out of memory" line


class Worker:
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
            final = _failure(run.job_id, exc, job.allocation_failure)
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
            final = _failure(message.job_id, exc)
        self._report_model()
        self.send(final)

    def _report_model(self) -> None:
        # Sent only on change; a failed load that got past the checks has cleared the slot too.
        state = (self._models.labels, self._models.loads)
        if state != self._reported:
            self._reported = state
            labels, loads = state
            self.send(protocol.ModelState(loaded=self._models.label, models=labels, loads=loads))

    def _cached(
        self, key: str, context: dict[str, Any], load: Callable[[], StableDiffusion]
    ) -> tuple[StableDiffusion, float]:
        """The loaded model for ``context`` (``load()`` unless the cache has it) and the seconds
        loading took, 0 for a cached one. On the engine thread."""
        started = time.perf_counter()
        engine, loaded = self._models.get(
            key,
            load,
            lambda: jobs.check_files(context),
            label=jobs.model_label(context),
            size=jobs.context_bytes(context),
        )
        return engine, time.perf_counter() - started if loaded else 0.0

    def _image(self, job: _Job) -> protocol.Message:
        run = job.run
        spec = jobs.parse_image_job(run.params, self._defaults)
        report = Reporter(self.send, run.job_id, job.started)
        _check_cancel(job)

        def load() -> StableDiffusion:
            report("loading", 0, 1, force=True)
            return StableDiffusion(
                **spec.context, progress=lambda p: report("loading", p.step, p.total)
            )

        def on_preview(step: int, frames: list[Image.Image], _noisy: bool) -> None:
            if frames:
                png = jobs.preview_png(frames[0])
                self.send(protocol.Preview(job_id=run.job_id, step=step, png=png))

        memory: dict[str, float | None] = {}

        def generate() -> tuple[StableDiffusion, float, list[Image.Image]]:
            memory["memory_before_mb"] = rss_mb()  # worker RSS before loading and sampling
            engine, load_time = self._cached(spec.context_key, spec.context, load)
            _test_hooks(spec.prompt)
            with self._attached(job, engine):
                images = engine.generate(
                    spec.prompt,
                    progress=_sampling_progress(job, engine, _image_passes(spec, report)),
                    preview=on_preview if spec.preview else None,
                    **spec.preview_options,
                    **spec.options,
                )
            return engine, load_time, images

        generating = self._engine.start(generate)
        # Made while the engine works, not after it; removed again if no image comes.
        output_dir = Path(run.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        try:
            engine, load_time, images = generating.result()
        except BaseException:
            with contextlib.suppress(OSError):
                output_dir.rmdir()  # only if still empty
            raise
        memory["memory_after_mb"] = rss_mb()  # the model still loaded, the images in memory
        outputs = jobs.write_outputs(images, run.output_dir, spec.output, _saving(report, images))
        width, height = images[0].size if images else (0, 0)
        result: protocol.JobResult = {
            "seeds": [int(image.info["seed"]) for image in images],
            "generation_time": engine.last_generation_time,
            "load_time": load_time,
            "parameters": [str(image.info.get("parameters", "")) for image in images],
            "width": width,
            "height": height,
        }
        return protocol.Done(job_id=run.job_id, outputs=outputs, result={**result, **memory})

    def _video(self, job: _Job) -> protocol.Message:
        run = job.run
        spec = video.parse_video_job(run.params, self._defaults, self._registries)
        report = Reporter(self.send, run.job_id, job.started)
        _check_cancel(job)

        def load() -> StableDiffusion:
            report("loading", 0, 1, force=True)
            return video.load_engine(
                spec, StableDiffusion, lambda p: report("loading", p.step, p.total)
            )

        def generate() -> tuple[StableDiffusion, float, list[Image.Image]]:
            engine, load_time = self._cached(spec.context_key, spec.context, load)
            _test_hooks(spec.prompt)
            with self._attached(job, engine):
                # no preview: the engine has no preview callback for video
                frames = engine.generate_video(
                    spec.prompt,
                    progress=_sampling_progress(job, engine, _video_passes(spec, report)),
                    **spec.options,
                )
            return engine, load_time, frames

        engine, load_time, frames = self._engine.run(generate)
        # Encoding an animation takes seconds of every core: at the engine's priority too.
        outputs = self._engine.run(
            video.write_video_outputs,
            frames,
            run.output_dir,
            spec.output,
            lambda i, n: report("saving", i, n, force=True),
        )
        width, height = frames[0].size if frames else (0, 0)
        result: protocol.JobResult = {
            "seeds": list(engine.last_seeds),
            "generation_time": engine.last_generation_time,
            "load_time": load_time,
            "parameters": [""] * len(outputs),  # no A1111 text for video
            "width": width,
            "height": height,
        }
        extra = {"frames": len(frames), "fps": spec.output.fps, "format": spec.output.format}
        return protocol.Done(job_id=run.job_id, outputs=outputs, result={**result, **extra})

    @contextlib.contextmanager
    def _attached(self, job: _Job, engine: StableDiffusion) -> Iterator[None]:
        """While the body runs, cancel() reaches the engine itself."""
        with self._state_lock:
            _check_cancel(job)
            job.engine = engine
        try:
            yield
        finally:
            with self._state_lock:
                job.engine = None

    def _upscale(self, job: _Job) -> protocol.Message:
        run = job.run
        spec = jobs.parse_upscale_job(run.params, self._defaults)
        report = Reporter(self.send, run.job_id, job.started)
        image = jobs.open_image(spec.image_path, "image_path")
        _check_cancel(job)

        def load() -> Upscaler:
            report("loading", 0, 1, force=True)
            return Upscaler(spec.model, **spec.options)

        def upscale() -> tuple[float, float, Image.Image]:
            load_started = time.perf_counter()
            upscaler, loaded = self._upscalers.get(
                spec.context_key, load, lambda: check_model_file(spec.model, "upscaler")
            )
            load_time = time.perf_counter() - load_started if loaded else 0.0
            _check_cancel(job)  # the engine's upscaler has no cancel: the grace kill does
            report("sampling", 0, 1, force=True)
            started = time.perf_counter()
            big = upscaler.upscale(image, spec.factor)
            return load_time, time.perf_counter() - started, big

        load_time, generation_time, big = self._engine.run(upscale)
        if text := image.info.get("parameters"):
            big.info["parameters"] = text  # an upscaled image keeps what made it
        report("saving", 0, 1, force=True)
        outputs = jobs.write_outputs([big], run.output_dir, spec.output)
        result: protocol.JobResult = {
            "seeds": [],
            "generation_time": generation_time,
            "load_time": load_time,
            "parameters": [str(big.info.get("parameters", ""))],
            "width": big.width,
            "height": big.height,
        }
        return protocol.Done(job_id=run.job_id, outputs=outputs, result=dict(result))

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


def _failure(job_id: str, exc: Exception, allocation_failure: str | None = None) -> protocol.Failed:
    if isinstance(exc, MemoryError) or allocation_failure:
        return protocol.Failed(job_id=job_id, error=_out_of_memory(allocation_failure), code=OOM)
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        message = f"the disk is full: {os.strerror(exc.errno or 0).lower()} writing the outputs"
        return protocol.Failed(job_id=job_id, error=message, code="INSUFFICIENT_STORAGE")
    code = next((c for t, c in ERROR_CODES if isinstance(exc, t)), "INTERNAL_ERROR")
    if code == "INTERNAL_ERROR":
        logger.exception("request %s failed", job_id)
    return protocol.Failed(job_id=job_id, error=str(exc) or repr(exc), code=code)


OOM = "OUT_OF_MEMORY"
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # what a full disk or quota raises


def _out_of_memory(detail: str | None) -> str:
    """A failed job's message when memory ran out (a MemoryError carries no text)."""
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    where = f"the worker's limit of {limit} MiB (--worker-memory-mb)" if limit else "memory"
    said = f" ({detail})" if detail else ""
    return f"out of memory: this job needs more than {where}{said}; try a smaller size or batch"


def _sampling_progress(
    job: _Job, engine: StableDiffusion, passes: Passes
) -> Callable[[Progress], None]:
    def on_progress(p: Progress) -> None:
        if job.cancel_requested.is_set():
            _native_cancel(engine)  # covers a cancel that raced the start of generation
        passes(p.step, p.total)

    return on_progress


def _image_passes(spec: jobs.ImageJob, report: Reporter) -> Passes:
    """A batch samples each image in turn, then (hires fix) each image's second pass."""
    hires = spec.options.get("hires")
    on = hires is not None and str(getattr(hires, "upscaler", "")).lower() != "none"
    return Passes(report, int(spec.options.get("batch_count") or 1), hires=on)


def _video_passes(spec: video.VideoJob, report: Reporter) -> Passes:
    """Wan 2.2 A14B samples twice: the high-noise expert, then the low-noise one."""
    return Passes(report, 2 if spec.context.get("high_noise_diffusion_model") else 1)


def _saving(report: Reporter, images: list[Image.Image]) -> Callable[[int, int], None] | None:
    """Progress of saving a batch, image by image. One image saves in about a millisecond and
    ``done`` follows at once: a "saving" message then would only cost the server a wake-up
    while the job's result waits behind it (measured ~0.3 ms each), so none is sent."""
    if len(images) < 2:
        return None
    report("saving", 0, len(images), force=True)

    def on_saved(saved: int, total: int) -> None:
        if saved < total:  # the last one is announced by ``done``
            report("saving", saved, total, force=True)

    return on_saved


def _check_cancel(job: _Job) -> None:
    if job.cancel_requested.is_set():
        raise Cancelled("cancelled before generation started")


def _native_cancel(engine: StableDiffusion) -> None:
    if _native.HAS_CANCEL:
        engine.cancel()
    # else: the client kills the worker when the grace period ends


def _test_hooks(prompt: str) -> None:
    """Deliberate failures for the crash/kill tests; inert unless SDCPP_TEST_HOOKS=1."""
    if os.environ.get("SDCPP_TEST_HOOKS") != "1":
        return
    if prompt == "__crash__":
        os.abort()  # as GGML_ASSERT does
    if prompt == "__hang__":
        while True:  # a native call that never looks at the cancel flag
            time.sleep(0.1)
