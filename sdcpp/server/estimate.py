"""``POST /api/estimate``: how long and how much memory a generation would take, from this
server's own history where it has one.

Time. Every finished image job left ``generation_time`` (engine seconds, model loading
excluded), its steps, size and batch. Its rate is

    seconds per pixel-step = generation_time / (steps * width * height * batch)

and the estimate is the median rate of the best matching group times the requested
steps * width * height * batch. Groups, best first: jobs of the same model file, then of the
same detected architecture (an SD1 rate says nothing about Flux, so other architectures are
never used). Inside a group, jobs of exactly the requested size are preferred when there are
any: cost does not grow exactly with pixel count (attention is quadratic in it), so scaling
from another size is the weaker guess. The rate also carries the per-image fixed costs (text
encoding, VAE decode) spread over the steps. With no matching history the answer uses
``DEFAULT_SECONDS_PER_MEGAPIXEL_STEP`` and says ``"basis": "default"``.

Memory (always a formula, stated as such): the model file size (weights load about as large as
they are on disk) + ``OVERHEAD_MB`` + ``COMPUTE_MB_PER_MEGAPIXEL`` * megapixels. The compute
term is the largest ggml compute buffer, the VAE decode, which grows with image area:
stable-diffusion.cpp logs about 2.5-7.5 GB at 1024x1024 depending on ``vae_conv_direct``;
tiling lowers it. Batch images are sampled and decoded one after another, so ``batch_count``
adds time, not memory. Companion files (separate VAE, text encoders) are not counted.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..registry import ModelRegistry, ModelType
from ..registry.errors import ModelNotFoundError, RegistryError
from .exceptions import BadRequest
from .store import Job
from .store_api import JobStoreApi

# A modest multi-core CPU runs SD1 at 512x512 at roughly one step per second: 1 s / 0.26 MP.
DEFAULT_SECONDS_PER_MEGAPIXEL_STEP = 4.0
COMPUTE_MB_PER_MEGAPIXEL = 4096.0
OVERHEAD_MB = 256.0  # runtime, text-encoder and UNet/DiT compute buffers at small sizes
DEFAULT_MODEL_MB = 2048.0  # an SD1.x f16 checkpoint, when no model is installed
HISTORY = 500  # newest finished jobs considered
_IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
_IMAGE_KINDS = frozenset({"txt2img", "img2img", "inpainting", "controlnet"})
_NOT_AN_ARCHITECTURE = frozenset({"unknown", "none", ""})
_STEPS = re.compile(r"\bSteps: (\d+)")
_MEGAPIXEL = 1_000_000


@dataclass(frozen=True, slots=True)
class Sample:
    model: str
    pixels: int
    rate: float  # seconds per pixel-step


def sample_of(job: Job) -> Sample | None:
    """The measured rate of one finished job, or None when something needed is missing."""
    if job.status != "completed" or job.kind not in _IMAGE_KINDS:
        return None
    result, params = job.result, job.params
    seconds = result.get("generation_time")
    width = result.get("width") or params.get("width")
    height = result.get("height") or params.get("height")
    steps = params.get("steps") or _steps_from(result.get("parameters"))
    batch = len(job.outputs) or params.get("batch_count") or 1
    model = params.get("model")
    if not (isinstance(seconds, int | float) and seconds > 0 and width and height and steps):
        return None
    if not isinstance(model, str):
        return None
    pixels = int(width) * int(height)
    return Sample(model, pixels, float(seconds) / (int(steps) * pixels * int(batch)))


def _steps_from(parameters: Any) -> int | None:
    # the worker writes A1111-style text ("..., Steps: 20, Sampler: ...") into every result
    if isinstance(parameters, list) and parameters and isinstance(parameters[0], str):
        found = _STEPS.search(parameters[0])
        return int(found.group(1)) if found else None
    return None


def _pick(samples: list[Sample], pixels: int) -> tuple[list[Sample], bool]:
    same_size = [s for s in samples if s.pixels == pixels]
    return (same_size, True) if same_size else (samples, False)


def estimate(
    samples: Iterable[Sample],
    *,
    model: str | None,
    architecture_of: dict[str, str],
    width: int,
    height: int,
    steps: int,
    batch_count: int,
    model_bytes: int | None,
) -> dict[str, Any]:
    """The answer for one request; ``architecture_of`` maps model paths to architectures."""
    pixels = width * height
    history = list(samples)
    architecture = architecture_of.get(model or "")
    groups: list[tuple[str, list[Sample]]] = []
    if model:
        groups.append(("model", [s for s in history if s.model == model]))
    if architecture and architecture not in _NOT_AN_ARCHITECTURE:
        same = [s for s in history if architecture_of.get(s.model) == architecture]
        groups.append(("architecture", same))
    matched: str | None = None
    used: list[Sample] = []
    same_size = False
    for name, group in groups:
        if group:
            matched = name
            used, same_size = _pick(group, pixels)
            break
    if used:
        rate = statistics.median(s.rate for s in used)
    else:
        rate = DEFAULT_SECONDS_PER_MEGAPIXEL_STEP / _MEGAPIXEL
    megapixels = pixels / _MEGAPIXEL
    model_mb = model_bytes / 2**20 if model_bytes is not None else DEFAULT_MODEL_MB
    memory_mb = model_mb + OVERHEAD_MB + COMPUTE_MB_PER_MEGAPIXEL * megapixels
    return {
        "estimated_seconds": round(rate * steps * pixels * batch_count, 3),
        "estimated_memory_mb": round(memory_mb),
        "basis": "measured" if used else "default",
        "samples": len(used),
        "matched": matched,
        "same_size": same_size,
        "architecture": architecture,
        "memory_basis": "model_file" if model_bytes is not None else "default",
    }


def estimate_request(
    registry: ModelRegistry,
    store: JobStoreApi,
    default_model: str | None,
    *,
    model_name: str | None,
    width: int,
    height: int,
    steps: int,
    batch_count: int,
) -> dict[str, Any]:
    """Resolve the model as generation would (named, else the configured, else the first
    checkpoint), gather the history and estimate. Blocking: registry and store I/O."""
    entry = None
    name = model_name or default_model
    try:
        if name:
            entry = registry.get(name, type=_IMAGE_TYPES)
        else:
            first = registry.list(type=_IMAGE_TYPES, limit=1).items
            entry = first[0] if first else None
        # jobs record the resolved file path; map every image model's path to its architecture
        architecture_of = {
            os.fspath(registry.resolve(e.id)): e.architecture
            for e in registry.by_type(_IMAGE_TYPES)
        }
        model = os.fspath(registry.resolve(entry.id)) if entry is not None else None
    except ModelNotFoundError:
        raise ModelNotFoundError(f"model not found: {name}") from None
    except RegistryError as exc:
        raise BadRequest(str(exc)) from None
    jobs = store.list(status="completed", limit=HISTORY)
    answer = estimate(
        (s for job in jobs if (s := sample_of(job)) is not None),
        model=model,
        architecture_of=architecture_of,
        width=width,
        height=height,
        steps=steps,
        batch_count=batch_count,
        model_bytes=entry.size if entry is not None else None,
    )
    answer["model"] = entry.name if entry is not None else None
    return answer
