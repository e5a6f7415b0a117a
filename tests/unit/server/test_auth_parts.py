"""The auth building blocks on their own: store, passwords, tokens, keys, signed URLs, limiter."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from sdcpp.errors import InvalidArgument
from sdcpp.server.auth import apikeys
from sdcpp.server.auth.capability import OutputSigner
from sdcpp.server.auth.limiter import FailureLimiter
from sdcpp.server.auth.passwords import hash_password, verify_password
from sdcpp.server.auth.secret import derive_key, load_or_create_secret
from sdcpp.server.auth.store import AuthQueries, UnknownUser, UserExists
from sdcpp.server.auth.tokens import InvalidToken, TokenIssuer

KEY = b"k" * 64


def test_store_users_keys_and_revocations(open_auth: Callable[[], AuthQueries]) -> None:
    # on SQLite and PostgreSQL (tests/unit/server/conftest.py)
    with open_auth() as store:
        alice = store.add_user("alice", role="admin", password_hash="h")
        assert store.user_by_name("alice") == alice and alice.role == "admin"
        with pytest.raises(UserExists):
            store.add_user("alice")
        with pytest.raises(InvalidArgument):
            store.add_user("../etc")
        with pytest.raises(InvalidArgument):
            store.add_user("bob", role="root")
        assert store.set_role("alice", "user").role == "user"
        assert store.set_active("alice", False).active is False
        with pytest.raises(UnknownUser):
            store.set_role("nobody-here", "user")
        key = store.add_key(alice.id, "ci", "abcd1234", "digest")
        assert store.key_by_prefix("abcd1234") == key and store.keys(alice.id) == [key]
        assert store.revoke_key(key.id) and not store.revoke_key(key.id)
        assert store.key_by_id(key.id).revoked_at is not None  # type: ignore[union-attr]
        store.delete_user("alice")
        assert store.key_by_id(key.id) is None  # keys go with their user
        store.revoke_token("j1", time.time() + 60)
        store.revoke_token("j0", time.time() - 1)
        store.revoke_token("j2", time.time() + 60)  # purges the expired j0
        assert store.is_revoked("j1") and not store.is_revoked("j0")
        assert "password_hash" not in alice.public()


def test_a_second_process_sees_the_same_rows(open_auth: Callable[[], AuthQueries]) -> None:
    with open_auth() as a, open_auth() as b:
        a.add_user("carol")
        assert b.user_by_name("carol") is not None
        # two processes adding the same name at once: one row, and UserExists for the other
        made = []
        barrier = threading.Barrier(2)

        def add(store: AuthQueries) -> None:
            barrier.wait()
            with contextlib.suppress(UserExists):
                made.append(store.add_user("dave"))

        threads = [threading.Thread(target=add, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(made) == 1 and b.ensure_user("dave", role="user", source="unix") == made[0]


def test_passwords_argon2() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
    assert not verify_password(None, "anything at all")
    assert not verify_password("not a hash", "correct horse")
    with pytest.raises(InvalidArgument):
        hash_password("short")


def test_secret_file_is_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
    assert mode == 0o600 and len(first) == 64
    assert load_or_create_secret(tmp_path) == first
    assert derive_key(first, "jwt") != derive_key(first, "output url")
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temp file left


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_tokens_round_trip_and_refuse_forgeries() -> None:
    issuer = TokenIssuer(KEY, 3600, leeway=5)
    token, claims = issuer.issue("uid", "alice")
    decoded = issuer.decode(token)
    assert decoded.sub == "uid" and decoded.jti == claims.jti and decoded.exp == claims.exp
    now = int(time.time())
    good = {"iss": "sdcpp", "sub": "uid", "jti": "j", "iat": now, "exp": now + 60}
    forgeries = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(good)}.",
        "HS512": jwt.encode(good, KEY, algorithm="HS512"),
        # algorithm confusion: an RS256 header over an HMAC made with our key
        "RS256": _b64({"alg": "RS256", "typ": "JWT"})
        + jwt.encode(good, KEY, algorithm="HS256")[jwt.encode(good, KEY).index(".") :],
        "wrong key": jwt.encode(good, b"x" * 64, algorithm="HS256"),
        "expired": jwt.encode({**good, "exp": now - 60}, KEY, algorithm="HS256"),
        "future nbf": jwt.encode({**good, "nbf": now + 600}, KEY, algorithm="HS256"),
        "future iat": jwt.encode({**good, "iat": now + 600}, KEY, algorithm="HS256"),
        "tampered": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
    }
    for claim in ("sub", "jti", "exp", "iat", "iss"):
        missing = {k: v for k, v in good.items() if k != claim}
        forgeries[f"no {claim}"] = jwt.encode(missing, KEY, algorithm="HS256")
    for name, forged in forgeries.items():
        with pytest.raises(InvalidToken):
            issuer.decode(forged)
            pytest.fail(f"{name} was accepted")
    # within the leeway, a just-expired token still passes
    assert issuer.decode(jwt.encode({**good, "exp": now - 2}, KEY, algorithm="HS256")).sub == "uid"


def test_api_keys() -> None:
    key, prefix, digest = apikeys.new_key()
    assert apikeys.prefix_of(key) == prefix and apikeys.matches(key, digest)
    assert not apikeys.matches(key + "x", digest)
    assert apikeys.prefix_of("sdk_short") is None
    assert digest != key and len(digest) == 64


def test_signed_output_urls() -> None:
    now = [1_000_000.0]
    signer = OutputSigner(KEY, 3600, clock=lambda: now[0])
    url = signer.url("j1", "image_0.png")
    query = dict(p.split("=") for p in url.split("?")[1].split("&"))
    assert signer.verify("j1", "image_0.png", query["exp"], query["sig"])
    assert signer.url("j1", "image_0.png") == url  # stable within the hour: cacheable
    assert not signer.verify("j2", "image_0.png", query["exp"], query["sig"])
    assert not signer.verify("j1", "image_1.png", query["exp"], query["sig"])
    assert not signer.verify("j1", "image_0.png", str(int(query["exp"]) + 3600), query["sig"])
    assert not signer.verify("j1", "image_0.png", None, None)
    now[0] += 3 * 3600
    assert not signer.verify("j1", "image_0.png", query["exp"], query["sig"])  # expired


def test_limiter_locks_and_unlocks() -> None:
    now = [0.0]
    limiter = FailureLimiter(3, window=60, lockout=120, clock=lambda: now[0])
    for _ in range(2):
        limiter.fail("u")
    assert limiter.retry_after("u") == 0
    limiter.fail("u")
    assert limiter.retry_after("u") == 120
    now[0] += 121
    assert limiter.retry_after("u") == 0
    limiter.fail("u")
    now[0] += 61  # the old failure left the window
    limiter.fail("u")
    limiter.fail("u")
    assert limiter.retry_after("u") == 0
    limiter.succeed("u")
    limiter.fail("u")
    assert limiter.retry_after("u") == 0


def test_secret_race_keeps_one_winner(tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        load_or_create_secret(tmp_path)
        os._exit(0)
    mine = load_or_create_secret(tmp_path)
    os.waitpid(pid, 0)
    assert load_or_create_secret(tmp_path) == mine
