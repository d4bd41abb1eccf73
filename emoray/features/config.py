"""Feature configuration: everything that decides what a shard's tensors hold.

A model artifact stores its ``FeatureConfig`` so that labeling preprocesses exactly as the
training shards were preprocessed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AudioFeatureConfig:
    kind: str = "logmel"  # "logmel" or "mfcc"
    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 64
    n_mfcc: int = 20  # used when kind == "mfcc"
    frames: int = 300  # fixed time length: pad with the floor value / trim
    trim_silence: bool = True  # drop leading and trailing near-silence before fixing the length
    silence_db: float = 40.0  # "silence" is this far below the clip's loudest 25 ms

    @property
    def shape(self) -> tuple[int, int]:
        """(time frames, coefficients) of one clip's feature tensor."""
        return (self.frames, self.n_mfcc if self.kind == "mfcc" else self.n_mels)

    @property
    def samples(self) -> int:
        """Waveform length (samples) that yields exactly ``frames`` frames."""
        return (self.frames - 1) * self.hop_length


@dataclass(frozen=True)
class VideoFeatureConfig:
    frames: int = 30
    window_s: float = 3.0
    height: int = 80
    width: int = 70
    detect_frames: int = 3  # face detection runs on this many of the sampled frames
    detect_width: int = 320  # detection runs on frames scaled to this width
    margin: float = 0.1  # extra border around the detected box, as a fraction of its size

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.frames, self.height, self.width)


@dataclass(frozen=True)
class FeatureConfig:
    audio: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    video: VideoFeatureConfig = field(default_factory=VideoFeatureConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        unknown = set(d) - {"audio", "video"}
        if unknown:
            raise ValueError(f"feature config: unknown fields {sorted(unknown)}")
        return cls(audio=_build(AudioFeatureConfig, d.get("audio", {}), "audio"),
                   video=_build(VideoFeatureConfig, d.get("video", {}), "video"))

    def fingerprint(self) -> str:
        """Short stable hash; shards and models carry it to detect mismatches."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _build(cls, d: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"feature config: unknown {where} fields {sorted(unknown)}; "
                         f"allowed: {sorted(names)}")
    obj = cls(**d)
    if where == "audio" and obj.kind not in ("logmel", "mfcc"):
        raise ValueError(f"feature config: audio.kind {obj.kind!r} is not 'logmel' or 'mfcc'")
    return obj


PRESETS = {
    # The paper: 20 MFCCs x 180 frames per clip, untrimmed (the paper states a 180x20 frame).
    "paper": FeatureConfig(audio=AudioFeatureConfig(kind="mfcc", n_fft=640, hop_length=320,
                                                    n_mels=40, frames=180, trim_silence=False)),
    # emoray's default: 64 log-mel bands, 10 ms hop, 3 s of speech after trimming silence.
    "default": FeatureConfig(),
}


def preset(name: str) -> FeatureConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown feature preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
