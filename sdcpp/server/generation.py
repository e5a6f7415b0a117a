"""Turning validated generation requests into queued jobs.

Resolves model names and every file or directory a request names inside the models directory
(nothing outside it is reachable), decodes request images into the job's input folder, and
builds the worker's parameter dict. Raises ``ApiError`` with seed 004's codes.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from ..registry import ModelRegistry, ModelType
from ..registry.errors import ModelNotFoundError, RegistryError
from .errors import ApiError
from .imaging import decode_image, store_input
from .jobs import JobService
from .schemas.native import (
    ControlNetRequest,
    GenerateBase,
    Img2ImgRequest,
    InpaintingRequest,
    UpscaleRequest,
)
from .settings import Settings
from .store import Job, QueueFull

_IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL


class GenerationService:
    def __init__(self, settings: Settings, registry: ModelRegistry, jobs: JobService) -> None:
        self.settings = settings
        self.registry = registry
        self.jobs = jobs

    def submit(self, kind: str, req: GenerateBase, owner: str | None = None) -> Job:
        job_id = uuid.uuid4().hex
        params: dict[str, Any] = {**req.context_fields(), **req.generation_fields()}
        params.update(self._model_files(req))
        params["output_format"], params["output_quality"] = req.output_format, req.output_quality
        if self.settings.threads and "n_threads" not in params:
            params["n_threads"] = self.settings.threads
        inputs = self.jobs.input_dir(job_id)
        if isinstance(req, Img2ImgRequest | ControlNetRequest) and req.init_image:
            params["init_image_path"] = str(
                store_input(self._image(req.init_image, "init_image"), inputs, "init")
            )
            if req.strength is not None:
                params["strength"] = req.strength
        if isinstance(req, InpaintingRequest):
            mask = self._image(req.mask_image, "mask_image")
            params["mask_image_path"] = str(store_input(mask, inputs, "mask", mode="L"))
        if isinstance(req, ControlNetRequest):
            params["control_image_path"] = str(
                store_input(self._image(req.control_image, "control_image"), inputs, "control")
            )
            params["control_strength"], params["canny"] = req.control_strength, req.canny
            if req.control_net:
                params["control_net"] = self._resolve(req.control_net, ModelType.CONTROLNET)
        return self._queue(kind, params, owner, job_id)

    def submit_upscale(self, req: UpscaleRequest, owner: str | None = None) -> Job:
        job_id = uuid.uuid4().hex
        image = self._image(req.image, "image")
        params: dict[str, Any] = {
            "upscaler": self._upscaler(req.upscaler),
            "factor": req.factor,
            "image_path": str(store_input(image, self.jobs.input_dir(job_id), "image")),
            "output_format": req.output_format,
            "output_quality": req.output_quality,
            "prompt": "",
            "width": image.width,
            "height": image.height,
        }
        if self.settings.threads:
            params["n_threads"] = self.settings.threads
        return self._queue("upscale", params, owner, job_id)

    # -- helpers -------------------------------------------------------------------------
    def _queue(self, kind: str, params: dict[str, Any], owner: str | None, job_id: str) -> Job:
        try:
            return self.jobs.submit(kind, params, owner=owner, job_id=job_id)
        except QueueFull as exc:
            raise ApiError(
                503,
                "QUEUE_FULL",
                "the queue is full, try again later",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None

    def _image(self, text: str, field: str) -> Any:
        return decode_image(text, field, self.settings.max_image_pixels)

    def _model_files(self, req: GenerateBase) -> dict[str, str]:
        name = req.model_name or self.settings.model
        files: dict[str, str] = {}
        if name:
            files["model"] = self._resolve(name, _IMAGE_TYPES)
        else:
            checkpoints = self.registry.list(type=_IMAGE_TYPES, limit=1).items
            if not checkpoints:
                raise ApiError(
                    404,
                    "MODEL_NOT_FOUND",
                    f"no model installed: put a checkpoint (.safetensors or .gguf) in "
                    f"{self.registry.root / 'checkpoints'}",
                )
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
            raise ApiError(404, "MODEL_NOT_FOUND", f"model not found: {name}") from None
        except RegistryError as exc:
            raise ApiError(400, "INVALID_PARAMETERS", str(exc)) from None

    def _resolve_dir(self, name: str) -> str:
        try:
            path = self.registry.resolve(name)
        except RegistryError as exc:
            raise ApiError(400, "INVALID_PARAMETERS", str(exc)) from None
        if not Path(path).is_dir():
            raise ApiError(404, "NOT_FOUND", f"not a directory in the models dir: {name}")
        return str(path)

    def _upscaler(self, name: str | None) -> str:
        if name:
            return self._resolve(name, ModelType.ESRGAN | ModelType.UPSCALER)
        found = self.registry.list(type=ModelType.ESRGAN | ModelType.UPSCALER, limit=1).items
        if not found:
            raise ApiError(
                404,
                "MODEL_NOT_FOUND",
                "no upscaler installed: run `sdcpp models import-upscalers` or put an "
                f"ESRGAN model in {self.registry.root / 'esrgan'}",
            )
        return str(self.registry.resolve(found[0].id))
