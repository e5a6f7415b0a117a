"""OpenAPI 3.1 for the routes we serve, from the route table and the pydantic request models.

The document is built once at start-up from the same objects that handle requests, so it can't
drift from them: paths and methods from the Starlette routes, summaries from the endpoint
docstrings (first line), request bodies from each route's ``routing.Endpoint`` declaration
(the routers' ``BODIES``, derived from it), errors from the envelope model, and the links
(``LINKS``: what a created job, key or user opens next) from the table below. ``/docs`` renders
it as a plain HTML page (no external scripts: works offline).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route, WebSocketRoute

from .. import __version__

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "code": {"type": "string"},
                "status_code": {"type": "integer"},
                "request_id": {"type": "string"},
                "timestamp": {"type": "integer"},
            },
        }
    },
}

# The other dialects answer errors in their own documented shapes (dialects/*/render.py).
OPENAI_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
A1111_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {},
        "body": {},
        "errors": {},
    },
}
# path prefix -> (component name, schema); native paths (/api/...) use ERROR_SCHEMA, and any
# other route (seed 000/001 dialects, health) documents its error without a schema here
DIALECT_ERRORS = {
    "/v1/": ("OpenAIError", OPENAI_ERROR_SCHEMA),
    "/sdapi/v1/": ("A1111Error", A1111_ERROR_SCHEMA),
}
# seed 000 (LightDiffusion) routes under /api/ with that server's error shape, not ours
FOREIGN_API_PATHS = frozenset({"/api/generate", "/api/telemetry"})


def error_response(path: str) -> dict[str, Any]:
    """The ``default`` (error) response of an operation at ``path``, in its dialect's shape."""
    for prefix, (name, _) in DIALECT_ERRORS.items():
        if path.startswith(prefix):
            return _json_ref("Error envelope", name)
    if path.startswith("/api/") and path not in FOREIGN_API_PATHS:
        return _json_ref("Error envelope", "Error")
    return {"description": "Error, in this route's dialect's own shape"}


def _json_ref(description: str, name: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{name}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# how a caller proves who it is (auth/service.py); which operations need it: ``security`` per op
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "JWT or API key"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


class Link(NamedTuple):
    """An OpenAPI link: the operation (by method and path, as served) that a value of an answer
    opens, and where the value goes (runtime expressions, ``$response.body#/...``)."""

    method: str
    path: str
    parameters: dict[str, str]
    request_body: dict[str, str] | None = None


_JOB_ID = {"job_id": "$response.body#/job_id"}
# one job's routes, from every answer that hands out its job_id (the output route needs a file
# name the creating answer does not give yet)
JOB_LINKS = {
    "GetJob": Link("GET", "/api/queue/job/{job_id}", _JOB_ID),
    "JobPreview": Link("GET", "/api/queue/job/{job_id}/preview", _JOB_ID),
    "JobResult": Link("GET", "/api/v1/generate/{job_id}", _JOB_ID),
    "JobEvents": Link("GET", "/api/events/{job_id}", _JOB_ID),
    "CancelJob": Link("POST", "/api/queue/cancel", {}, _JOB_ID),
    "DeleteJob": Link("DELETE", "/api/queue/job/{job_id}", _JOB_ID),
}
_USER = {"username": "$response.body#/user/username"}
# (method, path, status) of an answer -> the links it carries. Paths as the document shows them
# (no converters); a target that is not served is a bug, so build_openapi raises on it.
LINKS: dict[tuple[str, str, str], dict[str, Link]] = {
    **{
        ("POST", f"/api/generate/{kind}", "202"): JOB_LINKS
        for kind in ("text2img", "img2img", "inpainting", "controlnet", "video", "upscale")
    },
    ("POST", "/api/models/convert", "202"): JOB_LINKS,
    ("POST", "/api/v1/generate", "200"): JOB_LINKS,  # waits, then answers the ended job
    ("POST", "/txt2img", "200"): {  # seed 001 queues and answers its job_id
        "GetQueuedJob": Link("GET", "/queue/{job_id}", _JOB_ID),
        **JOB_LINKS,
    },
    ("POST", "/api/keys", "201"): {
        "RevokeKey": Link("DELETE", "/api/keys/{key_id}", {"key_id": "$response.body#/id"})
    },
    ("POST", "/api/users", "201"): {
        "GetUser": Link("GET", "/api/users/{username}", _USER),
        "UpdateUser": Link("PATCH", "/api/users/{username}", _USER),
        "DeleteUser": Link("DELETE", "/api/users/{username}", _USER),
    },
}
_STATUS_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}


