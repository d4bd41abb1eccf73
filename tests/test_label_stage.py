"""Labeling stages without Ray: the training feature path for clips, routing by content, windows
of long files, and committing parts exactly once."""

import os
import posixpath
import random

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from emoray import storage
from emoray.features.audio import audio_clip_features
from emoray.features.config import preset
from emoray.features.video import video_features
from emoray.label.parts import Done, commit_part, done_uris, plan_parts, recover, write_part
from emoray.label.stage import Settings, file_rows, label_file, predict, prepare_file
from emoray.models import (AudioNet, AudioNetConfig, FusionHead, FusionNet, FusionNetConfig,
                           VideoNet, VideoNetConfig)
from emoray.ravdess import EMOTIONS
from media import tone, write_video
from test_label_media import concat_av, write_av

FEATURES = preset("default")
SETTINGS = Settings()


def tiny_fusion() -> FusionNet:
    """An untrained fusion model (seeded): labels are arbitrary but deterministic."""
    torch.manual_seed(0)
    audio = AudioNet(AudioNetConfig(channels=(8,), readout="stats", hidden=(8,)),
                     FEATURES.audio.shape)
    video = VideoNet(VideoNetConfig(channels=(4,), padding="same", readout="mean", hidden=(8,)),
                     FEATURES.video.shape)
    return FusionNet(audio, video, FusionHead(FusionNetConfig(hidden=(8,)), 8, 8)).eval()


@pytest.fixture(scope="module")
def model() -> FusionNet:
    return tiny_fusion()


def gray_frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="gray") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def files(synth_corpus, tmp_path_factory):
    """Synthetic files plus: a video with a silent AAC track (as RAVDESS video-only files), a
    face-less video with speech, a face-less video alone, a long full-AV recording, and a long
    one whose face leaves the picture halfway."""
    d = tmp_path_factory.mktemp("label-stage")
    av_clip = next(synth_corpus.rglob("01-*.mp4"))
    face = gray_frames(next(synth_corpus.rglob("02-*.mp4")))
    plain = np.tile(np.linspace(40, 200, 96, dtype=np.uint8)[None, None], (90, 54, 1))
    room = np.tile(np.linspace(40, 200, 320, dtype=np.uint8)[None, None], (90, 180, 1))
    room = write_av(d / "empty room.mp4", room, tone(3.0, 48000))  # the AV clips' size, no face
    return {
        "av": av_clip,
        "wav": next(synth_corpus.rglob("03-*.wav")),
        "silent_track": write_av(d / "silent.mp4", face, np.zeros(48000 * 3, np.float32)),
        "no_face_speech": write_av(d / "noface.mp4", plain, tone(3.0, 48000)),
        "no_face_alone": write_video(d / "plain.mp4", plain),
        "long": concat_av(sorted(synth_corpus.rglob("01-*.mp4"))[:4], d / "long recording.mp4"),
        "face_leaves": concat_av([av_clip, av_clip, room, room], d / "face leaves.mp4"),
    }


def prepare(path, kind="fusion", settings=SETTINGS):
    return list(prepare_file(str(path), os.path.getsize(path), kind, FEATURES, settings))


def test_a_clip_takes_exactly_the_training_feature_path(files):
    (item,) = prepare(files["av"])
    assert (item["kind"], item["modality"], item["face_detected"]) == ("clip", "fusion", True)
    path = str(files["av"])
    np.testing.assert_array_equal(item["audio"], audio_clip_features(path, FEATURES.audio)[0])
    np.testing.assert_array_equal(item["video"], video_features(path, FEATURES.video)[0])
    assert item["window_start_s"] is None and len(item["sha256"]) == 64


@pytest.mark.parametrize("name, kind, modality, has_audio, has_video, face", [
    ("wav", "fusion", "audio", True, False, None),
    ("silent_track", "fusion", "video", False, True, True),
    ("no_face_speech", "fusion", "audio", True, True, False),
    ("no_face_alone", "fusion", "video", False, True, False),
    ("av", "audio", "audio", True, True, None),
    ("av", "video", "video", False, True, True),
])
def test_routing(files, name, kind, modality, has_audio, has_video, face):
    (item,) = prepare(files[name], kind)
    assert item["kind"] == "clip"
    assert (item["modality"], item["has_audio"], item["has_video"], item["face_detected"]) == \
        (modality, has_audio, has_video, face)
    assert (item["audio"] is not None) == (modality in ("audio", "fusion"))
    assert (item["video"] is not None) == (modality in ("video", "fusion"))


