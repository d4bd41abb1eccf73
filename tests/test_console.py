"""What the commands show: quiet by default (a bar per stage, emoray's summary lines, Ray's
own logs in its log folder), everything with --verbose, a failure as one line."""

import os
import shutil
import subprocess
import sys

import pytest
import ray
import ray.train
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from emoray.command import failure_line
from emoray.train.progress import epoch_bar


def _preprocess(src, out, *extra, env=None):
    cmd = [sys.executable, "-m", "emoray", "preprocess", "--input", str(src), "--output",
           str(out), "--num-cpus", "1", *extra]
    env = {**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",
                                                                "EMORAY_VERBOSE")},
           **(env or {})}
    r = subprocess.run(cmd, capture_output=True, env=env, timeout=300)  # bytes: keeps the \r
    out, err = r.stdout.decode(), r.stderr.decode()  # of a bar's updates on one line
    assert r.returncode == 0, err[-3000:]
    return out + err


def test_a_command_is_quiet_unless_verbose(synth_corpus, tmp_path):
    src = tmp_path / "in" / "Actor_01"
    src.mkdir(parents=True)
    for f in sorted((synth_corpus / "Actor_01").glob("03-*.wav"))[:6]:
        shutil.copy(f, src)
    quiet = _preprocess(src.parent, tmp_path / "quiet", "shard_size=2")
    assert quiet.count("\n") <= 4, quiet  # start, bar (one line of updates), two summaries
    assert "preprocess: 100%" in quiet and "3/3" in quiet
    assert "6 clips in 3 shards" in quiet
    assert " INFO " not in quiet and "(pid=" not in quiet and "Warning" not in quiet
    for loud in (_preprocess(src.parent, tmp_path / "v1", "shard_size=2", "--verbose"),
                 _preprocess(src.parent, tmp_path / "v2", "shard_size=2",
                             env={"EMORAY_VERBOSE": "1"})):
        assert "Started a local Ray instance" in loud and "6 clips in 3 shards" in loud


def test_failure_line_is_the_workers_own_error(ray_local):
    @ray.remote
    def broken():
        raise ValueError("bad input\nsecond line")

    with pytest.raises(Exception) as task:
        ray.get(broken.remote())
    assert "ray::broken()" in str(task.value)  # Ray's wrapper carries the remote traceback
    assert failure_line(task.value) == "ValueError: bad input"


def test_epoch_bar_follows_the_training_reports(ray_local, tmp_path, capfd):
    def loop(config):
        for epoch in (1, 2, 3):
            ray.train.report({"epoch": epoch, "train_acc": 0.5, "val_acc": 0.25})
        ray.train.report({"epoch": 3, "final": True})

    with epoch_bar("train toy (s0)", 3, poll_s=0.1) as callbacks:
        TorchTrainer(loop, scaling_config=ScalingConfig(num_workers=1),
                     run_config=RunConfig(name="toy", storage_path=str(tmp_path),
                                          callbacks=callbacks)).fit()
    err = capfd.readouterr().err
    assert "train toy (s0): 100%" in err and "3/3" in err
    assert "train=50%, val=25%" in err


RAYLET_MESSAGE = """
import os, time
import ray
from ray._private.utils import push_error_to_driver
from emoray import console
from emoray.raycluster import init_ray
init_ray(1)
push_error_to_driver(ray._private.worker.global_worker, "worker_pool_large",
                     "WARNING: 7 PYTHON worker processes have been started on node")
time.sleep(3)  # the driver's listener thread prints it, or logs it when quiet
log = os.path.join(console.log_dir(), console.DRIVER_LOG)  # written only when quiet
print("LOG:", open(log).read() if os.path.exists(log) else "")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_raylet_messages_go_to_the_driver_log_unless_verbose(verbose):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "EMORAY_VERBOSE")}
    r = subprocess.run([sys.executable, "-c", RAYLET_MESSAGE], capture_output=True, text=True,
                       env={**env, "EMORAY_VERBOSE": "1" if verbose else "0"}, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    shown, log = (r.stdout + r.stderr).split("LOG:", 1)
    assert ("7 PYTHON worker processes" in shown) == verbose
    if not verbose:
        assert "WARNING emoray.raylet: WARNING: 7 PYTHON worker processes" in log
