import pytest

from emoray.config import ConfigError, build, load_yaml
from emoray.features.config import FeatureConfig, preset
from emoray.preprocess.job import PreprocessConfig


def test_yaml_with_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("input: a\noutput: b\naudio: {n_mels: 40}\n")
    cfg = build(PreprocessConfig, load_yaml(f, ["shard_size=8", "audio.kind=mfcc"]))
    assert (cfg.input, cfg.shard_size) == ("a", 8)
    assert cfg.feature_config().audio.kind == "mfcc"
    assert cfg.feature_config().audio.n_mels == 40


@pytest.mark.parametrize("data, message", [
    ({"output": "b"}, "input: required"),
    ({"input": "a", "output": "b", "shard_sz": 3}, r"unknown field\(s\) \['shard_sz'\]"),
    ({"input": "a", "output": "b", "shard_size": "x"}, "shard_size: expected int"),
    ({"input": "a", "output": "b", "shard_size": 0}, "shard_size: must be >= 1"),
    ({"input": "a", "output": "gs://b"}, "output: 'gs://b' must be a local path or an s3://"),
    ({"input": "a", "output": "b", "features": "best"}, "unknown feature preset 'best'"),
    ({"input": "a", "output": "b", "audio": {"kind": "cqt"}}, "audio.kind 'cqt'"),
    ({"input": "a", "output": "b", "video": {"fps": 3}}, r"unknown video fields \['fps'\]"),
])
def test_config_errors_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        build(PreprocessConfig, data)


def test_feature_config_round_trip_and_fingerprint():
    cfg = preset("paper")
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.fingerprint() != preset("default").fingerprint()
    assert cfg.audio.shape == (180, 20) and preset("default").video.shape == (30, 80, 70)
