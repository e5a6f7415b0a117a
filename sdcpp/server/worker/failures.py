"""What a failed worker request reports: the ``failed`` message's code and text.

Exceptions map to codes here (first match wins); memory and disk exhaustion get messages that
say what to change. ``limit_memory`` sets the cap the out-of-memory message names.
"""

from __future__ import annotations

import errno
import logging
import os

from ...errors import InvalidArgument, ModelLoadError, UnsupportedError
from . import protocol

logger = logging.getLogger("sdcpp.server.worker.process")  # the name the server's log shows

# Exception -> failed.code, first match wins. Unsupported requests (a video model asked for an
# image) are the caller's to fix, like invalid ones; anything else is our fault.
ERROR_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (InvalidArgument, "INVALID_PARAMETERS"),
    (UnsupportedError, "INVALID_PARAMETERS"),
    (ModelLoadError, "MODEL_LOAD_FAILED"),
)
MEMORY_LIMIT_ENV = "SDCPP_WORKER_MEMORY_LIMIT_MB"
# The engine's lines when an allocation fails; the error it raises then only names the step.
ALLOCATION_FAILED = ("insufficient memory", "failed to allocate")


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space (``--worker-memory-mb``; 0: no cap): an allocation
    past it fails here (a failed job, or a crash the server records) instead of the machine
    swapping or the kernel's OOM killer choosing a victim."""
    if megabytes > 0:
        import resource

        limit = megabytes * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.environ[MEMORY_LIMIT_ENV] = str(megabytes)  # for the failure message


def failure(job_id: str, exc: Exception, allocation_failure: str | None = None) -> protocol.Failed:
    """The ``failed`` message for ``exc`` (``allocation_failure``: the engine's out-of-memory
    line, when it logged one)."""
    if isinstance(exc, MemoryError) or allocation_failure:
        return protocol.Failed(job_id=job_id, error=out_of_memory(allocation_failure), code=OOM)
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        message = f"the disk is full: {os.strerror(exc.errno or 0).lower()} writing the outputs"
        return protocol.Failed(job_id=job_id, error=message, code="INSUFFICIENT_STORAGE")
    code = next((c for t, c in ERROR_CODES if isinstance(exc, t)), "INTERNAL_ERROR")
    if code == "INTERNAL_ERROR":
        logger.exception("request %s failed", job_id)
    return protocol.Failed(job_id=job_id, error=str(exc) or repr(exc), code=code)


OOM = "OUT_OF_MEMORY"
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # what a full disk or quota raises


def out_of_memory(detail: str | None) -> str:
    """A failed job's message when memory ran out (a MemoryError carries no text)."""
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    where = f"the worker's limit of {limit} MiB (--worker-memory-mb)" if limit else "memory"
    said = f" ({detail})" if detail else ""
    return f"out of memory: this job needs more than {where}{said}; try a smaller size or batch"
