"""Auth against a real ``sdcpp serve``: PAM logins with real system accounts, and identity from
a real unix socket for a request made by another uid.

The PAM accounts come from ``.ci/pam-test-users.sh`` (``.ci/run`` runs it as root); when this
test runs as root it runs the script itself, so it is self-contained. Not root and no accounts:
it fails and says so, it never skips.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PAM_USER, PAM_PASSWORD = "sdcpp-pamtest", "pam-test-Pass-1"
PAM_ADMIN, PAM_ADMIN_PASSWORD = "sdcpp-pamadmin", "pam-admin-Pass-2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        script = shutil.which("sdcpp") or str(Path(sys.executable).with_name("sdcpp"))
        argv = [script, "serve", "--port", str(self.port), "--data-dir", str(data_dir), *args]
        self.proc = subprocess.Popen(argv, env={**os.environ, "SDCPP_THREADS": "2"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, "server exited during start-up"
            time.sleep(0.2)
        raise AssertionError("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


@pytest.fixture(scope="session")
def pam_accounts() -> None:
    try:
        pwd.getpwnam(PAM_USER)
        pwd.getpwnam(PAM_ADMIN)
        ready = Path("/etc/pam.d/sdcpp-test").exists()
    except KeyError:
        ready = False
    if not ready and os.geteuid() == 0:
        subprocess.run([str(REPO / ".ci" / "pam-test-users.sh")], check=True)
        ready = True
    if not ready:
        pytest.fail(
            "the PAM test accounts are missing: run .ci/run, or as root .ci/pam-test-users.sh"
        )


@pytest.fixture
def pam_server(tmp_path: Path, pam_accounts: None) -> Iterator[Serve]:
    srv = Serve(
        tmp_path / "data",
        "--auth",
        "pam,api-key",
        "--pam-service",
        "sdcpp-test",
        "--admin-group",
        "sdcpp-pamadmins",
    )
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.needs_root("pam_unix checks passwords in /etc/shadow; the accounts are made as root")
def test_pam_login_then_wrong_password(pam_server: Serve) -> None:
    url = pam_server.url
    r = httpx.post(
        f"{url}/api/auth/login", json={"username": PAM_USER, "password": PAM_PASSWORD}, timeout=30
    )
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert user["username"] == PAM_USER and user["role"] == "user"
    h = {"Authorization": f"Bearer {r.json()['token']}"}
    assert httpx.get(f"{url}/api/auth/me", headers=h).json()["user"]["username"] == PAM_USER
    key = httpx.post(f"{url}/api/keys", json={"name": "svc"}, headers=h).json()["key"]
    assert httpx.get(f"{url}/api/auth/me", headers={"X-API-Key": key}).status_code == 200

    started = time.monotonic()
    r = httpx.post(
        f"{url}/api/auth/login", json={"username": PAM_USER, "password": "wrong"}, timeout=30
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "INVALID_CREDENTIALS"
    assert time.monotonic() - started >= 1  # pam_unix's failure delay, not a short cut
    r = httpx.post(
        f"{url}/api/auth/login",
        json={"username": PAM_ADMIN, "password": PAM_ADMIN_PASSWORD},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin"  # by group membership


def _get_over_socket_as(path: Path, uid: int, gid: int, headers: dict[str, str]) -> dict:
    """GET /api/auth/me over the unix socket from a child process running as ``uid``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: drop to the other user, ask, report, exit
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
                request = (
                    f"GET /api/auth/me HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
                )
                s.sendall(request.encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            os.write(write, answer)
        except BaseException as exc:
            os.write(write, f"CHILD FAILED: {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = b""
    while chunk := os.read(read, 65536):
        answer += chunk
    os.close(read)
    os.waitpid(pid, 0)
    assert answer.startswith(b"HTTP/"), answer.decode(errors="replace")
    head, _, body = answer.partition(b"\r\n\r\n")
    return {"status": int(head.split()[1]), "body": json.loads(body)}


@pytest.mark.needs_root("it makes a request as another uid")
def test_unix_socket_identifies_the_peer_uid(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    # pytest's tmp dirs are private to root; the socket needs a folder nobody can traverse
    sock_dir = Path(tempfile.mkdtemp(prefix="sdcpp-uds-"))
    os.chmod(sock_dir, 0o755)
    path = sock_dir / "sdcpp.sock"
    srv = Serve(tmp_path / "data", "--auth", "unix", "--uds", str(path))
    try:
        me = _get_over_socket_as(path, nobody.pw_uid, nobody.pw_gid, {})
        assert me["status"] == 200 and me["body"]["user"]["username"] == "nobody"
        assert me["body"]["user"]["role"] == "user"
        spoof = _get_over_socket_as(path, nobody.pw_uid, nobody.pw_gid, {"X-Unix-User": "root"})
        assert spoof["status"] == 401 and spoof["body"]["error"]["code"] == "INVALID_CREDENTIALS"
        root = _get_over_socket_as(path, 0, 0, {})
        assert root["body"]["user"]["role"] == "admin"
        tcp = httpx.get(f"{srv.url}/api/auth/me", headers={"X-Unix-User": "root"})
        assert tcp.status_code == 401 and tcp.json()["error"]["code"] == "AUTH_REQUIRED"
    finally:
        srv.stop()
    assert not path.exists()  # removed at shutdown
    sock_dir.rmdir()
