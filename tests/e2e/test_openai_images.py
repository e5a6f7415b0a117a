"""The OpenAI Images dialect driven by the real ``openai`` SDK against a real ``sdcpp serve``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from .test_serve import Server, data_dir  # noqa: F401  (fixture)


@pytest.fixture
def client(data_dir: Path) -> Iterator[tuple[Server, openai.OpenAI]]:  # noqa: F811
    srv = Server(data_dir).start()
    try:
        yield srv, openai.OpenAI(base_url=f"{srv.url}/v1", api_key="any", max_retries=0)
    finally:
        srv.stop()


EXTRAS = {"steps": 2, "seed": 5, "cfg_scale": 1.0, "negative_prompt": "blur"}


def test_generate_n2_b64_then_url(client: tuple[Server, openai.OpenAI]) -> None:
    srv, sdk = client
    result = sdk.images.generate(prompt="a red fox", n=2, size="64x64", extra_body=EXTRAS)
    assert len(result.data) == 2
    png = base64.b64decode(result.data[0].b64_json or "")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.size == "64x64" and result.output_format == "png"
    # an ordinary queued job: listed in the queue
    jobs = srv.get("/api/queue/status").json()
    assert "txt2img" in str(jobs)

    result = sdk.images.generate(
        prompt="a red fox",
        size="64x64",
        response_format="url",
        output_format="webp",
        extra_body=EXTRAS,
    )
    url = result.data[0].url or ""
    assert url.startswith(srv.url)
    body = httpx.get(url, timeout=30).content
    assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"


def test_errors_in_openai_shape(client: tuple[Server, openai.OpenAI]) -> None:
    srv, sdk = client
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.generate(prompt="x", size="64x64", extra_body={"bogus": 1})
    assert err.value.code == "unknown_parameter" and err.value.param == "bogus"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.generate(prompt="x", size="huge")
    assert err.value.param == "size"
    with pytest.raises(openai.NotFoundError):
        sdk.images.generate(prompt="x", model="no-such-model", size="64x64")
    ids = [m.id for m in sdk.models.list()]
    assert ids and sdk.models.retrieve(ids[0]).id == ids[0]
    options = httpx.options(f"{srv.url}/v1/images/generations", timeout=10)
    assert 200 <= options.status_code < 300
