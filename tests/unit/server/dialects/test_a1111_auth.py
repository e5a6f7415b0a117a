"""HTTP Basic on the A1111 routes maps onto sdcpp users (auth on); with auth off any
Authorization header, well-formed or not, is ignored."""

from __future__ import annotations

import base64
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from a1111_world import API, SMALL, app_client
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp.server.auth import accounts


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    for client in app_client(tmp_path, FakeEngine(), auth=("jwt", "api-key")):
        store = client.app.state.auth.store  # type: ignore[attr-defined]
        accounts.add_user(store, "alice", "user", "correct horse")
        accounts.add_user(store, "bob", "user", "battery staple")
        yield client


def test_basic_auth_is_an_sdcpp_user(secured: TestClient) -> None:
    alice = basic("alice", "correct horse")
    r = secured.post(f"{API}/txt2img", json={"prompt": "x", **SMALL}, headers=alice)
    assert r.status_code == 200, r.text
    store = secured.app.state.jobs.store  # type: ignore[attr-defined]
    (job,) = store.list(limit=5)
    users = secured.app.state.auth.store  # type: ignore[attr-defined]
    assert job.owner == users.user_by_name("alice").id  # the job is alice's
    # per-user options: bob does not see alice's choice
    secured.post(f"{API}/options", json={"sd_model_checkpoint": "tiny"}, headers=alice)
    bob = basic("bob", "battery staple")
    secured.post(f"{API}/options", json={"sd_model_checkpoint": "other"}, headers=bob)
    mine = secured.get(f"{API}/options", headers=alice).json()["sd_model_checkpoint"]
    theirs = secured.get(f"{API}/options", headers=bob).json()["sd_model_checkpoint"]
    assert mine.startswith("tiny") and theirs.startswith("other")
    # cached after the first check: the same pair keeps working
    assert secured.get(f"{API}/sd-models", headers=alice).status_code == 200


def test_basic_refusals(secured: TestClient) -> None:
    r = secured.get(f"{API}/options")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    assert r.json()["error"] == "HTTPException" and r.json()["errors"].startswith("401")
    r = secured.get(f"{API}/options", headers=basic("alice", "wrong password"))
    assert r.status_code == 401
    r = secured.get(f"{API}/options", headers={"Authorization": "Basic !!!"})
    assert r.status_code == 401
    # Basic is the A1111 dialect's scheme only
    r = secured.get("/api/queue/status", headers=basic("alice", "correct horse"))
    assert r.status_code == 401
    # a password change ends the remembered pair
    alice = basic("alice", "correct horse")
    assert secured.get(f"{API}/options", headers=alice).status_code == 200
    store = secured.app.state.auth.store  # type: ignore[attr-defined]
    accounts.set_password(store, "alice", "new password 1")
    assert secured.get(f"{API}/options", headers=alice).status_code == 401


def test_auth_off_ignores_any_authorization(tmp_path: Path) -> None:
    for client in app_client(tmp_path, FakeEngine()):
        for header in ("Basic " + base64.b64encode(b"x:y").decode(), "Basic ", "garbage", ""):
            r = client.get(f"{API}/options", headers={"Authorization": header})
            assert r.status_code == 200, header


# -- PAM users over HTTP Basic (real system accounts, as tests/e2e/test_auth_serve.py) ------
PAM_USER, PAM_PASSWORD = "sdcpp-pamtest", "pam-test-Pass-1"
PAM_ADMIN, PAM_ADMIN_PASSWORD = "sdcpp-pamadmin", "pam-admin-Pass-2"
PAM_SCRIPT = Path(__file__).resolve().parents[4] / ".ci" / "pam-test-users.sh"


@pytest.fixture
def pam_secured(tmp_path: Path) -> Iterator[TestClient]:
    """Auth by PAM only (no local logins) over .ci/pam-test-users.sh's accounts."""
    try:
        pwd.getpwnam(PAM_USER)
        ready = Path("/etc/pam.d/sdcpp-test").exists()
    except KeyError:
        ready = False
    if not ready:  # needs_root: this runs as root
        subprocess.run([str(PAM_SCRIPT)], check=True)
    settings = {"pam_service": "sdcpp-test", "admin_group": "sdcpp-pamadmins"}
    yield from app_client(tmp_path, FakeEngine(), auth=("pam", "api-key"), **settings)


@pytest.mark.needs_root("pam_unix checks passwords in /etc/shadow; the accounts are made as root")
def test_basic_auth_of_a_pam_user(pam_secured: TestClient) -> None:
    pam_user = basic(PAM_USER, PAM_PASSWORD)
    r = pam_secured.post(f"{API}/txt2img", json={"prompt": "x", **SMALL}, headers=pam_user)
    assert r.status_code == 200, r.text
    users = pam_secured.app.state.auth.store  # type: ignore[attr-defined]
    row = users.user_by_name(PAM_USER)
    assert row is not None and row.role == "user"  # made on first sight, as a PAM login does
    (job,) = pam_secured.app.state.jobs.store.list(limit=5)  # type: ignore[attr-defined]
    assert job.owner == row.id
    assert pam_secured.get(f"{API}/options", headers=pam_user).status_code == 200  # remembered
    r = pam_secured.get(f"{API}/options", headers=basic(PAM_USER, "wrong"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = pam_secured.get(f"{API}/options", headers=basic(PAM_ADMIN, PAM_ADMIN_PASSWORD))
    assert r.status_code == 200
    assert users.user_by_name(PAM_ADMIN).role == "admin"  # by group membership
    r = pam_secured.get(f"{API}/options", headers=basic("sdcpp-no-such-user", "x"))
    assert r.status_code == 401
    # Basic stays the A1111 dialect's scheme, PAM or not
    r = pam_secured.get("/api/queue/status", headers=pam_user)
    assert r.status_code == 401
