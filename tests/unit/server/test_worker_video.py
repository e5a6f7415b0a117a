"""Video jobs in the worker without a video model: params, planning from a models dir (real
detection on header-only files), and the worker's video path with a stand-in engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image
from test_detect import CASES, wan
from test_plan import put, umt5, wan_vae

from sdcpp import InvalidArgument, ModelLoadError, UnsupportedError
from sdcpp.server.worker import process, protocol, runs, video
from sdcpp.stable_diffusion import Progress


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A Wan 2.1 T2V with its VAE and UMT5 (a look-alike VAE sorts first), and an SD 1.x."""
    root = tmp_path / "models"
    put(root, "diffusion_models/wan.safetensors", wan(2, 64, 16))
    put(root, "vae/a_wan22.safetensors", wan_vae(48))  # a Wan 2.2 VAE: wrong for 2.1
    put(root, "vae/wan21.safetensors", wan_vae(16))
    put(root, "text_encoders/umt5.safetensors", umt5())
    put(root, "checkpoints/sd15.safetensors", CASES["sd1"]())
    return root


def test_params_split_into_context_options_and_output(tmp_path: Path) -> None:
    model = str(put(tmp_path, "wan.safetensors", wan(2, 64, 16)))
    first = tmp_path / "first.png"
    Image.new("RGB", (64, 32)).save(first)
    job = video.parse_video_job(
        {
            "model": model,
            "vae": "/v.safetensors",
            "prompt": "waves",
            "width": 64,
            "height": 32,
            "video_frames": 5,
            "sample_method": "euler",
            "init_image_path": str(first),
            "fps": 8,
            "output_format": "gif",
        },
        {"n_threads": 2, "env": {}},
    )
    assert job.context == {"n_threads": 2, "model": model, "vae": "/v.safetensors"}
    assert job.settings() == {"n_threads": 2}
    assert job.options["video_frames"] == 5 and job.options["init_image"].size == (64, 32)
    assert job.output == video.VideoOutput("gif", 8.0, None)
    assert job.plan is None and job.prompt == "waves"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"bogus": 1}, "unknown parameter 'bogus'"),
        ({"batch_count": 2}, "unknown parameter 'batch_count'"),  # an image option
        ({"width": 100}, "multiple of 16"),  # the library's own check, before loading
        ({"video_frames": 0}, "video_frames"),
        ({"output_format": "png"}, "output_format"),
        ({"fps": 0}, "fps"),
        ({"output_quality": 101}, "output_quality"),
        ({"end_image_path": "/nonexistent.png"}, "cannot read image"),
    ],
)
def test_bad_params_are_invalid_arguments(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        video.parse_video_job({"model": "/m.safetensors", "prompt": "x", **extra}, {})


def test_companions_and_recommended_settings_come_from_the_models_dir(models: Path) -> None:
    registries: dict[str, Any] = {}
    params = {
        "model": str(models / "diffusion_models/wan.safetensors"),
        "models_dir": str(models),
        "prompt": "waves",
        "steps": 3,
        "cfg_scale": 4.0,  # set by the request: the plan's 6.0 must not replace it
    }
    job = video.parse_video_job(params, {"n_threads": 2}, registries)
    names = {k: Path(v).name for k, v in job.context.items() if k != "n_threads"}
    assert names == {
        "diffusion_model": "wan.safetensors",  # Wan weights load as a diffusion model
        "vae": "wan21.safetensors",
        "t5xxl": "umt5.safetensors",
    }
    assert job.plan is not None and job.plan.name.startswith("Wan 2.1 T2V")
    assert job.options["cfg_scale"] == 4.0 and job.options["steps"] == 3
    assert (job.options["width"], job.options["height"], job.options["video_frames"]) == (
        832,
        480,
        33,
    )
    assert list(registries) == [str(models)]  # kept for the next job
    own_vae = str(models / "vae/a_wan22.safetensors")
    job = video.parse_video_job({**params, "vae": own_vae}, {}, registries)
    assert job.context["vae"] == own_vae  # an explicit companion wins over the plan


def test_missing_companion_and_image_models_fail_before_loading(models: Path) -> None:
    (models / "text_encoders/umt5.safetensors").unlink()
    wan_params = {
        "model": str(models / "diffusion_models/wan.safetensors"),
        "models_dir": str(models),
        "prompt": "x",
    }
    with pytest.raises(ModelLoadError, match="needs t5xxl: put a UMT5-XXL encoder"):
        video.parse_video_job(wan_params, {}, {})
    sd_params = {**wan_params, "model": str(models / "checkpoints/sd15.safetensors")}
    with pytest.raises(UnsupportedError, match="generates images, not video"):
        video.parse_video_job(sd_params, {}, {})
    outside = {**wan_params, "model": str(models.parent / "elsewhere.safetensors")}
    with pytest.raises(InvalidArgument, match="not inside models_dir"):
        video.parse_video_job(outside, {}, {})


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, data: dict[str, Any]) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


