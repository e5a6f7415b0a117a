"""Explicit load and unload on the real worker with the small synthetic model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdcpp.server.worker import EngineClient, Event

SETTINGS = {"n_threads": 2}


def _job(client: EngineClient, out: Path, params: dict[str, Any]) -> tuple[Event, list[str]]:
    events: list[Event] = []
    final = client.run(out.name, "txt2img", params, str(out), events.append)
    return final, [e["phase"] for e in events if e["type"] == "progress"]


def test_load_job_bad_load_unload(tiny_path: Path, tmp_path: Path) -> None:
    model = str(tiny_path)
    job = {"model": model, "prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1}
    job |= {"cfg_scale": 1.0, "seed": 7}
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(tiny_path.read_bytes()[: tiny_path.stat().st_size // 2])
    with EngineClient(SETTINGS) as client:
        assert client.loaded_model is None
        loaded = client.load({"model": model})
        assert loaded["type"] == "loaded", loaded
        assert loaded["model"] == model and loaded["load_time"] > 0
        assert client.loaded_model == model
        assert client.load({"model": model})["load_time"] == 0  # already there

        # the job's context (model + the worker's n_threads) is the one loaded: no load phase
        final, phases = _job(client, tmp_path / "j1", job)
        assert final["type"] == "done", final
        assert "loading" not in phases and final["result"]["load_time"] == 0

        # files that fail their checks never unload the model in use
        for bad in (broken, tmp_path / "missing.safetensors"):
            failed = client.load({"model": str(bad)})
            assert failed["type"] == "failed" and failed["code"] == "MODEL_LOAD_FAILED", failed
            assert client.loaded_model == model
        refused = client.load({"model": model, "prompt": "not a context option"})
        assert refused["type"] == "failed" and refused["code"] == "INVALID_PARAMETERS"
        final, phases = _job(client, tmp_path / "j2", job)
        assert final["type"] == "done" and "loading" not in phases

        assert client.unload()["type"] == "unloaded"
        assert client.loaded_model is None
        final, phases = _job(client, tmp_path / "j3", job)
        assert final["type"] == "done" and phases[0] == "loading"
        assert client.loaded_model == model
