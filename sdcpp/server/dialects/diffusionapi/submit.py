"""The one place a Diffusion API request becomes queued jobs.

The request's ``to_spec()`` goes through ``GenerationService.submit_spec`` (planned by
architecture, LoRAs resolved, the one queue): each pass is an ordinary job, listed and
cancellable like any other. Only the names the spec cannot hold unresolved are looked up here:
the hires ESRGAN model (its path goes into ``HiresFix.model_path``) and the refiner checkpoint
(checked before the base pass is queued, so an unknown name is a 404 at once).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ....jobspec import ImageSpec
from ....options import HiresUpscaler
from ....registry import ModelType
from ....registry.errors import ModelNotFoundError
from ...generation import GenerationService
from ...store import Job
from .schemas import Txt2ImgRequest

IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
UPSCALERS = ModelType.ESRGAN | ModelType.UPSCALER


def _path(generation: GenerationService, name: str, types: ModelType) -> str:
    registry = generation.registry
    try:
        return str(registry.resolve(registry.get(name, type=types).id))
    except ModelNotFoundError:
        raise ModelNotFoundError(f"model not found: {name}") from None


def _queue(generation: GenerationService, spec: ImageSpec, owner: str | None) -> Job:
    return generation.submit_spec(spec, owner)  # its errors are the table's (errors.py)


def submit(generation: GenerationService, req: Txt2ImgRequest, owner: str | None) -> Job:
    """Queue the base pass (txt2img, hires inside the same engine call)."""
    spec = req.to_spec()
    if spec.hires is not None and spec.hires.upscaler == HiresUpscaler.MODEL:
        assert req.hires is not None
        model = _path(generation, req.hires.upscaler, UPSCALERS)
        spec = dataclasses.replace(spec, hires=dataclasses.replace(spec.hires, model_path=model))
    if req.refiner_checkpoint:
        _path(generation, req.refiner_checkpoint, IMAGE_TYPES)
    return _queue(generation, spec, owner)


def submit_refiner(
    generation: GenerationService, req: Txt2ImgRequest, base: Job, owner: str | None
) -> Job:
    """Queue the refiner pass over the finished base job's image (an img2img job)."""
    image = generation.jobs.output_dir(base.id) / base.outputs[0]
    width, height = _size(image)
    return _queue(generation, req.refiner_spec(str(image), width, height), owner)


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size
