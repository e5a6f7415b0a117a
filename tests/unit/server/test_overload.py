"""Overload: a user at their queue quota gets 429 + Retry-After; a full queue 503 + Retry-After."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.errors import InvalidArgument
from sdcpp.server import Settings, create_app
from sdcpp.server.dialects.a1111 import render as a1111
from sdcpp.server.dialects.diffusionapi import render as diffusionapi
from sdcpp.server.dialects.lightdiffusion import render as lightdiffusion
from sdcpp.server.dialects.openai.render import error_response as openai_error
from sdcpp.server.store import JobStore, QueueFull, QuotaExceeded


def test_per_user_quota_then_global_limit(tmp_path: Path) -> None:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    settings = Settings(
        data_dir=tmp_path / "data",
        shutdown_grace=0.5,
        auth=("jwt",),
        max_queue=4,
        max_queue_per_user=2,
    )
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        auth = client.app.state.auth  # type: ignore[attr-defined]
        heads = {}
        for name in ("ann", "bob", "cat"):
            token, _ = auth.issue_token(auth.store.add_user(name))
            heads[name] = {"Authorization": f"Bearer {token}"}

        def submit(who: str, prompt: str = "x") -> tuple[int, dict[str, str], dict]:  # type: ignore[type-arg]
            r = client.post(
                "/api/generate/text2img",
                json={"prompt": prompt, "steps": 1},
                headers=heads[who],
            )
            return r.status_code, dict(r.headers), r.json()

        assert submit("cat", "__slow__")[0] == 202  # runs until cancelled: the rest queue
        deadline = time.monotonic() + 10
        while client.app.state.jobs.current is None:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert [submit("ann")[0] for _ in range(2)] == [202, 202]
        status, headers, body = submit("ann")
        assert status == 429 and headers["retry-after"].isdigit()
        assert body["error"]["code"] == "QUEUE_QUOTA_EXCEEDED"
        assert "2 jobs queued" in body["error"]["message"]
        assert [submit("bob")[0] for _ in range(2)] == [202, 202]  # others are not held back
        status, headers, body = submit("cat")  # 4 queued: the whole queue is full
        assert status == 503 and int(headers["retry-after"]) >= 1
        assert body["error"]["code"] == "QUEUE_FULL"
        client.post("/api/queue/clear", headers=heads["ann"])
        assert submit("ann")[0] == 202  # the quota counts queued jobs only
        client.app.state.jobs.interrupt()  # type: ignore[attr-defined]


def test_quota_is_atomic_in_the_store(tmp_path: Path) -> None:
    with JobStore(tmp_path / "db.sqlite") as store:
        store.create("txt2img", {}, owner="u1", max_per_owner=1)
        with pytest.raises(QuotaExceeded) as info:
            store.create("txt2img", {}, owner="u1", max_per_owner=1)
        assert info.value.queued == 1 and info.value.retry_after >= 1
        store.create("txt2img", {}, owner="u2", max_per_owner=1)
        store.create("txt2img", {}, owner=None, max_per_owner=1)  # anonymous: no owner, no quota
        store.create("txt2img", {}, owner=None, max_per_owner=1)
        assert store.count(status="queued") == 4


def test_openai_dialect_answers_429_with_retry_after() -> None:
    response = openai_error(QuotaExceeded(3, 3, 17))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "17"
    assert b'"code":"rate_limit_exceeded"' in response.body


@pytest.mark.parametrize(
    "render",
    [openai_error, a1111.error_response, diffusionapi.error, lightdiffusion.error],
    ids=["openai", "a1111", "diffusionapi", "lightdiffusion"],
)
def test_every_dialect_answers_quota_429_and_full_queue_503(render: Any) -> None:
    quota, full = render(QuotaExceeded(3, 3, 17)), render(QueueFull(100, 100, 9))
    assert (quota.status_code, quota.headers["retry-after"]) == (429, "17")
    assert (full.status_code, full.headers["retry-after"]) == (503, "9")
    assert b"internal" not in full.body.lower()


def test_settings_refuse_nonsense_limits() -> None:
    with pytest.raises(InvalidArgument, match="max_queue_per_user"):
        Settings(max_queue_per_user=-1).validate()
    with pytest.raises(InvalidArgument, match="header_timeout"):
        Settings(header_timeout=0).validate()
    with pytest.raises(InvalidArgument, match="max_connections"):
        Settings(max_connections=0).validate()
