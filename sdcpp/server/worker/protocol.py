"""Messages between the server process and the engine worker.

On the wire every message is a plain dict ``{"type": ..., **fields}`` sent with
``multiprocessing.connection.Connection.send``: only builtins (str, int, float, bytes, lists,
dicts) cross the pipe, so neither side unpickles classes of the other and the format stays easy
to log and test. The dataclasses below are the typed way to build and check those dicts.

server -> worker::

    run       {job_id, kind, params, output_dir}   one job; the worker runs one at a time
    cancel    {job_id}                             stop that job if it is the running one
    load      {job_id, params}                     load a model (params: a job's context part)
    unload    {job_id, model?}                     close that loaded model (path), or all
    shutdown  {}                                   finish (cancelling the running job), exit

worker -> server::

    ready     {pid}                                sent once, when the worker can take jobs
    progress  {job_id, phase, step, total, elapsed}
    preview   {job_id, step, png}                  a small PNG (longest side <= 256 px)
    log       {level, text}                        WARNING and above, rate-limited
    done      {job_id, outputs, result}            final: file names inside output_dir
    failed    {job_id, error, code}                final
    cancelled {job_id, forced}                     final
    loaded    {job_id, model, load_time}           final for load: ``model`` is now loaded
    unloaded  {job_id}                             final for unload
    model     {loaded, models, loads}              the loaded models changed: the most recent
                                                   (path or None), all of them (most recent
                                                   first), contexts created since start

``load`` and ``unload`` are queued with the runs and answered in order, so they never overlap a
generation; their ``job_id`` is a request id chosen by the client, and ``failed`` ends them too.

synthesized by the client (never sent by the worker)::

    crashed   {job_id, error}                      final: the worker died during the job
"""

from __future__ import annotations

import signal
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar, Literal, TypedDict

__all__ = [
    "FINAL_TYPES",
    "Cancel",
    "Cancelled",
    "Crashed",
    "Done",
    "Failed",
    "Load",
    "Loaded",
    "Log",
    "Message",
    "ModelState",
    "Preview",
    "Progress",
    "ProtocolError",
    "Ready",
    "Run",
    "Shutdown",
    "Unload",
    "Unloaded",
    "decode",
    "encode",
    "exit_reason",
]

Phase = Literal["loading", "sampling", "hires", "decoding", "saving"]
ErrorCode = Literal[
    "INVALID_PARAMETERS",
    "MODEL_NOT_FOUND",
    "MODEL_LOAD_FAILED",
    "INTERNAL_ERROR",
    "OUT_OF_MEMORY",
    "INSUFFICIENT_STORAGE",
]
JobKind = Literal["txt2img", "img2img", "inpaint", "inpainting", "controlnet", "upscale", "video"]

PHASES: tuple[str, ...] = ("loading", "sampling", "hires", "decoding", "saving")
ERROR_CODES: tuple[str, ...] = (
    "INVALID_PARAMETERS",
    "MODEL_NOT_FOUND",
    "MODEL_LOAD_FAILED",
    "INTERNAL_ERROR",
    "OUT_OF_MEMORY",  # the job needed more memory than the worker has (its job only fails)
    "INSUFFICIENT_STORAGE",  # the disk filled while writing its outputs (nothing partial kept)
)
# The server queues "inpainting" and "controlnet" (store.JOB_KINDS); "inpaint" is kept for
# callers of the client that used it.
IMAGE_KINDS: tuple[str, ...] = ("txt2img", "img2img", "inpaint", "inpainting", "controlnet")
JOB_KINDS: tuple[str, ...] = (*IMAGE_KINDS, "upscale", "video")
# The events that end a job: the client's run() returns exactly one of these.
FINAL_TYPES = frozenset({"done", "failed", "cancelled", "crashed", "loaded", "unloaded"})


class ProtocolError(ValueError):
    """A dict that is not a well-formed message (unknown type, missing or extra fields)."""


class JobResult(TypedDict):
    """``done.result``: what the server stores with a completed job."""

    seeds: list[int]
    generation_time: float  # seconds in the engine, without model loading
    load_time: float  # seconds spent loading models for this job (0.0 when cached)
    parameters: list[str]  # A1111 "parameters" text per output ("" where none)
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Message:
    TYPE: ClassVar[str] = ""


# -- server -> worker ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run(Message):
    TYPE: ClassVar[str] = "run"
    job_id: str
    kind: str
    params: dict[str, Any]
    output_dir: str


@dataclass(frozen=True, slots=True)
class Cancel(Message):
    TYPE: ClassVar[str] = "cancel"
    job_id: str


