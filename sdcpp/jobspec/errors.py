"""Typed errors of job specs; the server's one error table maps them to status and code."""

from __future__ import annotations

from ..errors import InvalidArgument


class SpecError(InvalidArgument):
    """A spec that cannot run as given (bad value, unknown field, wrong version): 422."""


class LoraNotFound(SpecError):
    """A LoRA the request names is not in the LoRA directory: 404 before queuing."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(f"LoRA not found: {name!r} (put {name}.safetensors in {where})")
        self.name = name
        self.where = where
