"""Worker internals without a worker process or a generation: params, outputs, reporting."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sdcpp import InvalidArgument, Lora, ModelLoadError, read_parameters
from sdcpp.server.worker import jobs, process, protocol, reporting
from sdcpp.server.worker.model_cache import ModelCache

PARAMS = "a cat\nSteps: 1, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64"


@pytest.fixture
def model(tmp_path: Path) -> str:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")  # an empty, valid safetensors file
    return str(path)


def picture(tmp_path: Path, name: str = "in.png") -> str:
    path = tmp_path / name
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path)
    return str(path)


def test_params_split_into_context_options_and_output(model: str, tmp_path: Path) -> None:
    job = jobs.parse_image_job(
        {
            "model": model,
            "keep_clip_on_cpu": True,
            "prompt": "a cat",
            "width": 64,
            "steps": 2,
            "loras": [{"path": model, "multiplier": 0.5}],  # any valid file will do
            "init_image_path": picture(tmp_path),
            "output_format": "webp",
            "output_quality": 70,
            "preview": False,
        },
        {"n_threads": 2, "env": {"X": "1"}},
    )
    assert job.context == {"n_threads": 2, "model": model, "keep_clip_on_cpu": True}
    assert job.prompt == "a cat"
    assert job.options["width"] == 64 and job.options["steps"] == 2
    assert job.options["loras"] == [Lora(path=model, multiplier=0.5)]
    assert job.options["init_image"].size == (64, 64)
    assert job.output == jobs.Output("webp", 70)
    assert job.preview is False


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"bogus": 1}, "unknown parameter 'bogus'"),
        ({"model": None}, "need a model"),
        ({"output_format": "gif"}, "output_format"),
        ({"output_quality": 0}, "output_quality"),
        ({"canny": True}, "canny needs a control image"),
        ({"init_image_path": "/nonexistent.png"}, "cannot read image"),
        ({"vae_tiling": {"tile": 3}}, "vae_tiling"),
        ({"loras": ["x"]}, "loras: expected an object"),
        ({"width": 65}, "width must be a multiple of 8"),  # the library's checks, before loading
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_params_are_invalid_arguments(model: str, extra: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        jobs.parse_image_job({"model": model, "prompt": "x", **extra}, {})


def test_cache_key_resolves_paths_and_ignores_unset(model: str, tmp_path: Path) -> None:
    link = tmp_path / "link.safetensors"
    link.symlink_to(model)
    key = jobs.cache_key({"model": model, "n_threads": 2})
    assert jobs.cache_key({"model": str(link), "n_threads": 2, "vae": None}) == key
    assert jobs.cache_key({"model": model, "n_threads": 4}) != key


def test_check_files_refuses_a_missing_companion(model: str) -> None:
    jobs.check_files({"model": model, "n_threads": 2})
    with pytest.raises(ModelLoadError, match="vae file not found"):
        jobs.check_files({"model": model, "vae": "/nonexistent/vae.safetensors"})


def test_upscale_params_accept_the_servers_display_fields(tmp_path: Path) -> None:
    params = {"upscaler": "/u.pth", "image_path": "/i.png", "factor": 2, "prompt": "", "width": 8}
    job = jobs.parse_upscale_job(params, {"n_threads": 3})
    assert (job.model, job.factor, job.options) == ("/u.pth", 2, {"n_threads": 3})
    with pytest.raises(InvalidArgument, match="steps"):
        jobs.parse_upscale_job({**params, "steps": 3}, {})


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_outputs_keep_the_parameters(fmt: str, tmp_path: Path) -> None:
    image = Image.new("RGB", (64, 48), (200, 100, 0))
    image.info["parameters"] = PARAMS
    names = jobs.write_outputs([image, image], tmp_path / "out", jobs.Output(fmt, 80))
    ext = {"png": "png", "jpeg": "jpg", "webp": "webp"}[fmt]
    assert names == [f"image_0.{ext}", f"image_1.{ext}"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names  # no temp files left
    with Image.open(tmp_path / "out" / names[0]) as saved:
        assert saved.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]
        assert saved.size == (64, 48)
        if fmt == "png":
            assert read_parameters(saved)["seed"] == 1
        else:  # A1111's place for them: EXIF UserComment, UTF-16 after a charset prefix
            comment = saved.getexif().get_ifd(0x8769)[0x9286]
            assert comment[8:].decode("utf-16-be") == PARAMS


def test_preview_png_is_small() -> None:
    data = jobs.preview_png(Image.new("RGB", (1024, 512)))
    with Image.open(io.BytesIO(data)) as small:
        assert small.size == (256, 128)


def test_reporter_throttles_within_a_phase_but_keeps_boundaries() -> None:
    sent: list[protocol.Message] = []
    report = reporting.Reporter(sent.append, "j", started=0.0)
    for step in range(0, 501):
        report("loading", step, 500)
    report("sampling", 0, 4)
    steps = [(m.phase, m.step) for m in sent if isinstance(m, protocol.Progress)]
    assert steps[0] == ("loading", 0) and ("loading", 500) in steps
    assert steps[-1] == ("sampling", 0)
    assert len(steps) < 20  # not 502


def test_log_forwarding_is_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(reporting.time, "monotonic", lambda: clock[0])
    sent: list[protocol.Message] = []
    log = logging.getLogger("test.worker.forward")
    log.propagate = False
    handler = reporting.ForwardHandler(sent.append, burst=3, rate=1.0)
    log.addHandler(handler)
    try:
        for i in range(10):
            log.warning("line %d", i)
        log.info("not forwarded")
        clock[0] += 1.0
        log.error("after a pause")
    finally:
        log.removeHandler(handler)
    texts = [m.text for m in sent if isinstance(m, protocol.Log)]
    assert texts[:3] == [f"test.worker.forward: line {i}" for i in range(3)]
    assert texts[3] == "test.worker.forward: after a pause (7 earlier lines suppressed)"
    assert [m.level for m in sent if isinstance(m, protocol.Log)][3] == "error"


class _Model:
    def __init__(self, name: str) -> None:
        self.name, self.closed = name, False

    def close(self) -> None:
        self.closed = True


def test_the_upscaler_cache_keeps_one_and_checks_before_unloading() -> None:
    slot: ModelCache[_Model] = ModelCache(max_models=1)  # as the worker holds upscalers
    first, loaded = slot.get("a", lambda: _Model("a"))
    assert loaded and slot.get("a", lambda: _Model("again")) == (first, False)

    def missing() -> None:
        raise ModelLoadError("model file not found")

    with pytest.raises(ModelLoadError):
        slot.get("b", lambda: _Model("b"), missing)
    assert not first.closed and slot.get("a", lambda: _Model("x"))[0] is first
    second, loaded = slot.get("b", lambda: _Model("b"))
    assert loaded and first.closed and second.name == "b"


def test_test_hooks_are_inert_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDCPP_TEST_HOOKS", raising=False)
    process._test_hooks("__crash__")  # would abort this test process if active
    process._test_hooks("__hang__")
    monkeypatch.setenv("SDCPP_TEST_HOOKS", "0")
    process._test_hooks("__crash__")
