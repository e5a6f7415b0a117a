"""Loading a plan: the models-directory lookup and seed 002's fallback between load methods."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, ModelLoadError
from ..registry import ModelNotFoundError, ModelRegistry
from ..registry.model_types import ModelType
from ._plan import ContextPlan, companions_for, plan_for, raise_if_missing, raise_if_unsupported
from ._table import COMPANION_SLOTS

if TYPE_CHECKING:
    from ..registry import ModelEntry

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Loader = Callable[..., Any]

MODEL_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
# Where companions live: VAEs, TAESD, text encoders (CLIP vision included: the registry types
# root-level CLIP vision files as text encoders) and diffusion models (Wan 2.2's second expert).
COMPANION_TYPES = (
    ModelType.VAE | ModelType.TAESD | ModelType.TEXT_ENCODER | ModelType.DIFFUSION_MODEL
)


def load_with_fallback(plan: ContextPlan, *, loader: Loader, **kwargs: Any) -> Any:
    """Load with the planned method; on ModelLoadError retry with the other one.

    Seed 002: "if loading with the detected method fails, the system attempts fallback
    loading". The retry is logged as a warning; if both fail, the first error is raised with
    the second's message appended. ``kwargs`` go to the loader and win over the plan's files.
    ``loader`` is the class to construct (``StableDiffusion``, or a fake one in tests): the
    plan never imports the engine, so it stays importable and cycle-free without it.
    """
    first, other = plan.load_as, plan.other_method
    try:
        return loader(**{**plan.loader_kwargs(first), **kwargs})
    except ModelLoadError as exc:
        first_error = exc
    logger.warning(
        "loading %s with %s_path failed (%s); retrying with %s_path",
        plan.model_path,
        first,
        first_error,
        other,
    )
    try:
        loaded = loader(**{**plan.loader_kwargs(other), **kwargs})
    except ModelLoadError as second_error:
        message = f"{first_error} (retry with {other}_path also failed: {second_error})"
        raise type(first_error)(message) from first_error
    logger.warning("loaded %s with %s_path (the fallback)", plan.model_path, other)
    return loaded


def plan_from_registry(registry: ModelRegistry, name: str) -> ContextPlan:
    """Plan for the checkpoint or diffusion model ``name`` (id, relative path or name) with
    the registry's VAEs, text encoders and diffusion models as candidate companions."""
    try:
        entry = registry.get(name, type=MODEL_TYPES)
    except ModelNotFoundError:
        entry = registry.get(name)  # to say what it is instead, if it exists at all
    if not entry.type & MODEL_TYPES:
        raise InvalidArgument(
            f"{name!r} is a {entry.type.slug} ({entry.path}), not a checkpoint or diffusion model"
        )
    detection = registry.detection(entry.id) or _undetected(entry)
    available = [
        (registry.resolve(e.id), d)
        for e in registry.list(type=COMPANION_TYPES, limit=None).items
        if e.id != entry.id and (d := registry.detection(e.id)) is not None
    ]
    return plan_for(detection, available, path=registry.resolve(entry.id))


def load_from_models_dir(
    name: str,
    *,
    models_dir: PathLike,
    data_dir: PathLike | None = None,
    loader: Loader,
    **kwargs: Any,
) -> Any:
    """What ``StableDiffusion.from_models_dir`` does (``loader=StableDiffusion``): find,
    plan, check, load with fallback.

    Explicit companion keywords (``vae=``, ``t5xxl=``, ...) override the plan; other keywords
    go to the constructor and win over the plan's context settings. The result carries
    ``recommended`` (the plan's RecommendedDefaults) and ``plan``.
    """
    for key in ("model", "diffusion_model"):
        if key in kwargs:
            raise InvalidArgument(f"from_models_dir chooses {key}= itself from the detection")
    plan = plan_from_registry(ModelRegistry(models_dir, data_dir=data_dir), name)
    overrides = {slot: kwargs.pop(slot) for slot in COMPANION_SLOTS if slot in kwargs}
    plan = plan.with_overrides(overrides)
    raise_if_unsupported(plan)
    raise_if_missing(plan)
    logger.info(
        "%s: %s with %s_path%s",
        plan.name,
        plan.model_path,
        plan.load_as,
        "".join(f", {slot}={path.name}" for slot, path in plan.files.items()),
    )
    for note in plan.notes:
        logger.info("%s: %s", plan.name, note)
    sd = load_with_fallback(plan, loader=loader, **{**plan.context, **kwargs})
    sd.recommended = plan.defaults
    sd.plan = plan
    return sd


def requirements(registry: ModelRegistry, name: str) -> list[str]:
    """Companion slots model ``name`` needs beyond its own file (``[]`` when undetected)."""
    detection = registry.detection(registry.get(name).id)
    return [] if detection is None else list(companions_for(detection))


def missing_companions(registry: ModelRegistry, name: str) -> list[str]:
    """Required companion slots of ``name`` that no file in the registry's dir satisfies."""
    entry = registry.get(name)
    if not entry.type & MODEL_TYPES:
        return []
    return [m.slot for m in plan_from_registry(registry, entry.id).missing]


def _undetected(entry: ModelEntry) -> Any:
    # Detection failed (broken header): plan as an unknown model so the loader reports why.
    from ..detect import Detection

    role = "diffusion_model" if entry.type & ModelType.DIFFUSION_MODEL else "checkpoint"
    evidence = (f"detection failed: {entry.error}",) if entry.error else ()
    return Detection("unknown", "Unknown", role, "", evidence, 0, {}, None, {})
