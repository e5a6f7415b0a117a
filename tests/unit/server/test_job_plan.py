"""The job's JSON shows the architecture plan it ran with, and the worker gets that plan's
context: a FLUX.1 [dev] in diffusion_models/ and an SD3.5 Large checkpoint, each with its
companions in the models dir (synthetic headers, fake engine), through /api/generate/text2img.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient
from test_detect import CASES, Table, flux, kl_vae, mmdit, t5, write_safetensors
from test_detect import DM as PREFIX

from sdcpp.errors import ModelLoadError
from sdcpp.jobspec import ImageSpec
from sdcpp.plan import plan_from_registry, raise_if_missing
from sdcpp.registry import ModelRegistry
from sdcpp.registry.errors import ModelNotFoundError, UnsafePathError
from sdcpp.server import Settings, create_app
from sdcpp.server.worker import jobs as worker_jobs


def put(root: Path, relpath: str, table: Table) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, table)


def encoders(root: Path, *names: str) -> None:
    for name in names:
        put(root, f"text_encoders/{name}.safetensors", t5() if name == "t5xxl" else CASES[name]())


def flux_dir(root: Path) -> None:
    put(root, "diffusion_models/flux1-dev.safetensors", flux())
    put(root, "vae/ae.safetensors", kl_vae("", 16))
    encoders(root, "clip_l", "t5xxl")


def sd35_dir(root: Path) -> None:
    # as released: the MMDiT and its VAE in one checkpoint, the three encoders beside it
    table = mmdit(38, p=PREFIX) | kl_vae("first_stage_model.", 16)
    put(root, "checkpoints/sd3.5_large.safetensors", table)
    encoders(root, "clip_l", "clip_g", "t5xxl")


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


def serve(tmp_path: Path, engine: FakeEngine, build: Any) -> Iterator[TestClient]:
    build(tmp_path / "data" / "models")
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c


def run_job(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/generate/text2img", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = client.get(f"/api/queue/job/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.02)
    raise AssertionError("the job did not finish")


def worker_context(engine: FakeEngine) -> tuple[dict[str, Any], dict[str, Any]]:
    """(StableDiffusion keywords, generate options) the worker builds from the job's params."""
    (_, _, params) = engine.runs[-1]
    assert "plan" not in params  # the plan is shown, never sent to the worker
    parsed = worker_jobs.parse_image_job(params, {})
    return parsed.context, parsed.options


def relative(context: dict[str, Any], root: Path) -> dict[str, str]:
    return {
        key: str(Path(value).relative_to(root))
        for key, value in context.items()
        if key in worker_jobs.FILE_KEYS and isinstance(value, str) and value.startswith("/")
    }


def test_flux_goes_as_diffusion_model_with_its_companions(
    tmp_path: Path, engine: FakeEngine
) -> None:
    for client in serve(tmp_path, engine, flux_dir):
        job = run_job(client, {"prompt": "a cat", "model": "flux1-dev", "steps": 2})
    assert job["status"] == "completed", job
    plan = job["plan"]
    assert (plan["architecture"], plan["load_as"]) == ("FLUX.1 [dev]", "diffusion_model")
    assert plan["model"] == "flux1-dev.safetensors"
    assert plan["files"] == {
        "vae": "ae.safetensors",
        "clip_l": "clip_l.safetensors",
        "t5xxl": "t5xxl.safetensors",
    }
    assert plan["defaults"]["cfg_scale"] == 1.0  # the request left it out
    assert "steps" not in plan["defaults"]  # the request set it
    context, options = worker_context(engine)
    root = (tmp_path / "data" / "models").resolve()
    assert relative(context, root) == {
        "diffusion_model": "diffusion_models/flux1-dev.safetensors",
        "vae": "vae/ae.safetensors",
        "clip_l": "text_encoders/clip_l.safetensors",
        "t5xxl": "text_encoders/t5xxl.safetensors",
    }
    assert "model" not in context
    assert options["cfg_scale"] == 1.0 and options["steps"] == 2


