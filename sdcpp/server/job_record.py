"""What the job store keeps of a job, and the one place its engine params come from.

A job is stored (``jobs.params``, schema 4) as a record::

    {"spec": encode(spec), "engine": {...}, "plan": {...}, "model": "/models/x.gguf"}

``spec`` is the job's typed spec (``sdcpp.jobspec``, versioned) as the server *resolved* it
at submit: names turned into the files inside the models dir, uploads into stored input paths,
the architecture plan's recommended values filled in. ``engine`` holds what the server
resolved that is not a spec field (the planned model files under their load keyword and the
plan's context settings, the models dir, a source image's size); ``plan`` is what the job's
JSON shows of the plan (``spec_params.plan_view``); ``model`` (image and video jobs) repeats
the main model file at the top, where SQL finds it (a worker that claims only its models).

``job_params`` turns a record into the engine params the worker receives (and that job views,
estimates and dialect renders read as ``Job.params``): pure, no registry or file access, so a
row decodes the same on every host that shares a PostgreSQL queue. Rows of schema <= 3 hold
plain params dicts; they pass through unchanged (legacy decode).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..jobspec import (
    ConvertSpec,
    ImageSpec,
    SpecError,
    UpscaleSpec,
    VideoSpec,
    decode,
    encode,
)
from ..jobspec.codec import Spec
from ..jobspec.image import generation_options

# The params key holding the architecture plan a job was queued with (``plan_view``): shown in
# the job's JSON, never sent to the worker.
PLAN_KEY = "plan"
# Where a row whose spec cannot be decoded says why; the worker refuses the unknown key, so
# the job fails with this message instead of every listing failing.
SPEC_ERROR_KEY = "stored_spec_error"

_STRUCTURED = ("cache", "hires", "vae_tiling", "skip_layer_guidance")
_IMAGE_PATHS = {"init_image": "init_image_path", "mask_image": "mask_image_path",
                "control_image": "control_image_path"}  # fmt: skip
_IMAGE_LISTS = {"ref_images": "ref_image_paths", "photo_maker_images": "photo_maker_image_paths"}
# video spec field -> library VideoRequest / worker param
_VIDEO = {
    "negative_prompt": None, "width": None, "height": None, "video_frames": None,
    "steps": None, "cfg_scale": None, "sampler": "sample_method", "scheduler": None,
    "flow_shift": None, "high_noise_steps": None, "high_noise_cfg_scale": None,
    "moe_boundary": None, "vae": None, "t5xxl": None, "clip_vision": None,
    "high_noise_diffusion_model": None, "lora_dir": None, "output_quality": None,
}  # fmt: skip


def record(
    spec: Spec, engine: Mapping[str, Any] | None = None, plan: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The stored form of a resolved ``spec`` (see the module docstring)."""
    out: dict[str, Any] = {"spec": encode(spec)}
    if engine:
        out["engine"] = dict(engine)
    if plan is not None:
        out[PLAN_KEY] = dict(plan)
    if isinstance(spec, ImageSpec | VideoSpec):
        main = out.get("engine", {})
        out["model"] = main.get("model") or main.get("diffusion_model") or spec.model
    return out


def is_record(data: Mapping[str, Any]) -> bool:
    """A schema-4 record rather than a legacy params dict (which never had a ``spec`` key)."""
    spec = data.get("spec")
    return isinstance(spec, Mapping) and "v" in spec and "kind" in spec


def stored_spec(data: Mapping[str, Any]) -> Any:
    """The decoded spec of a stored record; None for a legacy row. Raises SpecError."""
    return decode(data["spec"]) if is_record(data) else None


def job_params(data: dict[str, Any]) -> dict[str, Any]:
    """The engine params of a stored job (``PLAN_KEY`` included for display)."""
    if not is_record(data):
        return data  # schema <= 3: the params dict the server built then
    try:
        spec = decode(data["spec"])
    except SpecError as exc:
        return {SPEC_ERROR_KEY: f"the stored job spec cannot be read: {exc}"}
    engine = data.get("engine") or {}
    params = _PARAMS[type(spec)](spec, engine)
    if PLAN_KEY in data:
        params[PLAN_KEY] = data[PLAN_KEY]
    return params


