"""One error table: every exception answers the same (status, code) on every route family, and
a job that failed with a code answers the status the table gives that code wherever it shows.

The matrix is generated: each example exception is raised inside each route family's service
call (monkeypatched), and the answer must be the table's. ``EXPECTED`` pins the table itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_app
from fake_engine import FakeEngine
from pydantic import BaseModel, ValidationError
from starlette.testclient import TestClient
from test_detect import CASES, write_safetensors

from sdcpp import errors as lib
from sdcpp.jobspec import LoraNotFound, SpecError
from sdcpp.registry.errors import (
    AmbiguousModelError,
    ModelNotFoundError,
    RegistryError,
    UnsafePathError,
)
from sdcpp.server import Settings, create_app, model_info
from sdcpp.server.errors import ApiError, lookup, status_for_code
from sdcpp.server.store import QueueFull, QuotaExceeded


class _Body(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Body.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


# exception -> (status, code): the table as clients see it
EXPECTED: list[tuple[BaseException, int, str]] = [
    (lib.ModelLoadError("cannot load x"), 422, "MODEL_LOAD_FAILED"),
    (lib.InvalidArgument("steps must be positive"), 400, "INVALID_PARAMETERS"),
    (lib.UnsupportedError("a video model"), 400, "INVALID_PARAMETERS"),
    (SpecError("width 72: use 64 or 128"), 422, "VALIDATION_ERROR"),
    (LoraNotFound("gone", "/m/loras"), 404, "NOT_FOUND"),
    (ModelNotFoundError("model not found: m"), 404, "MODEL_NOT_FOUND"),
    (UnsafePathError("../x leaves the models dir"), 400, "INVALID_PARAMETERS"),
    (AmbiguousModelError("two models named m"), 400, "INVALID_PARAMETERS"),
    (RegistryError("the file changed"), 409, "MODEL_CHANGED"),
    (lib.Cancelled("cancelled"), 409, "JOB_CANCELLED"),
    (lib.GenerationError("sampling failed"), 500, "INTERNAL_ERROR"),
    (QueueFull(5, 5, 7), 503, "QUEUE_FULL"),
    (QuotaExceeded(2, 2, 7), 429, "QUEUE_QUOTA_EXCEEDED"),
    (_validation_error(), 422, "VALIDATION_ERROR"),
    (ApiError(418, "TEAPOT", "short and stout"), 418, "TEAPOT"),
    (RuntimeError("secret internals"), 500, "INTERNAL_ERROR"),
]
IDS = [type(exc).__name__ for exc, _, _ in EXPECTED]


@pytest.mark.parametrize(("exc", "status", "code"), EXPECTED, ids=IDS)
def test_the_table(exc: BaseException, status: int, code: str) -> None:
    got_status, got_code, message = lookup(exc)
    assert (got_status, got_code) == (status, code)
    if isinstance(exc, RuntimeError):
        assert message == "internal server error"  # never the internals
    elif not isinstance(exc, ValidationError | QueueFull | ApiError):
        assert message == str(exc)


def test_a_jobs_code_has_the_status_of_the_exception_that_carries_it() -> None:
    for exc, status, code in EXPECTED:
        if not isinstance(exc, ApiError | RuntimeError | lib.GenerationError):
            assert status_for_code(code) == status, code
    assert status_for_code("TIMEOUT") == 504
    assert status_for_code("SOMETHING_NEW") == status_for_code(None) == 500


# ---- the matrix: exception x route family ------------------------------------------------


engine = test_app.engine  # the fake engine fixture


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    checkpoints = tmp_path / "data" / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    write_safetensors(checkpoints / "sd1.safetensors", CASES["sd1"]())  # an SD 1.x header
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5)
    # an unexpected error is re-raised for the server log after its 500 answer: read the answer
    with TestClient(create_app(settings, engine=engine), raise_server_exceptions=False) as c:
        yield c


def _raiser(exc: BaseException) -> Callable[..., Any]:
    def raise_(*_: Any, **__: Any) -> Any:
        raise exc

    return raise_


# family -> (install the raiser, the request that reaches it)
Family = tuple[Callable[[TestClient, pytest.MonkeyPatch, Callable[..., Any]], None], str, str]
FAMILIES: dict[str, Family] = {
    "generate": (
        lambda c, mp, f: mp.setattr(c.app.state.generation, "submit", f),  # type: ignore[attr-defined]
        "POST",
        "/api/generate/text2img",
    ),
    "generate_sync": (
        lambda c, mp, f: mp.setattr(c.app.state.generation, "submit", f),  # type: ignore[attr-defined]
        "POST",
        "/api/v1/generate",
    ),
    "job_read": (
        lambda c, mp, f: mp.setattr(c.app.state.jobs.store, "get", f),  # type: ignore[attr-defined]
        "GET",
        f"/api/queue/job/{'0' * 32}",
    ),
    "model_read": (
        lambda c, mp, f: mp.setattr(model_info, "describe", f),
        "GET",
        "/api/models/sd1",
    ),
    "model_load": (
        lambda c, mp, f: mp.setattr(c.app.state.jobs, "load_model", f),  # type: ignore[attr-defined]
        "POST",
        "/api/models/sd1/load",
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_exception_answers_the_same_on_every_route_family(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    install, method, url = FAMILIES[family]
    failures = []
    for exc, status, code in EXPECTED:
        with monkeypatch.context() as mp:
            install(client, mp, _raiser(exc))
            r = client.request(method, url, json={"prompt": "a cat"} if method == "POST" else None)
        error = r.json().get("error", {})
        got = (r.status_code, error.get("code"), error.get("status_code"))
        if got != (status, code, status):
            failures.append(f"{type(exc).__name__}: got {got[:2]}, want {(status, code)}")
        if not error.get("message") or "secret" in error["message"]:
            failures.append(f"{type(exc).__name__}: message {error.get('message')!r}")
        if isinstance(exc, QueueFull) and r.headers.get("Retry-After") != "7":
            failures.append(f"{type(exc).__name__}: no Retry-After")
    assert not failures, f"{family} {method} {url}:\n" + "\n".join(failures)


# ---- a job's failure code: the same status wherever it surfaces --------------------------


@pytest.mark.parametrize("code", ["MODEL_LOAD_FAILED", "INVALID_PARAMETERS", "MODEL_NOT_FOUND"])
def test_a_failure_code_answers_one_status_on_load_and_on_a_waiting_generate(
    client: TestClient, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    failed = {"type": "failed", "job_id": "j", "error": f"it failed: {code}", "code": code}
    monkeypatch.setattr(engine, "run", lambda *a, **k: {**failed, "job_id": a[0]})
    monkeypatch.setattr(engine, "load", lambda params: failed)
    want = status_for_code(code)
    assert want != 500
    sync = client.post("/api/v1/generate", json={"prompt": "a cat", "steps": 1})
    load = client.post("/api/models/sd1/load")
    for r in (sync, load):
        assert (r.status_code, r.json()["error"]["code"]) == (want, code), r.text
        assert r.json()["error"]["message"] == f"it failed: {code}"
    # the job's own record says the same
    job_id = client.get("/api/queue/status").json()["queue"]["jobs"][0]["id"]
    deadline = time.monotonic() + 5
    while (job := client.get(f"/api/queue/job/{job_id}").json())["status"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert job["result"]["code"] == code
