"""Training config: one YAML per recipe (``jobs/configs/train_*.yaml``), validated up front.

Each stage (audio, video, fusion) names a ``preset`` (``paper`` or ``default``) that supplies
its model architecture and the training settings the YAML leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from emoray.config import ConfigError, build, check_name, check_uri, load_yaml
from emoray.models.config import model_config

STAGES = ("audio", "video", "fusion")

RECIPES = {
    # Sultana et al.: Adam 1e-3, batch 32, plain cross-entropy, fixed epochs.
    "paper": {"audio": {"epochs": 25}, "video": {"epochs": 20}, "fusion": {"epochs": 12}},
    # emoray: AdamW with a one-cycle rate, class-balanced and label-smoothed loss. The final
    # (annealed) weights are kept: picking the best epoch on a few validation actors, or
    # stopping early, chases noise (in tests it kept epoch 23 of 60 and lost 10 points).
    "default": {kind: {"epochs": epochs, "lr": 3e-3, "schedule": "onecycle",
                       "weight_decay": 1e-2, "label_smoothing": 0.1, "class_weights": True}
                for kind, epochs in (("audio", 60), ("video", 30), ("fusion", 20))},
}


@dataclass
class ProtocolConfig:
    kind: Literal["random", "actors", "all"] = "random"  # all: train on every actor, no test
    #                                                       (the model to ship)
    seed: int = 0
    test_fraction: float = 0.2  # random: share of each class held out for testing
    val_fraction: float = 0.2  # share of the non-test trials (random) or actors (actors) for
    #                            validation; 0 trains on all of them and disables early stopping
    test_actors: list[int] = field(default_factory=list)  # actors: held-out speakers, or
    folds: int = 0  # actors: k folds by actor (when test_actors is empty)

    def validate(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("protocol.val_fraction: must be in [0, 1)")
        if self.kind == "random" and not 0 < self.test_fraction < 1:
            raise ConfigError("protocol.test_fraction: must be in (0, 1)")
        if self.kind == "actors" and bool(self.test_actors) == bool(self.folds):
            raise ConfigError("protocol: for kind 'actors' set exactly one of test_actors "
                              "(list of actor ids) or folds (k >= 2)")
        if self.kind != "actors" and (self.test_actors or self.folds):
            raise ConfigError("protocol: test_actors / folds need kind: actors")


@dataclass
class StageConfig:
    preset: Literal["paper", "default"] = "paper"
    model: dict = field(default_factory=dict)  # overrides of the preset's architecture fields
    epochs: int = 25
    batch_size: int = 32
    lr: float = 0.001
    schedule: Literal["constant", "onecycle"] = "constant"  # learning rate over training
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    class_weights: bool = False  # weight the loss by inverse class frequency
    mixup: float = 0.0  # Beta(mixup, mixup) mixing of pairs of training clips; 0: off
    patience: int = 0  # stop after this many epochs without a better validation UAR; 0: never
    #                    (with the onecycle schedule, stopping early cuts the annealing short)
    keep_best: bool = False  # final model: the best validation UAR epoch (else the last epoch)
    shuffle_buffer: int = 1024  # rows per worker shuffled together each epoch (the training
    # split is shuffled across blocks once, and its blocks are read in a new order each epoch)
    channel_copies: int = 0  # audio: hear each training actor this many more times, each
    #     copy through a recording channel drawn at random (emoray.features.channels), a
    #     speaker of its own; an epoch then holds (1 + copies) times the clips

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1")
        if self.lr <= 0:
            raise ConfigError("lr: must be > 0")
        if self.mixup < 0:
            raise ConfigError("mixup: must be >= 0 (0 turns it off)")
        if self.channel_copies < 0:
            raise ConfigError("channel_copies: must be >= 0 (0 turns it off)")


@dataclass
class WorkersConfig:
    num_workers: int = 2
    use_gpu: bool | Literal["auto"] = "auto"  # auto: use GPUs when the cluster has any
    cpus_per_worker: float | None = None  # None: share the CPUs, keeping some for Ray Data
    max_failures: int = 3  # worker failures to recover from (from the last checkpoint)

    def validate(self) -> None:
        if self.num_workers < 1:
            raise ConfigError("workers.num_workers: must be >= 1")
        if self.cpus_per_worker is not None and self.cpus_per_worker <= 0:
            raise ConfigError("workers.cpus_per_worker: must be > 0")


@dataclass
class TrainConfig:
    name: str  # run name; the same name + storage resumes the run
    data: str  # preprocessing output (folder or s3:// prefix with manifest.json)
    storage: str  # runs root (folder or s3:// prefix); the run lives in <storage>/<name>
    stages: list[Literal["audio", "video", "fusion"]] = field(
        default_factory=lambda: list(STAGES))
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    audio: StageConfig = field(default_factory=StageConfig)
    video: StageConfig = field(default_factory=StageConfig)
    fusion: StageConfig = field(default_factory=StageConfig)
    audio_model: str | None = None  # fusion without an audio stage: the audio artifact
    video_model: str | None = None  # fusion without a video stage: the video artifact
    cache_data: bool = True  # hold each split's rows in the object store instead of
    #                          re-reading the shards every epoch
    seed: int = 0  # model initialisation and shuffling

    def validate(self) -> None:
        check_name("name", self.name)
        for name in ("data", "storage", "audio_model", "video_model"):
            if getattr(self, name) is not None:
                check_uri(name, getattr(self, name))
        if not self.stages or len(set(self.stages)) != len(self.stages):
            raise ConfigError("stages: a non-empty list of distinct stages "
                              f"from {list(STAGES)}")
        self.stages = [s for s in STAGES if s in self.stages]
        if "fusion" in self.stages:
            for branch in ("audio", "video"):
                if branch not in self.stages and not getattr(self, f"{branch}_model"):
                    raise ConfigError(f"{branch}_model: fusion without the {branch} stage "
                                      f"needs the trained {branch} model artifact")
                if branch not in self.stages and self.protocol.folds:
                    raise ConfigError(f"stages: k-fold fusion needs the {branch} stage "
                                      "(each fold trains its own branches)")
        for kind in STAGES:
            model_config(kind, getattr(self, kind).preset, getattr(self, kind).model)
        for kind in ("video", "fusion"):
            if getattr(self, kind).channel_copies:
                raise ConfigError(f"{kind}.channel_copies: recording channels are simulated "
                                  "for the audio stage only")


def train_config(data: dict) -> TrainConfig:
    """Validate a config mapping; each stage's preset fills the settings it leaves out."""
    data = dict(data)
    for kind in STAGES:
        stage = data.get(kind) or {}
        if not isinstance(stage, dict):
            raise ConfigError(f"{kind}: expected a mapping, got {stage!r}")
        preset = stage.get("preset", "paper")
        if preset not in RECIPES:
            raise ConfigError(f"{kind}.preset: {preset!r} is not one of {list(RECIPES)}")
        data[kind] = {**RECIPES[preset][kind], **stage}
    return build(TrainConfig, data)


def load_train_config(path: str, overrides: list[str] = ()) -> TrainConfig:
    return train_config(load_yaml(path, overrides))
