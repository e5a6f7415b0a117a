"""One ``Settings`` object: CLI flags -> environment (``SDCPP_*``, seed 004's
``STABLE_DIFFUSION_*``) -> config file (JSON or TOML) -> defaults."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument

# seed 004's variable names, honoured beside SDCPP_<NAME>
_SEED_ENV = {
    "port": "STABLE_DIFFUSION_PORT",
    "host": "STABLE_DIFFUSION_HOST",
    "models_dir": "STABLE_DIFFUSION_MODELS_DIR",
    "output_dir": "STABLE_DIFFUSION_OUTPUT_DIR",
    "verbose": "RUST_LOG",  # seed 004's debug switch: RUST_LOG=debug
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("sdcpp-data")
    models_dir: Path | None = None  # default: {data_dir}/models
    output_dir: Path | None = None  # default: {data_dir}/outputs
    model: str | None = None  # preload this model at start-up
    threads: int | None = None
    cors_origins: tuple[str, ...] = ()
    # Host names the server answers to (trusted_host.py, against DNS rebinding): empty means
    # loopback names only when bound to loopback; "*": any
    allowed_hosts: tuple[str, ...] = ()
    max_queue: int = 100
    # queued jobs one signed-in user may have at once (429 + Retry-After beyond; 0: no quota)
    max_queue_per_user: int = 0
    max_body_mb: int = 50
    max_image_pixels: int = 4096 * 4096
    cancel_grace: float = 10.0
    max_crashes: int = 2  # a job that crashed the worker this many times fails for good
    # SIGTERM: seconds the running job may take to finish before it is cancelled and re-queued
    shutdown_grace: float = 10.0
    job_timeout: float = 0.0  # a running job silent this many seconds is killed (0: never)
    # address-space limit of the worker process in MiB (RLIMIT_AS; 0: none): a job that needs
    # more fails with "out of memory" and the worker restarts, instead of the machine swapping
    worker_memory_mb: int = 0
    lease_seconds: float = 30.0  # a running job's lease; renewed every third of it
    # postgresql://user:pass@host/db: the job queue in PostgreSQL (pgstore.py), shared by
    # several processes; None: SQLite in {data_dir}/sdcpp.db (zero setup, the default)
    database_url: str | None = None
    # with database_url: run_worker False (serve --no-worker) runs the API only, the jobs run in
    # `sdcpp worker` processes; worker_models: a worker claims only jobs of these models
    run_worker: bool = True
    worker_models: tuple[str, ...] = ()
    # logging (server/logs.py): level, seed 004's verbose (= debug), rotated file, JSON lines
    log_level: str = "info"
    verbose: bool = False
    log_file: Path | None = None
    log_max_mb: int = 10  # the log file rotates at this size ...
    log_backups: int = 5  # ... keeping this many old files
    log_format: str = "text"  # or "json": one JSON object per line
    # GET /metrics: "loopback" (public to loopback clients, admins from elsewhere), "public",
    # "admin"
    metrics_access: str = "loopback"
    # slow or too many clients (server/listen.py, middleware.py): seconds a connection may take
    # to send its request headers, and its whole body; open connections before 503; seconds
    # an event stream may wait on a client that does not read
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 512
    sse_send_timeout: float = 30.0
    # The engine thread's priority (worker/engine_thread.py; README): its niceness, and Linux's
    # SCHED_IDLE class. Default nice 0, not idle: beside other CPU work generation takes its
    # fair share; in the idle class it got none and starved (bench/priority.py). Idle class or
    # a niceness favour the API's latency on a machine that has nothing else to do.
    worker_nice: int = 0
    worker_idle_priority: bool = False
    test_hooks: bool = False  # SDCPP_TEST_HOOKS=1: the worker honours crash/hang prompts
    # loaded models: contexts the worker keeps at once (least recently used out first), their
    # memory budget in MiB estimated from file sizes (0: none), and how long an unused one
    # stays loaded, in seconds or "30s"/"5m"/"1h" (0 or "none": until evicted)
    max_loaded_models: int = 1
    model_memory_mb: int = 0
    keep_alive: float = 0.0
    max_upload_mb: int = 65536  # POST /api/models/upload: the largest model file accepted
    # GET /api/image/download makes this server fetch client-chosen URLs: off unless asked for
    allow_image_download: bool = False
    # Host names (exact, e.g. an internal image server "images.lan") that may resolve to private
    # or loopback addresses for downloads; every other host must be public. Addresses are still
    # pinned and every redirect hop is checked again (fetch.py).
    download_trusted_hosts: tuple[str, ...] = ()
    download_max_mb: int = 20
    download_timeout: float = 10.0  # seconds for the whole download, redirects included
    # authentication (sdcpp/server/auth): comma-separated methods, see auth/service.py
    auth: tuple[str, ...] = ("none",)
    uds: Path | None = None  # also listen on this unix socket (peer uid = identity)
    pam_service: str = "sdcpp"  # /etc/pam.d/<name>
    admin_group: str = "sdcpp-admin"  # PAM and unix users in this group are admins
    token_lifetime: int = 8 * 3600  # seconds a JWT lives; refresh before it ends
    token_leeway: int = 10  # clock skew tolerated on exp/iat/nbf
    output_url_ttl: int = 24 * 3600  # signed output URLs stay valid at least this long
    login_max_failures: int = 5  # failed logins per user name within login_window ...
    login_max_failures_ip: int = 20  # ... or per client address ...
    login_window: float = 900.0
    login_lockout: float = 900.0  # ... lock that name or address out this long (429)
    # the web UI at /ui/ (server/webui.py): off with --no-webui; webui_dir serves a working copy
    webui: bool = True
    webui_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir) if self.models_dir else Path(self.data_dir) / "models"

    @property
    def outputs_path(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path(self.data_dir) / "outputs"

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / "sdcpp.db"

    @classmethod
    def load(
        cls,
        cli: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """Merge sources, highest first: CLI (non-None values), environment, config file."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        config_file = config_file or env.get("SDCPP_CONFIG")
        if config_file:
            values.update(_read_config(Path(config_file)))
        for f in fields(cls):
            raw = env.get(f"SDCPP_{f.name.upper()}") or env.get(_SEED_ENV.get(f.name, ""))
            if raw is not None and raw != "":
                values[f.name] = raw
        values.update({k: v for k, v in (cli or {}).items() if v is not None})
        return cls._coerce(values)

    @classmethod
    def _coerce(cls, values: Mapping[str, Any]) -> Settings:
        known = {f.name: f for f in fields(cls)}
        out: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                raise InvalidArgument(f"unknown setting {name!r}")
            out[name] = _convert(name, raw, cls.__dataclass_fields__[name].default)
        settings = replace(cls(), **out)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise InvalidArgument(f"port must be 1-65535, got {self.port}")
        if self.max_queue < 1:
            raise InvalidArgument("max_queue must be at least 1")
        if self.max_queue_per_user < 0:
            raise InvalidArgument("max_queue_per_user cannot be negative (0: no quota)")
        if self.log_level not in LOG_LEVELS or self.log_format not in ("text", "json"):
            raise InvalidArgument(
                f"log_level must be one of {', '.join(LOG_LEVELS)}; log_format text or json"
            )
        if self.metrics_access not in ("loopback", "public", "admin"):
            raise InvalidArgument("metrics_access must be loopback, public or admin")
        if min(self.header_timeout, self.body_timeout, self.sse_send_timeout) <= 0:
            raise InvalidArgument("header_timeout, body_timeout, sse_send_timeout must be > 0")
        if self.max_connections < 1 or self.log_max_mb < 1 or self.log_backups < 0:
            raise InvalidArgument("max_connections, log_max_mb >= 1; log_backups >= 0")
        if self.lease_seconds <= 0 or self.shutdown_grace < 0 or self.job_timeout < 0:
            raise InvalidArgument(
                "lease_seconds must be positive; shutdown_grace, job_timeout >= 0"
            )
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise InvalidArgument("database must be a postgresql:// URL (default: SQLite)")
        if not self.run_worker and self.database_url is None:
            raise InvalidArgument(
                "--no-worker needs --database postgresql://… (the jobs run "
                "in `sdcpp worker` processes on that database)"
            )
        if self.max_loaded_models < 1:
            raise InvalidArgument("max_loaded_models must be at least 1")
        if self.model_memory_mb < 0 or self.keep_alive < 0 or self.worker_memory_mb < 0:
            raise InvalidArgument(
                "model_memory_mb, worker_memory_mb and keep_alive cannot be negative"
            )
        if self.threads is not None and self.threads < 1:
            raise InvalidArgument("threads must be at least 1")
        auth_methods(self.auth)
        if self.token_lifetime < 60 or self.output_url_ttl < 60:
            raise InvalidArgument("token_lifetime and output_url_ttl must be at least 60 s")
        if self.login_max_failures < 1 or self.login_max_failures_ip < 1:
            raise InvalidArgument("login_max_failures(_ip) must be at least 1")

    @property
    def auth_methods(self) -> tuple[str, ...]:
        return auth_methods(self.auth)


