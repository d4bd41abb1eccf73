"""The pipeline config: each section validated as its stage's own config, before any work;
the fields that chain the stages are the pipeline's."""

import re

import pytest

from emoray.config import ConfigError
from emoray.pipeline import load_pipeline_config, pipeline_config
from emoray.pipeline.run import labeling_model

CONFIG = "jobs/configs/pipeline.yaml"


def test_the_shipped_config_chains_the_stages():
    cfg = load_pipeline_config(CONFIG, ["preprocess.output=s3://b/shards",
                                        "train.storage=s3://b/runs", "train.audio.epochs=3"])
    assert cfg.train.data == "s3://b/shards"
    assert cfg.train.stages == ["audio", "video", "fusion"] and cfg.train.audio.epochs == 3
    assert cfg.train.audio.schedule == "onecycle"  # the default preset's recipe fills the rest
    assert cfg.label.model == f"s3://b/runs/{cfg.train.name}/models"


@pytest.mark.parametrize("override, message", [
    ("train.data=x", "train.data: set by the pipeline"),
    ("label.model=x", "label.model: set by the pipeline"),
    ("evaluate.data=x", "unknown section(s) ['evaluate']"),
    ("preprocess.shard_size=0", "preprocess: shard_size: must be >= 1"),
    ("train.protocol.kind=actors", "train: protocol: for kind 'actors' set exactly one"),
    ("label.hop_s=0", "label: hop_s: must be > 0"),
    ("label.input=ftp://x", "label: input: 'ftp://x'"),
    ("train=3", "train: expected a mapping"),
])
def test_errors_name_the_section_and_field(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_pipeline_config(CONFIG, [override])


def test_every_section_is_required():
    with pytest.raises(ConfigError, match="label: expected a mapping"):
        pipeline_config({"preprocess": {"input": "a", "output": "b"},
                         "train": {"name": "n", "storage": "s"}})


def test_labels_come_from_the_last_stage_on_the_first_split():
    metrics = {"stages": {kind: {"splits": {f"fold{i}": {"artifact": f"runs/fold{i}/{kind}.pt"}
                                            for i in range(3)}}
                          for kind in ("audio", "video", "fusion")}}
    assert labeling_model(metrics, "fusion") == "runs/fold0/fusion.pt"
    assert labeling_model(metrics, "audio") == "runs/fold0/audio.pt"
