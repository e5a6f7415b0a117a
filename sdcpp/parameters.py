"""AUTOMATIC1111-style "parameters" text: written into every PNG, parsed back by tools.

Format (what A1111 writes and what civitai, ComfyUI importers and our own clients parse)::

    a cat on a roof
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x512,
    Model hash: 6ce0161689, Model: v1-5, Version: sdcpp 0.1.0      (one line in the file)

The last line is "Key: value" pairs separated by ", "; a value containing a comma or colon is
JSON-quoted. ``read_parameters`` accepts a PNG path, bytes, a PIL image or the text itself.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from PIL import Image

from .options import SampleMethod, Scheduler

__all__ = ["SAMPLER_NAMES", "SCHEDULER_NAMES", "format_parameters", "read_parameters"]

# Our sampler/scheduler names as A1111 spells them ("Euler a", "Karras").
SAMPLER_NAMES: dict[SampleMethod, str] = {
    SampleMethod.EULER: "Euler",
    SampleMethod.EULER_A: "Euler a",
    SampleMethod.HEUN: "Heun",
    SampleMethod.DPM2: "DPM2",
    SampleMethod.DPMPP2S_A: "DPM++ 2S a",
    SampleMethod.DPMPP2M: "DPM++ 2M",
    SampleMethod.DPMPP2Mv2: "DPM++ 2M v2",
    SampleMethod.IPNDM: "iPNDM",
    SampleMethod.IPNDM_V: "iPNDM_v",
    SampleMethod.LCM: "LCM",
    SampleMethod.DDIM_TRAILING: "DDIM",
    SampleMethod.TCD: "TCD",
    SampleMethod.RES_MULTISTEP: "Res Multistep",
    SampleMethod.RES_2S: "Res 2s",
    SampleMethod.ER_SDE: "ER SDE",
}
SCHEDULER_NAMES: dict[Scheduler, str] = {
    Scheduler.DISCRETE: "Uniform",
    Scheduler.KARRAS: "Karras",
    Scheduler.EXPONENTIAL: "Exponential",
    Scheduler.AYS: "Align Your Steps",
    Scheduler.GITS: "GITS",
    Scheduler.SGM_UNIFORM: "SGM Uniform",
    Scheduler.SIMPLE: "Simple",
    Scheduler.SMOOTHSTEP: "Smoothstep",
    Scheduler.KL_OPTIMAL: "KL Optimal",
    Scheduler.LCM: "LCM",
    Scheduler.BONG_TANGENT: "Bong Tangent",
}
_SAMPLER_BY_NAME = {v.lower(): k for k, v in SAMPLER_NAMES.items()}
_SCHEDULER_BY_NAME = {v.lower(): k for k, v in SCHEDULER_NAMES.items()}


def _value(v: Any) -> str:
    text = f"{v:g}" if isinstance(v, float) else str(v)  # A1111 writes "CFG scale: 7"
    return json.dumps(text) if any(c in text for c in ',:\n"') else text


def format_parameters(
    prompt: str, negative_prompt: str = "", settings: Mapping[str, Any] | None = None
) -> str:
    """Build the text. ``settings`` keys are A1111's ("Steps", "Sampler", ...), in order."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    pairs = [f"{k}: {_value(v)}" for k, v in (settings or {}).items() if v is not None]
    if pairs:
        lines.append(", ".join(pairs))
    return "\n".join(lines)


_PAIR = re.compile(r'\s*([\w \-/]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def _parse_settings(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, raw in _PAIR.findall(line):
        value = raw.strip()
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value.strip('"')
        out[key.strip()] = value
    return out


def _text_of(source: Any) -> str:
    if isinstance(source, str) and not os.path.exists(source):
        return source
    if isinstance(source, Image.Image):
        text = source.info.get("parameters")
    else:
        raw = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        with Image.open(raw) as image:
            text = image.info.get("parameters")
    if not text:
        raise ValueError("the image carries no 'parameters' text")
    return str(text)


def read_parameters(source: Any) -> dict[str, Any]:
    """Parse A1111 parameters: {"prompt", "negative_prompt", "settings": {...}} plus typed
    shortcuts ("steps", "cfg_scale", "seed", "width", "height", "sample_method", "scheduler")
    where present."""
    lines = _text_of(source).split("\n")
    settings: dict[str, str] = {}
    if len(lines) > 1 and _PAIR.match(lines[-1]) and "Steps:" in lines[-1]:
        settings = _parse_settings(lines.pop())
    negative = ""
    for i, line in enumerate(lines):
        if line.startswith("Negative prompt:"):
            negative = "\n".join([line[len("Negative prompt:") :].strip(), *lines[i + 1 :]])
            lines = lines[:i]
            break
    result: dict[str, Any] = {
        "prompt": "\n".join(lines),
        "negative_prompt": negative,
        "settings": settings,
    }
    for key, name, kind in (
        ("Steps", "steps", int),
        ("CFG scale", "cfg_scale", float),
        ("Seed", "seed", int),
    ):
        if key in settings:
            result[name] = kind(settings[key])
    if "Size" in settings and "x" in settings["Size"]:
        width, height = settings["Size"].split("x", 1)
        result["width"], result["height"] = int(width), int(height)
    if (sampler := _SAMPLER_BY_NAME.get(settings.get("Sampler", "").lower())) is not None:
        result["sample_method"] = sampler.value
    if (scheduler := _SCHEDULER_BY_NAME.get(settings.get("Schedule type", "").lower())) is not None:
        result["scheduler"] = scheduler.value
    return result
