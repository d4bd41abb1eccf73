"""Learning-rate schedules as pure functions of training progress (so a resumed run picks up
the same rate from its epoch count, with no scheduler state to checkpoint)."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "onecycle")
WARMUP = 0.3  # onecycle: share of training spent rising to the peak rate
START_DIV = 25.0  # onecycle: the first step's rate is lr / START_DIV
END_DIV = 1e4  # onecycle: the last step's rate is lr / END_DIV


def lr_at(kind: str, lr: float, progress: float) -> float:
    """The rate at ``progress`` in [0, 1] (fraction of all training steps done).

    ``constant``: ``lr`` throughout (the paper's Adam). ``onecycle``: cosine warm-up from
    ``lr / 25`` to ``lr`` over the first 30%, then cosine annealing to ``lr / 1e4``.
    """
    if kind == "constant":
        return lr
    if kind != "onecycle":
        raise ValueError(f"unknown schedule {kind!r}; choose one of {list(SCHEDULES)}")
    p = min(max(progress, 0.0), 1.0)
    if p < WARMUP:
        return _cosine(lr / START_DIV, lr, p / WARMUP)
    return _cosine(lr, lr / END_DIV, (p - WARMUP) / (1 - WARMUP))


def _cosine(start: float, end: float, t: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2
