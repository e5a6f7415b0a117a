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
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .auth.unix import with_peer_credentials
from .connlimits import with_header_timeout
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


def _draining(base: Any, app: Any, grace: float) -> Any:
    """A uvicorn server class whose first SIGTERM/SIGINT drains before uvicorn stops.

    uvicorn alone closes the port at once and waits for connections; here the port stays open
    while the running job has ``grace`` seconds: new jobs get 503 + Retry-After
    (``JobService.drain``), reads and event streams go on. Then (or at a second signal) the
    job is cancelled at its next step and re-queued, and uvicorn's own shutdown runs.
    """

    class Draining(base):  # type: ignore[misc]
        _draining: threading.Thread | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            jobs = getattr(getattr(app, "state", None), "jobs", None)
            if jobs is None or self._draining is not None:
                if jobs is not None:
                    jobs.interrupt()  # the second signal: cancel now
                super().handle_exit(sig, frame)
                return
            jobs.drain()
            logger.warning("shutting down: the running job has %.0f s to finish", grace)

            def drain() -> None:
                if not jobs.wait_idle(grace):
                    logger.warning("grace over: cancelling the running job (re-queued)")
                    jobs.interrupt()
                    jobs.wait_idle(2.0)
                self.should_exit = True

            self._draining = threading.Thread(target=drain, name="sdcpp-drain", daemon=True)
            self._draining.start()

    return Draining


def configure(app: Any, settings: Settings, **uvicorn_options: Any) -> Any:
    """The uvicorn config, loaded, with the connection limits (``connlimits.py``): at most
    ``max_connections`` open (503 beyond), idle keep-alive 5 s, headers within
    ``header_timeout``; logging left to ``logs.configure`` (``log_config=None``)."""
    import uvicorn

    options = {
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": 5,
        "log_config": None,
        **uvicorn_options,
    }
    config = uvicorn.Config(app, host=settings.host, port=settings.port, **options)
    config.load()
    config.http_protocol_class = with_header_timeout(
        config.http_protocol_class, settings.header_timeout
    )
    return config


def run(app: Any, settings: Settings, **uvicorn_options: Any) -> None:
    import uvicorn

    config = configure(app, settings, **uvicorn_options)
    server_class = _draining(uvicorn.Server, app, settings.shutdown_grace)
    if settings.uds is None:
        server_class(config).run()
        return
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

    class Server(server_class):  # type: ignore[misc, valid-type]
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
