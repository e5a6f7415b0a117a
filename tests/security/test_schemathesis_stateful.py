"""schemathesis stateful testing (OpenAPI links) against the same loopback server as
test_schemathesis.py: sequences of calls where a later request uses what an earlier answer
returned, so the routes behind an id (a queued job, a user, an API key) see real ids, not only
random strings that 404. Same checks: no 5xx, no answer that breaks the schema, no Python
repr; with auth off and as an admin.

Links: the ones schemathesis infers from the document (users: POST /api/users ->
GET/PATCH/DELETE /api/users/{username}), plus those added here for jobs and keys
(``with_links``), which the served document does not declare yet. Bounded:
``SDCPP_SCHEMATHESIS_EXAMPLES`` scenarios (default 10) of at most 6 steps.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from test_schemathesis import SKIPPED, Served, _serve, no_python_repr

EXAMPLES = int(os.environ.get("SDCPP_SCHEMATHESIS_EXAMPLES", "10"))
JOB_READERS = {
    "GetJob": ("queue_job_get", "/api/queue/job/{job_id}"),
    "CancelJob": ("queue_job_delete", "/api/queue/job/{job_id}"),
    "JobResult": ("generate_result_get", "/api/v1/generate/{job_id}"),
    "JobPreview": ("job_preview_get", "/api/queue/job/{job_id}/preview"),
}


def with_links(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with links from every job-creating POST to the routes of that job, and
    from POST /api/keys to DELETE /api/keys/{key_id}; under 200 and 202 (generation answers
    202), which get a response entry of their own where they have none."""
    doc = copy.deepcopy(doc)
    paths = doc["paths"]
    assert all(p in paths for _, p in JOB_READERS.values()), "a job route is gone"

    def link(path: str, links: dict[str, Any]) -> None:
        responses = paths[path]["post"]["responses"]
        for status in ("200", "202"):
            entry = responses.setdefault(status, {"description": "Accepted"})
            entry.setdefault("links", {}).update(links)

    job_links = {
        name: {"operationId": op, "parameters": {"job_id": "$response.body#/job_id"}}
        for name, (op, _) in JOB_READERS.items()
    }
    creators = [p for p in paths if p.startswith("/api/generate/") and "{" not in p]
    assert len(creators) >= 5, creators
    for path in creators:
        link(path, job_links)
    key = {"operationId": "key_revoke_delete", "parameters": {"key_id": "$response.body#/id"}}
    link("/api/keys", {"RevokeKey": key})
    return doc


@pytest.fixture(scope="module", params=["none", "jwt,api-key"], ids=["auth-off", "auth-on-admin"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    yield from _serve(tuple(request.param.split(",")))


def test_stateful_sequences(served: Served) -> None:
    doc = httpx.get(f"{served.url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(with_links(doc))
    for label in SKIPPED:
        method, path = label.split(" ", 1)
        schema = schema.exclude(method=method, path=path)
    inference = schema.apply_stateful_inference(None)
    # the inferred user links and the ones added above: a machine without links tests nothing
    assert inference.selected >= 3 + 4 * 5, inference

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
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