@pytest.mark.parametrize("name, kind, reason", [
    ("silent_track", "audio", "nothing the audio model can label (silent audio)"),
    ("wav", "video", "no video stream, and the model is a video model"),
    ("no_face_alone", "audio", "no audio stream, and the model is an audio model"),
])
def test_what_the_model_cannot_label_is_an_error(files, name, kind, reason):
    (item,) = prepare(files[name], kind)
    assert (item["kind"], item["stage"], item["reason"]) == ("error", "route", reason)


def test_long_recording_is_labelled_in_windows_plus_their_mean(files, model):
    path = files["long"]
    rows, errors = label_file(str(path), os.path.getsize(path), model, "fusion", FEATURES,
                              Settings(hop_s=2.0), EMOTIONS)
    assert not errors
    file_row, windows = rows[0], rows[1:]
    duration = file_row["duration_s"]
    assert duration > 12 and file_row["window_start_s"] is None
    assert [w["window_start_s"] for w in windows][:3] == [0.0, 2.0, 4.0]
    assert windows[-1]["window_end_s"] == pytest.approx(duration)
    assert all(w["modality"] == "fusion" and w["face_detected"] for w in windows)
    probs = np.array([[w[f"p_{e}"] for e in EMOTIONS] for w in windows])
    mean = probs.mean(axis=0)
    assert [file_row[f"p_{e}"] for e in EMOTIONS] == pytest.approx(mean.tolist(), abs=1e-6)
    assert file_row["label"] == EMOTIONS[int(mean.argmax())]


def test_file_row_of_windows_that_differ_is_mixed(files, model):
    """A recording whose face leaves the picture halfway: its first windows go to fusion, its
    last to the audio branch (speech, no face), and its file row says ``mixed``."""
    path = files["face_leaves"]
    rows, errors = label_file(str(path), os.path.getsize(path), model, "fusion", FEATURES,
                              SETTINGS, EMOTIONS)
    assert not errors
    file_row, windows = rows[0], rows[1:]
    modalities = [w["modality"] for w in windows]
    assert modalities[0] == "fusion" and modalities[-1] == "audio", modalities
    assert (file_row["modality"], file_row["face_detected"], file_row["has_audio"]) == \
        ("mixed", True, True)


def test_predict_uses_the_fusion_models_branches(files, model):
    items = [prepare(files[n])[0] for n in ("av", "wav", "silent_track")]
    probs = predict(model, "fusion", [it["modality"] for it in items],
                    [it["audio"] for it in items], [it["video"] for it in items])
    with torch.no_grad():
        a = torch.from_numpy(items[1]["audio"][None])
        v = torch.from_numpy(items[2]["video"][None])
        expected = [torch.softmax(model.audio(a), 1)[0], torch.softmax(model.video(v), 1)[0]]
    np.testing.assert_allclose(probs[1:], torch.stack(expected).numpy(), rtol=1e-5, atol=1e-6)
    assert probs.sum(axis=1) == pytest.approx([1, 1, 1], abs=1e-5)


def _predicted(path, part, model, settings=SETTINGS):
    items = prepare(path, settings=settings)
    probs = predict(model, "fusion", [it["modality"] for it in items],
                    [it["audio"] for it in items], [it["video"] for it in items])
    return [{**it, "part": part, "audio": None, "video": None,
             "probs": None if np.isnan(p).any() else p.tolist()} for it, p in zip(items, probs)]


