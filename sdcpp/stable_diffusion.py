"""``StableDiffusion``: a loaded model that generates images.

One instance owns one native context. Generation runs with the GIL released; ``cancel()`` may
be called from any thread. The engine's callbacks are process-global, so generations (on all
instances) run one at a time; a second thread calling ``generate()`` waits for the first.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from . import _native
from ._context import build_ctx_params
from ._generation import GenerationRequest, build_img_params, native_enum, native_lora
from ._infotext import parameters_text
from ._progress import (
    PreviewCallback,
    Progress,
    ProgressCallback,
    progress_adapter,
    resolve_seed,
)
from .cache_presets import resolve as resolve_cache
from .errors import ClosedError, InvalidArgument, UnsupportedError
from .images import to_pil
from .loras import extract_lora_tags
from .options import (
    LoraApplyMode,
    Prediction,
    PreviewMode,
    RngType,
    SampleMethod,
    Scheduler,
    WeightType,
)

if TYPE_CHECKING:
    from .plan import ContextPlan, RecommendedDefaults

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

__all__ = ["Progress", "StableDiffusion"]


class StableDiffusion:
    """A loaded diffusion model.

    >>> with StableDiffusion(model="sd15.safetensors") as sd:       # doctest: +SKIP
    ...     image, = sd.generate("a lighthouse at dusk", width=512, height=512, seed=1)

    Files: ``model`` (a full checkpoint) or ``diffusion_model`` (standalone diffusion weights)
    plus companions (``vae``, ``clip_l``, ``t5xxl``, ``llm``, ...). Settings left ``None`` keep
    the engine's defaults; ``n_threads`` defaults to the number of physical cores.
    ``vae_decode_only`` defaults to False here so img2img and inpainting work on any instance.
    ``lora_dir`` lets prompts name LoRAs with ``<lora:name:weight>`` tags; ``embedding_dir``
    makes every textual-inversion file in it usable in prompts by its file name.
    """

    # Set by from_models_dir: the architecture's recommended settings (advisory: generate()
    # keeps the engine's defaults) and the plan the context was created from.
    recommended: RecommendedDefaults | None = None
    plan: ContextPlan | None = None

    @classmethod
    def from_models_dir(
        cls,
        name: str,
        *,
        models_dir: PathLike,
        data_dir: PathLike | None = None,
        **kwargs: Any,
    ) -> StableDiffusion:
        """Load checkpoint or diffusion model ``name`` (id, relative path or file name) from a
        models directory: its architecture is detected, the load method and companions (VAE,
        text encoders, ...) chosen by ``sdcpp.plan``. Explicit keywords override the plan.

        Raises ModelLoadError naming each missing companion; if the planned load fails, the
        other method (model_path <-> diffusion_model_path) is tried, with a logged warning.
        """
        # lazy: only this method needs the plan and the registry (CLI start-up time)
        from .plan import load_from_models_dir

        sd: StableDiffusion = load_from_models_dir(
            name, models_dir=models_dir, data_dir=data_dir, loader=cls, **kwargs
        )
        return sd

    def __init__(
        self,
        model: PathLike | None = None,
        *,
        diffusion_model: PathLike | None = None,
        high_noise_diffusion_model: PathLike | None = None,
        vae: PathLike | None = None,
        taesd: PathLike | None = None,
        clip_l: PathLike | None = None,
        clip_g: PathLike | None = None,
        clip_vision: PathLike | None = None,
        t5xxl: PathLike | None = None,
        llm: PathLike | None = None,
        llm_vision: PathLike | None = None,
        control_net: PathLike | None = None,
        photo_maker: PathLike | None = None,
        embeddings: Mapping[str, PathLike] | None = None,
        embedding_dir: PathLike | None = None,
        lora_dir: PathLike | None = None,
        tensor_type_rules: str | None = None,
        n_threads: int | None = None,
        wtype: WeightType | str | None = None,
        rng: RngType | str | None = None,
        sampler_rng: RngType | str | None = None,
        prediction: Prediction | str | None = None,
        lora_apply_mode: LoraApplyMode | str | None = None,
        vae_decode_only: bool = False,
        offload_params_to_cpu: bool | None = None,
        enable_mmap: bool | None = None,
        keep_clip_on_cpu: bool | None = None,
        keep_control_net_on_cpu: bool | None = None,
        keep_vae_on_cpu: bool | None = None,
        flash_attn: bool | None = None,
        diffusion_flash_attn: bool | None = None,
        tae_preview_only: bool | None = None,
        diffusion_conv_direct: bool | None = None,
        vae_conv_direct: bool | None = None,
        circular_x: bool | None = None,
        circular_y: bool | None = None,
        force_sdxl_vae_conv_scale: bool | None = None,
        chroma_use_dit_mask: bool | None = None,
        chroma_use_t5_mask: bool | None = None,
        chroma_t5_mask_pad: int | None = None,
        qwen_image_zero_cond_t: bool | None = None,
        max_vram: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        params, files = build_ctx_params(locals())
        if lora_dir is not None and not os.path.isdir(lora_dir):
            raise InvalidArgument(f"lora_dir is not a directory: {lora_dir}")
        self.lora_dir = lora_dir
        self.files = {key: str(path) for key, path in files.items()}
        main_file = files.get("model") or files["diffusion_model"]
        self.model_name = os.path.splitext(os.path.basename(main_file))[0]
        self._defaults = _native.ImgGenParams()  # the engine's defaults, for reporting
        self.n_threads = params.n_threads
        self._generate_lock = threading.Lock()  # one generate() per instance at a time
        self._state_lock = threading.Lock()  # guards _busy against cancel()
        self._busy = False
        self.last_seeds: list[int] = []
        self.last_generation_time = 0.0
        started = time.perf_counter()
        on_progress = progress_adapter(progress, "loading", started)
        self._ctx: Any = _native.Context(params, on_progress)
        self.load_time = time.perf_counter() - started
        logger.info("loaded %s in %.2fs", ", ".join(self.files.values()), self.load_time)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Free the weights. Waits for a running generation to end first."""
        self._ctx.close()

    @property
    def closed(self) -> bool:
        return bool(self._ctx.closed)

    def __enter__(self) -> StableDiffusion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries --------------------------------------------------------------------------
    @functools.cached_property
    def model_hash(self) -> str:
        """SHA-256 of the main model file (cached on disk; A1111's short hash is [:10])."""
        from .registry.hashing import cached_sha256

        return cached_sha256(self.files.get("model") or self.files["diffusion_model"])

    @property
    def default_sample_method(self) -> SampleMethod:
        return SampleMethod(self._ctx.default_sample_method().library_name)

    def default_scheduler(self, sample_method: SampleMethod | str | None = None) -> Scheduler:
        method = (
            self._ctx.default_sample_method()
            if sample_method is None
            else native_enum(sample_method, SampleMethod, _native.SampleMethod, "sample_method")
        )
        return Scheduler(self._ctx.default_scheduler(method).library_name)

    @functools.cached_property
    def architecture(self) -> str | None:
        """The detection id of the main model file (``"sd1"``, ``"flux_dev"``...), from the
        plan when there is one, else from the file's header (read once; never unpickled)."""
        detection = getattr(self.plan, "detection", None)
        if detection is None:
            from .detect import detect  # lazy: only callers of cache presets pay for it

            try:
                detection = detect(self.files.get("model") or self.files["diffusion_model"])
            except (OSError, ValueError):
                return None
        return getattr(detection, "id", None)

    @property
    def supports_images(self) -> bool:
        return bool(self._ctx.supports_image_generation())

    @property
    def supports_video(self) -> bool:
        return bool(self._ctx.supports_video_generation())

    # -- generation -----------------------------------------------------------------------
    def generate(
        self,
        prompt: str,
        *,
        progress: ProgressCallback | None = None,
        preview: PreviewCallback | None = None,
        preview_mode: PreviewMode | str = PreviewMode.PROJ,
        preview_interval: int = 1,
        preview_noisy: bool = False,
        **options: Any,
    ) -> list[Image.Image]:
        """Generate images for ``prompt``; keyword options are those of ``GenerationRequest``.

        Returns ``batch_count`` PIL images; each has ``info["seed"]``. Raises ``Cancelled`` if
        ``cancel()`` was called, ``InvalidArgument`` for bad options (before any native work).
        """
        arrays = self.generate_arrays(
            prompt,
            progress=progress,
            preview=preview,
            preview_mode=preview_mode,
            preview_interval=preview_interval,
            preview_noisy=preview_noisy,
            **options,
        )
        images = []
        for array, seed in zip(arrays, self.last_seeds, strict=False):
            image = to_pil(array)
            image.info["seed"] = seed
            image.info["parameters"] = parameters_text(
                self, prompt, options, seed, image.size, self._defaults
            )
            images.append(image)
        return images

    def generate_arrays(
        self,
        prompt: str,
        *,
        progress: ProgressCallback | None = None,
        preview: PreviewCallback | None = None,
        preview_mode: PreviewMode | str = PreviewMode.PROJ,
        preview_interval: int = 1,
        preview_noisy: bool = False,
        **options: Any,
    ) -> list[np.ndarray]:
        """As ``generate()``, returning HWC uint8 numpy arrays (no copies)."""
        with self._generate_lock:
            self._begin()
            try:
                return self._generate_locked(
                    prompt,
                    progress,
                    preview,
                    preview_mode,
                    preview_interval,
                    preview_noisy,
                    options,
                )
            finally:
                self._end()

    def _generate_locked(
        self,
        prompt: str,
        progress: ProgressCallback | None,
        preview: PreviewCallback | None,
        preview_mode: PreviewMode | str,
        preview_interval: int,
        preview_noisy: bool,
        options: dict[str, Any],
    ) -> list[np.ndarray]:
        if not self.supports_images:
            raise UnsupportedError("this model generates video; use generate_video()")
        prompt, tag_loras = extract_lora_tags(prompt, self.lora_dir)
        if tag_loras:
            options = {**options, "loras": [*options.get("loras", ()), *tag_loras]}
        if options.get("cache") is not None:  # a preset name, or raw options checked per family
            options = {**options, "cache": resolve_cache(options["cache"], self.architecture)}
        request = GenerationRequest(prompt=prompt, **options)
        seed = resolve_seed(request.seed)
        params = build_img_params(request, seed)
        if preview_interval < 1:
            raise InvalidArgument("preview_interval must be at least 1")
        mode = native_enum(preview_mode, PreviewMode, _native.Preview, "preview_mode")
        started = time.perf_counter()
        on_preview = None
        if preview is not None:

            def on_preview(step: int, frames: list[np.ndarray], noisy: bool) -> None:
                preview(step, [to_pil(f) for f in frames], noisy)

        arrays = self._ctx.generate_image(
            params,
            progress=progress_adapter(progress, "sampling", started),
            preview=on_preview,
            preview_mode=mode,
            preview_interval=preview_interval,
            preview_denoised=not preview_noisy,
            preview_noisy=preview_noisy,
        )
        self.last_seeds = [seed + i for i in range(len(arrays))]
        self.last_generation_time = time.perf_counter() - started
        return list(arrays)

    def generate_video(
        self,
        prompt: str,
        *,
        progress: ProgressCallback | None = None,
        **options: Any,
    ) -> list[Image.Image]:
        """Generate video frames (Wan 2.x, LTX); keyword options are ``VideoRequest``'s.

        Save them with ``sdcpp.video.save_animation(frames, "out.webp", fps=16)``.
        """
        with self._generate_lock:
            self._begin()
            try:
                if not self.supports_video:
                    raise UnsupportedError("this model generates images; use generate()")
                from .video import VideoRequest, build_vid_params

                prompt, tag_loras = extract_lora_tags(prompt, self.lora_dir)
                request = VideoRequest(prompt=prompt, **options)
                seed = resolve_seed(request.seed)
                loras = [native_lora(x) for x in [*request.loras, *tag_loras]]
                params = build_vid_params(request, seed, loras)
                started = time.perf_counter()
                frames = self._ctx.generate_video(
                    params, progress=progress_adapter(progress, "sampling", started)
                )
                self.last_seeds = [seed]
                self.last_generation_time = time.perf_counter() - started
            finally:
                self._end()
        return [to_pil(frame) for frame in frames]

    def cancel(self) -> None:
        """Stop the running generation at its next sampling step (no-op when idle).

        The interrupted ``generate()`` raises ``Cancelled``; the instance stays usable, and the
        same request afterwards gives the same image as an uninterrupted run.
        """
        if not _native.HAS_CANCEL:
            raise UnsupportedError("this build's engine lacks the cancel patch")
        with self._state_lock:
            if self._busy:
                self._ctx.set_cancel(True)

    def _begin(self) -> None:
        with self._state_lock:
            if self._ctx.closed:
                raise ClosedError("StableDiffusion is closed")
            self._busy = True
            if _native.HAS_CANCEL:
                self._ctx.set_cancel(False)

    def _end(self) -> None:
        with self._state_lock:
            self._busy = False
            if _native.HAS_CANCEL and not self._ctx.closed:
                self._ctx.set_cancel(False)
