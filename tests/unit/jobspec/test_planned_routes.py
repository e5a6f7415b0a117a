"""/api/generate/text2img plans the context by architecture (the fake engine never loads)."""

from __future__ import annotations

from pathlib import Path

from fake_engine import FakeEngine
from starlette.testclient import TestClient
from test_plan import flux_dir  # noqa: F401 (the fixture: a FLUX.1 dev models dir)

from sdcpp.server import Settings, create_app

FLUX_BODY = {"prompt": "a cat", "model_name": "flux1-dev"}


def test_flux_in_diffusion_models_runs_as_diffusion_model_with_its_companions(
    flux_dir: Path,  # noqa: F811
) -> None:
    settings = Settings(data_dir=flux_dir.parent, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        r = client.post(
            "/api/generate/text2img", json={"prompt": "a cat", "model_name": "flux1-dev"}
        )
        assert r.status_code in (200, 202), r.text
        job = client.app.state.jobs.store.get(r.json()["job_id"])  # type: ignore[attr-defined]
    params = job.params
    assert params["diffusion_model"].endswith("flux1-dev.safetensors")
    assert "model" not in params
    assert Path(params["vae"]).name == "ae.safetensors"
    assert Path(params["t5xxl"]).name == "t5xxl_fp16.safetensors"
    assert Path(params["clip_l"]).name == "clip_l.safetensors"
    assert params.get("guidance") is not None or params.get("cfg_scale") is not None


def test_a_missing_companion_is_refused_naming_it(flux_dir: Path) -> None:  # noqa: F811
    (flux_dir / "text_encoders/t5xxl/t5xxl_fp16.safetensors").unlink()
    settings = Settings(data_dir=flux_dir.parent, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        r = client.post(
            "/api/generate/text2img", json={"prompt": "a cat", "model_name": "flux1-dev"}
        )
    assert r.status_code == 422 and "t5xxl" in r.text, r.text