def test_a_part_commits_from_its_rows_in_any_order(files, model, tmp_path):
    long, wav = str(files["long"]), str(files["wav"])
    entries = [storage.FileEntry(u, os.path.getsize(u)) for u in (long, wav)]
    entries.append(storage.FileEntry("/nowhere.wav", 10))
    p1, p2 = plan_parts(entries, 2, {"model_id": "m"})
    assert p1.uris == ("/nowhere.wav", long) and p2.uris == (wav,)
    rows = _predicted(long, p1.name, model)
    rows += [dict(r, part=p1.name) for r in
             prepare_file("/nowhere.wav", 10, "fusion", FEATURES, SETTINGS)]
    assert rows[-1]["kind"] == "error"
    random.Random(0).shuffle(rows)
    commit = lambda part, got: commit_part(str(tmp_path), part.name, list(part.uris), got,  # noqa
                                           EMOTIONS, "m", {"model_id": "m"})
    with pytest.raises(RuntimeError, match="without all their rows"):
        commit(p1, [r for r in rows if r["kind"] != "window"][:-1])  # a window short
    assert not (tmp_path / "labels").exists()
    counts = commit(p1, rows)
    n_windows = sum(r["kind"] == "window" for r in rows)
    assert counts == {"part": p1.name, "files": 1, "windows": n_windows, "errors": 1}
    assert commit(p2, _predicted(wav, p2.name, model))["files"] == 1
    labels = pq.read_table(tmp_path / "labels" / f"{p1.name}.parquet")
    errors = pq.read_table(tmp_path / "errors" / f"{p1.name}.parquet")
    assert set(labels.column("uri").to_pylist()) == {long}
    assert labels.column("window_start_s").to_pylist()[0] is None  # the file row first
    assert errors.select(["uri", "stage"]).to_pylist() == [{"uri": "/nowhere.wav", "stage": "read"}]
    assert not (tmp_path / "errors" / f"{p2.name}.parquet").exists()


def test_parts_of_a_speaker_normalised_model_hold_whole_speakers():
    """Speakers no larger than a part are packed whole; a larger one gets parts of its own,
    split evenly and interleaved so each spans it; the plan does not depend on listing order."""
    sizes = {"a": 3, "b": 2, "c": 4, "big": 11, "d": 1}
    entries = [storage.FileEntry(f"/{s}/{i:02d}.wav", 100 + i)
               for s, n in sizes.items() for i in range(n)]
    plan = lambda files: plan_parts(files, 5, {"model_id": "m"}, posixpath.dirname, 4)  # noqa
    parts = plan(entries)
    assert plan(list(reversed(entries))) == parts
    who = [sorted({posixpath.dirname(u) for u in p.uris}) for p in parts]
    assert sorted(who) == [["/a", "/b"], ["/big"], ["/big"], ["/big"], ["/c", "/d"]]
    big = sorted((p for p in parts if p.uris[0].startswith("/big/")), key=lambda p: p.uris)
    assert [p.uris[:2] for p in big] == [("/big/00.wav", "/big/03.wav"),  # interleaved
                                         ("/big/01.wav", "/big/04.wav"),
                                         ("/big/02.wav", "/big/05.wav")]
    assert sorted(len(p.uris) for p in big) == [3, 4, 4]
    assert sorted(u for p in parts for u in p.uris) == sorted(e.uri for e in entries)
    assert len({p.name for p in parts}) == len(parts)


def test_a_file_that_fails_midway_leaves_no_label_rows(files, model):
    rows = _predicted(files["long"], "p", model)
    windows = [r for r in rows if r["kind"] == "window"][:3]
    failed = windows + [{**rows[-1], "kind": "error", "n_windows": 3, "stage": "decode",
                         "reason": "truncated"}]
    labels, errors = file_rows(failed, EMOTIONS)
    assert labels == [] and [(e["stage"], e["reason"]) for e in errors] == [("decode", "truncated")]


def test_recover_drops_uncommitted_batches_and_reads_committed_ones(tmp_path):
    out = str(tmp_path)
    settings = {"model_id": "m", "window_s": 3.0}
    row = {"uri": "/a.wav", "window_start_s": None}
    write_part(out, "part-done", [row], [{"uri": "/b.wav", "stage": "probe", "reason": "x",
                                         "size_bytes": 1}], "m", settings)
    write_part(out, "part-killed", [], [{"uri": "/c.wav", "stage": "probe", "reason": "x",
                                         "size_bytes": 1}], "m", settings)
    os.remove(tmp_path / "labels" / "part-killed.parquet")  # killed between its two writes
    (tmp_path / "labels" / "part-x.parquet.tmp-1234abcd").write_bytes(b"half")
    done = recover(out)
    assert set(done_uris(done)) == {"/a.wav", "/b.wav"} and done.settings == settings
    assert sorted(os.listdir(tmp_path / "errors")) == ["part-done.parquet"]
    assert sorted(os.listdir(tmp_path / "labels")) == ["part-done.parquet"]
    assert recover(str(tmp_path / "fresh")) == Done()