@functools.lru_cache(maxsize=4096)
def row_params(job_id: str, text: str) -> dict[str, Any]:
    """``job_params`` of a row's stored JSON, decoded once per (row id, params text): the
    spec decode costs tens of microseconds a row, and queue listings decode every queued and
    running row on each poll while the text never changes. The dict is shared by the Job
    values of that row (``Job.to_dict`` copies), like the store's finished-job cache."""
    return job_params(json.loads(text))


def image_params(spec: ImageSpec, engine: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved image spec as the worker's ``run`` params (``worker/jobs.parse_job``)."""
    params: dict[str, Any] = {"prompt": spec.prompt, **engine, **spec.context_options()}
    _copy(spec, generation_options(type(spec)), params)  # derived from the spec's fields
    if spec.seed is not None and spec.seed >= 0:
        params["seed"] = spec.seed
    for name in _STRUCTURED:
        if (value := getattr(spec, name)) is not None and not isinstance(value, str):
            params[name] = dataclasses.asdict(value)  # JSON; the worker rebuilds the option
    if spec.loras:  # resolved: each name is the LoRA file's path
        params["loras"] = [
            {"path": r.name, "multiplier": r.weight, "is_high_noise": r.is_high_noise}
            for r in spec.loras
        ]
    for name, key in _IMAGE_PATHS.items():
        if (value := getattr(spec, name)) is not None:
            params[key] = value
    for name, key in _IMAGE_LISTS.items():
        if values := getattr(spec, name):
            params[key] = list(values)
    params["canny"] = spec.canny
    params["preview"] = spec.preview
    params["output_format"], params["output_quality"] = spec.output_format, spec.output_quality
    return params


def video_params(spec: VideoSpec, engine: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved video spec as the worker's params (``worker/video.parse_video_job``); the
    worker plans the companions left out from ``engine["models_dir"]``."""
    params: dict[str, Any] = {**spec.context_options(), "prompt": spec.prompt}
    _copy(spec, _VIDEO, params)
    if spec.seed is not None and spec.seed >= 0:
        params["seed"] = spec.seed
    params["model"] = spec.model
    params.update(engine)
    for name in ("init_image", "end_image"):
        if (value := getattr(spec, name)) is not None:
            params[f"{name}_path"] = value
    params["fps"], params["output_format"] = spec.fps, spec.output_format
    return params


def upscale_params(spec: UpscaleSpec, engine: Mapping[str, Any]) -> dict[str, Any]:
    """``engine``: the source image's ``width``/``height``, kept for display."""
    params: dict[str, Any] = {
        "upscaler": spec.upscaler,
        "factor": spec.factor,
        "image_path": spec.image,
        "output_format": spec.output_format,
        "output_quality": spec.output_quality,
        "prompt": "",
        **engine,
    }
    if spec.n_threads is not None:
        params["n_threads"] = spec.n_threads
    return params


def convert_params(spec: ConvertSpec, engine: Mapping[str, Any]) -> dict[str, Any]:
    """``engine``: the conversion plan's paths and estimate (``ConvertPlan.job_params``),
    which the converter child receives."""
    return {"model_name": spec.model, **engine}


def _copy(spec: Any, names: Mapping[str, str | None], params: dict[str, Any]) -> None:
    for name, target in names.items():
        if (value := getattr(spec, name)) is not None:
            params[target or name] = value


_PARAMS: dict[type, Callable[[Any, Mapping[str, Any]], dict[str, Any]]] = {
    ImageSpec: image_params,
    VideoSpec: video_params,
    UpscaleSpec: upscale_params,
    ConvertSpec: convert_params,
}
__all__ = [
    "PLAN_KEY",
    "SPEC_ERROR_KEY",
    "is_record",
    "job_params",
    "record",
    "row_params",
    "stored_spec",
]
