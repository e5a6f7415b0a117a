"""The one place a Diffusion API request becomes a queued job.

Goes through the server's ``GenerationService`` (name resolution inside the models dir) and
``JobService`` (the one queue): the job is an ordinary txt2img job, listed and cancellable like
any other. Switching to the typed job spec (``submit_spec``) changes only this module.
"""

from __future__ import annotations

import uuid
from typing import Any

from ....registry import ModelType
from ...errors import ApiError
from ...generation import GenerationService
from ...store import Job

_IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
_UPSCALERS = ModelType.ESRGAN | ModelType.UPSCALER


def submit(generation: GenerationService, spec: dict[str, Any], owner: str | None) -> Job:
    # GenerationService's resolvers raise the one error table's ApiErrors (404 MODEL_NOT_FOUND).
    resolve = generation._resolve
    params: dict[str, Any] = dict(spec["generation"])
    if spec["model"]:
        params["model"] = resolve(spec["model"], _IMAGE_TYPES)
    else:
        params["model"] = _default_model(generation)
    if spec["refiner"]:
        resolve(spec["refiner"], _IMAGE_TYPES)  # an unknown name is a 404 first
        raise ApiError(
            400,
            "INVALID_PARAMETERS",
            "refiner_checkpoint: this engine has no second-model refiner pass; "
            "use hires for a second pass over the same model",
        )
    if spec["loras"]:
        params["loras"] = [
            {"path": resolve(name, ModelType.LORA), "multiplier": scale}
            for name, scale in spec["loras"]
        ]
    if hires := spec["hires"]:
        upscaler = hires["upscaler"]
        entry: dict[str, Any] = {
            "scale": hires["scale"],
            "steps": hires["steps"],
            "denoising_strength": hires["denoising_strength"],
        }
        if upscaler == "Latent":
            entry["upscaler"] = "Latent"
        else:
            entry["upscaler"], entry["model_path"] = "Model", resolve(upscaler, _UPSCALERS)
        params["hires"] = entry
    params["output_format"], params["output_quality"] = (
        spec["output_format"],
        spec["output_quality"],
    )
    if generation.settings.threads:
        params["n_threads"] = generation.settings.threads
    return generation.jobs.submit("txt2img", params, owner=owner, job_id=uuid.uuid4().hex)


def _default_model(generation: GenerationService) -> str:
    if generation.settings.model:
        return generation._resolve(generation.settings.model, _IMAGE_TYPES)
    found = generation.registry.list(type=_IMAGE_TYPES, limit=1).items
    if not found:
        raise ApiError(404, "MODEL_NOT_FOUND", "no model installed")
    return str(generation.registry.resolve(found[0].id))
