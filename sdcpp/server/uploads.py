"""``POST /api/models/upload``: a model file streamed into its typed folder, checked before it
appears.

The request body is the file itself (any content type), named by the query: ``type`` (a model
type: checkpoint, lora, vae, ...), ``filename`` (a plain name with an extension that type
accepts), optional ``subfolder`` (text_encoders: clip_l, clip_g, t5xxl, llm) and
``overwrite``. The bytes go to a hidden temp file in the target folder (the registry scan skips
dot names), never more than ``max_upload_mb``; then the header is checked and the architecture
detected (text types: UTF-8), and only a file that passes is renamed into place (a hard link
when it must not replace anything, so a file that appeared meanwhile is never clobbered) and
registered. Any failure or a client that goes away leaves nothing behind.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request

from .._files import check_model_file
from ..errors import InvalidArgument, ModelLoadError
from ..registry import ModelRegistry, ModelType
from ..registry.model_types import TEXT_TYPES, TYPE_INFO
from ..registry.paths import is_inside
from . import model_info
from .conversion import check_free_space
from .exceptions import BadRequest, ModelExists, ModelInvalid, PayloadTooLarge

UPLOAD_PREFIX = ".upload-"
WRITE_BYTES = 4 * 2**20  # body chunks are gathered to this size before each (threaded) write


@dataclass(frozen=True, slots=True)
class UploadTarget:
    type: ModelType
    final: Path  # where the file will appear
    rel: str  # relative to the models root
    overwrite: bool

    def temp_path(self) -> Path:
        # the real suffix stays last: the header check tells safetensors by its extension
        return self.final.parent / f"{UPLOAD_PREFIX}{uuid.uuid4().hex}-{self.final.name}"


def plan_upload(
    registry: ModelRegistry,
    type_name: str | None,
    filename: str | None,
    *,
    subfolder: str | None = None,
    overwrite: bool = False,
    is_admin: bool = True,
) -> UploadTarget:
    """Where an upload goes; InvalidArgument (400) or ModelExists (409) when it cannot."""
    if not type_name or not filename:
        raise InvalidArgument("upload needs the query parameters type and filename")
    try:
        mtype = ModelType.parse(type_name)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if mtype not in TYPE_INFO:
        raise InvalidArgument(f"type must be one model type, not {type_name!r}")
    info = TYPE_INFO[mtype]
    bad = ("/", "\\", "\x00")
    if any(c in filename for c in bad) or filename.startswith(".") or filename in ("", ".."):
        raise InvalidArgument(f"filename must be a plain, visible file name: {filename!r}")
    if os.path.splitext(filename)[1].lower() not in info.extensions:
        raise InvalidArgument(
            f"a {mtype.slug} file ends in one of {', '.join(info.extensions)}: {filename!r}"
        )
    folder = info.folders[0]
    if subfolder:
        if subfolder not in info.subfolders:
            choices = ", ".join(info.subfolders) or "none"
            raise InvalidArgument(f"subfolder of {mtype.slug} must be one of: {choices}")
        folder = f"{folder}/{subfolder}"
    root_real = os.path.realpath(registry.root)
    parent = Path(root_real, *folder.split("/"))
    parent.mkdir(parents=True, exist_ok=True)
    if not is_inside(root_real, str(parent)):
        raise InvalidArgument(f"{folder} resolves outside the models directory")
    final = parent / filename
    rel = f"{folder}/{filename}"
    if os.path.lexists(final):
        if not overwrite:
            raise ModelExists(f"{rel} exists; pass overwrite=true to replace")
        if not is_admin:
            raise ModelExists(f"{rel} exists and only an admin may replace it")
        if os.path.isdir(final) or not is_inside(root_real, str(final)):
            raise InvalidArgument(f"{rel} is not a file inside the models directory")
    return UploadTarget(mtype, final, rel, overwrite)


def check_length(request: Request, target: UploadTarget, limit: int) -> None:
    """413 or 507 from Content-Length before anything is read (a chunked body is counted)."""
    raw = request.headers.get("content-length")
    if raw is None or not raw.isdigit():
        return
    if int(raw) > limit:
        raise PayloadTooLarge(f"the file is larger than {limit} bytes")
    check_free_space(target.final.parent, int(raw))


async def receive(request: Request, target: UploadTarget, limit: int) -> Path:
    """Stream the body into a temp file (fsynced); removed again on any failure."""
    tmp = target.temp_path()
    f = await anyio.to_thread.run_sync(lambda: open(tmp, "xb"))  # noqa: SIM115 (closed below)
    size, pending = 0, bytearray()
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the file is larger than {limit} bytes")
            pending += chunk
            if len(pending) >= WRITE_BYTES:
                await anyio.to_thread.run_sync(f.write, bytes(pending))
                pending.clear()
        if size == 0:
            raise InvalidArgument("the upload is empty (send the file as the request body)")
        await anyio.to_thread.run_sync(_finish_file, f, bytes(pending))
    except BaseException as exc:
        f.close()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, ClientDisconnect):
            raise BadRequest("the client went away mid-upload") from None
        raise
    f.close()
    return tmp


def _finish_file(f: Any, rest: bytes) -> None:
    f.write(rest)
    f.flush()
    os.fsync(f.fileno())


def install(registry: ModelRegistry, tmp: Path, target: UploadTarget) -> dict[str, Any]:
    """Check the uploaded file, move it into place and register it; 422 if it is not a model
    of a kind the engine reads. ``tmp`` is the caller's to remove if this raises."""
    detection = None
    if target.type & TEXT_TYPES:
        try:
            tmp.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ModelInvalid(f"not UTF-8 text: {exc}") from None
    else:
        from ..detect import detect  # lazy, as in the registry

        try:
            check_model_file(tmp, target.type.slug)
            detection = detect(tmp)
        except ModelLoadError as exc:
            message = str(exc).replace(str(tmp), target.rel)
            raise ModelInvalid(message) from None
    try:
        if target.overwrite:
            os.replace(tmp, target.final)
        else:
            os.link(tmp, target.final)  # refuses to replace a file that appeared meanwhile
            tmp.unlink()
    except FileExistsError:
        raise ModelExists(f"{target.rel} appeared meanwhile") from None
    _fsync_dir(target.final.parent)
    registry.refresh()
    entry = registry.get(target.rel)
    return {
        "message": "Model uploaded successfully",
        "model": entry.to_dict(),
        "detection": model_info.detection_dict(detection),
    }


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
