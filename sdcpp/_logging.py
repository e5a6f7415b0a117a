"""Route the engine's log lines to ``logging.getLogger("sdcpp.native")``.

The engine logs from loader threads too; the native trampoline takes the GIL for each line.
``set_log_callback`` replaces the routing with a function of (level, text), or restores it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import _native

native_logger = logging.getLogger("sdcpp.native")

LOG_LEVELS = {
    int(_native.LogLevel.DEBUG): logging.DEBUG,
    int(_native.LogLevel.INFO): logging.INFO,
    int(_native.LogLevel.WARN): logging.WARNING,
    int(_native.LogLevel.ERROR): logging.ERROR,
}
_LEVEL_NAMES = {
    int(_native.LogLevel.DEBUG): "debug",
    int(_native.LogLevel.INFO): "info",
    int(_native.LogLevel.WARN): "warning",
    int(_native.LogLevel.ERROR): "error",
}


def _to_logging(level: int, text: str) -> None:
    py_level = LOG_LEVELS.get(level, logging.INFO)
    if native_logger.isEnabledFor(py_level):
        native_logger.log(py_level, "%s", text.rstrip("\n"))


def set_log_callback(callback: Callable[[str, str], Any] | None) -> None:
    """Send engine log lines to ``callback(level_name, text)``; None restores ``logging``."""
    if callback is None:
        _native.set_log_callback(_to_logging)
        return

    def forward(level: int, text: str) -> None:
        callback(_LEVEL_NAMES.get(level, "info"), text)

    _native.set_log_callback(forward)


set_log_callback(None)
