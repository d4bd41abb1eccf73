"""A whole training run: every configured stage on every split, then the report.

Run folder ``<storage>/<name>/``::

    config.json                   the validated config
    splits.json                   trial ids of each split (a resumed run must reproduce them)
    checkpoints/<split>-<stage>/  Ray Train runs (checkpoint every epoch)
    models/<split>/<stage>.pt     model artifacts (``emoray.artifact``)
    report/                       metrics.json, summary.md, confusion_*.png, curves_*.png
"""

from __future__ import annotations

import dataclasses
import json

from emoray import manifest, storage
from emoray.artifact import load_model
from emoray.train.config import STAGES, TrainConfig
from emoray.train.report import write_report
from emoray.train.splits import Split, make_splits, read_metadata
from emoray.train.stage import run_stage


def train(cfg: TrainConfig) -> dict:
    """Run ``cfg`` on the connected Ray cluster; returns the report's metrics."""
    run_uri = storage.join(cfg.storage, cfg.name)
    features = manifest.feature_config(cfg.data)
    meta = read_metadata(cfg.data)
    splits = _pinned_splits(run_uri, make_splits(meta, cfg.protocol))
    _check_resumable(run_uri, cfg)
    storage.write_bytes(storage.join(run_uri, "config.json"),
                        json.dumps(dataclasses.asdict(cfg), indent=2).encode())
    results = []
    for split in splits:
        branches = {"audio": cfg.audio_model, "video": cfg.video_model}
        for kind, uri in branches.items():
            if "fusion" in cfg.stages and kind not in cfg.stages:
                _check_branch(uri, cfg, split, features)
        for kind in cfg.stages:
            result = run_stage(kind, cfg, split, meta, features, run_uri, branches)
            if kind != "fusion":
                branches[kind] = result["artifact"]
            results.append(result)
    return write_report(storage.join(run_uri, "report"), cfg, splits, results)


def _check_branch(uri: str, cfg: TrainConfig, split: Split, features) -> None:
    """A given branch artifact must fit the features and have been trained on this split, or
    fusion's test set would hold trials a branch learned from."""
    _, info = load_model(uri, expect_features=features)
    trained = (info.training.get("protocol"), info.training.get("split"))
    if trained != (dataclasses.asdict(cfg.protocol), split.name):
        raise ValueError(f"{uri}: trained with protocol {trained[0]} (split {trained[1]!r}), "
                         f"not this run's {dataclasses.asdict(cfg.protocol)} (split "
                         f"{split.name!r}); fusion needs branches trained on the same split")


RESUMABLE_CHANGES = ("epochs", "patience")
"""Stage fields a resumed run may change; everything else decides what its checkpoints hold."""


def _check_resumable(run_uri: str, cfg: TrainConfig) -> None:
    uri = storage.join(run_uri, "config.json")
    if not storage.exists(uri):
        return
    old, new = json.loads(storage.read_bytes(uri)), dataclasses.asdict(cfg)
    changed = [f"{k}.{f}" for k in STAGES if k in old["stages"] and k in new["stages"]
               for f in new[k] if f not in RESUMABLE_CHANGES and old[k].get(f) != new[k][f]]
    changed += [k for k in ("data", "seed") if old[k] != new[k]]
    if changed:
        raise ValueError(f"{run_uri} was started with other settings ({', '.join(changed)}); "
                         "resume with the same ones or use a new run name")


def _pinned_splits(run_uri: str, splits: list[Split]) -> list[Split]:
    """Store the splits on a run's first start; on a resume, insist they are unchanged."""
    uri = storage.join(run_uri, "splits.json")
    fresh = [s.to_dict() for s in splits]
    if storage.exists(uri):
        if json.loads(storage.read_bytes(uri)) != fresh:
            raise ValueError(f"{uri}: this run was started with other splits (changed data or "
                             "protocol); use a new run name")
    else:
        storage.write_bytes(uri, json.dumps(fresh).encode())
    return splits