def add_links(
    paths: dict[str, dict[str, Any]], table: dict[tuple[str, str, str], dict[str, Link]]
) -> None:
    """Put ``table``'s links on the answers of ``paths`` (by operationId: the ids are unique)."""
    for (method, path, status), links in table.items():
        source = paths.get(path, {}).get(method.lower())
        if source is None:
            raise KeyError(f"OpenAPI links from {method} {path}: no such operation")
        declared: dict[str, Any] = {}
        for name, link in links.items():
            target = paths.get(link.path, {}).get(link.method.lower())
            if target is None:
                raise KeyError(f"OpenAPI link {name}: no operation {link.method} {link.path}")
            declared[name] = {"operationId": target["operationId"]}
            if link.parameters:
                declared[name]["parameters"] = dict(link.parameters)
            if link.request_body is not None:
                declared[name]["requestBody"] = dict(link.request_body)
        answer = source["responses"].setdefault(status, {"description": _STATUS_TEXT[status]})
        answer["links"] = declared


def _operation_id(name: str, method: str, path: str, taken: set[str]) -> str:
    """``{route name}_{method}``, or, where two routes share a handler name (OpenAPI wants ids
    unique), the same with the path's words."""
    op_id = f"{name}_{method.lower()}"
    if op_id in taken:
        words = "_".join(re.findall(r"\w+", path))
        op_id = f"{name}_{words}_{method.lower()}"
    taken.add(op_id)
    return op_id


def build_openapi(
    routes: list[BaseRoute],
    bodies: dict[tuple[str, str], type[BaseModel]],
    access: Callable[[str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``access(route_path, method)`` gives each operation's extra fields (who may call it)."""
    extra = access or (lambda path, method: {})
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    schemas.update(dict(DIALECT_ERRORS.values()))
    for route in routes:
        if isinstance(route, WebSocketRoute):
            paths.setdefault(route.path, {})["get"] = {
                "summary": "WebSocket: job_update, queue_update and system_update messages",
                "responses": {"101": {"description": "Switching Protocols"}},
                **extra(route.path, "GET"),
            }
            continue
        if not isinstance(route, Route):
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        params = re.findall(r"\{(\w+)\}", path)
        doc = (route.endpoint.__doc__ or route.name.replace("_", " ")).strip().splitlines()[0]
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            op: dict[str, Any] = {
                "summary": doc,
                "operationId": _operation_id(route.name, method, path, taken),
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in params
                ],
                "responses": {
                    "200": {"description": "OK"},
                    # 201/202 (queued), 204 (CORS preflight, deletes): success of any shape
                    "2XX": {"description": "Success"},
                    "default": error_response(path),
                },
            }
            op.update(extra(route.path, method))
            model = bodies.get((method, route.path))
            if model is not None:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                        }
                    },
                }
            paths.setdefault(path, {})[method.lower()] = op
    add_links(paths, LINKS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sdcpp",
            "version": __version__,
            "description": "stable-diffusion.cpp REST server (native dialect)",
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def docs_html(spec: dict[str, Any]) -> str:
    rows = []
    for path, methods in sorted(spec["paths"].items()):
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>"
                f"{html.escape(path)}</code></td><td>{html.escape(op['summary'])}</td>"
                f"<td>{html.escape(ref)}</td></tr>"
            )
    return (
        "<!doctype html><meta charset=utf-8><title>sdcpp API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 10px}"
        "tr:nth-child(odd){background:#f4f4f4}</style>"
        f"<h1>sdcpp {html.escape(spec['info']['version'])} API</h1>"
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a> (OpenAPI 3.1)</p>"
        "<table><tr><th>method</th><th>path</th><th>summary</th><th>body</th></tr>"
        + "".join(rows)
        + "</table>"
    )
