"""``sdcpp worker``: one engine worker on a PostgreSQL queue, with no HTTP API of its own.

    sdcpp worker --database postgresql://… --models-dir /srv/models [--models NAME…]
                 [--output-dir /mnt/shared/outputs] [--threads N]

It claims queued jobs (only those of ``--models`` when given: per-model claiming, so a model
stays loaded where it is), runs them on its engine, renews their leases, writes progress and
reads cancel requests through the database (``server/cluster.py``), and shows itself in every
API process's ``/api/status``. SIGTERM/SIGINT drain: no new job, the running one has
``--shutdown-grace`` seconds, then it is stopped and given back to the queue.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger("sdcpp.worker")

_FLAGS = (
    "database_url",
    "data_dir",
    "models_dir",
    "output_dir",
    "threads",
    "worker_models",
    "shutdown_grace",
    "job_timeout",
    "max_crashes",
    "worker_memory_mb",
    "max_loaded_models",
    "model_memory_mb",
    "keep_alive",
    "log_level",
    "log_format",
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = sub.add_parser("worker", help="run one engine worker on a PostgreSQL job queue")
    worker.add_argument(
        "--database", dest="database_url", metavar="URL", help="postgresql://user:pass@host/db"
    )
    worker.add_argument(
        "--models",
        dest="worker_models",
        nargs="+",
        metavar="NAME",
        help="claim only jobs of these model files (name with or without extension; "
        "default: every job)",
    )
    worker.add_argument("--data-dir", help="uploaded inputs (default ./sdcpp-data)")
    worker.add_argument("--models-dir", help="models (default {data-dir}/models)")
    worker.add_argument(
        "--output-dir", help="where outputs go: the folder every API process serves"
    )
    worker.add_argument("--threads", type=int, help="engine threads of every job run here")
    worker.add_argument("--shutdown-grace", type=float, help="on SIGTERM (default 10 s)")
    worker.add_argument("--job-timeout", type=float, help="kill a job silent this long")
    worker.add_argument("--max-crashes", type=int, help="crashes before a job fails (2)")
    worker.add_argument("--worker-memory-mb", type=int, help="RLIMIT_AS of the engine process")
    worker.add_argument("--max-loaded-models", type=int, help="models kept loaded (default 1)")
    worker.add_argument("--model-memory-mb", type=int, help="memory budget of loaded models")
    worker.add_argument("--keep-alive", help="unload a model unused this long")
    worker.add_argument("--log-level", choices=("debug", "info", "warning", "error", "critical"))
    worker.add_argument("--log-format", choices=("text", "json"))
    worker.add_argument("--config", help="JSON or TOML file with any of these settings")
    worker.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..server import Settings, logs
    from ..server.cluster_worker import Worker

    settings = Settings.load(cli={k: getattr(args, k) for k in _FLAGS}, config_file=args.config)
    if not settings.database_url:
        logger.error("sdcpp worker needs --database postgresql://… (or SDCPP_DATABASE_URL)")
        return 1
    logs.configure(settings)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    worker = Worker(settings)  # connects, migrates, starts the engine
    logger.setLevel(logging.INFO)
    logger.info(
        "sdcpp worker %s on %s: models %s, outputs in %s",
        worker.service.worker_id,
        worker.location,
        ", ".join(settings.worker_models) or "all",
        settings.outputs_path,
    )
    worker.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        logger.info("draining: the running job has %g s", settings.shutdown_grace)
        worker.stop()
    return 0
