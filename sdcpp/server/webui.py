"""The web UI's static files at ``/ui/`` (``webui/`` at the repository root, in the wheel).

- ``GET /`` redirects to ``/ui/``; ``GET /ui/`` answers ``index.html`` with
  ``Cache-Control: no-cache``, its relative ``src``/``href`` rewritten to ``/ui/<hash>/...``,
  where ``<hash>`` is a digest of every file of the UI (no ``<base>``: it would turn the page's
  ``#page`` links into navigations). Modules import each other relatively, so everything under
  ``/ui/<hash>/`` can be cached for a year (``immutable``): a new release has a new hash.
- ``--webui-dir DIR`` serves a working copy: the hash is taken anew for each page load and
  nothing is cached, so an edit shows at the next reload.
- ``--no-webui``: none of these routes exist.

Where the files are: ``--webui-dir``, else the copy packaged inside ``sdcpp`` (``sdcpp/webui``,
the wheel), else the checkout's ``webui/`` beside the ``sdcpp`` package (editable installs).
Every answer carries a strict Content-Security-Policy: nothing inline, nothing from elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from ..errors import InvalidArgument
from .auth.permissions import PUBLIC
from .exceptions import NotFound
from .routing import Endpoint, starlette_routes

logger = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
IMMUTABLE = "public, max-age=31536000, immutable"
# src/href attributes of index.html naming a file of the UI (not "#page", "/api", "https:")
_RELATIVE = re.compile(r'\b(src|href)="(?![#/]|[a-z]+:)([^"]+)"')
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


def find_webui_dir(explicit: Path | None = None) -> Path | None:
    """The UI's folder: ``explicit``, the packaged copy, or the checkout's; None if none."""
    if explicit is not None:
        return explicit if (explicit / "index.html").is_file() else None
    packaged = Path(str(resources.files("sdcpp"))) / "webui"
    checkout = Path(__file__).resolve().parents[2] / "webui"
    for folder in (packaged, checkout):
        if (folder / "index.html").is_file():
            return folder
    return None


def content_hash(root: Path) -> str:
    """A digest of every file's path and bytes: changes whenever any file does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class WebUI:
    root: Path
    dev: bool  # a working copy (--webui-dir): hash per page load, no caching
    _hash: str | None = None

    @property
    def hash(self) -> str:
        if self.dev or self._hash is None:
            self._hash = content_hash(self.root)
        return self._hash

    def file(self, relative: str) -> Path | None:
        """The file at ``relative`` inside the root, never outside it."""
        if "\x00" in relative:  # not a name any file has (and os.path refuses it)
            return None
        root = self.root.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def caching(self, asset_hash: str | None) -> str:
        if asset_hash is None or self.dev or asset_hash != self.hash:
            return "no-cache"
        return IMMUTABLE

    def index(self) -> Response:
        html = (self.root / "index.html").read_text(encoding="utf-8")
        html = _RELATIVE.sub(rf'\1="/ui/{self.hash}/\2"', html)
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    def asset(self, asset_hash: str, relative: str) -> Response:
        path = self.file(relative)
        if path is None or path.name == "index.html":
            raise NotFound(f"no UI file {relative!r}")
        media = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        headers = {**SECURITY_HEADERS, "Cache-Control": self.caching(asset_hash)}
        return Response(path.read_bytes(), media_type=media, headers=headers)


def _ui(request: Request) -> WebUI:
    ui: WebUI | None = getattr(request.app.state, "webui", None)
    if ui is None:
        raise NotFound("the web UI files are not installed")
    return ui


async def root(request: Request) -> Response:
    """Redirect to the web UI."""
    return RedirectResponse("/ui/", status_code=307)


async def index(request: Request) -> Response:
    """The web UI's page."""
    if request.url.path == "/ui":
        return RedirectResponse("/ui/", status_code=307)
    return _ui(request).index()


async def asset(request: Request) -> Response:
    """A file of the web UI, under the content hash of the whole UI."""
    path: str = request.path_params["path"]
    asset_hash, _, relative = path.partition("/")
    if not relative:
        raise NotFound(f"no UI file {path!r}")
    return _ui(request).asset(asset_hash, relative)


def setup(webui: bool, webui_dir: Path | None) -> WebUI | None:
    """The UI to serve under these settings, or None (``--no-webui``, or no files found)."""
    if not webui:
        return None
    root = find_webui_dir(webui_dir)
    if root is None:
        if webui_dir is not None:
            raise InvalidArgument(f"--webui-dir {webui_dir} holds no index.html")
        logger.warning("the web UI files are not installed: /ui/ answers 404")
        return None
    return WebUI(root, dev=webui_dir is not None)


# public: the page signs in through /api/auth
ENDPOINTS: list[Endpoint] = [
    Endpoint("/", root, access=PUBLIC, name="webui_root"),
    Endpoint("/ui", index, access=PUBLIC, name="webui_redirect"),
    Endpoint("/ui/", index, access=PUBLIC, name="webui_index"),
    Endpoint("/ui/{path:path}", asset, access=PUBLIC, name="webui_asset"),
]


def routes() -> list[BaseRoute]:
    """The UI's routes."""
    return starlette_routes(ENDPOINTS)
