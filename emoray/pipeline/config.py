"""The pipeline's config (``jobs/configs/pipeline.yaml``): one section per stage, each with the
fields of that stage's own config, all validated before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from emoray import storage
from emoray.config import ConfigError, build, load_yaml
from emoray.label.config import LabelConfig
from emoray.preprocess.job import PreprocessConfig
from emoray.train import TrainConfig, train_config

DERIVED = {"train": "data", "label": "model"}
"""Fields the pipeline sets itself: training reads the preprocessing output, labeling uses the
trained model."""


@dataclass
class PipelineConfig:
    preprocess: PreprocessConfig
    train: TrainConfig  # data: preprocess.output
    label: LabelConfig  # model: the run's models folder until training names the artifact


def pipeline_config(data: dict) -> PipelineConfig:
    """Validate a config mapping with sections ``preprocess``, ``train`` and ``label``."""
    unknown = sorted(set(data) - {"preprocess", "train", "label"})
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; allowed: ['label', 'preprocess', "
                          "'train']")
    pre = _section(data, "preprocess", lambda d: build(PreprocessConfig, d), {})
    train = _section(data, "train", train_config, {"data": pre.output})
    models = storage.join(train.storage, train.name, "models")
    label = _section(data, "label", lambda d: build(LabelConfig, d), {"model": models})
    return PipelineConfig(pre, train, label)


def _section(data: dict, name: str, make: Callable, derived: dict):
    section = data.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"{name}: expected a mapping of {name} settings, got {section!r}")
    if DERIVED.get(name) in section:
        raise ConfigError(f"{name}.{DERIVED[name]}: set by the pipeline, leave it out")
    try:
        return make({**section, **derived})
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None


def load_pipeline_config(path: str, overrides: list[str] = ()) -> PipelineConfig:
    """``path`` plus ``section.key=value`` overrides (``train.audio.epochs=5``)."""
    return pipeline_config(load_yaml(path, overrides))
