"""A killed pipeline run again (``emoray pipeline`` in a process of its own, with its own local
Ray): finished shards are skipped, training continues from its checkpoints, and every file is
labelled once."""

import json
import os
import shutil
import subprocess
import sys
import time

import pyarrow.dataset as pads

from conftest import REPO, kill_tree


def registered_checkpoint(ray_run) -> bool:
    """Whether Ray Train has recorded a checkpoint of the run in its snapshot (a state.pt on
    disk alone may be one it had not yet registered when the driver died)."""
    try:
        snapshot = json.loads((ray_run / "checkpoint_manager_snapshot.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return bool(snapshot.get("latest_checkpoint_result"))


def test_killed_pipeline_resumes_every_stage(synth_corpus, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for wav in sorted(synth_corpus.rglob("03-*.wav"))[:4]:
        shutil.copy(wav, archive)
    run = tmp_path / "runs" / "resume"
    cmd = [sys.executable, "-m", "emoray", "pipeline", "--config", "jobs/configs/pipeline.yaml",
           "--num-cpus", "2", f"preprocess.input={synth_corpus / 'Actor_01'}",
           f"preprocess.output={tmp_path / 'shards'}", "preprocess.shard_size=16",
           f"train.storage={tmp_path / 'runs'}", "train.name=resume", "train.stages=[audio]",
           "train.workers.num_workers=1", "train.audio.epochs=8",
           "train.audio.model={channels: [8, 8], hidden: [16]}",
           f"label.input={archive}", f"label.output={tmp_path / 'labels'}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    env["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.2"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while (not registered_checkpoint(run / "checkpoints" / "random-audio")
           and proc.poll() is None and time.monotonic() < deadline):
        time.sleep(0.1)
    kill_tree(proc.pid)  # the driver and its local Ray, mid-training
    proc.wait()
    assert registered_checkpoint(run / "checkpoints" / "random-audio")
    assert not (run / "report" / "metrics.json").exists()
    shards = json.loads((tmp_path / "shards" / "manifest.json").read_text())["shards"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"in {len(shards)} shards ({len(shards)} already complete)" in r.stdout
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    audio = metrics["stages"]["audio"]["splits"]["random"]
    assert audio["starts"][0] == 0 and len(audio["starts"]) == 2 and audio["starts"][1] >= 1
    assert [h["epoch"] for h in audio["history"]] == list(range(1, 9))
    labels = pads.dataset(str(tmp_path / "labels" / "labels"), format="parquet").to_table()
    assert sorted(labels.column("uri").to_pylist()) == sorted(str(p) for p in archive.iterdir())
