"""The served /openapi.json: a valid OpenAPI 3.1 document whose operationIds are unique and
whose links (openapi.LINKS) lead every created job, key and user to the routes that take it,
each link naming a served operation and filling exactly its path parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp.server import Settings, create_app
from sdcpp.server.openapi import JOB_LINKS, Link, add_links
from sdcpp.server.routers.generation import GENERATE_KINDS


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c.get("/openapi.json").json()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            yield method.upper(), path, op


def _links(spec: dict[str, Any], method: str, path: str, status: str) -> dict[str, Any]:
    links: dict[str, Any] = spec["paths"][path][method.lower()]["responses"][status]["links"]
    return links


def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    schemathesis.openapi.from_dict(spec).validate()  # the 3.1 meta-schema
    ids = [op["operationId"] for _, _, op in _operations(spec) if "operationId" in op]
    assert len(ids) > 80 and len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_every_link_names_a_served_operation_and_fills_its_path(spec: dict[str, Any]) -> None:
    by_id = {
        op["operationId"]: (path, op) for _, path, op in _operations(spec) if "operationId" in op
    }
    found = 0
    for _, _, op in _operations(spec):
        for answer in op["responses"].values():
            for name, link in answer.get("links", {}).items():
                path, target = by_id[link["operationId"]]
                assert set(link.get("parameters", {})) == set(re.findall(r"\{(\w+)\}", path)), name
                for expression in link.get("parameters", {}).values():
                    assert expression.startswith("$response.body#/"), (name, expression)
                if "requestBody" in link:
                    assert "requestBody" in target, name
                found += 1
    assert found >= 8 * len(JOB_LINKS) + 4


def test_every_job_creating_post_links_to_that_job(spec: dict[str, Any]) -> None:
    creators = [f"/api/generate/{kind}" for kind in (*GENERATE_KINDS, "upscale")]
    for path in [*creators, "/api/models/convert"]:
        links = _links(spec, "POST", path, "202")
        assert set(links) == set(JOB_LINKS), path
        assert links["GetJob"] == {
            "operationId": "queue_job_get",
            "parameters": {"job_id": "$response.body#/job_id"},
        }
        assert links["CancelJob"]["requestBody"] == {"job_id": "$response.body#/job_id"}
    assert set(JOB_LINKS) <= set(_links(spec, "POST", "/api/v1/generate", "200"))
    assert "GetQueuedJob" in _links(spec, "POST", "/txt2img", "200")


def test_created_keys_and_users_link_to_their_routes(spec: dict[str, Any]) -> None:
    revoke = _links(spec, "POST", "/api/keys", "201")["RevokeKey"]
    assert revoke == {
        "operationId": "key_revoke_delete",
        "parameters": {"key_id": "$response.body#/id"},
    }
    users = _links(spec, "POST", "/api/users", "201")
    assert {link["operationId"] for link in users.values()} == {
        "user_detail_get",
        "user_detail_patch",
        "user_detail_delete",
    }
    assert users["GetUser"]["parameters"] == {"username": "$response.body#/user/username"}


def test_a_link_to_a_route_that_is_not_served_is_refused() -> None:
    paths: dict[str, Any] = {"/a": {"post": {"operationId": "a_post", "responses": {}}}}
    with pytest.raises(KeyError, match="no operation GET /gone"):
        add_links(paths, {("POST", "/a", "201"): {"X": Link("GET", "/gone", {})}})
    with pytest.raises(KeyError, match="from POST /missing"):
        add_links(paths, {("POST", "/missing", "201"): {}})
    add_links(paths, {("POST", "/a", "201"): {"Self": Link("POST", "/a", {})}})
    assert paths["/a"]["post"]["responses"]["201"] == {
        "description": "Created",
        "links": {"Self": {"operationId": "a_post"}},
    }
