"""What a job command does around its work: a config error exits 2 before Ray starts, the work
runs on the cluster ``init_ray`` joins, and a failure is one line with credentials redacted
(exit 1)."""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

from emoray.config import ConfigError
from emoray.redact import redact
from emoray.raycluster import init_ray

C = TypeVar("C")


def run_command(prog: str, configure: Callable[[], C], work: Callable[[C], int],
                num_cpus: int | None = None, ray: bool = True) -> int:
    """``work(configure())`` on Ray (``ray=False``: without it); returns the exit status."""
    try:
        cfg = configure()
    except ConfigError as e:
        print(f"{prog}: config error: {e}", file=sys.stderr)
        return 2
    if ray:
        init_ray(num_cpus)
    try:
        return work(cfg)
    except Exception as e:  # noqa: BLE001 - report without leaking credentials
        print(f"{prog}: failed: {redact(f'{type(e).__name__}: {e}')}", file=sys.stderr)
        return 1
