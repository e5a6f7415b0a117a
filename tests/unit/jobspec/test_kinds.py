"""Specs of the other job kinds (video, upscale, convert, load): one codec, strict decode,
validate() against the one limits table."""

from __future__ import annotations

from typing import Any

import pytest

from sdcpp.jobspec import (
    KINDS,
    LIMITS,
    ConvertSpec,
    ImageSpec,
    LoadSpec,
    SpecError,
    UpscaleSpec,
    VideoSpec,
    decode,
    encode,
)

SPECS = [
    ImageSpec(prompt="a cat", n_threads=4, keep_vae_on_cpu=True),
    VideoSpec(prompt="waves", width=480, video_frames=33, init_image=b"\x89PNG", fps=24.0),
    UpscaleSpec(image="/data/inputs/a.png", factor=4, output_format="webp"),
    ConvertSpec(model="sd15", quantization_type="q8_0", overwrite=True),
    LoadSpec(model="flux", diffusion_flash_attn=True),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.KIND)
def test_every_kind_round_trips_through_the_one_codec(spec: Any) -> None:
    data = encode(spec)
    assert data["v"] == 1 and data["kind"] == spec.KIND
    assert decode(data) == spec
    spec.validate()


def test_the_codec_knows_every_kind() -> None:
    assert set(KINDS) == {"image", "video", "upscale", "convert", "load"}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"v": 1, "kind": "video", "prompt": "x", "frames": 9}, "frames"),
        ({"v": 1, "kind": "video", "prompt": "x", "width": "480"}, "width"),
        ({"v": 1, "kind": "video", "prompt": "x", "fps": True}, "fps"),
        ({"v": 1, "kind": "video", "prompt": "x", "output_format": "mp4"}, "output_format"),
        ({"v": 2, "kind": "upscale", "image": "/a.png"}, "version"),
        ({"v": 1, "kind": "upscale", "image": 3}, "image"),
        ({"v": 1, "kind": "upscale"}, "image"),  # required field missing
        ({"v": 1, "kind": "convert", "model": "m", "quantization_type": 8}, "quantization_type"),
        ({"v": 1, "kind": "load", "model": "m", "n_threads": 1.5}, "n_threads"),
        ({"v": 1, "kind": "image", "prompt": "x", "loras": [{"name": 1}]}, "loras"),
        ({"v": 1, "kind": "render", "prompt": "x"}, "kind"),
    ],
)
def test_decode_refuses_unknown_fields_versions_and_wrong_types(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        decode(data)


@pytest.mark.parametrize(
    "spec, message",
    [
        (VideoSpec(prompt="x", width=24), "multiple of 16"),
        (VideoSpec(prompt="x", video_frames=2000), "video_frames"),
        (VideoSpec(prompt="x", fps=500.0), "fps"),
        (VideoSpec(prompt="x", end_image="/b.png"), "needs an init_image"),
        (VideoSpec(prompt=""), "prompt"),
        (UpscaleSpec(image="/a.png", factor=9), "factor"),
        (UpscaleSpec(image="/a.png", output_quality=0), "output_quality"),
        (ConvertSpec(model=" ", quantization_type="q8_0"), "model"),
        (LoadSpec(model="m", n_threads=0), "n_threads"),
    ],
)
def test_validate_reads_the_one_limits_table(spec: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec.validate()


def test_video_limits_are_rows_of_the_table() -> None:
    assert LIMITS["video_side"].multiple_of == 16
    VideoSpec(prompt="x", width=LIMITS["video_side"].high, moe_boundary=1.0).validate()
