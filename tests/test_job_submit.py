"""The preprocessing job through ``ray job submit`` against a real ``ray start --head``."""

import json
import subprocess

import pyarrow.parquet as pq

from conftest import REPO
from rayhead import ray_cli, ray_head


def test_preprocess_via_ray_job_submit(tmp_path, synth_corpus):
    out = tmp_path / "shards"
    with ray_head(tmp_path) as (address, env):
        r = subprocess.run(
            [ray_cli(), "job", "submit", "--address", address, "--working-dir", str(REPO),
             "--", "python", "jobs/preprocess.py", "--config", "jobs/configs/preprocess.yaml",
             f"input={synth_corpus}", f"output={out}", "shard_size=40"],
            env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "succeeded" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_clips"] == 120 and manifest["n_errors"] == 0
    rows = sum(pq.read_metadata(out / s["path"]).num_rows for s in manifest["shards"])
    assert rows == 120
