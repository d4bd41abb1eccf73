"""The labeling job on Ray with a real S3 server: a mixed archive from S3 to S3 (the session's
synthetic corpus, actors 1 and 2), a model trained here on two other synthetic actors, a killed
run resumed, a grown archive re-run."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest
import torch

from emoray import storage
from emoray.artifact import save_model
from emoray.features.audio import audio_clip_features
from emoray.features.config import preset
from emoray.features.video import video_features
from emoray.label import cli as label_cli
from emoray.label.config import LabelConfig
from emoray.label.job import label_dataset, run_label
from emoray.label.parts import plan_parts
from emoray.label.schema import ERRORS_SCHEMA, LABELS_SCHEMA, PROB_COLUMNS
from emoray.models import (AudioNet, AudioNetConfig, FusionHead, FusionNet, FusionNetConfig,
                           VideoNet, VideoNetConfig)
from emoray.ravdess import parse_name
from emoray.synth.corpus import synthesize_corpus
from conftest import REPO
from rayhead import ray_cli, ray_head
from test_label_media import concat_av

FEATURES = preset("default")
BROKEN = {"empty.wav": "read", "cut.mp4": "probe", "notes.mp4": "probe"}
ALIASES = {"voice memo.bin": "03-01-05-01-01-01-01", "clip.mkv": "01-01-03-01-01-01-02"}


def _fit(net, inputs, y, epochs, lr):
    torch.manual_seed(0)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    xs, ys = [torch.from_numpy(x) for x in inputs], torch.from_numpy(y).long()
    for _ in range(epochs):
        net.train()
        for b in torch.randperm(len(ys)).split(16):
            loss = torch.nn.functional.cross_entropy(net(*[x[b] for x in xs]), ys[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def train_fusion(corpus: Path) -> FusionNet:
    """A small fusion model trained in seconds on features from the training feature path."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    wavs = sorted(corpus.rglob("03-*.wav"))
    audio = {parse_name(p.name).trial_id: audio_clip_features(str(p), FEATURES.audio)[0]
             for p in wavs}
    videos = sorted(corpus.rglob("02-*.mp4"))
    ids = [parse_name(p.name).trial_id for p in videos]
    video = np.stack([video_features(str(p), FEATURES.video)[0] for p in videos])
    audio_net = _fit(AudioNet(AudioNetConfig(channels=(32, 32), batchnorm=True, utterance_norm=True,
                                             readout="stats", hidden=(32,)), FEATURES.audio.shape),
                     [np.stack(list(audio.values()))],
                     np.array([parse_name(p.name).label for p in wavs]), 40, 3e-3)
    y_video = np.array([parse_name(p.name).label for p in videos])
    video_net = _fit(VideoNet(VideoNetConfig(channels=(4, 8), padding="same", pool_every=1,
                                             batchnorm=True, clip_norm=True, readout="mean",
                                             hidden=(16,)), FEATURES.video.shape),
                     [video], y_video, 25, 1e-2)
    with torch.no_grad():
        emb = [audio_net.embed(torch.from_numpy(np.stack([audio[i] for i in ids]))).numpy(),
               video_net.embed(torch.from_numpy(video)).numpy()]
    head = _fit(FusionHead(FusionNetConfig(hidden=(32,)), 32, 16), emb, y_video, 100, 3e-3)
    torch.set_num_threads(threads)
    return FusionNet(audio_net, video_net, head).eval()


