"""One codec for job specs of every kind: ``encode`` to plain JSON, ``decode`` strictly back.

The encoded form is versioned and names its kind (``{"v": 1, "kind": "image", ...}``) so
stored jobs survive a spec change; decoding refuses unknown kinds and fields, wrong versions
and values of the wrong type with ``SpecError`` (the way ``server/worker/protocol.py`` checks
pipe messages). Fields left at their default are not written.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from ..options import CacheOptions, HiresFix, SkipLayerGuidance, VaeTiling
from .convert import ConvertSpec
from .errors import SpecError
from .image import ImageSpec, LoraRef
from .load import LoadSpec
from .upscale import UpscaleSpec
from .video import VideoSpec

VERSION = 1  # of every kind's encoding; a kind that changes shape gets its own number
Spec = ImageSpec | VideoSpec | UpscaleSpec | ConvertSpec | LoadSpec
KINDS: dict[str, Any] = {
    cls.KIND: cls for cls in (ImageSpec, VideoSpec, UpscaleSpec, ConvertSpec, LoadSpec)
}
_STRUCTURED: dict[str, type] = {
    "cache": CacheOptions,
    "hires": HiresFix,
    "vae_tiling": VaeTiling,
    "skip_layer_guidance": SkipLayerGuidance,
}
_IMAGES = ("init_image", "mask_image", "control_image", "end_image", "image")
_IMAGE_LISTS = ("photo_maker_images", "ref_images")


def encode(spec: Spec) -> dict[str, Any]:
    """``spec`` as JSON-able data; image bytes as ``{"b64": ...}``, defaults left out."""
    out: dict[str, Any] = {"v": VERSION, "kind": spec.KIND}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if value == _default(f) or value == ():
            continue
        if f.name in _IMAGES:
            value = _image_out(value)
        elif f.name in _IMAGE_LISTS:
            value = [_image_out(v) for v in value]
        elif f.name == "loras":
            value = [dataclasses.asdict(lora) for lora in value]
        elif f.name in _STRUCTURED and not isinstance(value, str):  # cache: a preset name
            value = {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
        out[f.name] = value
    return out


def decode(data: Any) -> Any:
    """The spec ``encode`` wrote (an ``ImageSpec``, ``VideoSpec``, ...); SpecError for
    anything else. Typed ``Any`` so callers that know the kind need no cast."""
    if not isinstance(data, Mapping):
        raise SpecError("a job spec must be an object")
    cls = KINDS.get(data.get("kind"))  # type: ignore[arg-type]
    if data.get("v") != VERSION or cls is None:
        raise SpecError(
            f"unsupported job spec version/kind: {data.get('v')!r}/{data.get('kind')!r}"
        )
    body = {k: v for k, v in data.items() if k not in ("v", "kind")}
    hints = _hints(cls)
    if unknown := sorted(set(body) - set(hints)):
        raise SpecError(f"unknown {cls.KIND} spec field {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name in _IMAGES:
            value = _image_in(value, name)
        elif name in _IMAGE_LISTS:
            value = tuple(_image_in(v, name) for v in _list(value, name))
        elif name == "loras":
            value = tuple(_typed(LoraRef, item, name) for item in _list(value, name))
        elif name == "cache" and isinstance(value, str):
            pass  # a preset or mode name, resolved when the job is planned
        elif name in _STRUCTURED:
            if name == "skip_layer_guidance" and isinstance(value, Mapping) and "layers" in value:
                value = {**value, "layers": tuple(value["layers"])}
            value = build(_STRUCTURED[name], value, name)
        if not _fits(value, hints[name]):
            raise SpecError(f"{cls.KIND} spec field {name!r}: {type(value).__name__} {value!r:.60}")
        values[name] = value
    return build(cls, values, "spec")


def _typed(cls: type, value: Any, name: str) -> Any:
    """``build`` with every field's type checked (for our own nested types)."""
    built = build(cls, value, name)
    for field, hint in _hints(cls).items():
        if not _fits(getattr(built, field), hint):
            raise SpecError(f"{name}: {field} must not be {getattr(built, field)!r:.60}")
    return built


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the annotated type (JSON's: an int is a float, a bool is not
    a number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if origin is tuple:
        return isinstance(value, tuple) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
        )
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _image_out(value: bytes | str) -> Any:
    return {"b64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


def _image_in(value: Any, name: str) -> bytes | str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise SpecError(f"{name}: invalid base64") from None
    raise SpecError(f"{name}: expected a path or {{'b64': ...}}")


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise SpecError(f"{name}: expected a list")
    return list(value)


def build(cls: type, value: Any, name: str) -> Any:
    """``cls(**value)`` for a mapping; SpecError naming ``name`` otherwise."""
    if not isinstance(value, Mapping):
        raise SpecError(f"{name}: expected an object, got {type(value).__name__}")
    try:
        return cls(**value)
    except TypeError as exc:
        raise SpecError(f"{name}: {exc}") from None
