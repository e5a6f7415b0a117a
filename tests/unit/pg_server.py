"""A throw-away PostgreSQL server for the tests: ``initdb`` in a temp dir, ``pg_ctl start`` on
127.0.0.1 and a free port (no unix socket), trust auth on loopback only; stopped and removed at
the end of the session (and at interpreter exit, should the session die first).

PostgreSQL refuses to run as root, so under root (``.ci/run``) the server runs as the
``postgres`` system user (``runuser -u postgres``). Where the binaries are missing the fixture
skips with the reason, except under ``SDCPP_REQUIRE_ROOT_TESTS`` (CI), where it fails: there
``.ci/run`` has installed them.

Each test gets a schema of its own (``PgServer.fresh_url()``: a URL whose ``search_path`` is a
new schema), so tests never see each other's jobs and need no server per test.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REQUIRE_ENV = "SDCPP_REQUIRE_ROOT_TESTS"  # as tests/conftest.py: CI may not skip


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin with initdb, else the one on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable(reason: str) -> None:
    """Skip (a laptop without PostgreSQL) or fail (CI, where it must run)."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"PostgreSQL tests cannot run: {reason} ({REQUIRE_ENV} is set)")
    pytest.skip(f"PostgreSQL tests need a local server: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user: str | None = None  # the system user the server runs as (None: this one)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no 'postgres' user to run it as")
            self.user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="sdcpp-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._running = False

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> PgServer:
        if self.user:
            shutil.chown(self.root, self.user)
        initdb = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr.strip()}")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100 -c shared_buffers=32MB"
        )
        self._options = options
        started = time.monotonic()
        self._pg_ctl_start()
        self.start_seconds = time.monotonic() - started
        atexit.register(self.stop)
        return self

    def _pg_ctl_start(self) -> None:
        ctl = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", self._options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        if ctl.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {ctl.stderr.strip()}\n{log}")
        self._running = True

    def pause(self) -> None:
        """Stop the server, keeping its data and port (a database outage); ``resume()``."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self._running = False

    def resume(self) -> None:
        self._pg_ctl_start()

    def fresh_url(self) -> str:
        """A URL on a schema created for the caller alone."""
        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    bindir = find_bindir()
    if bindir is None:
        unavailable("no initdb in /usr/lib/postgresql/*/bin or on PATH (apt install postgresql)")
    assert bindir is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'sdcpp[postgres]')")
    return PgServer(bindir).start()
