"""``sdcpp serve``: run the REST server (uvicorn) on the settings from flags, env and config."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server.settings import Settings

logger = logging.getLogger("sdcpp.serve")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="run the REST server")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--data-dir", help="database, outputs, secrets (default ./sdcpp-data)")
    serve.add_argument("--models-dir", help="models (default {data-dir}/models)")
    serve.add_argument("--output-dir", help="generated files (default {data-dir}/outputs)")
    serve.add_argument("--model", help="default model (name, id or path inside the models dir)")
    serve.add_argument("--threads", type=int, help="engine threads (default: physical cores)")
    serve.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        help="allowed browser origin (repeatable)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        help="a host name clients may use, *.example for a domain (repeatable; default: "
        "loopback names only when bound to loopback, anything otherwise; '*': any)",
    )
    serve.add_argument("--max-queue", type=int, help="queued jobs before 503 (default 100)")
    serve.add_argument(
        "--max-loaded-models", type=int, help="models kept loaded at once, LRU (default 1)"
    )
    serve.add_argument(
        "--model-memory-mb", type=int, help="memory budget of loaded models (default: none)"
    )
    serve.add_argument(
        "--keep-alive", help="unload a model unused this long: 300, 5m, 1h (default: never)"
    )
    serve.add_argument(
        "--auth",
        help="none (default), optional, jwt, api-key, pam, unix, or several: pam,api-key",
    )
    serve.add_argument("--uds", help="also listen on this unix socket (with --auth unix: peer uid)")
    serve.add_argument("--pam-service", help="PAM service name, /etc/pam.d/NAME (default sdcpp)")
    serve.add_argument("--admin-group", help="system group whose members are admins")
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        help="on SIGTERM/SIGINT: new jobs get 503, reads go on, and the running job has this "
        "many seconds to finish before it is cancelled and re-queued; a second signal "
        "cancels at once (default 10)",
    )
    serve.add_argument(
        "--job-timeout",
        type=float,
        help="fail a running job that reports no progress for this many seconds, killing "
        "its worker (default 0: never)",
    )
    serve.add_argument(
        "--worker-memory-mb",
        type=int,
        help="address-space limit of the worker process (RLIMIT_AS): a job needing more fails "
        "with 'out of memory' and the worker restarts (default 0: no limit)",
    )
    serve.add_argument(
        "--max-crashes", type=int, help="worker crashes before a job fails for good (default 2)"
    )
    serve.add_argument("--webui-dir", help="serve the web UI from this folder (development)")
    serve.add_argument(
        "--no-webui", dest="webui", action="store_const", const=False, help="no web UI at /ui/"
    )
    ops = serve.add_argument_group("operations (logging, metrics, limits)")
    ops.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error", "critical"),
        help="server log level (default info: one access line per request); debug also "
        "forwards the worker's and engine's own lines (seed 004: verbose=true, RUST_LOG=debug)",
    )
    ops.add_argument("--log-file", help="also log to this file, rotated by size")
    ops.add_argument("--log-max-mb", type=int, help="rotate the log file at this size (10)")
    ops.add_argument("--log-backups", type=int, help="rotated log files kept (default 5)")
    ops.add_argument("--log-format", choices=("text", "json"), help="text (default) or JSON lines")
    ops.add_argument(
        "--metrics-access",
        choices=("loopback", "public", "admin"),
        help="who may GET /metrics: loopback (default: anyone on this machine, admins from "
        "elsewhere), public, or admin",
    )
    ops.add_argument(
        "--max-queue-per-user",
        type=int,
        help="queued jobs one signed-in user may have; more get 429 (default 0: no quota)",
    )
    ops.add_argument(
        "--max-connections", type=int, help="open connections before 503 (default 512)"
    )
    ops.add_argument(
        "--header-timeout",
        type=float,
        help="seconds a client has to send its request headers, else 408 (default 10)",
    )
    ops.add_argument(
        "--body-timeout",
        type=float,
        help="seconds a client has to send its request body, else 408 (default 60)",
    )
    ops.add_argument(
        "--worker-nice",
        type=int,
        help="niceness of the engine thread, 0-19 (default 0: generation competes with "
        "other CPU work as an equal)",
    )
    ops.add_argument(
        "--worker-idle-priority",
        action=argparse.BooleanOptionalAction,
        help="run the engine thread in Linux's SCHED_IDLE class: the API never waits behind "
        "it, but any other CPU work starves generation (default off; see README)",
    )
    serve.add_argument(
        "--database",
        dest="database_url",
        metavar="URL",
        help="keep the job queue in PostgreSQL, postgresql://user:pass@host/db (needs "
        "'sdcpp[postgres]'; default: SQLite in the data dir)",
    )
    serve.add_argument(
        "--no-worker",
        dest="run_worker",
        action="store_const",
        const=False,
        help="with --database: run the API only; jobs run in `sdcpp worker` processes",
    )
    serve.add_argument("--config", help="JSON or TOML file with any of these settings")
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..server import Settings, create_app, listen, logs
    from ..server.datadir import DataDirBusy, DataDirLock

    cli = {
        k: getattr(args, k)
        for k in (
            "host",
            "port",
            "data_dir",
            "models_dir",
            "output_dir",
            "model",
            "threads",
            "cors_origins",
            "allowed_hosts",
            "max_queue",
            "max_loaded_models",
            "model_memory_mb",
            "keep_alive",
            "auth",
            "uds",
            "pam_service",
            "admin_group",
            "shutdown_grace",
            "job_timeout",
            "max_crashes",
            "worker_memory_mb",
            "database_url",
            "run_worker",
            "log_level",
            "log_file",
            "log_max_mb",
            "log_backups",
            "log_format",
            "metrics_access",
            "max_queue_per_user",
            "max_connections",
            "header_timeout",
            "body_timeout",
            "worker_nice",
            "worker_idle_priority",
            "webui",
            "webui_dir",
        )
    }
    if getattr(args, "verbose", False):  # sdcpp -v serve
        cli["verbose"] = True
    settings = Settings.load(cli=cli, config_file=args.config)
    logs.configure(settings)  # one stream: API, uvicorn, worker, engine (server/logs.py)
    try:  # before the port is bound: a second server on this dir changes nothing
        data_lock = DataDirLock(settings.data_dir).acquire()
    except DataDirBusy as exc:
        logger.error("%s", exc)
        return 1
    if settings.database_url and (problem := _database_problem(settings)) is not None:
        logger.error("%s", problem)  # before the port is bound, and never a traceback
        data_lock.release()
        return 1
    if not _is_loopback(settings.host) and settings.auth_methods == ("none",):
        logger.warning(
            "LISTENING ON %s WITHOUT AUTHENTICATION: anyone who can reach this port "
            "can use the server (see --auth)",
            settings.host,
        )
    # One start-up line at INFO (the CLI's root level is WARNING; this logger says more).
    logger.setLevel(logging.INFO)
    url = f"http://{settings.host}:{settings.port}"
    logger.info(
        "sdcpp serve on %s: data in %s, %d model(s) in %s, auth %s, %s",
        url,
        settings.data_dir,
        _count_models(settings.models_path),
        settings.models_path,
        ",".join(settings.auth_methods),
        f"web UI at {url}/ui/" if settings.webui else "web UI off (--no-webui)",
    )
    listen.run(
        create_app(settings, data_lock=data_lock),
        settings,
        log_level="debug" if logs.level_of(settings) <= logging.DEBUG else "warning",
        access_log=False,  # server/logs.py writes one access line per request
        # the job drain (listen.py) has used the grace by the time uvicorn closes connections
        timeout_graceful_shutdown=1,
    )
    return 0


def _database_problem(settings: Settings) -> str | None:
    """Why the PostgreSQL job store cannot be used (psycopg missing, server unreachable, a
    newer schema), or None once it opened (and migrated) fine."""
    from ..server.pgstore import DatabaseUnavailable
    from ..server.store_api import open_job_store

    try:
        open_job_store(settings).close()
    except (DatabaseUnavailable, RuntimeError, ValueError) as exc:
        return str(exc)
    return None


def _count_models(models_dir: str | Path) -> int:
    from ..registry.paths import scan

    # Files only (no detection): the count a user checks against what they put in the folder.
    return sum(1 for _ in scan(Path(models_dir)))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
