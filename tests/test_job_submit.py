"""Every job through ``ray job submit --working-dir .`` against one real ``ray start --head``:
preprocessing, training on tiny settings, and the whole pipeline from S3 to S3."""

import json
import subprocess

import pyarrow.parquet as pq
import pytest

from conftest import REPO
from emoray import storage
from emoray.artifact import load_model
from emoray.label.parts import read_output
from rayhead import ray_cli, ray_head
from toy_shards import TOY_FEATURES, write_toy_shards

TINY_AUDIO = "{channels: [8, 8], hidden: [16]}"
TINY_VIDEO = "{channels: [4, 8]}"


@pytest.fixture(scope="module")
def head(s3, tmp_path_factory):
    """One head for the module; its workers see the S3 server as a cluster's nodes would.
    Ray Train polls reports every 0.2 s, so tiny epochs are not throttled."""
    env = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}
    with ray_head(tmp_path_factory.mktemp("head"), env=env) as cluster:
        yield cluster


def submit(head, job: str, config: str, *overrides: str) -> subprocess.CompletedProcess:
    address, env = head
    r = subprocess.run(
        [ray_cli(), "job", "submit", "--address", address, "--working-dir", str(REPO),
         "--", "python", f"jobs/{job}.py", "--config", f"jobs/configs/{config}.yaml",
         *overrides], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "succeeded" in r.stdout
    return r


def test_preprocess_via_ray_job_submit(head, tmp_path, synth_corpus):
    out = tmp_path / "shards"
    submit(head, "preprocess", "preprocess", f"input={synth_corpus}", f"output={out}",
           "shard_size=40")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_clips"] == 120 and manifest["n_errors"] == 0
    rows = sum(pq.read_metadata(out / s["path"]).num_rows for s in manifest["shards"])
    assert rows == 120


def test_train_via_ray_job_submit(head, tmp_path):
    data = write_toy_shards(str(tmp_path / "shards"))
    r = submit(head, "train", "train_audio", f"data={data}", f"storage={tmp_path / 'runs'}",
               "audio.epochs=3", f"audio.model={TINY_AUDIO}", "workers.num_workers=1")
    run = tmp_path / "runs" / "paper-audio"
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    accuracy = metrics["stages"]["audio"]["test"]["accuracy"]["mean"]
    assert f"audio: test accuracy {100 * accuracy:.2f}%" in r.stdout
    assert (run / "report" / "confusion_audio.png").stat().st_size > 0
    _, info = load_model(str(run / "models" / "random" / "audio.pt"), expect_features=TOY_FEATURES)
    assert info.kind == "audio" and info.training["split"] == "random"


def test_pipeline_via_ray_job_submit_from_s3_to_s3(head, s3, synth_corpus):
    corpus = s3.upload_dir(synth_corpus, "pipeline/corpus")
    root = f"s3://{s3.bucket}/pipeline"
    r = submit(head, "pipeline", "pipeline",
               f"preprocess.input={corpus}", f"preprocess.output={root}/shards",
               f"train.storage={root}/runs", "train.name=tiny", "train.workers.num_workers=1",
               "train.audio.epochs=1", "train.video.epochs=1", "train.fusion.epochs=1",
               f"train.audio.model={TINY_AUDIO}", f"train.video.model={TINY_VIDEO}",
               f"label.input={corpus}/Actor_01", f"label.output={root}/labels")
    manifest = json.loads(storage.read_bytes(f"{root}/shards/manifest.json"))
    assert manifest["n_clips"] == 120 and manifest["n_errors"] == 0
    run = f"{root}/runs/tiny"
    metrics = json.loads(storage.read_bytes(f"{run}/report/metrics.json"))
    assert list(metrics["stages"]) == ["audio", "video", "fusion"]
    assert metrics["data"] == f"{root}/shards"
    model = f"{run}/models/random/fusion.pt"
    assert load_model(model)[1].kind == "fusion"
    labels, errors = read_output(f"{root}/labels")
    files = {f.uri for f in storage.list_files(f"{corpus}/Actor_01")}
    assert set(labels.column("uri").to_pylist()) == files and errors.num_rows == 0
    assert labels.num_rows == len(files) == 76
    assert f"model:   {model}" in r.stdout and s3.secret_key not in r.stdout + r.stderr
