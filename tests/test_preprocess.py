"""The preprocessing job on a local Ray cluster: shapes, labels, errors, re-runs, kills, S3."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import kill_tree
from emoray.manifest import read_manifest, shard_uris
from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.ravdess import parse_name
from emoray.shards import feature_config_of


def read_rows(out) -> pa.Table:
    return pa.concat_tables(pq.read_table(u) for u in shard_uris(str(out)))


@pytest.fixture(scope="module")
def salted(tmp_path_factory, synth_corpus):
    """The synthetic corpus plus a zero-byte .wav, a truncated .mp4 and a text file named .mp4."""
    root = tmp_path_factory.mktemp("salted")
    shutil.copytree(synth_corpus, root, dirs_exist_ok=True)
    bad = root / "Actor_03"
    bad.mkdir()
    (bad / "03-01-05-01-01-01-03.wav").write_bytes(b"")
    video = next(synth_corpus.rglob("02-*.mp4")).read_bytes()
    (bad / "02-01-05-01-01-01-03.mp4").write_bytes(video[: len(video) // 3])
    (bad / "02-01-04-01-01-01-03.mp4").write_text("not a video\n" * 50)
    (root / "README.txt").write_text("not media, ignored")
    return root


@pytest.fixture(scope="module")
def preprocessed(ray_local, salted, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    manifest = run_preprocess(PreprocessConfig(input=str(salted), output=str(out), shard_size=32))
    return salted, out, manifest


def test_rows_shapes_and_labels(preprocessed):
    _, out, manifest = preprocessed
    t = read_rows(out)
    assert t.num_rows == manifest["n_clips"] == 120
    cfg = feature_config_of(t.schema)
    audio = t.column("audio").combine_chunks().to_numpy_ndarray()
    video = t.column("video").combine_chunks().to_numpy_ndarray()
    assert audio.shape == (120, *cfg.audio.shape) and audio.dtype == np.float32
    assert video.shape == (120, 30, 80, 70) and video.dtype == np.uint8
    assert np.isfinite(audio).all()
    for row in t.drop_columns(["audio", "video"]).to_pylist():
        name = parse_name(row["audio_uri"])
        assert (row["trial_id"], row["label"], row["actor"]) == (name.trial_id, name.label, name.actor)
        assert row["has_audio"] and row["audio_sha256"]
    has_video = t.filter(t["has_video"])
    assert has_video.num_rows == 16  # the synthetic fixture's video trials
    assert all(has_video.column("face_detected").to_pylist())
    frames = has_video.column("video").combine_chunks().to_numpy_ndarray()
    assert frames.std(axis=(1, 2, 3)).min() > 5  # real pixels, not padding
    assert not video[~t.column("has_video").to_numpy(zero_copy_only=False)].any()


def test_exactly_the_three_broken_files_are_errors(preprocessed):
    salted, out, manifest = preprocessed
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    by_uri = {os.path.basename(e["uri"]): e for e in errors}
    assert sorted(by_uri) == ["02-01-04-01-01-01-03.mp4", "02-01-05-01-01-01-03.mp4",
                              "03-01-05-01-01-01-03.wav"]
    assert by_uri["03-01-05-01-01-01-03.wav"]["reason"] == "file is empty"
    assert all(e["stage"] in ("read", "decode") and e["reason"] for e in errors)
    assert manifest["n_errors"] == 3 and manifest["n_ignored"] == 1


def test_rerun_skips_complete_shards_and_changes_nothing(preprocessed, capsys):
    salted, out, manifest = preprocessed
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("shards/*.parquet")}
    again = run_preprocess(PreprocessConfig(input=str(salted), output=str(out), shard_size=32))
    assert again == manifest
    assert {p: p.stat().st_mtime_ns for p in out.glob("shards/*.parquet")} == stamps
    assert f"({len(stamps)} already complete)" in capsys.readouterr().out


def test_same_input_gives_the_same_rows(preprocessed, tmp_path):
    salted, out, _ = preprocessed
    fresh = run_preprocess(PreprocessConfig(input=str(salted), output=str(tmp_path), shard_size=32))
    assert read_rows(tmp_path).equals(read_rows(out))
    assert fresh["duplicates"] == read_manifest(str(out))["duplicates"]


def test_killed_run_resumes_without_loss_or_duplicates(preprocessed, synth_corpus, tmp_path):
    """Kill the driver and its local Ray once shards are being written, and leave a temp file as
    a write cut short leaves one; run the same command again: the shards finished before the
    kill are kept as they are (not rewritten), the rest are written, the temp file is gone, and
    the rows equal an undisturbed run's over the same files."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "emoray", "preprocess", "--input", str(synth_corpus),
           "--output", str(out), "--num-cpus", "1", "shard_size=4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while not list(out.glob("shards/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_tree(proc.pid)  # the driver and its local Ray, mid-run
    proc.wait()
    shards = set(out.glob("shards/*.parquet"))
    while True:  # a Ray worker of the killed run may still finish the shard it was writing
        time.sleep(3)
        if (now := set(out.glob("shards/*.parquet"))) == shards:
            break
        shards = now
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shards}
    assert 1 <= len(finished) < 30 and not (out / "manifest.json").exists()
    (out / "shards" / "shard-00029-0123456789abcdef.parquet.tmp-0badf00d").write_bytes(b"half")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"in 30 shards ({len(finished)} already complete)" in r.stdout
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished} == finished
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["shards"]) == 30  # 120 trials / 4
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(["manifest.json", "errors.parquet"] +
                           [s["path"] for s in manifest["shards"]])  # no temp, no orphan
    salted, reference, _ = preprocessed  # the same files (and three broken ones) under salted/
    rows, expected = (read_rows(d).sort_by("trial_id") for d in (out, reference))
    assert rows.num_rows == 120 == len(set(rows.column("trial_id").to_pylist()))
    paths = ("audio_uri", "video_uri")
    assert rows.drop_columns(list(paths)).equals(expected.drop_columns(list(paths)))
    for col in paths:
        assert [None if u is None else os.path.relpath(u, synth_corpus)
                for u in rows.column(col).to_pylist()] == \
            [None if u is None else os.path.relpath(u, salted)
             for u in expected.column(col).to_pylist()]


def test_s3_in_and_out(ray_local, s3, synth_corpus, tmp_path):
    actor = tmp_path / "Actor_02"
    shutil.copytree(synth_corpus / "Actor_02", actor)
    src = s3.upload_dir(tmp_path, "corpus")
    dst = f"s3://{s3.bucket}/shards"
    manifest = run_preprocess(PreprocessConfig(input=src, output=dst, shard_size=16))
    assert manifest["n_clips"] == 60 and manifest["n_errors"] == 0
    t = read_rows(dst)
    assert t.num_rows == 60 and t.column("audio_uri").to_pylist()[0].startswith(src)
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="shards/")["Contents"]]
    assert "shards/manifest.json" in keys and "shards/errors.parquet" in keys
    assert s3.secret_key not in json.dumps(manifest)
