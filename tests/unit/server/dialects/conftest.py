"""Default fixtures of the dialect tests (the OpenAI ones use them; a module may define its own):
an app over the recording fake engine of ``openai_fakes``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_fakes import Recorder, make_app
from starlette.testclient import TestClient


@pytest.fixture
def engine() -> Recorder:
    return Recorder()


@pytest.fixture
def client(tmp_path: Path, engine: Recorder) -> Iterator[TestClient]:
    with make_app(tmp_path, engine) as c:
        yield c
