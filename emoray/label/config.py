"""The labeling job's config (``jobs/configs/label.yaml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from emoray import storage
from emoray.config import ConfigError, check_uri
from emoray.features.speakers import SPEAKER_MODES
from emoray.label.stage import Settings
from emoray.raycluster import check_resource


EXCLUDE = ("*.txt", "*.md", "*.json", "*.csv", "*.parquet")  # sidecar files, never probed


DEFAULT_MODEL = "models/audio-speech18.pt"
"""The audio model ``make speech-model`` trains on RAVDESS actors 1-18 (relative to the working
directory, the repository root); labeling and evaluation use it when no model is named."""


@dataclass
class LabelConfig:
    input: str  # folder or s3:// prefix, searched recursively; media are recognised by content
    output: str  # folder or s3:// prefix for labels/ and errors/ parts
    model: str = DEFAULT_MODEL  # model artifact (local path or s3://); a fusion model serves
    #                             all three modalities
    window_s: float = 3.0  # window length for recordings longer than clip_max_s
    hop_s: float = 3.0  # distance between window starts (< window_s: overlapping windows)
    clip_max_s: float = 6.0  # up to this long: one label on the training feature path
    silence_dbfs: float = -60.0  # audio peaking below this counts as no audio
    exclude: list[str] = field(default_factory=lambda: list(EXCLUDE))  # file-name globs to skip
    files_per_part: int = 32  # files per committed part (one prepare task each)
    speaker_files: int = 256  # speaker-normalised model: a speaker's files are labelled
    #                           together, their statistics from them; one with more files is
    #                           split evenly into parts of at most this many
    batch_size: int = 32  # clips / windows per model call
    concurrency: int = 1  # model actors (with GPUs or model_resource; else the decode tasks
    #                       run the model, one copy per worker process)
    use_gpu: bool | Literal["auto"] = "auto"  # auto: one GPU per model actor when there are GPUs
    model_cpus: float | Literal["auto"] = "auto"  # per model actor; auto: 1 with a GPU, else 0
    prepare_cpus: float = 1.0  # CPUs each decode/feature task reserves
    node_resource: str | None = None  # custom resource of the nodes that decode (cluster.yaml:
    #                                   emoray_cpu), keeping decoding off the GPU nodes
    model_resource: str | None = None  # custom resource of the nodes that run the model actors
    in_memory_mb: float = 64.0  # files up to this size are read whole, larger ones streamed
    speakers: str = "auto"  # who speaks: auto (the RAVDESS actor, else the folder), folder,
    #                         none (every file alone), or a CSV / Parquet table uri,speaker

    def validate(self) -> None:
        for name in ("model", "input", "output"):
            uri = getattr(self, name)
            if not uri:
                raise ConfigError(f"{name}: required")
            check_uri(name, uri)
        if self.model == DEFAULT_MODEL and not storage.exists(DEFAULT_MODEL):
            raise ConfigError(f"model: none named, and the default audio model {DEFAULT_MODEL} "
                              "(trained on RAVDESS actors 1-18) is not built here: run `make "
                              "speech-model` in the repository root, or name a model artifact")
        for name in ("model", "input", "output"):
            setattr(self, name, storage.absolute(getattr(self, name)))
        if self.speakers not in SPEAKER_MODES:
            check_uri("speakers", self.speakers)
            if not self.speakers.endswith((".csv", ".parquet")):
                raise ConfigError(f"speakers: expected one of {', '.join(SPEAKER_MODES)} or a "
                                  f".csv / .parquet table of uri,speaker, got {self.speakers!r}")
            self.speakers = storage.absolute(self.speakers)
            if not storage.exists(self.speakers):
                raise ConfigError(f"speakers: table {self.speakers} not found")
        positive = ("window_s", "hop_s", "files_per_part", "speaker_files", "batch_size", "concurrency",
                    "prepare_cpus", "in_memory_mb")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be > 0, got {getattr(self, name)}")
        check_resource("node_resource", self.node_resource)
        check_resource("model_resource", self.model_resource)
        if self.model_cpus != "auto" and self.model_cpus < 0:
            raise ConfigError(f"model_cpus: must be >= 0, got {self.model_cpus}")
        if self.clip_max_s < self.window_s:
            raise ConfigError(f"clip_max_s: must be >= window_s ({self.window_s}), "
                              f"got {self.clip_max_s}")

    def settings(self) -> Settings:
        return Settings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Settings)})