AUTH_METHODS = ("none", "optional", "jwt", "api-key", "pam", "unix")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def auth_methods(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The ``auth`` setting as a checked tuple; ``optional`` alone means ``jwt,api-key``
    with guests (see auth/service.py)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    methods = tuple(dict.fromkeys(x.strip().lower() for x in items if x.strip()))
    unknown = [m for m in methods if m not in AUTH_METHODS]
    if unknown:
        raise InvalidArgument(f"unknown auth method {unknown[0]!r}; use {', '.join(AUTH_METHODS)}")
    if not methods:
        return ("none",)
    if "none" in methods and len(methods) > 1:
        raise InvalidArgument("auth 'none' cannot be combined with other methods")
    if methods == ("optional",):
        return ("optional", "jwt", "api-key")
    return methods


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read config file {path}: {exc}") from exc
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"config file {path} must hold an object")
    return {k.replace("-", "_"): v for k, v in data.items()}


def _convert(name: str, raw: Any, default: Any) -> Any:
    if name in ("data_dir", "models_dir", "output_dir", "uds", "webui_dir"):
        return Path(raw).expanduser()
    if name == "auth":
        return auth_methods(raw)
    if name == "log_file":
        return Path(raw).expanduser()
    if name in ("log_level", "log_format", "metrics_access"):
        text = str(raw).strip().lower()
        return {"warn": "warning", "trace": "debug"}.get(text, text)
    if name == "verbose" and isinstance(raw, str):  # seed 004: RUST_LOG=debug
        return raw.strip().lower() in ("1", "true", "yes", "on", "debug", "trace")
    if name == "keep_alive":
        return _seconds(name, raw)
    if name in ("cors_origins", "allowed_hosts", "worker_models", "download_trusted_hosts"):
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(x.strip() for x in items if x.strip())
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        return str(raw).strip().lower() in ("1", "true", "yes", "on")
    try:
        if isinstance(default, int) or name in ("threads",):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError):
        raise InvalidArgument(f"setting {name}: not a number: {raw!r}") from None
    return raw


def _seconds(name: str, raw: Any) -> float:
    """A duration like Ollama's keep_alive: seconds, or with an s/m/h unit; none/never: 0."""
    text = str(raw).strip().lower()
    if text in ("", "none", "never"):
        return 0.0
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1], 0)
    try:
        return float(text[:-1]) * scale if scale else float(text)
    except ValueError:
        raise InvalidArgument(f"setting {name}: not a duration: {raw!r}") from None
