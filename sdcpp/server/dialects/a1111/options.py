"""A1111's ``/options`` per caller, and what a request runs with (``override_settings`` over them).

A1111 has one options object for the whole server. Here each user has their own (with auth
off there is one, as in A1111): choosing a checkpoint loads it in the engine and makes it the
default of that user's A1111 requests, without changing what other users or other dialects
get. Keys sdcpp has no use for are kept and answered back (clients such as Open WebUI post the
whole object they read); the ones it uses are checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ....errors import InvalidArgument
from ....registry import ModelRegistry, ModelType
from ....registry.errors import ModelNotFoundError
from . import catalog
from .schemas import Settings, cache_option

MAX_KEYS = 1000  # stored options per user: a client must not grow the server's memory
_FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}
_NO_VAE = ("automatic", "none", "")
DEFAULTS: dict[str, Any] = {
    "sd_vae": "Automatic",
    "CLIP_stop_at_last_layers": 1,
    "samples_format": "png",
    "jpeg_quality": 80,
    "eta_noise_seed_delta": 0,
    "sd_lora": "None",
    "live_previews_enable": True,
    "show_progress_every_n_steps": 1,
    "add_model_hash_to_info": True,
    "add_model_name_to_info": True,
}
READ_ONLY = ("sd_checkpoint_hash",)


@dataclass
class Run:
    """One A1111 generation request in flight (its jobs run one batch after another)."""

    owner: str | None
    job_id: str | None = None
    interrupted: bool = False
    skipped: bool = False


@dataclass
class DialectState:
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # owner key -> options
    checkpoints: dict[str, str] = field(default_factory=dict)  # owner key -> registry id
    runs: dict[str, Run] = field(default_factory=dict)  # running job id -> its request
    interrupted: bool = False  # /progress's state flags, as A1111 keeps them until next begin
    skipped: bool = False
    load_limiter: Any = None  # anyio.CapacityLimiter, made inside the event loop


def state_of(app_state: Any) -> DialectState:
    found = getattr(app_state, "a1111", None)
    if found is None:
        found = app_state.a1111 = DialectState()
    assert isinstance(found, DialectState)
    return found


def owner_key(owner: str | None) -> str:
    return owner or ""


def current_checkpoint(
    state: DialectState, registry: ModelRegistry, owner: str | None, default: str | None
) -> Any:
    """The caller's checkpoint entry: chosen through /options, else the server's default
    model, else the first image model (what the plan picks for a spec naming none); None when
    there is none. Not "whatever is loaded now": a request's ``override_settings`` model
    stays loaded after it, and must not become the next request's."""
    if chosen := state.checkpoints.get(owner_key(owner)):
        try:
            return registry.get(chosen, type=catalog.IMAGE_TYPES)
        except ModelNotFoundError:  # deleted since: forget the choice
            state.checkpoints.pop(owner_key(owner), None)
    if default:
        try:
            return registry.get(default, type=catalog.IMAGE_TYPES)
        except ModelNotFoundError:
            pass
    entries = registry.list(type=catalog.IMAGE_TYPES, limit=1).items
    return entries[0] if entries else None


def view(state: DialectState, owner: str | None, checkpoint: Any) -> dict[str, Any]:
    """``GET /options``: the caller's options over the defaults, with the checkpoint."""
    stored = state.options.get(owner_key(owner), {})
    body: dict[str, Any] = {**DEFAULTS, **stored}
    body["sd_model_checkpoint"] = catalog.title(checkpoint) if checkpoint is not None else None
    body["sd_checkpoint_hash"] = getattr(checkpoint, "sha256", None)
    return body


def checked(registry: ModelRegistry, values: dict[str, Any]) -> dict[str, Any]:
    """The options sdcpp uses, validated (InvalidArgument / ModelNotFoundError name the key)."""
    out = dict(values)
    for key in READ_ONLY:
        out.pop(key, None)
    if "samples_format" in out and str(out["samples_format"]).lower() not in _FORMATS:
        raise InvalidArgument(f"samples_format must be one of {', '.join(_FORMATS)}")
    for key, low, high in (("jpeg_quality", 1, 100), ("CLIP_stop_at_last_layers", 1, 12)):
        if key in out:
            value = out[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidArgument(f"{key} must be an integer from {low} to {high}")
    if (vae := out.get("sd_vae")) is not None and str(vae).lower() not in _NO_VAE:
        registry.get(str(vae), type=ModelType.VAE)
    cache_option(out.get("sdcpp_cache"))  # refused now, not when a job is planned
    return out


def store(state: DialectState, owner: str | None, values: dict[str, Any]) -> None:
    key = owner_key(owner)
    merged = {**state.options.get(key, {}), **values}
    merged.pop("sd_model_checkpoint", None)  # kept as a registry id in ``checkpoints``
    if len(merged) > MAX_KEYS:
        raise InvalidArgument(f"at most {MAX_KEYS} options are kept")
    state.options[key] = merged


def settings_for(
    state: DialectState,
    registry: ModelRegistry,
    owner: str | None,
    override: dict[str, Any] | None,
    default: str | None = None,
) -> Settings:
    """What one request runs with: its ``override_settings`` (that request only) over the
    caller's options. The checkpoint is the one ``GET /options`` shows the caller
    (``current_checkpoint``)."""
    override = checked(registry, dict(override or {}))
    merged = {**DEFAULTS, **state.options.get(owner_key(owner), {}), **override}
    if name := override.get("sd_model_checkpoint"):
        model: str | None = catalog.find_checkpoint(registry, str(name)).id
    else:
        entry = current_checkpoint(state, registry, owner, default)
        model = entry.id if entry is not None else None
    vae = str(merged.get("sd_vae") or "")
    clip_skip = merged.get("CLIP_stop_at_last_layers")
    return Settings(
        model=model,
        vae=None if vae.lower() in _NO_VAE else registry.get(vae, type=ModelType.VAE).id,
        clip_skip=clip_skip if isinstance(clip_skip, int) and clip_skip > 1 else None,
        output_format=_FORMATS[str(merged.get("samples_format", "png")).lower()],
        output_quality=int(merged.get("jpeg_quality", 80)),
        cache=cache_option(merged.get("sdcpp_cache")),
    )