@pytest.fixture(scope="module")
def archive(synth_corpus, tmp_path_factory) -> Path:
    """The synthetic corpus under other folders plus non-RAVDESS names, a 45 s recording, and
    broken files."""
    root = tmp_path_factory.mktemp("label-archive")
    shutil.copytree(synth_corpus, root / "ravdess")
    misc = root / "misc"
    misc.mkdir()
    wav = next(synth_corpus.rglob(ALIASES["voice memo.bin"] + ".wav"))
    shutil.copy(wav, misc / "voice memo.bin")
    src = next(synth_corpus.rglob(ALIASES["clip.mkv"] + ".mp4"))
    with av.open(str(src)) as i, av.open(str(misc / "clip.mkv"), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for packet in i.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                o.mux(packet)
    concat_av(sorted(synth_corpus.rglob("01-*.mp4"))[:12], misc / "meeting 01.mp4")
    (misc / "empty.wav").write_bytes(b"")
    data = src.read_bytes()
    (misc / "cut.mp4").write_bytes(data[: len(data) // 3])
    (misc / "notes.mp4").write_text("minutes of the meeting\n" * 40)
    (root / "README.txt").write_text("excluded by name")
    return root


@pytest.fixture(scope="module")
def model(s3, tmp_path_factory):
    """(artifact URI, net): trained on actors 3 and 4, synthesized as the session's corpus is
    (every audio trial; video of 4 emotions), so every file of the archive is held out."""
    corpus = tmp_path_factory.mktemp("label-training")
    synthesize_corpus(corpus, actors=(3, 4), seed=0, modalities=("audio",))
    synthesize_corpus(corpus, actors=(3, 4), seed=0, modalities=("video",),
                      emotions=(1, 3, 5, 6), repetitions=(1,), intensities=(1,),
                      width=320, height=180, stills_dir=None)
    net = train_fusion(corpus)
    uri = f"s3://{s3.bucket}/models/fusion.pt"
    save_model(uri, net, FEATURES)
    return uri, net


@pytest.fixture(scope="module")
def source(s3, archive) -> str:
    return s3.upload_dir(archive, "archive")


def config(model_uri: str, src: str, out: str, **kw) -> LabelConfig:
    return LabelConfig(model=model_uri, input=src, output=out, files_per_part=16,
                       exclude=["*.txt"], **kw)


def read(out: str, table: str) -> pa.Table:
    fs, path = storage.filesystem(storage.join(out, table))
    return pads.dataset(path, filesystem=fs, format="parquet").to_table()


@pytest.fixture(scope="module")
def labelled(ray_local, s3, source, model):
    out = f"s3://{s3.bucket}/labels"
    summary = run_label(config(model[0], source, out))
    return out, summary


def row_key(r: dict) -> tuple:
    return r["uri"], -1.0 if r["window_start_s"] is None else r["window_start_s"]


def file_rows(t: pa.Table) -> list[dict]:
    return [r for r in t.to_pylist() if r["window_start_s"] is None]


def test_every_file_is_labelled_or_an_error_exactly_once(labelled, source, archive):
    out, summary = labelled
    files = [p for p in archive.rglob("*") if p.is_file() and p.suffix != ".txt"]
    labels, errors = read(out, "labels"), read(out, "errors")
    assert labels.schema.remove_metadata() == LABELS_SCHEMA
    assert errors.schema.remove_metadata() == ERRORS_SCHEMA
    uris = [r["uri"] for r in file_rows(labels)] + errors.column("uri").to_pylist()
    expected = {f"{source}/{p.relative_to(archive).as_posix()}" for p in files}
    assert sorted(uris) == sorted(expected) and len(uris) == len(files) == 158
    assert {u.rsplit("/", 1)[-1]: s for u, s in zip(errors.column("uri").to_pylist(),
                                                    errors.column("stage").to_pylist())} == BROKEN
    assert summary["labelled"] == 155 and summary["errors"] == 3 and summary["skipped"] == 0


def test_rows_carry_identity_and_provenance(labelled, model, archive, source):
    out, _ = labelled
    rows = file_rows(read(out, "labels"))
    artifact = storage.read_bytes(model[0])
    assert {r["model_id"] for r in rows} == {hashlib.sha256(artifact).hexdigest()[:16]}
    wav = next(archive.rglob("03-01-03-01-01-01-01.wav"))
    (row,) = [r for r in rows if r["uri"].endswith("/" + wav.name)]
    assert row["sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
    assert row["size_bytes"] == wav.stat().st_size and row["duration_s"] > 2
    assert row["processed_at"].tzinfo is not None and row["emoray_version"]
    assert sum(row[c] for c in PROB_COLUMNS) == pytest.approx(1, abs=1e-5)


def test_each_file_goes_to_the_model_for_its_media(labelled):
    out, _ = labelled
    labels = read(out, "labels").to_pylist()
    rows = {r["uri"].rsplit("/", 1)[-1]: r for r in labels if r["window_start_s"] is None}
    expected = {"01": ("fusion", True, True, True), "02": ("video", False, True, True),
                "03": ("audio", True, False, None)}
    for name, r in rows.items():
        prefix = name[:2] if name[:2] in expected else None
        if prefix:
            assert (r["modality"], r["has_audio"], r["has_video"], r["face_detected"]) == \
                expected[prefix], name
    assert rows["voice memo.bin"]["modality"] == "audio"  # a WAV, recognised by content
    assert rows["clip.mkv"]["modality"] == "fusion"
    meeting = [r for r in labels if r["uri"].endswith("/meeting 01.mp4")]
    windows = [r for r in meeting if r["window_start_s"] is not None]
    duration = rows["meeting 01.mp4"]["duration_s"]
    assert duration > 40 and len(windows) == int(np.ceil(duration / 3.0))
    assert all(w["modality"] == "fusion" for w in windows)
    mean = np.mean([[w[c] for c in PROB_COLUMNS] for w in windows], axis=0)
    np.testing.assert_allclose([rows["meeting 01.mp4"][c] for c in PROB_COLUMNS], mean, atol=1e-6)


def test_the_output_holds_its_report(labelled, source):
    out, summary = labelled
    assert summary["report"] == f"{out}/report/index.md"
    page = storage.read_bytes(summary["report"]).decode()
    assert (f"**158 files**: 155 labelled (1 of them in windows, {summary['windows']} window "
            "rows), 3 errors.") in page
    assert f"`{source}/misc/meeting 01.mp4`: 44.5 s, {summary['windows']} windows" in page
    assert "| probe | 2 | not a readable audio or video file" in page
    pngs = sorted(f.uri.rsplit("/", 1)[-1] for f in storage.list_files(f"{out}/report")
                  if f.uri.endswith(".png"))
    assert pngs == ["confidence.png", "errors.png", "labels.png", "timeline-1.png"]
    assert all(f"]({name})" in page for name in pngs)


def test_known_emotions_come_out_right(labelled, model, archive, source):
    """Scored on actors the model never saw. Chance: audio 1/8 (8 emotions, neutral and calm
    sound the same in the synthetic corpus, so at most 7/8), video and fusion 1/4 (the video
    trials hold 4 emotions, balanced)."""
    _, net = model
    hits: dict[str, list[bool]] = {}
    audio_rows = []
    for r in file_rows(read(labelled[0], "labels")):
        name = r["uri"].rsplit("/", 1)[-1]
        try:
            truth = parse_name(ALIASES.get(name, name.split(".")[0]))
        except ValueError:
            continue
        hits.setdefault(r["modality"], []).append(r["label"] == truth.emotion_name)
        if r["modality"] == "audio" and len(audio_rows) < 12:
            audio_rows.append((r, archive / r["uri"][len(source) + 1:]))
    accuracy = {m: float(np.mean(h)) for m, h in hits.items()}
    assert len(hits["audio"]) == 121 and len(hits["fusion"]) == 17 and len(hits["video"]) == 16
    assert accuracy["audio"] > 0.5 and accuracy["fusion"] > 0.7, accuracy
    assert accuracy["video"] > 0.6, accuracy
    x = np.stack([audio_clip_features(str(p), FEATURES.audio)[0] for _, p in audio_rows])
    with torch.no_grad():  # the training feature path through the same model: same numbers
        direct = torch.softmax(net.audio(torch.from_numpy(x)), 1)
    labelled_probs = [[r[c] for c in PROB_COLUMNS] for r, _ in audio_rows]
    np.testing.assert_allclose(labelled_probs, direct.numpy(), atol=1e-5)


def test_files_streamed_from_s3_get_the_same_labels(ray_local, s3, source, model, labelled):
    out = f"s3://{s3.bucket}/labels-streamed"
    summary = run_label(config(model[0], f"{source}/misc", out, in_memory_mb=0.01))
    assert (summary["labelled"], summary["errors"]) == (3, 3)
    whole = read(labelled[0], "labels").filter(
        pc.starts_with(read(labelled[0], "labels")["uri"], f"{source}/misc/"))
    a, b = (sorted(t.to_pylist(), key=row_key) for t in (read(out, "labels"), whole))
    same = ("uri", "sha256", "window_start_s", "modality", "label")
    assert [[r[k] for k in same] for r in a] == [[r[k] for k in same] for r in b]
    np.testing.assert_allclose([[r[c] for c in PROB_COLUMNS] for r in a],
                               [[r[c] for c in PROB_COLUMNS] for r in b], atol=1e-5)


def test_on_cpus_a_part_is_one_task_and_a_pinned_model_is_an_actor_pool(ray_local, model,
                                                                          source, capsys):
    entries = storage.list_files(source)[:4]

    def physical_plan(**kw) -> str:
        label_dataset(plan_parts(entries, 2, {}), config(model[0], source, "unused", **kw),
                      "fusion", FEATURES).explain()
        return capsys.readouterr().out.split("Physical Plan (Optimized)")[1]

    plan = physical_plan()  # no GPU: decode, label and commit in one task per part
    assert "TaskPoolMapOperator[Map(label_part)]" in plan and "ActorPool" not in plan
    plan = physical_plan(model_resource="emoray_gpu")  # the model on nodes of its own
    assert "TaskPoolMapOperator[Map(prepare_part)]" in plan
    assert "ActorPoolMapOperator[MapBatches(Predictor)]" in plan
    assert "TaskPoolMapOperator[Map(commit_predicted)]" in plan  # parts commit on CPU tasks


def test_killed_run_resumes_exactly_once(s3, source, model, labelled):
    out = f"s3://{s3.bucket}/labels-killed"
    cmd = [sys.executable, "-m", "emoray", "label", "--model", model[0], "--input", source,
           "--output", out, "--num-cpus", "2", "files_per_part=4", 'exclude=["*.txt"]']
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    client, deadline = s3.client(), time.monotonic() + 180
    committed = []
    while not committed and time.monotonic() < deadline and proc.poll() is None:
        listing = client.list_objects_v2(Bucket=s3.bucket, Prefix="labels-killed/labels/")
        committed = listing.get("Contents", [])
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local Ray, mid-run
    proc.wait()
    assert committed and len(read(out, "labels").column("uri").unique()) < 155
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "already labelled" in r.stdout
    again, first = read(out, "labels"), read(labelled[0], "labels")
    rows, expected = (sorted(t.to_pylist(), key=row_key) for t in (again, first))
    assert [row_key(r) for r in rows] == [row_key(r) for r in expected]  # none twice, none missing
    for a, b in zip(rows, expected):
        assert a["label"] == b["label"] and a["sha256"] == b["sha256"]
    assert sorted(read(out, "errors").column("uri").to_pylist()) == \
        sorted(read(labelled[0], "errors").column("uri").to_pylist())
    assert s3.secret_key not in r.stdout + r.stderr


def test_grown_archive_labels_only_new_files(ray_local, s3, synth_corpus, model, tmp_path):
    shutil.copytree(synth_corpus / "Actor_01", tmp_path / "Actor_01")
    src = s3.upload_dir(tmp_path, "grow")
    out = f"s3://{s3.bucket}/labels-grow"
    first = run_label(config(model[0], src, out))
    shutil.copytree(synth_corpus / "Actor_02", tmp_path / "more" / "Actor_02")
    s3.upload_dir(tmp_path / "more", "grow/more")
    second = run_label(config(model[0], src, out))
    assert (first["labelled"], second["skipped"], second["labelled"]) == (76, 76, 76)
    uris = read(out, "labels").column("uri").to_pylist()
    assert len(uris) == len(set(uris)) == 152
    third = run_label(config(model[0], src, out))
    assert (third["labelled"], third["parts"]) == (0, 0)
    with pytest.raises(ValueError, match="another model or other settings"):
        run_label(config(model[0], src, out, hop_s=1.5))


def test_no_credentials_in_any_output(labelled, s3):
    client = s3.client()
    objects = client.list_objects_v2(Bucket=s3.bucket, Prefix="labels/")["Contents"]
    for o in objects:
        body = client.get_object(Bucket=s3.bucket, Key=o["Key"])["Body"].read()
        assert s3.secret_key.encode() not in body and s3.access_key.encode() not in body
    summary = json.dumps(labelled[1])
    assert s3.secret_key not in summary


def test_cli_config_errors_name_the_field(capsys):
    base = ["--model", "m.pt", "--input", "in", "--output", "out"]
    assert label_cli.main(base + ["hop_s=0"]) == 2
    assert "hop_s: must be > 0" in capsys.readouterr().err
    assert label_cli.main(base + ["windw_s=2"]) == 2
    assert "unknown field(s) ['windw_s']" in capsys.readouterr().err


def test_storage_failures_are_reported_without_credentials(ray_local, s3, model, source,
                                                           monkeypatch, capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + s3.secret_key)
    storage._s3.cache_clear()  # the cached filesystem holds the right credentials
    try:
        rc = label_cli.main(["--model", model[0], "--input", source,
                             "--output", f"s3://{s3.bucket}/labels-denied"])
    finally:
        monkeypatch.undo()
        storage._s3.cache_clear()
    err = capsys.readouterr().err
    assert rc == 1 and "ACCESS_DENIED" in err
    assert s3.secret_key not in err


def test_label_via_ray_job_submit(s3, synth_corpus, model, tmp_path):
    src = s3.upload_dir(synth_corpus / "Actor_02", "submit")
    out = f"s3://{s3.bucket}/labels-submit"
    with ray_head(tmp_path) as (address, env):
        r = subprocess.run(
            [ray_cli(), "job", "submit", "--address", address, "--working-dir", str(REPO),
             "--", "python", "jobs/label.py", "--config", "jobs/configs/label.yaml",
             f"model={model[0]}", f"input={src}", f"output={out}"],
            env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "succeeded" in r.stdout and s3.secret_key not in r.stdout + r.stderr
    assert len(file_rows(read(out, "labels"))) == 76
