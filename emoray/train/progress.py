"""A training stage's progress bar on the driver: epochs done of ``epochs``, with the last
epoch's accuracies. Ray Train calls ``after_report`` on its controller (an actor), which passes
each epoch on to a small counter actor; a driver thread reads it into the bar."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import ray
from ray.train import UserCallback

from emoray import console

_SHOWN = {"train_acc": "train", "val_acc": "val"}  # metric -> its name in the bar


@ray.remote(num_cpus=0)
class _Epochs:
    def __init__(self):
        self.last: dict = {}

    def put(self, metrics: dict) -> None:
        self.last = metrics

    def get(self) -> dict:
        return self.last


class _Reports(UserCallback):
    def __init__(self, epochs):
        self.epochs = epochs

    def after_report(self, run_context, metrics, checkpoint) -> None:
        if metrics and not metrics[0].get("final"):  # rank 0's row: the epoch and its scores
            self.epochs.put.remote(metrics[0])


@contextmanager
def epoch_bar(desc: str, epochs: int, poll_s: float = 1.0) -> Iterator[list[UserCallback]]:
    """The bar for the ``TorchTrainer`` run in the block; yields its ``RunConfig`` callbacks."""
    counter = _Epochs.remote()
    bar = console.bar(desc, epochs, "epoch")
    stop = threading.Event()

    def show() -> None:
        last = ray.get(counter.get.remote())
        if last.get("epoch", 0) > bar.n:
            bar.set_postfix({n: f"{100 * last[k]:.0f}%" for k, n in _SHOWN.items() if k in last},
                            refresh=False)
            bar.update(last["epoch"] - bar.n)

    def poll() -> None:
        while not stop.wait(poll_s):
            show()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield [_Reports(counter)]
    finally:
        stop.set()
        thread.join()
        show()
        bar.close()
        ray.kill(counter)
