"""Run the app under uvicorn on TCP and, with ``--uds PATH``, on a unix socket as well.

The socket connections carry the peer's credentials into each request (``auth/unix.py``): the
protocol classes uvicorn would use are subclassed to read ``SO_PEERCRED``. The socket file is
mode 0666 when some auth method is on (identity comes from the kernel, so anyone may knock) and
0600 under ``--auth none`` (no identity: only the server's own user may connect).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .auth.unix import with_peer_credentials
from .settings import Settings

logger = logging.getLogger(__name__)


def unix_socket(path: Path, mode: int) -> socket.socket:
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        path.unlink()  # a stale socket of an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)  # never reachable with looser rights, even briefly
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, mode)
        sock.listen(2048)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def run(app: Any, settings: Settings, **uvicorn_options: Any) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=settings.host, port=settings.port, **uvicorn_options)
    if settings.uds is None:
        uvicorn.Server(config).run()
        return
    config.load()
    config.http_protocol_class = with_peer_credentials(config.http_protocol_class)
    if config.ws_protocol_class is not None:
        config.ws_protocol_class = with_peer_credentials(config.ws_protocol_class)
    mode = 0o600 if settings.auth_methods == ("none",) else 0o666
    sockets = [config.bind_socket(), unix_socket(settings.uds, mode)]
    logger.warning("also listening on unix socket %s (mode %o)", settings.uds, mode)

    def cleanup() -> None:
        for sock in sockets:
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            Path(settings.uds).unlink()  # type: ignore[arg-type]

    class Server(uvicorn.Server):
        # uvicorn re-raises SIGTERM/SIGINT when it leaves this context, which ends the process
        # before any code after run(): the socket file is removed just before that.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    cleanup()

    try:
        Server(config).run(sockets=sockets)
    finally:
        cleanup()
