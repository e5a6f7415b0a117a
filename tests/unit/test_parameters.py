from __future__ import annotations

import io

import pytest
from PIL import Image

from sdcpp._pngmeta import png_bytes
from sdcpp.parameters import format_parameters, read_parameters

SETTINGS = {
    "Steps": 20,
    "Sampler": "Euler a",
    "Schedule type": "Karras",
    "CFG scale": 7.0,
    "Seed": 42,
    "Size": "512x768",
    "Model": "v1-5, pruned",
    "Version": "sdcpp 0.1.0",
}


def test_format_matches_a1111_layout() -> None:
    text = format_parameters("a cat", "blurry", SETTINGS)
    assert text.splitlines() == [
        "a cat",
        "Negative prompt: blurry",
        "Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 42, "
        'Size: 512x768, Model: "v1-5, pruned", Version: sdcpp 0.1.0',
    ]


def test_round_trip_with_multiline_prompts() -> None:
    text = format_parameters("line one\nline two", "bad\nworse", SETTINGS)
    parsed = read_parameters(text)
    assert parsed["prompt"] == "line one\nline two"
    assert parsed["negative_prompt"] == "bad\nworse"
    assert parsed["settings"]["Model"] == "v1-5, pruned"
    assert (parsed["steps"], parsed["cfg_scale"], parsed["seed"]) == (20, 7.0, 42)
    assert (parsed["width"], parsed["height"]) == (512, 768)
    assert (parsed["sample_method"], parsed["scheduler"]) == ("euler_a", "karras")


def test_reads_from_png_bytes_and_image() -> None:
    data = png_bytes(Image.new("RGB", (8, 8)), format_parameters("p", "", SETTINGS))
    assert read_parameters(data)["seed"] == 42
    assert read_parameters(Image.open(io.BytesIO(data)))["prompt"] == "p"


def test_image_without_parameters_is_an_error() -> None:
    with pytest.raises(ValueError, match="no 'parameters'"):
        read_parameters(png_bytes(Image.new("RGB", (8, 8))))
