"""A small learnable stand-in for preprocessed RAVDESS shards (tests only).

Mimics the corpus design: audio cannot tell calm (1) from neutral (0), video cannot tell
fearful (5) from surprised (7); every other class is separable in each modality. Each actor
adds its own offset and gain, so held-out actors are a real generalisation test. Tensors are
small (audio 40x12, video 16x24x20) to keep CPU training fast.
"""

from __future__ import annotations

import itertools

import numpy as np

from emoray.features.config import AudioFeatureConfig, FeatureConfig, VideoFeatureConfig
from emoray.manifest import write_manifest
from emoray.ravdess import EMOTIONS
from emoray.shards import ClipFeatures, to_table
from emoray import storage

TOY_FEATURES = FeatureConfig(
    audio=AudioFeatureConfig(kind="mfcc", n_mfcc=12, frames=40),
    video=VideoFeatureConfig(frames=16, height=24, width=20),
)
AUDIO_TWINS = (0, 1)  # neutral and calm sound the same
VIDEO_TWINS = (5, 7)  # fearful and surprised look the same


def _audio_prototypes(rng: np.random.Generator, shape) -> np.ndarray:
    """Per class: a constant spectral shape plus a class-specific modulation over time (which
    survives per-utterance normalisation)."""
    t, f = shape
    time = np.arange(t)[:, None] / t
    protos = []
    for c in range(len(EMOTIONS)):
        level = rng.normal(0.0, 1.0, (1, f))
        depth = rng.normal(0.0, 1.5, (1, f))
        protos.append(level + depth * np.sin(2 * np.pi * (1 + c % 3) * time + rng.uniform(0, 6.3)))
    protos = np.stack(protos)
    protos[AUDIO_TWINS[1]] = protos[AUDIO_TWINS[0]]
    return protos.astype(np.float32)


def _video_prototypes(rng: np.random.Generator, shape) -> np.ndarray:
    n, h, w = shape
    protos = np.zeros((len(EMOTIONS), n, h, w), np.float32)
    for c in range(len(EMOTIONS)):
        y, x = rng.integers(2, h - 6), rng.integers(2, w - 6)
        dy, dx = rng.integers(-1, 2, size=2)
        for i in range(n):  # a bright patch that moves over the clip
            yy = int(np.clip(y + dy * i // 2, 0, h - 4))
            xx = int(np.clip(x + dx * i // 2, 0, w - 4))
            protos[c, i, yy:yy + 4, xx:xx + 4] = 1.0
    protos[VIDEO_TWINS[1]] = protos[VIDEO_TWINS[0]]
    return protos


def toy_rows(n_actors: int = 8, seed: int = 0,
             features: FeatureConfig = TOY_FEATURES) -> list[ClipFeatures]:
    """RAVDESS-shaped speech trials: per actor 8 per emotion (intensity x statement x
    repetition), 4 for neutral, which has no strong intensity."""
    rng = np.random.default_rng(seed)
    audio_p = _audio_prototypes(rng, features.audio.shape)
    video_p = _video_prototypes(rng, features.video.shape)
    rows = []
    for actor in range(1, n_actors + 1):
        a_off = rng.normal(0.0, 0.5, (1, features.audio.shape[1]))
        a_gain = rng.uniform(0.7, 1.3)
        v_base = rng.uniform(60, 120)  # skin brightness
        v_gain = rng.uniform(70, 110)
        for label in range(len(EMOTIONS)):
            for intensity, statement, repetition in itertools.product(
                    (1,) if label == 0 else (1, 2), (1, 2), (1, 2)):
                audio = (a_gain * audio_p[label] + a_off
                         + rng.normal(0.0, 0.6, features.audio.shape))
                video = (v_base + v_gain * video_p[label]
                         + rng.normal(0.0, 12.0, features.video.shape))
                trial = (f"01-{label + 1:02d}-{intensity:02d}-{statement:02d}-"
                         f"{repetition:02d}-{actor:02d}")
                rows.append(ClipFeatures(
                    trial_id=trial, label=label, emotion=EMOTIONS[label], intensity=intensity,
                    statement=statement, repetition=repetition, actor=actor,
                    gender="male" if actor % 2 else "female",
                    audio_uri=f"toy/03-{trial}.wav", video_uri=f"toy/02-{trial}.mp4",
                    audio=audio.astype(np.float32),
                    video=np.clip(video, 0, 255).astype(np.uint8),
                    face_detected=True, audio_duration_s=3.0))
    return rows


def write_toy_shards(output: str, n_shards: int = 4, features: FeatureConfig = TOY_FEATURES,
                     **kwargs) -> str:
    """Write toy shards plus ``manifest.json`` under ``output``; returns ``output``."""
    import pyarrow.parquet as pq

    rows = toy_rows(features=features, **kwargs)
    order = np.random.default_rng(1).permutation(len(rows))
    shards = []
    for i, part in enumerate(np.array_split(order, n_shards)):
        table = to_table([rows[j] for j in part], features)
        path = f"shards/part-{i:05d}.parquet"
        fs, p = storage.filesystem(storage.join(output, path))
        fs.create_dir(p.rsplit("/", 1)[0])
        pq.write_table(table, p, filesystem=fs)
        shards.append({"path": path, "rows": len(part)})
    write_manifest(output, {"shards": shards, "feature_config": features.to_dict(),
                            "feature_fingerprint": features.fingerprint()})
    return output
