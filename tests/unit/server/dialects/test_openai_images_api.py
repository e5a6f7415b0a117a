"""The OpenAI Images routes over the fake engine: every field of generations, edits (multipart,
masks, several images), variations, auth, errors (streaming: test_openai_stream.py)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai_fakes import Recorder, last_inputs, last_params, make_app, png
from PIL import Image
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server.auth import accounts


def test_generation_fields_reach_the_job_and_come_back(
    client: TestClient, engine: Recorder
) -> None:
    body = {
        "prompt": "a fox",
        "n": 2,
        "size": "64x128",
        "model": "tiny",
        "quality": "high",
        "style": "vivid",
        "moderation": "low",
        "background": "transparent",
        "user": "u-42",
        "negative_prompt": "blur",
        "steps": 3,
        "cfg_scale": 2.0,
        "seed": 9,
        "sampler": "euler",
        "output_compression": 50,
    }
    r = client.post("/v1/images/generations", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["data"]) == 2 and out["data"][0]["revised_prompt"] == "a fox"
    assert base64.b64decode(out["data"][0]["b64_json"])[:4] == b"\x89PNG"
    assert out["size"] == "64x128" and out["quality"] == "high" and out["output_format"] == "png"
    assert out["background"] == "opaque"  # the engine paints no alpha: never claim it did
    assert out["safety_identifier"] == "u-42"
    assert out["usage"]["input_tokens_details"] == {"image_tokens": 0, "text_tokens": 0}
    params = last_params(engine)
    assert (params["width"], params["height"], params["batch_count"]) == (64, 128, 2)
    assert (params["steps"], params["cfg_scale"], params["seed"]) == (3, 2.0, 9)
    assert params["negative_prompt"] == "blur" and params["sample_method"] == "euler"
    assert params["output_quality"] == 50
    assert params["preview"] is False  # no stream: no previews to pay for


def test_openai_model_names_mean_the_default(client: TestClient) -> None:
    for name in ("dall-e-2", "dall-e-3", "gpt-image-1"):
        r = client.post("/v1/images/generations", json={"prompt": "x", "model": name})
        assert r.status_code == 200, (name, r.text)
    r = client.post("/v1/images/generations", json={"prompt": "x", "model": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": "x", "quality": "ultra"}, "quality", "invalid_value"),
        ({"prompt": "x", "background": "pink"}, "background", "invalid_value"),
        ({"prompt": "x", "style": "noir"}, "style", "invalid_value"),
        ({"prompt": "x", "moderation": "off"}, "moderation", "invalid_value"),
        ({"prompt": "x", "output_format": "gif"}, "output_format", "invalid_value"),
        ({"prompt": "x", "partial_images": 4, "stream": True}, "partial_images", "invalid_value"),
        ({"prompt": "x", "response_format": "file"}, "response_format", "invalid_value"),
        ({"prompt": "x", "size": "64x100"}, None, "invalid_value"),
        ({"prompt": "x", "svg": {"model": "y"}}, "svg", "unknown_parameter"),
        ({"prompt": ""}, "prompt", "invalid_value"),
    ],
)
def test_generation_refusals_in_openai_shape(
    client: TestClient, body: dict[str, Any], param: str | None, code: str
) -> None:
    r = client.post("/v1/images/generations", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert error["param"] == param
    assert "Traceback" not in error["message"] and "ValidationError" not in error["message"]


def test_bad_json_body(client: TestClient) -> None:
    r = client.post("/v1/images/generations", content=b"{nope", headers={"content-type": "x"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_edit_with_mask_inpaints_openai_transparent_area(
    client: TestClient, engine: Recorder
) -> None:
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))  # left half transparent: edit it
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    files = [("image", ("in.png", png(), "image/png")), ("mask", ("m.png", buf.getvalue()))]
    data = {"prompt": "a hat", "n": "1", "size": "64x64", "strength": "0.5", "steps": "2"}
    r = client.post("/v1/images/edits", files=files, data=data)
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["data"][0]["b64_json"])[:4] == b"\x89PNG"
    _, kind, params = engine.runs[-1]
    assert kind == "inpainting" and params["strength"] == 0.5
    stored = last_inputs(engine)["mask_image_path"]
    assert stored.mode == "L"
    assert stored.getpixel((5, 5)) == 255 and stored.getpixel((60, 5)) == 0  # white = repaint
    assert last_inputs(engine)["init_image_path"].getpixel((5, 5)) == (200, 10, 10)


def test_edit_size_auto_and_resize(client: TestClient, engine: Recorder) -> None:
    files = [("image", ("in.png", png((100, 70)), "image/png"))]
    r = client.post("/v1/images/edits", files=files, data={"prompt": "x"})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == "128x64"  # the image's size on the engine's 64 px grid
    assert last_inputs(engine)["init_image_path"].size == (128, 64)
    r = client.post("/v1/images/edits", files=files, data={"prompt": "x", "size": "64x64"})
    assert last_inputs(engine)["init_image_path"].size == (64, 64)


def test_edit_several_images_first_is_init_for_a_plain_model(
    client: TestClient, engine: Recorder
) -> None:
    files = [
        ("image[]", ("a.png", png(color=(1, 2, 3)), "image/png")),
        ("image[]", ("b.png", png(color=(9, 9, 9)), "image/png")),
    ]
    r = client.post("/v1/images/edits", files=files, data={"prompt": "x"})
    assert r.status_code == 200, r.text
    params = last_params(engine)
    assert engine.runs[-1][1] == "img2img" and "ref_image_paths" not in params
    assert last_inputs(engine)["init_image_path"].getpixel((0, 0)) == (1, 2, 3)


def test_edit_reference_images_for_a_model_that_reads_them(
    client: TestClient, engine: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdcpp.server.dialects.openai import forms

    monkeypatch.setattr(forms, "takes_ref_images", lambda *a: True)
    files = [
        ("image[]", ("a.png", png(color=(1, 2, 3)), "image/png")),
        ("image[]", ("b.png", png((32, 48), color=(9, 9, 9)), "image/png")),
    ]
    r = client.post("/v1/images/edits", files=files, data={"prompt": "x"})
    assert r.status_code == 200, r.text
    params = last_params(engine)
    assert engine.runs[-1][1] == "txt2img" and "init_image_path" not in params
    refs = last_inputs(engine)["ref_image_paths"]
    assert [im.size for im in refs] == [(64, 64), (32, 48)]


@pytest.mark.parametrize(
    ("files", "data", "param", "code"),
    [
        ([("image", ("a.txt", b"not an image", "text/plain"))], {"prompt": "x"}, "image",
         "invalid_image"),
        ([("image", ("a.png", png(), "image/png")), ("mask", ("m.png", png()))],
         {"prompt": "x"}, "mask", "invalid_value"),  # no alpha channel
        ([("image", ("a.png", png(), "image/png")),
          ("mask", ("m.png", png((32, 32), "RGBA", (0, 0, 0, 0))))],
         {"prompt": "x"}, "mask", "invalid_value"),  # another size
        ([("image", ("a.png", png(), "image/png"))], {"prompt": "x", "bogus": "1"}, "bogus",
         "unknown_parameter"),
        ([("image", ("a.png", png(), "image/png"))], {"prompt": "x", "n": "many"}, "n",
         "invalid_value"),
        ([("image", ("a.png", png(), "image/png"))], {}, "prompt", "invalid_value"),
        ([("image", ("a.png", png(), "image/png"))], {"prompt": "x", "loras": "[{"}, "loras",
         "invalid_value"),
    ],
)  # fmt: skip
def test_edit_refusals(
    client: TestClient, engine: Recorder, files: Any, data: Any, param: str, code: str
) -> None:
    r = client.post("/v1/images/edits", files=files, data=data)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert engine.runs == []  # nothing reached the engine


def test_edit_without_image_or_with_another_file(client: TestClient) -> None:
    form = b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--b--\r\n'
    r = client.post(
        "/v1/images/edits",
        content=form,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    r = client.post("/v1/images/edits", data={"prompt": "x"}, files={"other": ("o.txt", b"x")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_parameter"


def test_edit_too_many_files(client: TestClient) -> None:
    files = [("image[]", (f"{i}.png", png(), "image/png")) for i in range(20)]
    r = client.post("/v1/images/edits", data={"prompt": "x"}, files=files)
    assert r.status_code == 400 and "Too many files" in r.json()["error"]["message"]


def test_edit_needs_multipart(client: TestClient) -> None:
    r = client.post("/v1/images/edits", json={"prompt": "x"})
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]


def test_variation_uses_the_embedded_prompt(client: TestClient, engine: Recorder) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a red fox\nSteps: 2, Seed: 1")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, format="PNG", pnginfo=info)
    files = [("image", ("v.png", buf.getvalue(), "image/png"))]
    r = client.post(
        "/v1/images/variations",
        files=files,
        data={"n": "2", "size": "64x64", "response_format": "url"},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2 and r.json()["data"][0]["url"].startswith("http")
    _, kind, params = engine.runs[-1]
    assert kind == "img2img" and params["prompt"] == "a red fox" and params["strength"] == 0.6
    assert client.get(r.json()["data"][1]["url"]).content[:4] == b"\x89PNG"
    r = client.post("/v1/images/variations", files=files, data={"prompt": "x", "style": "y"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "style"


def test_bearer_api_key_when_auth_is_on(tmp_path: Path, engine: Recorder) -> None:
    with make_app(tmp_path, engine, auth=("jwt", "api-key")) as client:
        store = client.app.state.auth.store  # type: ignore[attr-defined]
        store.add_user("alice", role="user")
        key, _ = accounts.create_key(store, "alice", "sdk")
        ok = client.post(
            "/v1/images/generations",
            json={"prompt": "x"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert ok.status_code == 200, ok.text
        job = client.get("/api/queue/status", headers={"X-API-Key": key}).json()
        assert "txt2img" in json.dumps(job)  # queued as alice's own job
        url = client.post(
            "/v1/images/generations",
            json={"prompt": "x", "response_format": "url"},
            headers={"Authorization": f"Bearer {key}"},
        ).json()["data"][0]["url"]
        assert client.get(url).content[:4] == b"\x89PNG"  # a signed URL: no header needed
        for headers in ({"Authorization": "Bearer sk-wrong"}, {}):
            r = client.post("/v1/images/generations", json={"prompt": "x"}, headers=headers)
            assert r.status_code == 401
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
            assert r.json()["error"]["code"] == "invalid_api_key"
        r = client.post("/v1/images/edits", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"


def test_auth_off_accepts_any_key(client: TestClient) -> None:
    for headers in ({"Authorization": "Bearer anything"}, {"Authorization": "junk"}, {}):
        r = client.post("/v1/images/generations", json={"prompt": "x"}, headers=headers)
        assert r.status_code == 200, (headers, r.text)


def test_more_fields_scheduler_loras_url_and_echoes(client: TestClient, engine: Recorder) -> None:
    loras = client.app.state.registry.root / "loras"  # type: ignore[attr-defined]
    loras.mkdir(exist_ok=True)
    _safetensors.save(loras / "ink.safetensors", {"x": np.zeros(2, np.float16)})
    body = {"prompt": "x", "scheduler": "karras", "response_format": "url",
            "safety_identifier": "hashed-1", "loras": [{"name": "ink", "weight": 0.5}]}  # fmt: skip
    r = client.post("/v1/images/generations", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["safety_identifier"] == "hashed-1" and r.json()["quality"] == "auto"
    assert client.get(r.json()["data"][0]["url"]).content[:4] == b"\x89PNG"
    params = last_params(engine)
    assert params["scheduler"] == "karras" and params["loras"][0]["multiplier"] == 0.5
    files = [("image", ("in.png", png(), "image/png"))]
    form = {"prompt": "x", "input_fidelity": "high", "loras": json.dumps([{"name": "ink"}])}
    r = client.post("/v1/images/edits", files=files, data=form)
    assert r.status_code == 200, r.text
    assert last_params(engine)["loras"][0]["path"].endswith("ink.safetensors")
    r = client.post("/v1/images/edits", files=files, data={**form, "input_fidelity": "max"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input_fidelity"
