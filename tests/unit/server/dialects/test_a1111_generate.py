"""A1111 txt2img/img2img over the fake engine: every request field, the response shape,
n_iter batches as queued jobs, interrupt/skip, and A1111's error envelope."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import pytest
from a1111_world import (
    API,
    SMALL,
    client_fixture,
    decode,
    engine_fixture,
    in_thread,
    png_b64,
    wait_running,
)
from asgi_call import call
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient

from sdcpp.server.dialects.a1111 import inputs
from sdcpp.server.dialects.a1111.schemas import Img2ImgRequest

FIXTURES = (client_fixture, engine_fixture)  # ``client`` and ``engine`` (a1111_world)


def txt2img(client: TestClient, **fields: Any) -> Any:
    return client.post(f"{API}/txt2img", json={"prompt": "a fox", **SMALL, **fields})


def params(engine: FakeEngine, index: int = -1) -> dict[str, Any]:
    return engine.runs[index][2]


def test_response_shape_images_parameters_info(client: TestClient, engine: FakeEngine) -> None:
    r = txt2img(client, seed=7, subseed=3, negative_prompt="blur", unknown_field=1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"images", "parameters", "info"}
    (image,) = body["images"]
    assert not image.startswith("data:")  # raw base64, as A1111 sends
    assert base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n"
    assert body["parameters"]["prompt"] == "a fox" and body["parameters"]["seed"] == 7
    assert "unknown_field" not in body["parameters"]  # ignored, as A1111 does
    info = json.loads(body["info"])
    assert info["seed"] == info["all_seeds"][0] and info["subseed"] == 3
    assert info["negative_prompt"] == "blur" and len(info["infotexts"]) == 1
    assert "a fox" in info["infotexts"][0] and info["sd_model_name"] == "other"
    assert params(engine)["seed"] == 7 and params(engine)["negative_prompt"] == "blur"


def test_batch_size_and_n_iter_run_as_sequential_jobs(
    client: TestClient, engine: FakeEngine
) -> None:
    r = txt2img(client, seed=100, batch_size=2, n_iter=3)
    assert len(r.json()["images"]) == 6
    runs = [p for _, kind, p in engine.runs if kind == "txt2img"]
    assert [p["seed"] for p in runs] == [100, 102, 104]  # batch i starts at seed + i*batch_size
    assert all(p["batch_count"] == 2 for p in runs)
    queue = client.get("/api/queue/status").json()
    assert "txt2img" in json.dumps(queue)  # ordinary jobs of the one queue


def test_seed_minus_one_is_random_and_reported(client: TestClient, engine: FakeEngine) -> None:
    txt2img(client, seed=-1)
    txt2img(client, seed=-1)
    first, second = params(engine, -2)["seed"], params(engine, -1)["seed"]
    assert 0 <= first < 2**32 and first != second


@pytest.mark.parametrize(
    ("sampler", "scheduler", "want"),
    [
        ("Euler a", "automatic", ("euler_a", None)),
        ("DPM++ 2M", "Karras", ("dpm++2m", "karras")),
        ("DPM++ 2M Karras", None, ("dpm++2m", "karras")),
        ("k_euler", "normal", ("euler", "discrete")),
        ("euler_a", "sgm_uniform", ("euler_a", "sgm_uniform")),
    ],
)
def test_sampler_spellings(
    client: TestClient, engine: FakeEngine, sampler: str, scheduler: str | None, want: Any
) -> None:
    assert txt2img(client, sampler_name=sampler, scheduler=scheduler).status_code == 200
    got = (params(engine).get("sample_method"), params(engine).get("scheduler"))
    assert got[0] == want[0]
    if want[1] is not None:
        assert got[1] == want[1]


def test_unknown_sampler_refused_with_the_list(client: TestClient, engine: FakeEngine) -> None:
    r = txt2img(client, sampler_name="DPM adaptive")
    assert r.status_code == 404 and not engine.runs
    body = r.json()
    assert set(body) == {"error", "detail", "body", "errors"}
    assert "Euler a" in body["detail"] and "DPM++ 2M" in body["detail"]
    r = txt2img(client, scheduler="polyexponential")
    assert r.status_code == 404 and "karras" in r.json()["detail"]


def test_send_images_false_and_save_images(client: TestClient, engine: FakeEngine) -> None:
    r = txt2img(client, send_images=False, save_images=True)
    assert r.json()["images"] == [] and json.loads(r.json()["info"])["all_seeds"]
    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    kept = engine.runs[-1][0]
    assert any(jobs.output_dir(kept).iterdir())
    txt2img(client)  # save_images defaults to false: nothing stays on disk
    assert not jobs.output_dir(engine.runs[-1][0]).exists()


def test_override_settings_apply_to_that_request_only(
    client: TestClient, engine: FakeEngine
) -> None:
    override = {
        "sd_model_checkpoint": "tiny.safetensors",
        "samples_format": "jpg",
        "jpeg_quality": 55,
        "CLIP_stop_at_last_layers": 2,
        "sd_vae": "kl.safetensors",
    }
    assert txt2img(client, override_settings=override).status_code == 200
    p = params(engine)
    assert p["model"].endswith("tiny.safetensors") and p["output_format"] == "jpeg"
    assert p["output_quality"] == 55 and p["clip_skip"] == 2 and p["vae"].endswith("kl.safetensors")
    txt2img(client)
    assert not params(engine)["model"].endswith("tiny.safetensors")  # back to the default
    assert params(engine)["output_format"] == "png"
    r = txt2img(client, override_settings={"sd_model_checkpoint": "nope [0123456789]"})
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_hires_fields_map_onto_the_spec(client: TestClient, engine: FakeEngine) -> None:
    hr = {"enable_hr": True, "hr_scale": 2, "hr_second_pass_steps": 3, "denoising_strength": 0.4}
    assert txt2img(client, **hr, hr_upscaler="Latent (bicubic)").status_code == 200
    hires = params(engine)["hires"]
    assert hires["upscaler"] == "Latent (bicubic)" and hires["scale"] == 2.0
    assert hires["steps"] == 3 and hires["denoising_strength"] == 0.4
    txt2img(client, enable_hr=True, hr_resize_x=128, hr_resize_y=192, hr_upscaler="RealESRGAN_x4")
    hires = params(engine)["hires"]
    assert hires["upscaler"] == "Model" and hires["model_path"].endswith("RealESRGAN_x4.pth")
    assert (hires["target_width"], hires["target_height"], hires["scale"]) == (128, 192, None)
    assert txt2img(client, enable_hr=True, hr_upscaler="SwinIR 4x").status_code == 404
    r = txt2img(client, enable_hr=True, hr_sampler_name="Heun")
    assert r.status_code == 400 and "hr_sampler_name" in r.json()["detail"]
    assert txt2img(client, enable_hr=True, hr_sampler_name="Use same sampler").status_code == 200
    txt2img(client, hr_scale=3)  # enable_hr off: no second pass
    assert "hires" not in params(engine)


def test_lora_tags_in_the_prompt_reach_the_engine(client: TestClient, engine: FakeEngine) -> None:
    txt2img(client, prompt="a fox <lora:ink:0.6>")
    p = params(engine)
    assert "<lora:ink:0.6>" in p["prompt"] and p["lora_dir"].endswith("loras")


def test_img2img_with_mask(client: TestClient, engine: FakeEngine) -> None:
    mask = png_b64((32, 32), 255, "L")  # resized to the init image's 64x64 (resize_mode 0)
    body = {
        "prompt": "a fox",
        "steps": 2,
        "init_images": ["data:image/png;base64," + png_b64((64, 64))],
        "mask": mask,
        "mask_blur": 0,
        "inpainting_mask_invert": 1,
        "inpainting_fill": 1,
        "inpaint_full_res": False,
        "denoising_strength": 0.3,
    }
    r = client.post(f"{API}/img2img", json=body)
    assert r.status_code == 200, r.text
    kind, p = engine.runs[-1][1], params(engine)
    assert kind == "inpainting" and p["strength"] == 0.3
    assert (p["width"], p["height"]) == (64, 64) and p["mask_image_path"].endswith(".png")
    assert r.json()["parameters"]["init_images"] is None  # include_init_images false
    r = client.post(f"{API}/img2img", json={**body, "include_init_images": True})
    assert r.json()["parameters"]["init_images"] == body["init_images"]


def _prepared(**fields: Any) -> tuple[Image.Image, Image.Image | None]:
    fields.setdefault("inpaint_full_res", False)  # the whole picture, as it is
    prepared = inputs.prepare(Img2ImgRequest(**fields), 4096 * 4096)
    mask = prepared.mask
    return decode(base64.b64encode(prepared.inits[0]).decode()), (
        decode(base64.b64encode(mask).decode()) if mask else None
    )


def test_img2img_mask_invert_blur_and_resize_modes() -> None:
    half = Image.new("L", (64, 64), 0)
    half.paste(255, (32, 0, 64, 64))
    buf = io.BytesIO()
    half.save(buf, format="PNG")
    mask = base64.b64encode(buf.getvalue()).decode()
    init, got = _prepared(init_images=[png_b64((128, 64))], mask=mask, mask_blur=4,
                          width=64, height=64, resize_mode=1)  # fmt: skip
    assert init.size == (64, 64) and got is not None
    assert 0 < got.getpixel((32, 32)) < 255  # feathered edge
    _, got = _prepared(init_images=[png_b64()], mask=mask, mask_blur=0, inpainting_mask_invert=1)
    assert got is not None and got.getpixel((10, 10)) == 255 and got.getpixel((50, 10)) == 0
    init, _ = _prepared(init_images=[png_b64((100, 130))])
    assert init.size == (64, 128)  # no size given: the image's, rounded down to 64 px
    init, _ = _prepared(init_images=[png_b64((128, 64))], width=64, height=64, resize_mode=2)
    assert init.size == (64, 64)
    alpha = png_b64((64, 64), (0, 0, 0, 0), "RGBA")  # a transparent mask: alpha is the mask
    _, got = _prepared(init_images=[png_b64()], mask=alpha, mask_blur=0)
    assert got is not None and got.getpixel((5, 5)) == 0


def test_img2img_needs_an_init_image(client: TestClient) -> None:
    r = client.post(f"{API}/img2img", json={"prompt": "x"})
    assert r.status_code == 400 and "init_images" in r.json()["detail"]


def test_interrupt_ends_the_request_as_interrupted(client: TestClient, engine: FakeEngine) -> None:
    thread, out = in_thread(txt2img, client, prompt="__slow__")
    running = wait_running(client)
    assert running["state"]["job"] == "scripts_txt2img" and running["progress"] > 0
    r = client.post(f"{API}/interrupt")
    assert r.status_code == 200 and r.json() == {}
    thread.join(30)
    body = out["response"].json()
    assert body["images"] == [] and json.loads(body["info"])["interrupted"] is True
    job = client.app.state.jobs.store.get(engine.runs[-1][0])  # type: ignore[attr-defined]
    assert job.status == "cancelled"
    assert client.get(f"{API}/progress").json()["state"]["interrupted"] is True


def test_skip_goes_on_with_the_next_batch(client: TestClient, engine: FakeEngine) -> None:
    thread, out = in_thread(txt2img, client, prompt="__slow__", n_iter=2)
    wait_running(client)
    assert client.post(f"{API}/skip").json() is None
    wait_running(client, count=2)
    assert len(engine.runs) == 2  # the second batch started after the skip
    client.post(f"{API}/interrupt")
    thread.join(30)
    assert out["response"].status_code == 200


def test_client_disconnect_cancels_the_job(client: TestClient, engine: FakeEngine) -> None:
    """The client leaves once it has sent its body."""
    status, _ = call(client, "POST", f"{API}/txt2img", {}, {"prompt": "__slow__", **SMALL})
    store = client.app.state.jobs.store  # type: ignore[attr-defined]
    assert status == 499
    deadline = time.monotonic() + 30  # generous: a loaded machine, not a timing claim
    while [j.status for j in store.list(limit=10)] != ["cancelled"]:
        assert time.monotonic() < deadline, "the job was not cancelled"
        time.sleep(0.02)


def test_validation_errors_in_a1111_shape(client: TestClient) -> None:
    r = client.post(f"{API}/txt2img", json={"prompt": "x", "batch_size": 0})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "RequestValidationError" and body["detail"][0]["loc"] == ["batch_size"]
    r = client.post(f"{API}/txt2img", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"] == "HTTPException"
    r = txt2img(client, width=100)  # refused by the spec's size rule, with the nearest sizes
    assert r.status_code in (400, 422) and "64" in r.json()["detail"]


def test_interrupt_keeps_the_batches_finished_before(
    client: TestClient, engine: FakeEngine
) -> None:
    thread, out = in_thread(txt2img, client, steps=60, n_iter=2)
    wait_running(client, count=2)  # the first batch is done, the second sampling
    client.post(f"{API}/interrupt")
    thread.join(30)
    body = out["response"].json()
    assert len(body["images"]) == 1 and decode(body["images"][0]).size == (64, 64)
    assert json.loads(body["info"])["interrupted"] is True


def test_inpaint_only_masked_pastes_back_into_the_original(client: TestClient) -> None:
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (40, 40, 56, 56))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    body = {
        "prompt": "x",
        "steps": 2,
        "init_images": [png_b64((64, 64), (200, 30, 30))],
        "mask": base64.b64encode(buf.getvalue()).decode(),
        "mask_blur": 0,
        "inpaint_full_res": True,  # A1111's (and webuiapi's) default
        "inpaint_full_res_padding": 4,
        "save_images": True,
    }
    r = client.post(f"{API}/img2img", json=body)
    assert r.status_code == 200, r.text
    image = decode(r.json()["images"][0]).convert("RGB")
    assert image.size == (64, 64)
    assert image.getpixel((5, 5)) == (200, 30, 30)  # outside the mask: the original
    assert image.getpixel((48, 48)) == (0, 100, 200)  # inside: the fake engine's result
    assert "x" in image.info.get("parameters", "")  # the parameters text survives


def test_crop_region_keeps_the_aspect_inside_the_image() -> None:
    mask = Image.new("L", (128, 64), 0)
    mask.paste(255, (100, 10, 110, 20))
    box = inputs.crop_region(mask, 2, 64, 64)
    x1, y1, x2, y2 = box
    assert x2 - x1 == y2 - y1 and x1 <= 98 and x2 >= 112 and x2 <= 128 and y1 >= 0
    assert inputs.crop_region(Image.new("L", (64, 64), 0), 4, 64, 64) == (0, 0, 64, 64)


def test_scripts_are_refused_unless_switched_off(client: TestClient, engine: FakeEngine) -> None:
    r = txt2img(client, script_name="x/y/z plot")
    assert r.status_code == 422 and "not found" in r.json()["detail"] and not engine.runs
    r = txt2img(client, alwayson_scripts={"ADetailer": {"args": [True, {"ad_model": "face"}]}})
    assert r.status_code == 422
    off = {"ADetailer": {"args": [False]}, "ControlNet": {"args": []}}
    assert txt2img(client, alwayson_scripts=off, clip_skip=1).status_code == 200
    assert "clip_skip" not in params(engine)  # 1 = no skip: the model's default
    txt2img(client, clip_skip=2)
    assert params(engine)["clip_skip"] == 2