class FakeVideoModel:
    """Stands in for StableDiffusion: records how it was loaded, returns coloured frames."""

    loads: ClassVar[list[dict[str, Any]]] = []
    unsupported = False

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("progress", None)
        FakeVideoModel.loads.append(kwargs)
        self.last_seeds: list[int] = []
        self.last_generation_time = 0.25

    def generate_video(self, prompt: str, *, progress: Any = None, **options: Any) -> list[Any]:
        if FakeVideoModel.unsupported:
            raise UnsupportedError("this model generates images; use generate()")
        frames = int(options.get("video_frames") or 1)
        for step in range(1, 3):
            progress(Progress("sampling", step, 2, 0.1 * step))
        self.last_seeds = [int(options.get("seed", 0))]
        size = (options.get("width") or 32, options.get("height") or 32)
        return [Image.new("RGB", size, (40 * i, 0, 200)) for i in range(frames)]

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> tuple[process.Worker, FakeConn]:
    monkeypatch.setattr(runs, "StableDiffusion", FakeVideoModel)
    monkeypatch.setattr(FakeVideoModel, "loads", [])
    monkeypatch.setattr(FakeVideoModel, "unsupported", False)
    conn = FakeConn()
    return process.Worker(conn, {"n_threads": 2}), conn  # type: ignore[arg-type]


def run(worker: process.Worker, params: dict[str, Any], out: Path) -> dict[str, Any]:
    worker._execute(protocol.Run(job_id="v", kind="video", params=params, output_dir=str(out)))
    return worker._conn.sent[-1]  # type: ignore[attr-defined,no-any-return]


def test_worker_writes_the_animation_then_the_frames(
    worker: tuple[process.Worker, FakeConn], models: Path, tmp_path: Path
) -> None:
    w, conn = worker
    params = {
        "model": str(models / "diffusion_models/wan.safetensors"),
        "models_dir": str(models),
        "prompt": "waves",
        "width": 32,
        "height": 16,
        "video_frames": 3,
        "seed": 9,
        "fps": 10,
    }
    final = run(w, params, tmp_path / "out")
    assert final["type"] == "done", final
    names = ["video.webp", "frame_0000.png", "frame_0001.png", "frame_0002.png"]
    assert final["outputs"] == names
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # no temps
    with Image.open(tmp_path / "out/video.webp") as anim:
        assert anim.format == "WEBP" and anim.n_frames == 3 and anim.size == (32, 16)
        anim.load()  # WebP reports frame timing once a frame is decoded
        assert anim.info["duration"] == 100  # 10 fps
    with Image.open(tmp_path / "out/frame_0002.png") as last:
        assert last.getpixel((0, 0)) == (80, 0, 200)
    result = final["result"]
    assert result["seeds"] == [9] and (result["width"], result["height"]) == (32, 16)
    assert (result["frames"], result["fps"], result["format"]) == (3, 10.0, "webp")
    (loaded,) = FakeVideoModel.loads
    assert Path(loaded["diffusion_model"]).name == "wan.safetensors"
    assert Path(loaded["t5xxl"]).name == "umt5.safetensors" and loaded["n_threads"] == 2
    phases = [(m["phase"], m["step"]) for m in conn.sent if m["type"] == "progress"]
    assert phases[0] == ("loading", 0) and ("sampling", 2) in phases
    assert phases[-1] == ("saving", 4)
    # the same model again: no second load
    again = run(w, {**params, "output_format": "gif"}, tmp_path / "again")
    assert again["outputs"][0] == "video.gif" and len(FakeVideoModel.loads) == 1


def test_worker_fails_an_image_model_as_invalid_parameters(
    worker: tuple[process.Worker, FakeConn], tmp_path: Path
) -> None:
    w, _ = worker
    FakeVideoModel.unsupported = True  # what the library raises for an image-only model
    model = str(put(tmp_path, "m.safetensors", wan(2, 64, 16)))
    final = run(w, {"model": model, "prompt": "x"}, tmp_path / "out")
    assert final["type"] == "failed" and final["code"] == "INVALID_PARAMETERS"
    assert "generates images" in final["error"]
    assert not (tmp_path / "out").exists()
