"""The one error table, rendered by every dialect: exception x route family.

The matrix is generated from ``EXCEPTION_TABLE`` itself: every row gets an example exception
(a new row without one fails ``test_every_table_row_has_an_example``), plus the failures no
row names (a waited-on job's own code, a full disk, an unexpected error). Each is raised
inside the one service call every dialect's generation route makes
(``GenerationService.submit_spec``, monkeypatched), and the answer must carry the table's
status in that dialect's own error shape. OpenAI's API has no 422, so there (and only there)
a 422 of the table answers 400 (``openai.render.openai_status``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine
from pydantic import ValidationError
from starlette.testclient import TestClient
from test_detect import CASES, write_safetensors
from test_error_table import _validation_error

from sdcpp.jobspec import LoraNotFound
from sdcpp.server import Settings, create_app, exceptions
from sdcpp.server.dialects.openai.render import openai_status
from sdcpp.server.errors import EXCEPTION_TABLE, lookup, status_for_code
from sdcpp.server.exceptions import JobFailed, ServerError
from sdcpp.server.store import QueueFull


def _example(exc_type: type[BaseException]) -> BaseException:
    """An instance of a table row's exception type, as a route would raise it."""
    if issubclass(exc_type, ValidationError):
        return _validation_error()
    if issubclass(exc_type, QueueFull):
        return exc_type(5, 5, 7)  # retry after 7 s
    if issubclass(exc_type, LoraNotFound):
        return exc_type("gone", "/models/loras")
    return exc_type(f"{exc_type.__name__} happened")


# (exception, the status and code every dialect must answer with)
ROWS: list[tuple[BaseException, int, str]] = [
    (_example(t), status, code) for t, status, code in EXCEPTION_TABLE
] + [
    (JobFailed("MODEL_LOAD_FAILED", "the model would not load"), 422, "MODEL_LOAD_FAILED"),
    (JobFailed("OUT_OF_MEMORY", "out of memory: 2 GiB"), 500, "OUT_OF_MEMORY"),
    (JobFailed("TIMEOUT", "the job took too long"), 504, "TIMEOUT"),
    (OSError(errno.ENOSPC, "No space left on device"), 507, "INSUFFICIENT_STORAGE"),
    (RuntimeError("secret internals"), 500, "INTERNAL_ERROR"),
]
IDS = [f"{type(exc).__name__}-{code}" for exc, _, code in ROWS]


def test_every_table_row_has_an_example() -> None:
    for exc_type, status, code in EXCEPTION_TABLE:
        example = _example(exc_type)
        assert isinstance(example, exc_type)
        assert lookup(example)[:2] == (status, code), exc_type  # no earlier row shadows it


def test_every_server_exception_has_its_own_row() -> None:
    """A new class in exceptions.py without a row would answer 500: each has one, naming it."""
    rows = {t for t, _, _ in EXCEPTION_TABLE}
    classes = [
        c
        for c in vars(exceptions).values()
        if isinstance(c, type) and issubclass(c, ServerError) and c not in (ServerError, JobFailed)
    ]
    assert len(classes) > 20
    assert [c.__name__ for c in classes if c not in rows] == []


def test_a_job_failure_code_has_its_exceptions_status() -> None:
    for exc, status, code in ROWS:
        if isinstance(exc, JobFailed):
            assert status_for_code(code) == status


# ---- the dialects' shapes ----------------------------------------------------------------
def _native(body: Any, status: int, code: str) -> list[str]:
    error = body.get("error", {})
    problems = []
    if (error.get("code"), error.get("status_code")) != (code, status):
        problems.append(f"code {error.get('code')}/{error.get('status_code')}")
    return problems + _message(error.get("message"))


def _openai(body: Any, status: int, code: str) -> list[str]:
    error = body.get("error", {})
    problems = [] if set(error) == {"message", "type", "param", "code"} else [f"keys {error}"]
    kind = "server_error" if status >= 500 else "invalid_request_error"
    if error.get("type") != kind:
        problems.append(f"type {error.get('type')}")
    return problems + _message(error.get("message"))


