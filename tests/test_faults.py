"""Faults injected into running jobs: a Ray worker killed during preprocessing, and the object
store stopped and started again during labeling. (A killed preprocessing or labeling driver and
a killed training worker are in test_preprocess, test_label_job and test_train.)"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from emoray import storage
from emoray.artifact import save_model
from emoray.features.config import preset
from emoray.label.stage import Settings, prepare_file
from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.preprocess.stage import ShardReport, featurize_trial
from media import tone, write_audio
from s3server import seaweedfs
from test_label_job import read
from test_label_stage import tiny_fusion
from test_preprocess import read_rows

SHARD_TASK = "ray::Map(_shard_task)"  # a Ray worker's process title while it runs a shard


def descendants(root: int) -> dict[int, str]:
    """pid -> command line (process title) of every process below ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(entry))
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found[pid] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            todo.append(pid)
    return found


def test_killed_ray_worker_is_retried_and_the_output_is_complete(ray_local, synth_corpus,
                                                                 tmp_path):
    """SIGKILL the worker process running a shard task (a worker of this test's own Ray, found
    among this process's descendants) once the first shard is written: Ray runs the task
    again and the output equals an undisturbed run's."""
    out = tmp_path / "killed"
    cfg = PreprocessConfig(input=str(synth_corpus), output=str(out), shard_size=8)
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(manifest=run_preprocess(cfg)))
    run.start()
    killed, deadline = None, time.monotonic() + 180
    try:
        while killed is None and run.is_alive() and time.monotonic() < deadline:
            if list(out.glob("shards/*.parquet")):
                busy = [p for p, cmd in descendants(os.getpid()).items() if cmd == SHARD_TASK]
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed = busy[0]
            time.sleep(0.02)
    finally:
        run.join(timeout=300)
    assert killed is not None, "no shard task was running after the first shard was written"
    assert not run.is_alive() and not os.path.exists(f"/proc/{killed}")
    manifest = result["manifest"]
    written = len(list(out.glob("shards/*.parquet")))
    assert manifest["n_clips"] == 120 and len(manifest["shards"]) == written == 15
    reference = tmp_path / "undisturbed"
    run_preprocess(PreprocessConfig(input=str(synth_corpus), output=str(reference), shard_size=8))
    assert read_rows(out).equals(read_rows(reference))


RETRYING = "emoray: object store not answering"  # storage's line at each retry


def wait_for_line(log: Path, text: str, deadline: float) -> bool:
    """Whether ``text`` appears in the file ``log`` (being written) before ``deadline``."""
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    """A SeaweedFS of this test's own (it gets stopped), and emoray pointed at it."""
    with seaweedfs(tmp_path / "weed") as server:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        storage._s3.cache_clear()  # the cached filesystem points at the session's server
        try:
            yield server
        finally:
            monkeypatch.undo()
            storage._s3.cache_clear()


def test_labeling_rides_out_an_object_store_outage(own_store, synth_corpus, tmp_path):
    """Stop the S3 server once the first part is committed, and start it again on the same
    ports and data once the job says a request is being retried: storage retries carry the job
    through, and every file is labelled exactly once."""
    server = own_store
    src = server.upload_dir(synth_corpus, "archive")
    model = f"s3://{server.bucket}/models/fusion.pt"
    save_model(model, tiny_fusion(), preset("default"))
    out = f"s3://{server.bucket}/labels"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    log = open(tmp_path / "label.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "emoray", "label", "--model", model,
                             "--input", src, "--output", out, "--num-cpus", "2",
                             "files_per_part=2"], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        client, deadline = server.client(), time.monotonic() + 180
        committed = 0
        while not committed and proc.poll() is None and time.monotonic() < deadline:
            committed = client.list_objects_v2(Bucket=server.bucket,
                                               Prefix="labels/labels/").get("KeyCount", 0)
            time.sleep(0.1)
        assert committed and proc.poll() is None, "labeling ended before the outage"
        server.stop()
        met = wait_for_line(tmp_path / "label.log", RETRYING, time.monotonic() + 60)
        server.start()
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log.seek(0)
    text = log.read()
    assert rc == 0, text[-3000:]
    labels = read(out, "labels")
    files = labels.filter(pc.is_null(labels["window_start_s"]))
    uris = files.column("uri").to_pylist()
    assert len(uris) == len(set(uris)) == 152 and committed < 76  # 152 files, 2 per part
    assert met, "no request met the outage"  # the driver's or a worker's line, forwarded
    assert server.secret_key not in text


def test_a_store_that_stays_away_fails_the_job_not_the_file(own_store, monkeypatch, tmp_path):
    """Past the retries, an unanswering store raises out of both stages (the task fails and
    nothing is committed) instead of becoming an error row that would mark a good file bad."""
    server = own_store
    uri = f"s3://{server.bucket}/speech.wav"
    storage.write_bytes(uri, write_audio(tmp_path / "s.wav", tone(3.0, 16000), 16000).read_bytes())
    size = storage.list_files(uri)[0].size
    server.stop()
    monkeypatch.setenv("EMORAY_S3_RETRY_S", "1")
    with pytest.raises(OSError) as err:
        list(prepare_file(uri, size, "fusion", preset("default"), Settings()))
    assert storage.is_transient(err.value) and "NETWORK_CONNECTION" in str(err.value)
    trial = {"stem": "03-01-01-01-01-01-01", "audio_uri": uri, "audio_size": size,
             "video_uri": None, "video_size": None}
    report = ShardReport("shards/x.parquet")
    with pytest.raises(OSError):
        featurize_trial(trial, preset("default"), report)
    assert not report.errors
