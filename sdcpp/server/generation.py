"""Turning validated generation requests into queued jobs.

Resolves model names and every file or directory a request names inside the models directory
(nothing outside it is reachable), decodes request images into the job's input folder, and
stores the resolved job spec (``job_record.record``; image jobs planned by ``spec_params``).
Raises typed exceptions; the server's error table
(``errors.EXCEPTION_TABLE``) gives their status and code.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..jobspec import ConvertSpec, ImageSpec, UpscaleSpec, VideoSpec
from ..plan import upscaler_plan
from ..registry import ModelRegistry, ModelType
from ..registry.errors import ModelNotFoundError, no_model_message
from . import conversion
from .exceptions import BadRequest, NotFound
from .imaging import decode_bytes, decode_image, store_input
from .job_record import record
from .jobs import JobService
from .schemas.models import ConvertRequest
from .schemas.native import (
    ControlNetRequest,
    GenerateBase,
    Img2ImgRequest,
    InpaintingRequest,
    UpscaleRequest,
    VideoGenerateRequest,
)
from .settings import Settings
from .spec_params import (
    image_size,
    model_plan,
    plan_view,
    resolve_image,
    stored_image,
    video_plan,
)
from .store import Job

_IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
# Detection ids of the video families (Wan 2.1/2.2 variants, LTX-Video).
_VIDEO_ARCHITECTURES = ("wan", "ltx")


class GenerationService:
    def __init__(self, settings: Settings, registry: ModelRegistry, jobs: JobService) -> None:
        self.settings = settings
        self.registry = registry
        self.jobs = jobs
        # fetches an image field given as a URL (routers/images.url_image, bound in create_app)
        self.url_image: Callable[[str, str], bytes] | None = None

    # Each submit_* queues one job kind: the spec validated (``sdcpp.jobspec.limits``), its
    # names resolved inside the models dir, stored as a job record (``job_record.record``).
    def submit(
        self, kind: str, req: GenerateBase | VideoGenerateRequest, owner: str | None = None
    ) -> Job:
        if isinstance(req, VideoGenerateRequest):
            return self.submit_video(req, owner)
        # images are stored first: the spec carries their paths
        job_id = uuid.uuid4().hex
        inputs = self.jobs.input_dir(job_id)
        extra: dict[str, Any] = {}
        if isinstance(req, Img2ImgRequest | ControlNetRequest) and req.init_image:
            image = self._image(req.init_image, "init_image")
            extra["init_image"] = str(store_input(image, inputs, "init"))
            if req.strength is not None:
                extra["strength"] = req.strength
        if isinstance(req, InpaintingRequest):
            mask = self._image(req.mask_image, "mask_image")
            extra["mask_image"] = str(store_input(mask, inputs, "mask", mode="L"))
        if isinstance(req, ControlNetRequest):
            control = self._image(req.control_image, "control_image")
            extra["control_image"] = str(store_input(control, inputs, "control"))
            extra["control_strength"], extra["canny"] = req.control_strength, req.canny
            extra["control_net"] = req.control_net
        fields = {slot: name for name, slot in req.FILE_FIELDS.items()}  # for the 422's text
        return self.submit_spec(req.to_spec(**extra), owner, job_id=job_id, fields=fields)

    def submit_spec(
        self,
        spec: ImageSpec,
        owner: str | None = None,
        job_id: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> Job:
        """Queue an image job described by ``spec`` (what every dialect's ``to_spec()``
        builds): validated against ``sdcpp.jobspec.limits``, planned by architecture
        (``sdcpp.plan``), LoRAs resolved before queuing. Raises ``SpecError``/``LoraNotFound``
        (``sdcpp.jobspec``), ``ModelNotFoundError`` and the plan's errors; the server's error
        table maps them. ``fields``: companion slot -> the request field a missing one's
        message names (default: the spec's own names). Returns the queued job."""
        spec.validate()
        job_id = job_id or uuid.uuid4().hex
        plan = model_plan(self.registry, spec, self.settings.model, fields)
        inputs, threads = self.jobs.input_dir(job_id), self.settings.threads
        resolved, engine = resolve_image(
            self.registry, spec, plan, inputs, self.settings.max_image_pixels, threads
        )
        data = record(resolved, engine, plan_view(plan, spec))  # the plan: for the job's JSON
        return self.jobs.submit(spec.job_kind, data, owner=owner, job_id=job_id)

    def submit_upscale(self, req: UpscaleRequest | UpscaleSpec, owner: str | None = None) -> Job:
        """Queue an upscale: a request (its image decoded, URLs fetched) or a spec, planned
        first (``sdcpp.plan.upscaler_plan``, as ``sdcpp.Upscaler`` is): a file that is no
        upscaler is a ModelLoadError (422) naming what it is, before anything is stored."""
        job_id = uuid.uuid4().hex
        if isinstance(req, UpscaleRequest):
            image = self._image(req.image, "image")
            plan = upscaler_plan(self._upscaler(req.upscaler))  # before the image is stored
            req = req.to_spec(image=str(store_input(image, self.jobs.input_dir(job_id), "image")))
            req.validate()
        else:
            req.validate()
            plan = upscaler_plan(self._upscaler(req.upscaler))
        path, (width, height) = stored_image(
            req.image, self.jobs.input_dir(job_id), "image", self.settings.max_image_pixels
        )
        resolved = dataclasses.replace(
            req,
            image=path,
            upscaler=str(plan.path),
            n_threads=req.n_threads or self.settings.threads,
        )
        source = {"width": width, "height": height}  # for display
        data = record(resolved, source, plan.view(req.factor))  # the plan: for the job's JSON
        return self.jobs.submit("upscale", data, owner=owner, job_id=job_id)

    def submit_video(self, req: VideoGenerateRequest | VideoSpec, owner: str | None = None) -> Job:
        """Queue a video job, planned by architecture first (``spec_params.video_plan``: a
        missing VAE, UMT5, CLIP vision or second Wan 2.2 expert is refused naming each file and
        where it goes). The worker plans the same companions from ``models_dir``; the spec's
        companion files win."""
        job_id = uuid.uuid4().hex
        inputs = self.jobs.input_dir(job_id)
        fields = None
        if isinstance(req, VideoGenerateRequest):
            fields = {slot: name for name, slot in req.FILE_FIELDS.items()}
            frames = {
                field: str(store_input(self._image(text, field), inputs, field))
                for field in ("init_image", "end_image")
                if (text := getattr(req, field))
            }
            req = req.to_spec(**frames)
        req.validate()
        changes: dict[str, Any] = {"model": self._video_model(req.model or self.settings.model)}
        for slot in ("vae", "t5xxl", "clip_vision", "high_noise_diffusion_model"):
            if value := getattr(req, slot):
                changes[slot] = self._resolve(value, None)
        if req.lora_dir:
            changes["lora_dir"] = self._resolve_dir(req.lora_dir)
        size = {k: v for k in ("width", "height") if (v := getattr(req, k)) is not None}
        for field in ("init_image", "end_image"):
            if (value := getattr(req, field)) is not None:
                changes[field], _ = stored_image(
                    value, inputs, field, self.settings.max_image_pixels
                )
                self._video_size(size, image_size(changes[field]), field)
        if req.n_threads is None and self.settings.threads:
            changes["n_threads"] = self.settings.threads
        resolved = dataclasses.replace(req, **changes, **size)
        plan = video_plan(self.registry, resolved, fields)  # missing companion: 422 now
        data = record(resolved, {"models_dir": str(self.registry.root)}, plan_view(plan))
        return self.jobs.submit("video", data, owner=owner, job_id=job_id)

    def submit_convert(
        self, req: ConvertRequest | ConvertSpec, owner: str | None = None, is_admin: bool = True
    ) -> tuple[Job, conversion.ConvertPlan]:
        """Queue a conversion to GGUF, checked against the models dir first
        (``conversion.plan``: type, rules, output path, overwrite rights, an output a queued
        conversion already writes, free space). ``is_admin``: whether the caller may overwrite."""
        spec = req.to_spec() if isinstance(req, ConvertRequest) else req
        spec.validate()
        busy = [str(p.get("output")) for p in self.jobs.active_params("convert")]
        plan = conversion.plan(
            self.registry,
            model_name=spec.model,
            quantization_type=spec.quantization_type,
            output_path=spec.output_path,
            vae=spec.vae,
            tensor_type_rules=spec.tensor_type_rules,
            overwrite=spec.overwrite,
            is_admin=is_admin,
            busy_outputs=busy,
        )
        data = record(spec, plan.job_params(spec.model))  # the typed spec, stored
        return self.jobs.submit("convert", data, owner=owner), plan

    # -- helpers -------------------------------------------------------------------------
    def _video_model(self, name: str | None) -> str:
        """The model's path as the registry lists it (not symlink-resolved), so the worker can
        find it in the models dir again; the first video model when none is named."""
        if name:
            try:
                entry = self.registry.get(name, type=_IMAGE_TYPES)
                self.registry.resolve(entry.id)  # refuses links that leave the models dir
            except ModelNotFoundError:
                raise ModelNotFoundError(f"model not found: {name}") from None
        else:
            found = [
                e
                for e in self.registry.list(type=_IMAGE_TYPES, limit=None).items
                if e.architecture.startswith(_VIDEO_ARCHITECTURES)
            ]
            if not found:
                raise ModelNotFoundError(
                    "no video model installed: put a Wan diffusion model in "
                    f"{self.registry.root / 'diffusion_models'}",
                )
            entry = found[0]
        return str(self.registry.root / entry.path)

    @staticmethod
    def _video_size(params: dict[str, Any], size: tuple[int, int], field: str) -> None:
        """Frames given as images fix the video size: take it from them when the request
        leaves it out, refuse a mismatch now rather than after loading the model."""
        width, height = size
        if width % 16 or height % 16:
            raise BadRequest(f"{field}: {width}x{height} is not a multiple of 16")
        params.setdefault("width", width)
        params.setdefault("height", height)
        if (params["width"], params["height"]) != (width, height):
            raise BadRequest(
                f"{field} is {width}x{height}, the video {params['width']}x{params['height']}",
            )

    def _image(self, text: str, field: str) -> Any:
        if text.startswith(("http://", "https://")) and self.url_image is not None:
            raw = self.url_image(text.strip(), field)  # the safe downloader's rules and switch
            return decode_bytes(raw, field, self.settings.max_image_pixels)
        return decode_image(text, field, self.settings.max_image_pixels)

    def _model_files(self, req: GenerateBase) -> dict[str, str]:
        name = req.model_name or self.settings.model
        files: dict[str, str] = {}
        if name:
            files["model"] = self._resolve(name, _IMAGE_TYPES)
        else:
            checkpoints = self.registry.list(type=_IMAGE_TYPES, limit=1).items
            if not checkpoints:
                raise ModelNotFoundError(no_model_message(self.registry.root))
            files["model"] = str(self.registry.resolve(checkpoints[0].id))
        for field, slot in req.FILE_FIELDS.items():
            if value := getattr(req, field):
                files[slot] = self._resolve(value, None)
        for field, slot in req.DIR_FIELDS.items():
            if value := getattr(req, field):
                files[slot] = self._resolve_dir(value)
        return files

    def _resolve(self, name: str, types: ModelType | None) -> str:
        try:
            entry = self.registry.get(name, type=types) if types else self.registry.get(name)
            return str(self.registry.resolve(entry.id))
        except ModelNotFoundError:
            raise ModelNotFoundError(f"model not found: {name}") from None

    def _resolve_dir(self, name: str) -> str:
        path = self.registry.resolve(name)
        if not Path(path).is_dir():
            raise NotFound(f"not a directory in the models dir: {name}")
        return str(path)

    def _upscaler(self, name: str | None) -> str:
        if name:
            try:
                return self._resolve(name, ModelType.ESRGAN | ModelType.UPSCALER)
            except ModelNotFoundError:
                # any other file by that name: the plan then says what it is instead (a 422)
                return self._resolve(name, None)
        found = self.registry.list(type=ModelType.ESRGAN | ModelType.UPSCALER, limit=1).items
        if not found:
            raise ModelNotFoundError(
                "no upscaler installed: run `sdcpp models import-upscalers` or put an "
                f"ESRGAN model in {self.registry.root / 'esrgan'}",
            )
        return str(self.registry.resolve(found[0].id))
