"""Engine (context) options every job that loads a diffusion model may set.

Shared by the image, video and load specs: the same names reach ``StableDiffusion(...)`` and
make the same context cache key, so a job finds a model an explicit load left loaded.
``None``: the architecture plan's setting, else the engine's default.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTEXT_FIELDS = (
    "n_threads",
    "offload_params_to_cpu",
    "keep_clip_on_cpu",
    "keep_vae_on_cpu",
    "diffusion_flash_attn",
    "diffusion_conv_direct",
    "vae_conv_direct",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineContext:
    n_threads: int | None = None
    offload_params_to_cpu: bool | None = None
    keep_clip_on_cpu: bool | None = None
    keep_vae_on_cpu: bool | None = None
    diffusion_flash_attn: bool | None = None
    diffusion_conv_direct: bool | None = None
    vae_conv_direct: bool | None = None

    def context_options(self) -> dict[str, int | bool]:
        """The options this spec sets (``StableDiffusion`` keywords)."""
        values = {name: getattr(self, name) for name in CONTEXT_FIELDS}
        return {k: v for k, v in values.items() if v is not None}
