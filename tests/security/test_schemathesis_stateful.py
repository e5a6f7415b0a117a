"""schemathesis stateful testing (OpenAPI links) against the same loopback server as
test_schemathesis.py: sequences of calls where a later request uses what an earlier answer
returned, so the routes behind an id (a queued job, a user, an API key) see real ids, not only
random strings that 404. Same checks: no 5xx, no answer that breaks the schema, no Python
repr; with auth off and as an admin.

Links: the ones the served document declares (sdcpp/server/openapi.py ``LINKS``: every
job-creating POST to that job's routes, a created key to its revoke, a created user to its
routes), used as served. Bounded: ``SDCPP_SCHEMATHESIS_EXAMPLES`` scenarios (default 10) of at
most 6 steps.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from leaks import no_python_repr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from test_schemathesis import SKIPPED, Served, _serve

EXAMPLES = int(os.environ.get("SDCPP_SCHEMATHESIS_EXAMPLES", "10"))
JOB = {"GetJob", "JobPreview", "JobResult", "JobEvents", "CancelJob", "DeleteJob"}
# (method, path, status) of a creating answer -> the links it must carry, as served
EXPECTED: dict[tuple[str, str, str], set[str]] = {
    **{
        ("post", f"/api/generate/{kind}", "202"): JOB
        for kind in ("text2img", "img2img", "inpainting", "controlnet", "video", "upscale")
    },
    ("post", "/api/models/convert", "202"): JOB,
    ("post", "/api/keys", "201"): {"RevokeKey"},
    ("post", "/api/users", "201"): {"GetUser", "UpdateUser", "DeleteUser"},
}


@pytest.fixture(scope="module", params=["none", "jwt,api-key"], ids=["auth-off", "auth-on-admin"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    yield from _serve(tuple(request.param.split(",")))


def test_stateful_sequences(served: Served) -> None:
    doc = httpx.get(f"{served.url}/openapi.json", timeout=30).json()
    for (method, path, status), names in EXPECTED.items():
        links = doc["paths"][path][method]["responses"][status].get("links", {})
        assert set(names) <= set(links), (method, path, status, sorted(links))
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()
    for label in SKIPPED:
        method, path = label.split(" ", 1)
        schema = schema.exclude(method=method, path=path)
    inference = schema.apply_stateful_inference(None)
    # the served links (and any schemathesis infers): a machine without links tests nothing
    declared = sum(len(names) for names in EXPECTED.values())
    assert inference.selected >= declared, inference

    created = itertools.count()

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            # Users outlive a scenario: a username drawn again (hypothesis replays) would get
            # a 409 where it got a 201, the user links' bundle would differ between runs of
            # the same draws, and hypothesis calls that flaky. A counter keeps each one new.
            body = case.body
            if case.operation.label == "POST /api/users" and isinstance(body, dict):
                name = body.get("username")
                if isinstance(name, str) and 1 <= len(name) <= 64:
                    body["username"] = f"{name[:50]}.{next(created)}"

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": served.url, "headers": served.headers, "timeout": 10}

        def validate_response(
            self, response: schemathesis.Response, case: schemathesis.Case, **_: Any
        ) -> None:
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance, no_python_repr]
            )

    Machine.run(
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
