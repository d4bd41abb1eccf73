"""The shard schema: the public contract between preprocessing and training.

One row per RAVDESS trial. Both tensor columns are always present; a trial missing a modality
has zeros there and ``has_audio`` / ``has_video`` False. Tensors use Arrow's canonical
``arrow.fixed_shape_tensor`` extension type, which pyarrow, Ray Data and most Parquet readers
understand.

| column          | type                               | meaning                                    |
|-----------------|------------------------------------|--------------------------------------------|
| trial_id        | string                             | ``VV-EE-II-SS-RR-AA`` (RAVDESS name minus modality) |
| label           | int8                               | class 0..7, ``emoray.ravdess.EMOTIONS``    |
| emotion         | string                             | emotion name                               |
| intensity       | int8                               | 1 normal, 2 strong                         |
| statement       | int8                               | 1 or 2                                     |
| repetition      | int8                               | 1 or 2                                     |
| actor           | int8                               | 1..24                                      |
| gender          | string                             | male (odd actors) / female                 |
| audio_uri       | string, null if no audio           | source of the audio features               |
| video_uri       | string, null if no video           | source of the video features               |
| audio_sha256    | string, null if no audio           | SHA-256 of the audio source file           |
| video_sha256    | string, null if no video           | SHA-256 of the video source file           |
| has_audio       | bool                               | ``audio`` holds real features              |
| has_video       | bool                               | ``video`` holds real frames                |
| face_detected   | bool                               | False: centre-crop fallback (or no video)  |
| audio_duration_s| float32                            | duration of the decoded audio, 0 if none   |
| audio           | fixed_shape_tensor<float32>[T, F]  | features, T x F from the feature config    |
| video           | fixed_shape_tensor<uint8>[30,80,70]| grayscale face crops, frames x height x width |

URIs are ``storage`` URIs: a local name that is not UTF-8 has its undecodable bytes as ``%XX``.
The schema's metadata carries the feature config (``emoray.feature_config``, JSON) and its
fingerprint (``emoray.feature_fingerprint``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from emoray.features.config import FeatureConfig

ERRORS_SCHEMA = pa.schema([
    ("uri", pa.string()),
    ("stage", pa.string()),
    ("reason", pa.string()),
])
"""Errors table: one row per file that failed, with the stage (list, catalog, read, decode,
audio, video, write) and the reason."""


@dataclass
class ClipFeatures:
    """One trial's preprocessed row before it is written."""

    trial_id: str
    label: int
    emotion: str
    intensity: int
    statement: int
    repetition: int
    actor: int
    gender: str
    audio_uri: str | None = None
    video_uri: str | None = None
    audio_sha256: str | None = None
    video_sha256: str | None = None
    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    face_detected: bool = False
    audio_duration_s: float = 0.0


def shard_schema(cfg: FeatureConfig) -> pa.Schema:
    fields = [
        ("trial_id", pa.string()), ("label", pa.int8()), ("emotion", pa.string()),
        ("intensity", pa.int8()), ("statement", pa.int8()), ("repetition", pa.int8()),
        ("actor", pa.int8()), ("gender", pa.string()),
        ("audio_uri", pa.string()), ("video_uri", pa.string()),
        ("audio_sha256", pa.string()), ("video_sha256", pa.string()),
        ("has_audio", pa.bool_()), ("has_video", pa.bool_()), ("face_detected", pa.bool_()),
        ("audio_duration_s", pa.float32()),
        ("audio", pa.fixed_shape_tensor(pa.float32(), cfg.audio.shape)),
        ("video", pa.fixed_shape_tensor(pa.uint8(), cfg.video.shape)),
    ]
    meta = {"emoray.feature_config": json.dumps(cfg.to_dict(), sort_keys=True),
            "emoray.feature_fingerprint": cfg.fingerprint()}
    return pa.schema(fields, metadata=meta)


def to_table(rows: list[ClipFeatures], cfg: FeatureConfig) -> pa.Table:
    """Rows -> an Arrow table in the shard schema (zeros stand in for a missing modality)."""
    schema = shard_schema(cfg)
    audio = np.zeros((len(rows), *cfg.audio.shape), np.float32)
    video = np.zeros((len(rows), *cfg.video.shape), np.uint8)
    for i, r in enumerate(rows):
        if r.audio is not None:
            audio[i] = r.audio
        if r.video is not None:
            video[i] = r.video
    cols = {name: [getattr(r, name) for r in rows] for name in schema.names
            if name not in ("audio", "video", "has_audio", "has_video")}
    cols["has_audio"] = [r.audio is not None for r in rows]
    cols["has_video"] = [r.video is not None for r in rows]
    arrays = [pa.array(cols[f.name], f.type) if f.name in cols else None for f in schema]
    arrays[schema.get_field_index("audio")] = pa.FixedShapeTensorArray.from_numpy_ndarray(audio)
    arrays[schema.get_field_index("video")] = pa.FixedShapeTensorArray.from_numpy_ndarray(video)
    return pa.Table.from_arrays(arrays, schema=schema)


def feature_config_of(schema: pa.Schema) -> FeatureConfig:
    """The feature config a shard was written with."""
    meta = schema.metadata or {}
    raw = meta.get(b"emoray.feature_config")
    if raw is None:
        raise ValueError("not an emoray shard: schema has no emoray.feature_config metadata")
    return FeatureConfig.from_dict(json.loads(raw))
