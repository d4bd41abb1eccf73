"""What a job command does around its work: a config error exits 2 before Ray starts, the work
runs on the cluster ``init_ray`` joins, quiet unless ``--verbose`` (``emoray.console``), and a
failure is one line with credentials redacted (exit 1)."""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable, TypeVar

import ray.exceptions
import ray.train

from emoray import console
from emoray.config import ConfigError
from emoray.redact import redact
from emoray.raycluster import init_ray

C = TypeVar("C")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options every job command takes: ``--num-cpus`` and ``--verbose``."""
    p.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (ignored on a cluster)")
    p.add_argument("--verbose", action="store_true",
                   help=f"show Ray's own logs, its workers' output and warnings too (or set "
                        f"{console.VERBOSE_ENV}=1)")


def run_command(prog: str, configure: Callable[[], C], work: Callable[[C], int],
                args: argparse.Namespace, ray: bool = True) -> int:
    """``work(configure())`` on Ray (``ray=False``: without it) with ``args`` of
    ``add_run_options``; returns the exit status."""
    try:
        cfg = configure()
    except ConfigError as e:
        print(f"{prog}: config error: {e}", file=sys.stderr)
        return 2
    console.set_verbose(args.verbose)
    try:
        if ray:
            init_ray(args.num_cpus)
        return work(cfg)
    except Exception as e:  # noqa: BLE001 - report without leaking credentials
        if console.verbose():
            print(redact("".join(traceback.format_exception(e))), file=sys.stderr)
        print(f"{prog}: failed: {redact(failure_line(e))}", file=sys.stderr)
        return 1


def failure_line(e: BaseException) -> str:
    """The error that started a failure, as one line: a Ray task's or training worker's own
    error, not Ray's wrapper of it (whose message holds the remote traceback)."""
    while True:
        if isinstance(e, ray.exceptions.RayTaskError) and e.cause is not None:
            e = e.cause
        elif isinstance(e, ray.train.WorkerGroupError) and e.worker_failures:
            e = e.worker_failures[min(e.worker_failures)]
        elif isinstance(e, ray.train.ControllerError):
            e = e.controller_failure
        elif isinstance(e, ray.exceptions.UserCodeException) and e.__cause__ is not None:
            e = e.__cause__
        else:
            break
    lines = f"{type(e).__name__}: {e}".strip().splitlines()
    return lines[0]
