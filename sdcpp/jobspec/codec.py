"""One codec for job specs: ``encode`` to plain JSON, ``decode`` strictly back.

The encoded form is versioned (``{"v": 1, "kind": "image", ...}``) so stored jobs survive a
spec change; decoding refuses unknown fields, wrong versions and wrong types with
``SpecError`` (the way ``server/worker/protocol.py`` checks pipe messages).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from typing import Any

from ..options import CacheOptions, HiresFix, SkipLayerGuidance, VaeTiling
from .errors import SpecError
from .image import ImageSpec, LoraRef

VERSION = 1
_STRUCTURED: dict[str, type] = {
    "cache": CacheOptions,
    "hires": HiresFix,
    "vae_tiling": VaeTiling,
    "skip_layer_guidance": SkipLayerGuidance,
}
_IMAGES = ("init_image", "mask_image", "control_image")
_IMAGE_LISTS = ("photo_maker_images", "ref_images")
_FIELDS = {f.name for f in dataclasses.fields(ImageSpec)}


def encode(spec: ImageSpec) -> dict[str, Any]:
    """``spec`` as JSON-able data; image bytes as ``{"b64": ...}``, defaults left out."""
    out: dict[str, Any] = {"v": VERSION, "kind": spec.KIND}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if value == f.default or (f.name == "extra" and not value) or value == ():
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


def decode(data: Any) -> ImageSpec:
    """The spec ``encode`` wrote; SpecError for anything else."""
    if not isinstance(data, Mapping):
        raise SpecError("a job spec must be an object")
    if data.get("v") != VERSION or data.get("kind") != ImageSpec.KIND:
        raise SpecError(
            f"unsupported job spec version/kind: {data.get('v')!r}/{data.get('kind')!r}"
        )
    body = {k: v for k, v in data.items() if k not in ("v", "kind")}
    if unknown := sorted(set(body) - _FIELDS):
        raise SpecError(f"unknown job spec field {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name in _IMAGES:
            value = _image_in(value, name)
        elif name in _IMAGE_LISTS:
            value = tuple(_image_in(v, name) for v in _list(value, name))
        elif name == "loras":
            value = tuple(build(LoraRef, item, name) for item in _list(value, name))
        elif name == "cache" and isinstance(value, str):
            pass  # a preset or mode name, resolved when the job is planned
        elif name in _STRUCTURED:
            if name == "skip_layer_guidance" and isinstance(value, Mapping) and "layers" in value:
                value = {**value, "layers": tuple(value["layers"])}
            value = build(_STRUCTURED[name], value, name)
        values[name] = value
    spec = build(ImageSpec, values, "spec")
    assert isinstance(spec, ImageSpec)
    return spec


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
