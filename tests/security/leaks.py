"""The schemathesis check that no answer shows a Python internal, registered once.

schemathesis refuses a second check of the same name, and under ``--import-mode=importlib``
a test module imported by another (the stateful suite imports ``test_schemathesis``) is a
second module instance: so the check lives here, a plain module imported once by name.
"""

from __future__ import annotations

import re

import schemathesis
from schemathesis.checks import CheckContext

# What a user must never see in an answer: a Python repr or a traceback (DEVELOPERS.md).
PYTHON_LEAKS = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>|Traceback \(most recent call")


@schemathesis.check
def no_python_repr(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """No answer carries a Python object repr or a traceback, whatever the input."""
    if response.status_code >= 400 and (leak := PYTHON_LEAKS.search(response.text or "")):
        raise AssertionError(f"a Python internal reached the client: {leak.group(0)!r}")