def test_sd35_large_checkpoint_goes_as_model_with_three_encoders(
    tmp_path: Path, engine: FakeEngine
) -> None:
    for client in serve(tmp_path, engine, sd35_dir):
        job = run_job(client, {"prompt": "a cat", "steps": 2})  # the only model: the default
    assert job["status"] == "completed", job
    plan = job["plan"]
    assert (plan["architecture"], plan["load_as"]) == ("Stable Diffusion 3.5 Large", "model")
    assert plan["model"] == "sd3.5_large.safetensors"
    assert plan["files"] == {
        "clip_l": "clip_l.safetensors",
        "clip_g": "clip_g.safetensors",
        "t5xxl": "t5xxl.safetensors",
    }  # the VAE is inside the checkpoint
    assert plan["defaults"] == {"cfg_scale": 4.5, "width": 1024, "height": 1024}
    assert any("checkpoint" in note for note in plan["notes"])
    context, options = worker_context(engine)
    root = (tmp_path / "data" / "models").resolve()
    assert relative(context, root) == {
        "model": "checkpoints/sd3.5_large.safetensors",
        "clip_l": "text_encoders/clip_l.safetensors",
        "clip_g": "text_encoders/clip_g.safetensors",
        "t5xxl": "text_encoders/t5xxl.safetensors",
    }
    assert (options["cfg_scale"], options["width"], options["height"]) == (4.5, 1024, 1024)


def flux_without_t5(root: Path) -> None:
    put(root, "diffusion_models/flux1-dev.safetensors", flux())
    put(root, "vae/ae.safetensors", kl_vae("", 16))
    encoders(root, "clip_l")


def test_a_missing_companion_names_the_rest_field(tmp_path: Path, engine: FakeEngine) -> None:
    for client in serve(tmp_path, engine, flux_without_t5):
        r = client.post("/api/generate/text2img", json={"prompt": "a cat", "model": "flux1-dev"})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "needs t5xxl" in message and "models/text_encoders/" in message
    assert "or set t5xxl_path" in message  # the field this request can set
    assert "t5xxl=" not in message  # not the library keyword
    assert engine.runs == []  # refused before queuing


def test_the_library_message_keeps_the_keyword(tmp_path: Path) -> None:
    flux_without_t5(tmp_path)
    plan = plan_from_registry(ModelRegistry(tmp_path), "flux1-dev")
    with pytest.raises(ModelLoadError, match=r"or pass t5xxl=") as caught:
        raise_if_missing(plan)
    with pytest.raises(ModelLoadError) as unnamed:
        raise_if_missing(plan, {})  # a caller with no field for it: only where to put it
    assert "models/text_encoders/" in str(unnamed.value) and " or " not in str(unnamed.value)
    assert str(caught.value) != str(unnamed.value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("/etc/hostname", UnsafePathError),  # absolute: outside the models dir
        ("../outside.bin", UnsafePathError),
        ("photomaker/absent.bin", ModelNotFoundError),
    ],
)
def test_a_photo_maker_id_embed_outside_the_models_dir_is_refused(
    tmp_path: Path, engine: FakeEngine, value: str, error: type[Exception]
) -> None:
    (tmp_path / "data" / "outside.bin").parent.mkdir(parents=True)
    (tmp_path / "data" / "outside.bin").write_bytes(b"x")  # exists, one level above models/
    for client in serve(tmp_path, engine, flux_dir):
        generation = client.app.state.generation  # type: ignore[attr-defined]
        spec = ImageSpec(prompt="a face", model="flux1-dev", photo_maker_id_embed=value)
        with pytest.raises(error):
            generation.submit_spec(spec)
    assert engine.runs == []


def test_a_photo_maker_id_embed_inside_is_resolved_to_its_file(
    tmp_path: Path, engine: FakeEngine
) -> None:
    def build(root: Path) -> None:
        flux_dir(root)
        (root / "photomaker").mkdir()
        (root / "photomaker" / "id_embeds.bin").write_bytes(b"x")

    for client in serve(tmp_path, engine, build):
        generation = client.app.state.generation  # type: ignore[attr-defined]
        spec = ImageSpec(
            prompt="a face", model="flux1-dev", photo_maker_id_embed="photomaker/id_embeds.bin"
        )
        job = generation.submit_spec(spec)
    root = (tmp_path / "data" / "models").resolve()
    assert job.params["photo_maker_id_embed"] == str(root / "photomaker/id_embeds.bin")
