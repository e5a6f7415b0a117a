"""Running one job in the worker: image, video and upscale requests from params to outputs.

``JobRunner`` is the part of ``process.Worker`` that turns a ``run`` message into a ``done``
one: it parses the params (``jobs``, ``video``), loads through the model cache on the engine
thread, reports progress (``reporting``) and writes the outputs. Cancellation reaches a
running generation through ``_attached``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from ... import _native
from ..._files import check_model_file
from ...errors import Cancelled
from ...registry import ModelRegistry
from ...stable_diffusion import Progress, StableDiffusion
from ...upscaler import Upscaler
from ..memory import rss_mb
from . import jobs, protocol, video
from .engine_thread import EngineThread
from .model_cache import ModelCache
from .reporting import Passes, Reporter


class _Job:
    def __init__(self, run: protocol.Run) -> None:
        self.run = run
        self.started = time.perf_counter()
        self.cancel_requested = threading.Event()
        self.engine: StableDiffusion | None = None  # set while generate() runs
        self.allocation_failure: str | None = None  # the engine's first "out of memory" line


class JobRunner:
    """The job runners of ``process.Worker`` (which sets these attributes)."""

    _models: ModelCache[StableDiffusion]
    _upscalers: ModelCache[Upscaler]
    _engine: EngineThread
    _defaults: dict[str, Any]
    _registries: dict[str, ModelRegistry]
    _state_lock: threading.Lock

    def send(self, message: protocol.Message) -> None:
        raise NotImplementedError

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
