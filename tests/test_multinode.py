"""Preprocessing and labeling on a four-node Ray cluster on this machine, S3 in and out: decoding
and committing labels parts run on the CPU nodes only (both of them for preprocessing), the
model actor on the "GPU" node, and every trial and file is accounted for. The cluster lives in
a subprocess (``multinode.py``) with its own Ray temp dir, apart from the session's local
Ray."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from emoray import storage
from emoray.artifact import save_model
from emoray.features.config import preset
from emoray.label.parts import read_output
from emoray.models import FusionHead, FusionNet, build_branch, model_config
from rayhead import kill_processes_of
from s3server import _free_ports

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def fusion_model(s3) -> str:
    """An untrained fusion model on S3: placement and completeness do not need a good one."""
    torch.manual_seed(0)
    features = preset("default")
    audio = build_branch("audio", model_config("audio", "paper"), features)
    video = build_branch("video", model_config("video", "paper"), features)
    head = FusionHead(model_config("fusion", "paper"), audio.embed_dim, video.embed_dim)
    uri = f"s3://{s3.bucket}/multinode/fusion.pt"
    save_model(uri, FusionNet(audio, video, head), features)
    return uri


def run_cluster(args: dict, tmp_path: Path) -> dict:
    """``multinode.py`` in a fresh session with its own Ray temp dir; every process it left
    behind is killed. Loopback only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: Ray's
    single-machine mode, where 127.0.0.1 addresses are not swapped for the host's IP)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="raymn-", dir="/tmp"))  # AF_UNIX paths: short
    env = {**os.environ, "RAY_TMPDIR": str(temp_dir), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "multinode.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, str(HERE / "multinode.py"), json.dumps(args)],
                                env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=300)
        finally:
            proc.kill()
            proc.wait()
            kill_processes_of(temp_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)
    log.write_text(f"{log.read_text()}\n--- stdout ---\n{stdout}")
    assert proc.returncode == 0, stdout[-3000:] + log.read_text()[-5000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_work_spreads_over_the_nodes_meant_for_it(s3, synth_corpus, fusion_model, tmp_path):
    corpus = s3.upload_dir(synth_corpus, "multinode/corpus")
    root = f"s3://{s3.bucket}/multinode"
    dashboard, agent = _free_ports(2)
    out = run_cluster({
        "dashboard_port": dashboard, "agent_port": agent,
        "preprocess": {"input": corpus, "output": f"{root}/shards", "shard_size": 10,
                       "node_resource": "emoray_cpu"},
        "label": {"model": fusion_model, "input": f"{corpus}/Actor_01",
                  "output": f"{root}/labels", "files_per_part": 8,
                  "node_resource": "emoray_cpu", "model_resource": "emoray_gpu"},
    }, tmp_path)
    nodes = out["nodes"]
    assert len(nodes["cpu"]) == 2 and len(nodes["gpu"]) == 1

    def ran_on(fragment: str, count: int, exactly: bool = True) -> set[str]:
        """Nodes of the ``count`` tasks named ``fragment`` (without ``exactly``: of 1 to
        ``count`` tasks, for a stage whose small rows Ray Data may bundle into one task)."""
        tasks = [t for t in out["tasks"] if fragment in t["name"]]
        assert (len(tasks) == count if exactly else 1 <= len(tasks) <= count), tasks
        assert all(t["state"] == "FINISHED" for t in tasks), tasks
        return {t["node_id"] for t in tasks}

    assert ran_on("_shard_task", 12) == set(nodes["cpu"])  # both CPU nodes, nothing else
    assert ran_on("prepare_part", out["labels"]["parts"]) <= set(nodes["cpu"])
    commits = ran_on("commit_predicted", out["labels"]["parts"], exactly=False)
    assert commits <= set(nodes["cpu"])
    predictors = [a for a in out["actors"] if "Predictor" in a["class_name"]]
    assert predictors and {a["node_id"] for a in predictors} == set(nodes["gpu"])

    manifest = out["manifest"]
    assert manifest["n_clips"] == 120 and manifest["n_errors"] == 0 and len(manifest["shards"]) == 12
    fs, _ = storage.filesystem(root)
    rows = sum(pq.read_metadata(storage.filesystem(f"{root}/shards/{s['path']}")[1],
                                filesystem=fs).num_rows for s in manifest["shards"])
    assert rows == 120
    labels, errors = read_output(f"{root}/labels")
    files = {f.uri for f in storage.list_files(f"{corpus}/Actor_01")}
    assert set(labels.column("uri").to_pylist()) == files and errors.num_rows == 0
    assert out["labels"]["labelled"] == labels.num_rows == len(files) == 76
