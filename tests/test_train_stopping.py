"""Early stopping (``patience``), the best validation epoch as the final model (``keep_best``)
and a resumed run that refuses a changed split, through Ray Train on the session's local Ray
with one worker, on toy shards (seconds an epoch)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from emoray import manifest
from emoray.artifact import load_model
from emoray.train import train, train_config
from emoray.train.loop import predict
from test_train import ray_cluster  # noqa: F401 - the fixture
from toy_shards import write_toy_shards

PATIENCE, EPOCHS = 2, 40


def config(data, storage, **protocol):
    return train_config({
        "name": "stopping", "data": data, "storage": str(storage), "stages": ["audio"],
        "protocol": {"kind": "random", "seed": 0, "test_fraction": 0.2, "val_fraction": 0.2,
                     **protocol},
        "workers": {"num_workers": 1},
        "audio": {"preset": "paper", "model": {"channels": [8, 8], "hidden": [16]},
                  "epochs": EPOCHS, "patience": PATIENCE, "keep_best": True}})


@pytest.fixture(scope="module")
def run(ray_cluster, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("stopping")
    data = write_toy_shards(str(root / "shards"))
    audio = train(config(data, root / "runs"))["stages"]["audio"]["splits"]["random"]
    return data, root / "runs", audio


def test_patience_stops_after_that_many_epochs_without_a_better_validation_uar(run):
    _, _, audio = run
    history, best = audio["history"], audio["best_epoch"]
    assert audio["epochs_run"] == len(history) == best + PATIENCE < EPOCHS
    assert all(h["val_uar"] <= history[best - 1]["val_uar"] for h in history[best:])
    assert all(h["val_uar"] < history[best - 1]["val_uar"] for h in history[:best - 1])


def test_keep_best_ships_the_best_validation_epoch(run):
    """The artifact scores the validation set exactly as the best epoch did, not as the last."""
    data, runs, audio = run
    (split,) = json.loads((runs / "stopping" / "splits.json").read_text())
    table = pq.read_table(manifest.shard_uris(data))
    val = table.filter(np.isin(table.column("trial_id").to_numpy(zero_copy_only=False),
                               split["val"]))
    batch = {"audio": val.column("audio").combine_chunks().to_numpy_ndarray(),
             "label": val.column("label").to_numpy()}
    model, _ = load_model(audio["artifact"])
    with torch.no_grad():
        loss = predict(model, [batch], ["audio"], "cpu", loss_fn=torch.nn.CrossEntropyLoss())
    best, last = audio["history"][audio["best_epoch"] - 1], audio["history"][-1]
    assert loss["loss"] == pytest.approx(best["val_loss"], rel=1e-4)
    assert abs(loss["loss"] - last["val_loss"]) > 1e-3


def test_a_resumed_run_refuses_a_changed_split(run):
    data, runs, _ = run
    with pytest.raises(ValueError, match="started with other splits"):
        train(config(data, runs, seed=1))
