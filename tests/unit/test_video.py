from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from sdcpp import InvalidArgument
from sdcpp.video import VideoRequest, build_vid_params, encode_animation, save_animation


def frames(n: int = 3) -> list[Image.Image]:
    return [Image.new("RGB", (32, 16), (i * 60, 0, 0)) for i in range(n)]


def test_video_request_maps_to_native_fields() -> None:
    req = VideoRequest(
        prompt="waves",
        width=480,
        height=320,
        video_frames=33,
        steps=4,
        high_noise_steps=2,
        cfg_scale=5.0,
        flow_shift=3.0,
    )
    p = build_vid_params(req, seed=5, loras=[])
    assert (p.width, p.height, p.video_frames, p.seed) == (480, 320, 33, 5)
    assert (p.sample_params.sample_steps, p.high_noise_sample_params.sample_steps) == (4, 2)
    assert p.sample_params.flow_shift == 3.0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"width": 488}, "multiple of 16"),
        ({"video_frames": 0}, "video_frames"),
        ({"end_image": Image.new("RGB", (512, 512))}, "needs an init_image"),
        ({"init_image": Image.new("RGB", (64, 64))}, "must be 512x512"),
        ({"moe_boundary": 2.0}, "moe_boundary"),
    ],
)
def test_bad_video_requests(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build_vid_params(VideoRequest(prompt="x", **kw), seed=1, loras=[])  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["webp", "gif"])
def test_animation_round_trip(fmt: str) -> None:
    data = encode_animation(frames(4), fmt, fps=8)
    image = Image.open(io.BytesIO(data))
    assert image.format == fmt.upper()
    assert getattr(image, "n_frames", 1) == 4
    image.seek(1)
    image.load()
    assert abs(image.info["duration"] - 125) <= 10  # GIF stores centiseconds


def test_save_animation_picks_format_from_suffix(tmp_path: Path) -> None:
    out = save_animation(frames(), tmp_path / "clip.gif")
    with Image.open(out) as image:
        assert image.format == "GIF"
    with pytest.raises(InvalidArgument, match="unsupported"):
        save_animation(frames(), tmp_path / "clip.mp4")
    with pytest.raises(InvalidArgument, match="no frames"):
        encode_animation([], "webp")
