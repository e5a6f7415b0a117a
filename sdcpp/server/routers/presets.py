"""Presets, prompt templates and the GGUF quantization choices, as the web UI's form offers
them (and any client may): seed 002's ``presets/``, ``prompts/`` and ``neg_prompts/`` folders
read by ``server.templates``.

- ``GET /api/presets``: the shared presets (the models dir) and the caller's own, with their
  parameters; ``POST /api/presets`` saves one: admins (and everyone with ``--auth none``) into
  the shared folder, users into their own under the data dir; ``DELETE /api/presets/{id}``
  removes one by the id the listing gives: a user their own (``own/...``), admins shared ones.
- ``GET /api/prompts``: the prompt and negative-prompt templates, with their text.
- ``GET /api/models/quantizations``: what ``POST /api/models/convert`` takes as
  ``quantization_type`` (``server.conversion``'s list, so a picker never offers a refused one).
- ``GET /api/models/upload-targets``: per model type, the folder ``POST /api/models/upload``
  writes, the ``subfolder`` values it takes and the file extensions it accepts.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...registry.model_types import TYPE_INFO, ModelType
from .. import conversion, templates
from ..auth.identity import identity_of
from ..auth.permissions import GUEST, USER
from ..exceptions import Forbidden, NotFound
from ..routing import Endpoint
from .common import body

DEFAULT_QUANTIZATION = "q8_0"


class PresetSave(BaseModel):
    """``POST /api/presets``: the current form's parameters under a name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=100, description="the file name, no path")
    parameters: dict[str, str | int | float | bool | None] = Field(
        ..., max_length=200, description="generation parameters, as the generate routes take"
    )
    description: str | None = Field(None, max_length=1000)
    overwrite: bool = Field(False, description="replace a preset of the same name")


def _own_folder(request: Request) -> Path | None:
    owner = identity_of(request.scope).job_owner
    if owner is None:  # anonymous (--auth none, guests): the shared folder is all there is
        return None
    return templates.own_folder(Path(request.app.state.settings.data_dir), owner)


def _models_dir(request: Request) -> Path:
    return Path(request.app.state.registry.root)


async def presets_list(request: Request) -> JSONResponse:
    models, own = _models_dir(request), _own_folder(request)
    presets = await run_in_threadpool(templates.list_presets, models, own)
    return JSONResponse({"presets": presets, "total": len(presets)})


async def presets_save(request: Request) -> JSONResponse:
    req = await body(request, PresetSave)
    identity = identity_of(request.scope)
    shared = identity.is_admin
    folder = _models_dir(request) / "presets" if shared else _own_folder(request)
    if folder is None:  # a signed-in non-admin always has an owner id; guests cannot POST
        folder = _models_dir(request) / "presets"
        shared = True
    params: dict[str, Any] = dict(req.parameters)
    path = await run_in_threadpool(
        functools.partial(
            templates.save_preset,
            folder,
            req.name,
            params,
            description=req.description,
            overwrite=req.overwrite,
        )
    )
    entry = templates.read_preset(path)
    rel = path.relative_to(_models_dir(request) if shared else folder).as_posix()
    scope = "shared" if shared else "own"
    return JSONResponse(
        {"id": rel if shared else f"own/{rel}", "scope": scope, **entry}, status_code=201
    )


def _preset_file(root: Path, relative: str) -> Path:
    """The preset file ``relative`` names inside ``root``, never outside it; 404 otherwise."""
    missing = NotFound(f"no preset {relative!r}")
    if "\x00" in relative:  # no file has that name (and os.path refuses it)
        raise missing
    path = (root / relative).resolve()
    inside = path.is_relative_to(root.resolve())
    if not inside or path.suffix.lower() not in ModelType.PRESETS.extensions or not path.is_file():
        raise missing
    return path


async def presets_delete(request: Request) -> Response:
    preset_id: str = request.path_params["preset_id"]
    scope, _, rest = preset_id.partition("/")
    if scope == "own":
        own = _own_folder(request)
        if own is None:  # anonymous callers have no folder of their own
            raise NotFound(f"no preset {preset_id!r}")
        root, relative = own, rest
    elif scope in ModelType.PRESETS.folders:
        if not identity_of(request.scope).is_admin:
            raise Forbidden("only admins delete shared presets")
        root, relative = _models_dir(request) / scope, rest
    else:
        raise NotFound(f"no preset {preset_id!r}")
    path = await run_in_threadpool(_preset_file, root, relative)
    await run_in_threadpool(path.unlink)
    return Response(status_code=204)


async def prompts_list(request: Request) -> JSONResponse:
    models = _models_dir(request)

    def build() -> dict[str, Any]:
        return {
            "prompts": templates.list_prompts(models, ModelType.PROMPTS),
            "neg_prompts": templates.list_prompts(models, ModelType.NEG_PROMPTS),
        }

    return JSONResponse(await run_in_threadpool(build))


async def quantizations(request: Request) -> JSONResponse:
    return JSONResponse(
        {"quantization_types": conversion.choices(), "default": DEFAULT_QUANTIZATION}
    )


async def upload_targets(request: Request) -> JSONResponse:
    targets = [
        {
            "type": (t.name or t.slug).lower(),
            "folder": info.folders[0],
            "subfolders": list(info.subfolders),
            "extensions": list(info.extensions),
        }
        for t, info in TYPE_INFO.items()
    ]
    return JSONResponse({"targets": targets})


ENDPOINTS = [
    Endpoint("/api/presets", presets_list, access=GUEST),
    Endpoint("/api/presets", presets_save, ("POST",), USER, body=PresetSave, name="presets_save"),
    Endpoint(
        "/api/presets/{preset_id:path}",
        presets_delete,
        ("DELETE",),
        USER,
        name="presets_delete",
    ),
    Endpoint("/api/prompts", prompts_list, access=GUEST),
    Endpoint("/api/models/quantizations", quantizations, access=GUEST),
    Endpoint("/api/models/upload-targets", upload_targets, access=GUEST),
]
