"""The worker protocol: plain-dict messages that survive a real pipe, and exit reasons."""

from __future__ import annotations

import multiprocessing
import signal
from typing import Any

import pytest

from sdcpp.server.worker import protocol

MESSAGES: list[protocol.Message] = [
    protocol.Run(job_id="j1", kind="txt2img", params={"prompt": "a", "steps": 2}, output_dir="/o"),
    protocol.Cancel(job_id="j1"),
    protocol.Shutdown(),
    protocol.Ready(pid=1234),
    protocol.Progress(job_id="j1", phase="sampling", step=3, total=20, elapsed=1.5),
    protocol.Preview(job_id="j1", step=3, png=b"\x89PNG\r\n\x1a\n..."),
    protocol.Log(level="warning", text="slow disk"),
    protocol.Done(
        job_id="j1",
        outputs=["image_0.png"],
        result={"seeds": [7], "generation_time": 0.5, "parameters": ["a"], "width": 64},
    ),
    protocol.Failed(job_id="j1", error="width must be a multiple of 8", code="INVALID_PARAMETERS"),
    protocol.Cancelled(job_id="j1", forced=True),
    protocol.Crashed(job_id="j1", error="worker crashed: SIGABRT"),
    protocol.Load(job_id="l1", params={"model": "/m/a.safetensors", "n_threads": 2}),
    protocol.Unload(job_id="u1"),
    protocol.Loaded(job_id="l1", model="/m/a.safetensors", load_time=1.5),
    protocol.Unloaded(job_id="u1"),
    protocol.ModelState(loaded="/m/a.safetensors"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.TYPE)
def test_round_trip_through_a_pipe(message: protocol.Message) -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    with reader, writer:
        writer.send(protocol.encode(message))
        data = reader.recv()
    assert type(data) is dict and data["type"] == message.TYPE
    assert protocol.decode(data) == message


def test_wire_format_is_plain_builtins() -> None:
    data = protocol.encode(protocol.Progress("j", "loading", 1, 2, 0.25))
    assert data == {
        "type": "progress",
        "job_id": "j",
        "phase": "loading",
        "step": 1,
        "total": 2,
        "elapsed": 0.25,
    }


def test_every_type_is_distinct_and_finals_are_known() -> None:
    types = [m.TYPE for m in MESSAGES]
    assert len(set(types)) == len(types)
    finals = {"done", "failed", "cancelled", "crashed", "loaded", "unloaded"}
    assert finals == protocol.FINAL_TYPES


def test_no_loaded_model_is_none_on_the_wire() -> None:
    message = protocol.ModelState(loaded=None)
    assert protocol.decode(protocol.encode(message)) == message


def test_cancelled_defaults_to_not_forced() -> None:
    message = protocol.decode({"type": "cancelled", "job_id": "j"})
    assert message == protocol.Cancelled(job_id="j", forced=False)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (["run"], "is a dict"),
        ({"type": "explode"}, "unknown message type"),
        ({"job_id": "j"}, "unknown message type"),
        ({"type": "cancel"}, "missing job_id"),
        ({"type": "load", "job_id": "l"}, "missing params"),
        ({"type": "model"}, "missing loaded"),
        ({"type": "unloaded", "job_id": "u", "model": "x"}, "unknown field model"),
        ({"type": "cancel", "job_id": "j", "why": "x"}, "unknown field why"),
        (
            {"type": "progress", "job_id": "j", "phase": "dreaming", "step": 1, "total": 2,
             "elapsed": 0.0},
            "phase",
        ),
        ({"type": "failed", "job_id": "j", "error": "x", "code": "OOPS"}, "code"),
    ],
)  # fmt: skip
def test_decode_rejects_malformed(data: Any, match: str) -> None:
    with pytest.raises(protocol.ProtocolError, match=match):
        protocol.decode(data)


@pytest.mark.parametrize(
    ("exitcode", "reason"),
    [
        (-signal.SIGABRT, "worker crashed: SIGABRT"),
        (-signal.SIGSEGV, "worker crashed: SIGSEGV"),
        (-signal.SIGKILL, "worker crashed: SIGKILL"),
        (3, "worker crashed: exit code 3"),
        (-200, "worker crashed: signal 200"),
    ],
)
def test_exit_reason_names_the_signal(exitcode: int, reason: str) -> None:
    assert protocol.exit_reason(exitcode) == reason
