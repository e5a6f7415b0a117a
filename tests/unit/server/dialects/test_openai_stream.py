"""The OpenAI Images routes' ``stream: true`` over the fake engine: partial images from the
step previews, then the completed events; edits' events; a failed job; a client that leaves."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

from asgi_call import call
from openai_fakes import Recorder, last_params, png
from PIL import Image
from starlette.testclient import TestClient


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            events.append((lines.get("event", ""), json.loads(lines["data"])))
    return events


def test_stream_partial_images_then_completed(client: TestClient, engine: Recorder) -> None:
    body = {"prompt": "x", "stream": True, "partial_images": 2, "steps": 4, "n": 2,
            "size": "64x64", "output_format": "webp"}  # fmt: skip
    with client.stream("POST", "/v1/images/generations", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.read().decode())
    kinds = [e for e, _ in events]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"] * 2
    assert [d["partial_image_index"] for _, d in events[:2]] == [0, 1]
    partial = Image.open(io.BytesIO(base64.b64decode(events[0][1]["b64_json"])))
    assert partial.size == (64, 64) and partial.format == "WEBP"  # the output's size and format
    done = events[-1][1]
    assert done["type"] == "image_generation.completed" and done["usage"]["total_tokens"] == 0
    assert done["size"] == "64x64" and done["output_format"] == "webp"
    assert last_params(engine)["preview"] is True


def test_stream_edit_events_and_failure(client: TestClient) -> None:
    files = [("image", ("in.png", png(), "image/png"))]
    data = {"prompt": "x", "stream": "true", "partial_images": "1"}
    with client.stream("POST", "/v1/images/edits", files=files, data=data) as r:
        events = _sse(r.read().decode())
    assert [e for e, _ in events] == ["image_edit.partial_image", "image_edit.completed"]
    with client.stream(
        "POST", "/v1/images/generations", json={"prompt": "__fail__", "stream": True}
    ) as r:
        events = _sse(r.read().decode())
    assert events[-1][0] == "error" and events[-1][1]["error"]["message"] == "boom"


def test_stream_client_leaving_cancels_the_job(client: TestClient) -> None:
    body = {"prompt": "__slow__", "stream": True, "partial_images": 1}
    status, _ = call(client, "POST", "/v1/images/generations", {}, body)
    assert status == 200  # the stream began; then its client went away
    store = client.app.state.jobs.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while (job := store.list(limit=1)[0]).status != "cancelled":
        assert time.monotonic() < deadline, job.status
        time.sleep(0.05)
