"""OpenAI Images request -> job spec: sizes, seed 003's DG_SERVE_* defaults, extras."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sdcpp.server.dialects.openai.render import error_response
from sdcpp.server.dialects.openai.schemas import ImagesGenerateRequest, SizeError


def test_extras_and_size_reach_the_spec() -> None:
    req = ImagesGenerateRequest.model_validate(
        {
            "prompt": "a fox",
            "n": 2,
            "size": "64x96",
            "output_format": "jpeg",
            "output_compression": 70,
            "steps": 3,
            "seed": -1,
            "sampler": "euler",
            "loras": [{"name": "ink", "weight": 0.5}],
        }
    )
    spec = req.to_spec()
    assert (spec.width, spec.height, spec.batch_count, spec.steps) == (64, 96, 2, 3)
    assert spec.seed is None and spec.output_format == "jpeg" and spec.output_quality == 70
    assert spec.loras[0].name == "ink" and spec.loras[0].weight == 0.5
    lowest = ImagesGenerateRequest(prompt="x", output_format="webp", output_compression=0)
    assert lowest.to_spec().output_quality == 1  # not the default: 0 is a value


def test_dg_serve_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DG_SERVE_NUM_INFERENCE_STEPS", "7")
    monkeypatch.setenv("DG_SERVE_GUIDANCE_SCALE", "2.5")
    spec = ImagesGenerateRequest(prompt="x").to_spec()
    assert (spec.steps, spec.cfg_scale, spec.width) == (7, 2.5, None)
    assert ImagesGenerateRequest(prompt="x", steps=2).to_spec().steps == 2


def test_errors_render_openai_shape() -> None:
    with pytest.raises(SizeError) as size:
        ImagesGenerateRequest(prompt="x", size="big").to_spec()
    body = error_response(size.value).body
    assert b'"param":"size"' in body and b"invalid_request_error" in body
    with pytest.raises(ValidationError) as unknown:
        ImagesGenerateRequest.model_validate({"prompt": "x", "bogus": 1})
    answer = error_response(unknown.value)
    assert answer.status_code == 400 and b'"code":"unknown_parameter"' in answer.body


def test_errors_keep_their_headers_and_details() -> None:
    from starlette.exceptions import HTTPException

    from sdcpp.server.errors import shutting_down

    drain = error_response(shutting_down(7))
    assert drain.status_code == 503 and drain.headers["Retry-After"] == "7"
    assert b'"code":"shutting_down"' in drain.body
    gone = error_response(HTTPException(405, "not here"))
    assert gone.status_code == 405 and b'"message":"not here"' in gone.body
