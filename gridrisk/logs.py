"""One log format for every gridrisk process: the CLI, and each `gridrisk serve` worker.

uvicorn starts its workers with multiprocessing's spawn, so the CLI's own `logging.basicConfig` never ran in
them: with `--workers 2` the service's INFO lines (model swaps, sign-ins, reloads) were dropped, and its
warnings came out without time, level or logger. `dict_config` is handed to uvicorn, which applies it in the
parent and again in each worker. Standard library only: the CLI imports it for `gridrisk --help`.
"""

from __future__ import annotations

import logging
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The service's: with several workers, which process said it (a swap is logged once per worker).
SERVE_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
# Libraries whose INFO lines say nothing an operator acts on; their warnings still show.
NOISY = ("mlflow", "alembic", "urllib3", "py4j", "httpx", "numba", "matplotlib")


def configure(level: int) -> None:
    """This process's logging: gridrisk's format at `level`, the noisy libraries at WARNING. A handler left
    on a stream that has since closed (a caller that ran the CLI before, with its own stderr) is dropped
    first: each record written to it was a "--- Logging error ---" traceback."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
            root.removeHandler(handler)
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger().setLevel(
        level
    )  # also when a handler was there before (basicConfig then does nothing)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def dict_config(level: int) -> dict[str, Any]:
    """The same as `configure`, as the dictConfig uvicorn applies in every process it starts, uvicorn's own
    lines included (they had no time either)."""
    name = logging.getLevelName(level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gridrisk": {"format": SERVE_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "gridrisk",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": name},
        "loggers": {
            "uvicorn": {"level": "INFO"},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"level": "INFO"},
            **{noisy: {"level": "WARNING"} for noisy in NOISY},
        },
    }
