"""The server's own exceptions: each names one failure; ``errors.EXCEPTION_TABLE`` alone gives
its (HTTP status, code), and each dialect renders that in its own envelope.

::

    ServerError                 message (+ headers, e.g. Retry-After)
    ├── BadRequest              400 INVALID_PARAMETERS   a request value we cannot use
    │   ├── UrlNotAllowed       400 URL_NOT_ALLOWED      SSRF rules refused the address
    │   └── AuthNotEnabled      400 AUTH_NOT_ENABLED     no accounts / logins on this server
    ├── AuthRequired            401 AUTH_REQUIRED
    ├── InvalidCredentials      401 INVALID_CREDENTIALS
    ├── Forbidden               403 INSUFFICIENT_PERMISSIONS
    │   └── FeatureDisabled     403 FEATURE_DISABLED     a switch (image download) is off
    ├── NotFound                404 NOT_FOUND
    │   ├── JobNotFound         404 JOB_NOT_FOUND        (also: another user's job)
    │   ├── UserNotFound        404 USER_NOT_FOUND
    │   └── KeyNotFound         404 KEY_NOT_FOUND
    ├── Conflict                409 CONFLICT
    │   ├── JobActive / JobNotCancellable / ModelNotLoaded / ModelInUse / ModelExists /
    │   └── UserExists / CannotChangeSelf / ConversionInProgress / PresetExists   409, own codes
    ├── PayloadTooLarge         413 PAYLOAD_TOO_LARGE
    ├── ModelInvalid            422 MODEL_INVALID        an upload that is no model
    ├── ScriptNotFound          422 SCRIPT_NOT_FOUND     an A1111 script we don't have
    ├── RateLimited             429 RATE_LIMITED
    ├── ClientGone              499 CANCELLED            the waiting client disconnected
    ├── DownloadFailed          502 DOWNLOAD_FAILED
    ├── Unavailable             503 SERVICE_UNAVAILABLE
    │   └── ShuttingDown        503 SHUTTING_DOWN
    ├── DownloadTimeout         504 DOWNLOAD_TIMEOUT
    ├── InsufficientStorage     507 INSUFFICIENT_STORAGE
    └── JobFailed               a job's own failure code (the worker's); status from the table

Library exceptions (``sdcpp.errors``, the registry's, the job spec's) are raised as they are;
the table maps them too. No status or code is written at a raise site.
"""

from __future__ import annotations


class ServerError(Exception):
    """Base of the server's failures: a message for the client, and headers to send."""

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.headers = message, headers


class BadRequest(ServerError):
    pass


class UrlNotAllowed(BadRequest):
    pass


class AuthNotEnabled(BadRequest):
    pass


class AuthRequired(ServerError):
    pass


class InvalidCredentials(ServerError):
    pass


class Forbidden(ServerError):
    pass


class FeatureDisabled(Forbidden):
    pass


class NotFound(ServerError):
    pass


class JobNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    pass


class KeyNotFound(NotFound):
    pass


class Conflict(ServerError):
    pass


class JobActive(Conflict):
    pass


class JobNotCancellable(Conflict):
    pass


class ModelNotLoaded(Conflict):
    pass


class ModelInUse(Conflict):
    pass


class ModelExists(Conflict):
    pass


class UserExists(Conflict):
    pass


class CannotChangeSelf(Conflict):
    pass


class ConversionInProgress(Conflict):
    pass


class PresetExists(Conflict):
    pass


class PayloadTooLarge(ServerError):
    pass


class ModelInvalid(ServerError):
    pass


class ScriptNotFound(ServerError):
    pass


class RateLimited(ServerError):
    pass


class ClientGone(ServerError):
    pass


class DownloadFailed(ServerError):
    pass


class Unavailable(ServerError):
    pass


class ShuttingDown(Unavailable):
    pass


class DownloadTimeout(ServerError):
    pass


class InsufficientStorage(ServerError):
    pass


class JobFailed(ServerError):
    """A job that did not complete, answered by a route that waited for it: ``code`` is the
    job's own (``MODEL_LOAD_FAILED``, ``OUT_OF_MEMORY``...), its status the table's for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