def _a1111(body: Any, status: int, code: str) -> list[str]:
    # A1111's middleware: {"error": <exception type>, "detail", "body", "errors"}
    if not isinstance(body.get("error"), str) or "detail" not in body or "errors" not in body:
        return [f"shape {body}"]
    detail = body["detail"]
    return [] if isinstance(detail, list) else _message(detail)


def _diffusionapi(body: Any, status: int, code: str) -> list[str]:
    if body.get("status") != "error":
        return [f"shape {body}"]
    return _message(body.get("error"))


def _lightdiffusion(body: Any, status: int, code: str) -> list[str]:
    if set(body) != {"detail"}:
        return [f"shape {body}"]
    detail = body["detail"]
    return [] if isinstance(detail, list) else _message(detail)  # a list: FastAPI's 422


def _message(message: Any) -> list[str]:
    if not isinstance(message, str) or not message:
        return [f"no message: {message!r}"]
    if "secret" in message:
        return [f"leaked: {message!r}"]
    return []


Shape = Callable[[Any, int, str], list[str]]
_LD_BODY = {"prompt": "a cat", "width": 64, "height": 64, "num_images": 1}
# family -> (method, path, a body that reaches submit_spec, the status rule, the shape check)
FAMILIES: dict[str, tuple[str, dict[str, Any], Callable[[int], int], Shape]] = {
    "native": ("/api/generate/text2img", {"prompt": "a cat"}, lambda s: s, _native),
    "native_sync": ("/api/v1/generate", {"prompt": "a cat"}, lambda s: s, _native),
    "openai": ("/v1/images/generations", {"prompt": "a cat"}, openai_status, _openai),
    "a1111": ("/sdapi/v1/txt2img", {"prompt": "a cat", "steps": 1}, lambda s: s, _a1111),
    "diffusionapi": ("/txt2img", {"prompt": "a cat"}, lambda s: s, _diffusionapi),
    "lightdiffusion": ("/api/generate", _LD_BODY, lambda s: s, _lightdiffusion),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp_path: Path = tmp_path_factory.mktemp("matrix")
    checkpoints = tmp_path / "data" / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    write_safetensors(checkpoints / "sd1.safetensors", CASES["sd1"]())  # an SD 1.x header
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5)
    app = create_app(settings, engine=FakeEngine())
    # an unexpected error is re-raised for the server log after its 500 answer: read the answer
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _raiser(exc: BaseException) -> Callable[..., Any]:
    def raise_(*_: Any, **__: Any) -> Any:
        raise exc

    return raise_


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_exception_answers_the_tables_status_in_the_dialects_shape(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    path, body, status_rule, shape = FAMILIES[family]
    generation = client.app.state.generation  # type: ignore[attr-defined]
    failures = []
    for exc, status, code in ROWS:
        with monkeypatch.context() as mp:
            mp.setattr(generation, "submit_spec", _raiser(exc))
            r = client.post(path, json=body)
        want = status_rule(status)
        name = f"{type(exc).__name__}({code})"
        if r.status_code != want:
            failures.append(f"{name}: status {r.status_code}, want {want}: {r.text[:200]}")
            continue
        failures += [f"{name}: {p}" for p in shape(r.json(), status, code)]
        retry = isinstance(exc, QueueFull) or (isinstance(exc, ServerError) and exc.headers)
        if retry and "Retry-After" not in r.headers:
            failures.append(f"{name}: no Retry-After")
    assert not failures, f"{family} POST {path}:\n" + "\n".join(failures)


def test_the_matrix_reaches_the_service_on_every_family(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The patched call is really the one each family makes (not a check before it)."""
    generation = client.app.state.generation  # type: ignore[attr-defined]
    calls: list[str] = []

    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append(family)
        raise QueueFull(1, 1, 3)

    for family, (path, body, _, _) in FAMILIES.items():
        with monkeypatch.context() as mp:
            mp.setattr(generation, "submit_spec", record)
            r = client.post(path, json=body)
        assert calls[-1:] == [family], family
        assert r.status_code == 503 and r.headers["Retry-After"] == "3", family


def test_no_raise_site_writes_a_status_or_code() -> None:
    """Routes and services raise typed exceptions; only the table gives status and code."""
    import sdcpp.server

    root = Path(sdcpp.server.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*.py"))
        if path.name != "errors.py" and "ApiError(" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