@dataclass(frozen=True, slots=True)
class Load(Message):
    TYPE: ClassVar[str] = "load"
    job_id: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unload(Message):
    TYPE: ClassVar[str] = "unload"
    job_id: str
    model: str | None = None  # the model file to close; None closes every loaded model


@dataclass(frozen=True, slots=True)
class Shutdown(Message):
    TYPE: ClassVar[str] = "shutdown"


# -- worker -> server ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ready(Message):
    TYPE: ClassVar[str] = "ready"
    pid: int


@dataclass(frozen=True, slots=True)
class Progress(Message):
    TYPE: ClassVar[str] = "progress"
    job_id: str
    phase: str  # one of PHASES
    step: int
    total: int
    elapsed: float  # seconds since the worker started the job


@dataclass(frozen=True, slots=True)
class Preview(Message):
    TYPE: ClassVar[str] = "preview"
    job_id: str
    step: int
    png: bytes


@dataclass(frozen=True, slots=True)
class Log(Message):
    TYPE: ClassVar[str] = "log"
    level: str  # "debug" ... "critical": what the server asked for (SDCPP_WORKER_LOG_LEVEL)
    text: str


@dataclass(frozen=True, slots=True)
class Done(Message):
    TYPE: ClassVar[str] = "done"
    job_id: str
    outputs: list[str]
    result: dict[str, Any]  # a JobResult


@dataclass(frozen=True, slots=True)
class Failed(Message):
    TYPE: ClassVar[str] = "failed"
    job_id: str
    error: str
    code: str  # one of ERROR_CODES


@dataclass(frozen=True, slots=True)
class Cancelled(Message):
    TYPE: ClassVar[str] = "cancelled"
    job_id: str
    # True when the worker ignored the cancel and was killed after the grace period.
    forced: bool = False


@dataclass(frozen=True, slots=True)
class Loaded(Message):
    TYPE: ClassVar[str] = "loaded"
    job_id: str
    model: str
    load_time: float  # 0.0 when it was loaded already


@dataclass(frozen=True, slots=True)
class Unloaded(Message):
    TYPE: ClassVar[str] = "unloaded"
    job_id: str


@dataclass(frozen=True, slots=True)
class ModelState(Message):
    TYPE: ClassVar[str] = "model"
    loaded: str | None  # the main model file of the most recent context, None when none is
    models: list[str] = field(default_factory=list)  # every loaded one, most recent first
    loads: int = 0  # contexts the worker created since it started (cache hits don't count)


@dataclass(frozen=True, slots=True)
class Crashed(Message):
    TYPE: ClassVar[str] = "crashed"
    job_id: str
    error: str


_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Run,
        Cancel,
        Load,
        Unload,
        Shutdown,
        Ready,
        Progress,
        Preview,
        Log,
        Done,
        Failed,
        Cancelled,
        Loaded,
        Unloaded,
        ModelState,
        Crashed,
    )
}
_CHECKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "phase": ("progress", PHASES),
    "code": ("failed", ERROR_CODES),
}


def encode(message: Message) -> dict[str, Any]:
    """The wire dict of ``message`` (a shallow copy: params and result dicts are shared)."""
    data: dict[str, Any] = {"type": message.TYPE}
    for f in fields(message):
        data[f.name] = getattr(message, f.name)
    return data


def decode(data: Any) -> Message:
    """The message for a wire dict; ProtocolError if it is not one."""
    if not isinstance(data, dict):
        raise ProtocolError(f"a message is a dict, got {type(data).__name__}")
    cls = _TYPES.get(data.get("type", ""))
    if cls is None:
        raise ProtocolError(f"unknown message type {data.get('type')!r}")
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if _is_required(f)}
    given = set(data) - {"type"}
    if missing := required - given:
        raise ProtocolError(f"{cls.TYPE}: missing {', '.join(sorted(missing))}")
    if extra := given - names:
        raise ProtocolError(f"{cls.TYPE}: unknown field {', '.join(sorted(extra))}")
    for name, (type_, allowed) in _CHECKS.items():
        if type_ == cls.TYPE and data[name] not in allowed:
            raise ProtocolError(f"{type_}: {name} {data[name]!r} is not one of {allowed}")
    return cls(**{k: v for k, v in data.items() if k != "type"})


def _is_required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def exit_reason(exitcode: int | None) -> str:
    """Why a worker process ended, as a job error: "worker crashed: SIGABRT", "... exit code 3".

    ``exitcode`` is ``multiprocessing.Process.exitcode``: negative for "killed by signal N".
    """
    if exitcode is None:
        return "worker crashed: still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker crashed: {name}"
    return f"worker crashed: exit code {exitcode}"
