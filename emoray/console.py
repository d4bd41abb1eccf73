"""What a run shows on the terminal: one progress bar per stage and emoray's summary lines.

Quiet is the default: Ray's INFO logs, its workers' output (Ray Train's reports, Ray Data's
operator logs; all but emoray's own notices, lines that begin ``emoray:`` such as an object
store retry), the raylets' messages and Python warnings stay in Ray's log folder
(``ray-data.log``, the workers' ``worker-*.out``, and ``emoray-driver.log`` for the driver's
own; on a local Ray ``/tmp/ray/session_latest/logs``). Verbose, ``--verbose`` or
``EMORAY_VERBOSE=1`` (the way to say it to ``ray job submit``: ``--runtime-env-json
'{"env_vars": {"EMORAY_VERBOSE": "1"}}'``), brings them all back and Ray Data's own progress
bars instead of emoray's.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

import ray
from ray._private import worker as ray_worker
from ray._private.ray_logging import global_worker_stdstream_dispatcher
from tqdm import tqdm

VERBOSE_ENV = "EMORAY_VERBOSE"
DRIVER_LOG = "emoray-driver.log"

QUIET_LOGGERS = (
    "py.warnings",  # the driver's Python warnings (deprecations and the like)
    # A local Ray says so at every start: the cluster's setting, not a problem of the run.
    "ray._private.authentication.authentication_token_setup",
    # Ray Data's notes on its own progress bars (emoray's are shown instead) and their names.
    "ray.data._internal.progress",
    # What the raylets publish to the driver ("N PYTHON worker processes have been started"):
    # a failure that matters also reaches the run as an exception.
    "emoray.raylet",
)
"""Loggers that write only to ``DRIVER_LOG`` when quiet."""


def set_verbose(flag: bool) -> None:
    """``--verbose``: the same as ``EMORAY_VERBOSE=1``."""
    if flag:
        os.environ[VERBOSE_ENV] = "1"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def ray_init_options() -> dict:
    """``ray.init`` arguments: Ray's INFO logs reach the terminal only when verbose (workers'
    output: ``configure``). When quiet it first holds what ``QUIET_LOGGERS`` say (Ray says
    some while it starts) for ``configure`` to write to ``DRIVER_LOG``."""
    loud = verbose()
    if not loud:
        _route(_HELD)
    return {"log_to_driver": True, "logging_level": logging.INFO if loud else logging.WARNING}


def configure() -> None:
    """After ``ray.init``: Ray Data's progress bars and start-of-execution logs only when
    verbose; when quiet, Ray Data's console handler shows warnings and worse (its file keeps
    everything), ``QUIET_LOGGERS`` write to ``DRIVER_LOG`` in Ray's log folder, and of the
    workers' output only emoray's notices are shown."""
    loud = verbose()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = loud
    ctx.print_on_execution_start = loud
    if loud:
        return
    # Ray's handler of the workers' output (ray.init's log_to_driver) gives way to one that
    # passes on emoray's notices only; the workers' log files keep everything.
    global_worker_stdstream_dispatcher.remove_handler("ray_print_logs")
    global_worker_stdstream_dispatcher.remove_handler(_NOTICES)
    global_worker_stdstream_dispatcher.add_handler(_NOTICES, _notices)
    # The raylets' messages skip the dispatcher: Ray prints them with this module function.
    if not isinstance(ray_worker.print_to_stdstream, _RayletLog):
        ray_worker.print_to_stdstream = _RayletLog(ray_worker.print_to_stdstream)
    for h in logging.getLogger("ray.data").handlers:
        if isinstance(h, logging.StreamHandler):  # the console; ray-data.log keeps everything
            h.setLevel(logging.WARNING)
    driver_log = logging.FileHandler(os.path.join(log_dir(), DRIVER_LOG))
    driver_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _HELD.setTarget(driver_log)
    _HELD.flush()
    _route(driver_log)


_NOTICES = "emoray_notices"


def _notices(data: dict) -> None:
    for line in data.get("lines", []):
        if line.startswith("emoray:"):
            print(line, file=sys.stderr, flush=True)


class _RayletLog:
    """``print_to_stdstream`` that writes the raylets' messages to ``emoray.raylet``."""

    def __init__(self, print_lines):
        self.print_lines = print_lines

    def __call__(self, data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            return self.print_lines(data, ignore_prefix)
        for line in data.get("lines", []):
            logging.getLogger("emoray.raylet").warning(line)


_HELD = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1)


def _route(handler: logging.Handler) -> None:
    logging.captureWarnings(True)
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [handler], False


def log_dir() -> str:
    """Ray's log folder of this session on this node."""
    return ray._private.worker._global_node.get_logs_dir_path()


def bar(desc: str, total: int | None, unit: str) -> tqdm:
    """The progress bar of one stage (done/total, rate, ETA) on stderr; a log that is not a
    terminal gets an update every 10 s, not every step."""
    tty = sys.stderr.isatty()
    return tqdm(desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=tty,
                ncols=None if tty else 100, mininterval=0.5 if tty else 10.0)
