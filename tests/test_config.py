import pytest

from emoray import storage
from emoray.config import ConfigError, build, load_yaml
from emoray.features.config import FeatureConfig, preset
from emoray.label.config import LabelConfig
from emoray.preprocess.job import PreprocessConfig
from emoray.train.config import train_config


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
    ({"input": "a", "output": "gs://b"},
     "output: 'gs://b': scheme 'gs://' is not supported; use a local path or s3://bucket/prefix"),
    ({"input": "s3://AKIAX:s3cr3t/k3y@bucket/in", "output": "b"},
     r"input: 's3://\*\*\*@bucket/in': credentials do not belong in a URI; use the AWS "
     r"credential chain"),
    ({"input": "s3:///in", "output": "b"}, "input: 's3:///in': no bucket"),
    ({"input": "a", "output": "s3://bucket/out/../other"},
     r"output: 's3://bucket/out/../other': '\.\.' is not allowed in an S3 key"),
    ({"input": "a", "output": "b", "features": "best"}, "unknown feature preset 'best'"),
    ({"input": "a", "output": "b", "audio": {"kind": "cqt"}}, "audio.kind 'cqt'"),
    ({"input": "a", "output": "b", "video": {"fps": 3}}, r"unknown video fields \['fps'\]"),
])
def test_config_errors_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        build(PreprocessConfig, data)


def test_credentials_in_a_uri_are_never_echoed():
    with pytest.raises(ConfigError) as e:
        build(PreprocessConfig, {"input": "s3://AKIAX:s3cr3t/k3y@bucket/in", "output": "b"})
    assert "s3cr3t" not in str(e.value) and "AKIAX" not in str(e.value)


@pytest.mark.parametrize("data, message", [
    ({"use_gpu": "yes"}, r"use_gpu: expected bool or one of \['auto'\], got 'yes'"),
    ({"model_cpus": "many"}, r"model_cpus: expected float or one of \['auto'\], got 'many'"),
    ({"output": "https://u:pw@host/x"},
     r"output: 'https://\*\*\*@host/x': scheme 'https://' is not supported"),
])
def test_label_config_errors_name_the_field_and_what_it_allows(data, message):
    with pytest.raises(ConfigError, match=message):
        build(LabelConfig, {"model": "m.pt", "input": "in", "output": "out", **data})


@pytest.mark.parametrize("data, message", [
    ({"name": "../elsewhere"}, r"name: '\.\./elsewhere' must be a single folder name"),
    ({"name": ".."}, "name: '..' must be a single folder name"),
    ({"storage": "ftp://host/runs"}, "storage: 'ftp://host/runs': scheme 'ftp://'"),
    ({"audio_model": "s3://k:s@bucket/a.pt"}, r"audio_model: 's3://\*\*\*@bucket/a.pt'"),
    ({"audio": {"epochs": 0}}, "audio.epochs: must be >= 1"),  # the nested field, named in full
    ({"fusion": {"lr": 0}}, "fusion.lr: must be > 0"),
])
def test_train_config_checks_names_and_locations(data, message):
    with pytest.raises(ConfigError, match=message):
        train_config({"name": "t", "data": "d", "storage": "s", **data})


def test_storage_refuses_to_leave_the_prefix():
    assert storage.join("s3://b/out", "shards/a.parquet") == "s3://b/out/shards/a.parquet"
    with pytest.raises(ValueError, match="'..' would leave s3://b/out"):
        storage.join("s3://b/out", "../x")
    with pytest.raises(ValueError, match="credentials do not belong in a URI"):
        storage.read_bytes("s3://key:secret@b/x")


def test_feature_config_round_trip_and_fingerprint():
    cfg = preset("paper")
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.fingerprint() != preset("default").fingerprint()
    assert cfg.audio.shape == (180, 20) and preset("default").video.shape == (30, 80, 70)
