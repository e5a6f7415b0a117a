"""The AUTOMATIC1111-style "parameters" text ``StableDiffusion.generate()`` puts in each image's
``info``: what the request asked, with the engine's own defaults filled in for what it left out
(so the text says what ran, not what was typed)."""

from __future__ import annotations

from typing import Any, Protocol

from . import _native
from .options import SampleMethod, Scheduler
from .parameters import SAMPLER_NAMES, SCHEDULER_NAMES, format_parameters


class _Model(Protocol):
    """What the text needs of a loaded model (``StableDiffusion``; a protocol, so this module
    never imports the class that imports it)."""

    model_name: str

    @property
    def model_hash(self) -> str: ...

    @property
    def default_sample_method(self) -> SampleMethod: ...

    def default_scheduler(self, sample_method: SampleMethod | str | None = None) -> Scheduler: ...


def parameters_text(
    sd: _Model,
    prompt: str,
    options: dict[str, Any],
    seed: int,
    size: tuple[int, int],
    defaults: Any,
) -> str:
    """A1111-style "parameters" for one image of ``sd``; ``defaults``: the engine's
    ``ImgGenParams()`` (steps, CFG and strength when the request left them out)."""
    method = (
        SampleMethod(options["sample_method"])
        if options.get("sample_method")
        else sd.default_sample_method
    )
    scheduler = (
        Scheduler(options["scheduler"])
        if options.get("scheduler")
        else sd.default_scheduler(method)
    )
    settings: dict[str, Any] = {
        "Steps": options.get("steps") or defaults.sample_params.sample_steps,
        "Sampler": SAMPLER_NAMES[method],
        "Schedule type": SCHEDULER_NAMES[scheduler],
        "CFG scale": options.get("cfg_scale", defaults.sample_params.txt_cfg),
        "Seed": seed,
        "Size": f"{size[0]}x{size[1]}",
        "Model hash": sd.model_hash[:10],
        "Model": sd.model_name,
        "Denoising strength": (
            options.get("strength", defaults.strength)
            if options.get("init_image") is not None
            else None
        ),
        "Clip skip": options.get("clip_skip"),
        "Version": f"sdcpp {_native.__version__}",
    }
    return format_parameters(prompt, options.get("negative_prompt", ""), settings)
