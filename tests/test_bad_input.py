"""Bad and unusual input (``badmedia.FILES``) beside good files, through preprocessing and
labeling on Ray, from S3 and from a local folder (the kinds S3 cannot hold: names that are not
UTF-8, a dangling symlink): every bad file gets its exact error or a correct result, every good
file is processed, and the stages' memory stays bounded whatever the file."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from badmedia import (DANGLING_TARGET, ESCAPED, FILES, LOCAL_ONLY, LONG_S, RATE,
                      write_bad_corpus)
from emoray.artifact import save_model
from emoray.features.config import preset
from emoray.label.job import run_label
from emoray.label.schema import PROB_COLUMNS
from emoray.label.stage import Settings, prepare_file
from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.preprocess.stage import ShardReport, featurize_trial
from emoray.ravdess import parse_name
from media import tone, write_audio
from test_label_job import config, read
from test_label_stage import tiny_fusion
from test_preprocess import read_rows

FEATURES = preset("default")
UNREADABLE = "not a readable audio or video file"
DANGLING = ("read", f"dangling symlink -> {DANGLING_TARGET}")
SHORT = "too short: {} s; clips shorter than 0.5 s are refused"
PREPROCESS_ERRORS = {  # kind -> (stage, reason); every other kind becomes a row
    "zero_bytes": ("read", "file is empty"),
    "truncated_wav_header": ("decode", UNREADABLE),
    "truncated_mp4_no_moov": ("decode", f"{UNREADABLE}: moov atom not found"),
    "text_as_media": ("decode", UNREADABLE),
    "no_audio_or_video_stream": ("decode", "no audio stream"),
    "all_zero_audio": ("audio", "silent: peak -240 dBFS is below -60 dBFS"),
    "audio_30_min": ("audio", "1800.0 s long; clips longer than 60 s are refused "
                              "(`emoray label` labels long recordings in windows)"),
    "unicode_file_name": ("catalog", "\"réunion d'équipe 01 🎙\" is not a RAVDESS name: "
                                     "expected seven two-digit fields MM-VV-EE-II-SS-RR-AA"),
    "impossible_emotion_09": ("catalog", "'03-01-09-01-01-01-03': emotion 09 is not one of "
                                         "01, 02, 03, 04, 05, 06, 07, 08"),
    "one_frame_video": ("video", SHORT.format("0.033")),
    "audio_20_ms": ("audio", SHORT.format("0.020")),
    "non_utf8_file_name": ("catalog", "'r%E9union %AB1%BB' is not a RAVDESS name: expected "
                                      "seven two-digit fields MM-VV-EE-II-SS-RR-AA"),
    "dangling_symlink": DANGLING,
}
PREPROCESS_ROWS = {  # kind -> (has_audio, audio_duration_s, has_video, face_detected)
    "clipped_audio": (True, 3.0, False, False),
    "video_without_face": (False, 0.0, True, False),
    "video_4k": (False, 0.0, True, True),
    "audio_8khz": (True, 3.0, False, False),
    "audio_6_channels": (True, 3.0, False, False),
    "unicode_folder": (True, 3.0, False, False),
    "non_utf8_folder": (True, 3.0, False, False),
}
LABEL_ERRORS = {
    "zero_bytes": ("read", "file is empty"),
    "truncated_wav_header": ("probe", UNREADABLE),
    "truncated_mp4_no_moov": ("probe", f"{UNREADABLE}: moov atom not found"),
    "text_as_media": ("probe", UNREADABLE),
    "no_audio_or_video_stream": ("probe", "no audio or video stream"),
    "one_frame_video": ("route", SHORT.format("0.033")),
    "audio_20_ms": ("route", SHORT.format("0.020")),
    "dangling_symlink": DANGLING,
}
LABEL_ROWS = {  # kind -> (modality, has_audio, has_video, face_detected, duration_s)
    "all_zero_audio": ("audio", False, False, None, 3.0),  # silence is all there is: flagged
    "clipped_audio": ("audio", True, False, None, 3.0),
    "video_without_face": ("video", False, True, False, 3.0),
    "video_4k": ("video", False, True, True, 0.6),
    "audio_30_min": ("audio", True, False, None, LONG_S),
    "audio_8khz": ("audio", True, False, None, 3.0),
    "audio_6_channels": ("audio", True, False, None, 3.0),
    "unicode_folder": ("audio", True, False, None, 3.0),
    "unicode_file_name": ("audio", True, False, None, 3.0),
    "impossible_emotion_09": ("audio", True, False, None, 3.0),
    "non_utf8_folder": ("audio", True, False, None, 3.0),
    "non_utf8_file_name": ("audio", True, False, None, 3.0),
}
SAME_SPEECH = ("unicode_folder", "unicode_file_name", "impossible_emotion_09", "audio_6_channels",
               "non_utf8_folder", "non_utf8_file_name")
LOCAL_KINDS = LOCAL_ONLY + ("unicode_file_name", "audio_20_ms", "one_frame_video")
PEAK_BYTES = 40 << 20  # RSS per file and stage; a whole 30-min decode is 350 MB (float32)
PEAK_4K_BYTES = 160 << 20  # FFmpeg's H.264 decoder alone holds about 84 MB of frames on this
#                            file (12 MB each at 3840x2160); 30 decoded 4K frames are 370 MB


def test_every_kind_has_one_expected_outcome_per_stage():
    assert len(FILES) >= 12
    for errors, rows in ((PREPROCESS_ERRORS, PREPROCESS_ROWS), (LABEL_ERRORS, LABEL_ROWS)):
        assert set(errors) | set(rows) == set(FILES) and not set(errors) & set(rows)


@pytest.fixture(scope="module")
def corpus(synth_corpus, tmp_path_factory):
    """Actor 01 of the synthetic corpus (60 WAVs, 8 video-only and 8 full-AV MP4s) plus the bad
    files; returns (root, kind -> path, the good paths)."""
    root = tmp_path_factory.mktemp("bad-input")
    shutil.copytree(synth_corpus / "Actor_01", root / "Actor_01")
    good = sorted(p for p in (root / "Actor_01").iterdir())
    with av.open(str(next(p for p in good if p.name.startswith("02-")))) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    return root, write_bad_corpus(root, frames[len(frames) // 2]), good


@dataclass(frozen=True)
class Site:
    """An input the jobs read: its URI, the bad kinds and good files it holds, and the URI the
    jobs give each."""

    src: str
    kinds: tuple[str, ...]
    uri: dict[str, str]  # kind -> URI
    good: dict[Path, str]  # good file (its local original) -> URI

    def expected(self, outcomes: dict) -> dict:
        """``outcomes`` (kind -> outcome) of the kinds here, by URI."""
        return {self.uri[k]: v for k, v in outcomes.items() if k in self.kinds}


@pytest.fixture(scope="module", params=["s3", "local"])
def site(request, corpus) -> Site:
    """``s3``: the whole corpus but the kinds S3 cannot hold. ``local``: a folder of those, a
    few other odd kinds and two good files."""
    root, paths, good = corpus
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")
        kinds = tuple(k for k in FILES if k not in LOCAL_ONLY)
        src = s3.upload_dir(root, "bad-input", skip=[paths[k] for k in LOCAL_ONLY])
        return Site(src, kinds, {k: f"{src}/{FILES[k]}" for k in kinds},
                    {p: f"{src}/{p.relative_to(root).as_posix()}" for p in good})
    local = request.getfixturevalue("tmp_path_factory").mktemp("odd-names")
    picked = [next(p for p in good if p.suffix == ".wav"), next(p for p in good
                                                                if p.name.startswith("01-"))]
    for p in [paths[k] for k in LOCAL_KINDS] + picked:
        dst = local / p.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst, follow_symlinks=False)  # the dangling link stays one
    return Site(str(local), LOCAL_KINDS,
                {k: f"{local}/{ESCAPED.get(k, FILES[k])}" for k in LOCAL_KINDS},
                {p: f"{local}/{p.relative_to(root).as_posix()}" for p in picked})


@pytest.fixture(scope="module")
def preprocessed(ray_local, s3, site):
    out = f"s3://{s3.bucket}/bad-input-shards-{'s3' if site.src.startswith('s3://') else 'local'}"
    return out, run_preprocess(PreprocessConfig(input=site.src, output=out, shard_size=16))


def test_preprocessing_gives_each_bad_file_its_exact_error(preprocessed, site):
    out, manifest = preprocessed
    errors = read(out, "errors.parquet").to_pylist()
    expected = site.expected(PREPROCESS_ERRORS)
    assert {e["uri"]: (e["stage"], e["reason"]) for e in errors} == expected
    assert manifest["n_errors"] == len(expected)


def test_preprocessing_keeps_every_good_file_and_the_usable_odd_ones(preprocessed, site, corpus):
    out, manifest = preprocessed
    paths = corpus[1]
    t = read_rows(out)
    rows = {r["trial_id"]: r for r in t.drop_columns(["audio", "video"]).to_pylist()}
    good_trials = {parse_name(p.name).trial_id for p in site.good}
    odd = {parse_name(paths[k].name).trial_id: k for k in PREPROCESS_ROWS if k in site.kinds}
    assert set(rows) == good_trials | set(odd) and manifest["n_clips"] == len(rows) == t.num_rows
    for tid, kind in odd.items():
        r = rows[tid]
        has_audio, duration, has_video, face = PREPROCESS_ROWS[kind]
        assert (r["has_audio"], r["has_video"], r["face_detected"]) == (has_audio, has_video,
                                                                        face), kind
        assert r["audio_duration_s"] == pytest.approx(duration, abs=0.01), kind
        assert r["audio_uri" if has_audio else "video_uri"] == site.uri[kind]
    with_video = {parse_name(p.name).trial_id for p in site.good if p.suffix == ".mp4"}
    for tid in good_trials:  # every source of a good trial made it
        assert rows[tid]["has_audio"] and rows[tid]["has_video"] == (tid in with_video), tid
    if not site.src.startswith("s3://"):
        return
    audio = dict(zip(t.column("trial_id").to_pylist(),
                     t.column("audio").combine_chunks().to_numpy_ndarray()))
    video = dict(zip(t.column("trial_id").to_pylist(),
                     t.column("video").combine_chunks().to_numpy_ndarray()))
    tid = {k: parse_name(paths[k].name).trial_id for k in PREPROCESS_ROWS}
    # 6 channels of mean `speech` downmix to the mono file, to within 16-bit rounding of each
    # channel (0.3 dB at most in the quietest bands); the first channel alone, which carries a
    # 330 Hz tone at -14 dBFS, is tens of dB away in the bands around it
    np.testing.assert_allclose(audio[tid["audio_6_channels"]], audio[tid["unicode_folder"]],
                               atol=0.5)
    few = video[tid["video_4k"]].astype(np.int16)  # 6 frames of one face (H.264 keeps them
    assert np.abs(few - few[0]).mean() < 1 and few.std() > 5  # within a level), padded to 30
    assert all(np.isfinite(a).all() for a in audio.values())


def test_labeling_gives_each_file_its_exact_error_or_label(ray_local, s3, site):
    model_uri = f"s3://{s3.bucket}/bad-input-model/fusion.pt"
    save_model(model_uri, tiny_fusion(), FEATURES)
    out = f"s3://{s3.bucket}/bad-input-labels-{'s3' if site.src.startswith('s3://') else 'local'}"
    summary = run_label(config(model_uri, site.src, out))
    labels, errors = read(out, "labels").to_pylist(), read(out, "errors").to_pylist()
    expected_errors = site.expected(LABEL_ERRORS)
    assert {e["uri"]: (e["stage"], e["reason"]) for e in errors} == expected_errors
    files = {r["uri"]: r for r in labels if r["window_start_s"] is None}
    assert set(files) == set(site.good.values()) | set(site.expected(LABEL_ROWS))
    assert summary["labelled"] == len(files) and summary["errors"] == len(expected_errors)
    for uri, (modality, has_audio, has_video, face, duration) in \
            site.expected(LABEL_ROWS).items():
        r = files[uri]
        assert (r["modality"], r["has_audio"], r["has_video"], r["face_detected"]) == \
            (modality, has_audio, has_video, face), uri
        assert r["duration_s"] == pytest.approx(duration, rel=0.01), uri
    if "audio_30_min" in site.kinds:
        windows = [r for r in labels
                   if r["uri"] == site.uri["audio_30_min"] and r["window_start_s"] is not None]
        assert len(windows) == LONG_S / 3 and windows[-1]["window_end_s"] == LONG_S
    same = [site.uri[k] for k in SAME_SPEECH if k in site.kinds]
    probs = [[files[u][c] for c in PROB_COLUMNS] for u in same]
    # the same speech (6 channels of its mean: to within their 16-bit rounding)
    np.testing.assert_allclose(probs, [probs[0]] * len(probs), atol=1e-3)
    for p, uri in site.good.items():
        expected = {"01": "fusion", "02": "video", "03": "audio"}[p.name[:2]]
        assert files[uri]["modality"] == expected, p.name


@pytest.mark.parametrize("seconds, refused", [(0.49, True), (0.5, False)])
def test_both_jobs_refuse_a_clip_under_the_same_minimum(tmp_path, seconds, refused):
    path = write_audio(tmp_path / "03-01-05-01-01-01-03.wav", tone(seconds, RATE, amp=0.3), RATE)
    (item,) = prepare_file(str(path), path.stat().st_size, "fusion", FEATURES, Settings())
    report = ShardReport("x")
    trial = {"stem": "03-01-05-01-01-01-03", "audio_uri": str(path), "video_uri": None,
             "audio_size": path.stat().st_size, "video_size": None}
    row = featurize_trial(trial, FEATURES, report)
    short = SHORT.format(f"{seconds:.3f}")
    if refused:
        assert (item["kind"], item["stage"], item["reason"]) == ("error", "route", short)
        assert row is None and report.errors == [{"uri": str(path), "stage": "audio",
                                                  "reason": short}]
    else:
        assert item["kind"] == "clip" and item["modality"] == "audio"
        assert row.audio_duration_s == pytest.approx(seconds) and not report.errors


def _trial(path) -> dict | None:
    """The preprocessing trial of one RAVDESS-named file (None: its name is a catalog error)."""
    try:
        name = parse_name(path.name)
    except ValueError:
        return None
    modality = "video" if name.modality == 2 else "audio"
    return {"stem": name.stem(), "audio_uri": None, "video_uri": None, "audio_size": None,
            "video_size": None, f"{modality}_uri": str(path),
            f"{modality}_size": os.path.getsize(path) if path.exists() else 0}  # dangling: 0


@pytest.fixture(scope="module")
def peak_rss(corpus) -> dict[tuple[str, str], int]:
    """(kind, stage) -> how far the process's peak RSS rose while the stage ran on that one
    file, measured by ``peak_rss.py`` in a process of its own (after a warm-up on good files)."""
    _, paths, good = corpus
    warm = [next(p for p in good if p.name.startswith(m)) for m in ("01-", "03-")]
    keys, jobs = [], []
    for kind in sorted(FILES):
        keys.append((kind, "label"))
        jobs.append({"stage": "label", "path": str(paths[kind])})
        if (trial := _trial(paths[kind])) is not None:
            keys.append((kind, "preprocess"))
            jobs.append({"stage": "preprocess", "trial": trial})
    request = {"warm": [str(warm[0])], "warm_trials": [_trial(warm[1])], "jobs": jobs}
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("peak_rss.py"))],
                       input=json.dumps(request), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(zip(keys, json.loads(r.stdout)))


@pytest.mark.parametrize("kind", sorted(FILES))
def test_memory_per_file_stays_bounded(peak_rss, kind):
    """Peak process memory (RSS: FFmpeg, PyAV, OpenCV and torch buffers included) of each stage
    on one file: a 30-min recording costs no more than a small clip, a 4K video no more than
    its decoder's frames."""
    peaks = {stage: b for (k, stage), b in peak_rss.items() if k == kind}
    bound = PEAK_4K_BYTES if kind == "video_4k" else PEAK_BYTES
    assert peaks and max(peaks.values()) < bound, peaks
