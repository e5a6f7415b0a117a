"""Slow and greedy clients against a real uvicorn server on loopback (``listen.configure``):
slowloris headers, an idle connection, huge headers, a trickled body, too many connections, an
event stream nobody reads. Each is bounded: a few sockets, a few seconds."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "security"))  # serving on loopback
from attack import on_loopback
from fake_engine import FakeEngine

from sdcpp.server import Settings, create_app

TIMEOUT = 1.0  # header, body and SSE send timeouts of the server under test
MAX_CONNECTIONS = 6
SLACK = 3.0  # seconds a loaded CI box may add to a deadline


@dataclass
class Running:
    app: Any
    port: int

    def connect(self, rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", self.port))
        return sock

    def get(self, path: str) -> bytes:
        with self.connect() as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
            )
            return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.fixture(params=["httptools", "h11"])  # both of uvicorn's HTTP implementations
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    settings = Settings(
        data_dir=tmp_path / "data",
        port=1,  # replaced by the socket below
        shutdown_grace=0.5,
        header_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        sse_send_timeout=TIMEOUT,
        max_connections=MAX_CONNECTIONS,
    )
    app = create_app(settings, engine=FakeEngine())
    with on_loopback(app, settings, http=request.param) as port:
        yield Running(app, port)


def test_slowloris_headers_get_408_within_the_header_timeout(server: Running) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")
        reply = b""
        for _ in range(40):  # one header byte every 0.1 s, for up to 4 s
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.1)
            sock.setblocking(False)
            try:
                reply += sock.recv(4096)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if reply:
                break
        took = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert TIMEOUT * 0.9 <= took <= TIMEOUT + SLACK, took
    assert b"200 OK" in server.get("/livez")  # the server is fine


def test_an_idle_connection_is_closed(server: Running) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        reply = read_all(sock)  # sends nothing; the server must end it
        took = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408") and took <= TIMEOUT + SLACK


def test_huge_headers_get_431(server: Running) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")
        reply = b""
        try:
            for i in range(200):  # ~100 KB of headers, fast
                sock.sendall(f"X-Pad-{i}: {'a' * 500}\r\n".encode())
            reply = read_all(sock)
        except ConnectionResetError:
            pass  # closed with our unread headers in its buffer: the kernel sends a reset
        took = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 431") or not reply, reply[:80]
    assert took < TIMEOUT * 0.9  # the size limit ended it, not the header timeout


def test_a_trickled_body_gets_408(server: Running) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /api/validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        reply = read_all(sock)  # then nothing more
        took = time.monotonic() - started
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply[:200]
    assert json.loads(body)["error"]["code"] == "REQUEST_TIMEOUT"
    assert TIMEOUT * 0.9 <= took <= TIMEOUT + SLACK, took


def test_too_many_connections_get_503_until_the_idle_ones_are_dropped(server: Running) -> None:
    idle = [server.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)
        assert b" 503 " in server.get("/livez").split(b"\r\n")[0]  # the limit holds ...
        started = time.monotonic()  # ... and the header timeout frees it: no pinning
        while b"200 OK" not in server.get("/livez"):
            assert time.monotonic() - started < TIMEOUT + SLACK, "still refused"
            time.sleep(0.1)
    finally:
        for sock in idle:
            sock.close()


def test_an_event_stream_nobody_reads_is_dropped(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sdcpp.server.connlimits")
    events = server.app.state.events
    with server.connect(rcvbuf=4096) as sock:
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")  # then never read again
        deadline = time.monotonic() + 10
        while events.subscriber_count == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = time.monotonic()
        pad = "x" * 65536
        while events.subscriber_count and time.monotonic() - started < 15:
            events.publish({"type": "system_update", "data": {"pad": pad}})
            time.sleep(0.005)
        took = time.monotonic() - started
        assert events.subscriber_count == 0, "the stream still holds its subscriber"
    print(f"\nunread SSE stream dropped after {took:.2f} s (send_timeout {TIMEOUT:g} s)")
    assert took <= TIMEOUT + 5
    assert b"200 OK" in server.get("/livez")
    assert "dropped the event stream /api/events" in caplog.text
    # no traceback; uvicorn still says, in one line, that the response never completed
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(r.exc_info is None and "without completing" in r.message for r in errors)
