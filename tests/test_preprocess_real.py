"""Preprocessing real RAVDESS files from ../shared/data (``conftest.real_data``)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emoray.manifest import shard_uris
from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.ravdess import parse_name
from conftest import real_data

STEREO = {"03-01-02-01-01-02-01", "03-01-08-01-02-02-01"}  # Actor_01's stereo takes


def rows(out) -> pa.Table:
    return pa.concat_tables(pq.read_table(u) for u in shard_uris(str(out)))


def test_real_48k_wavs_of_actors_1_and_2(ray_local, tmp_path):
    manifest = run_preprocess(PreprocessConfig(input=str(real_data("ravdess-speech-48k")),
                                               output=str(tmp_path)))
    assert manifest["n_clips"] == 120 and manifest["n_errors"] == 0
    t = rows(tmp_path)
    labels = {r["audio_uri"]: r["label"] for r in t.select(["audio_uri", "label"]).to_pylist()}
    assert len(labels) == 120
    assert all(parse_name(u).label == label for u, label in labels.items())
    assert np.bincount(list(labels.values())).tolist() == [8] + [16] * 7
    feats = t.column("audio").combine_chunks().to_numpy_ndarray()
    stems = [u.rsplit("/", 1)[-1][:-4] for u in t.column("audio_uri").to_pylist()]
    stereo = np.array([s in STEREO for s in stems])
    assert stereo.sum() == 2
    # the stereo takes sit inside the mono takes' range of level and spread
    peak, spread = feats.max(axis=(1, 2)), feats.std(axis=(1, 2))
    for values in (peak, spread):
        lo, hi = np.percentile(values[~stereo], [2, 98])
        assert ((values[stereo] >= lo) & (values[stereo] <= hi)).all()


def test_real_videos_give_face_crops(ray_local, tmp_path):
    manifest = run_preprocess(PreprocessConfig(input=str(real_data("ravdess-video-actor05")),
                                               output=str(tmp_path)))
    assert manifest["n_clips"] == 3 and manifest["n_errors"] == 0 and manifest["n_no_face"] == 0
    t = rows(tmp_path)
    assert t.column("has_audio").to_pylist() == [True] * 3  # from the full-AV 01 files
    assert [u.rsplit("/", 1)[-1][:2] for u in t.column("video_uri").to_pylist()] == ["02"] * 3
    video = t.column("video").combine_chunks().to_numpy_ndarray()
    assert video.shape == (3, 30, 80, 70) and video.dtype == np.uint8
    assert t.column("face_detected").to_pylist() == [True] * 3
