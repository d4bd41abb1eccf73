"""Emotion classifiers: audio 1D CNN, video 3D CNN, and their fusion.

Every model has ``inputs`` (the shard / batch columns ``forward`` takes, in order),
``forward(*inputs) -> logits [B, 8]`` and ``embed(*inputs)`` (penultimate features).
"""

from __future__ import annotations

from emoray.features.config import FeatureConfig
from emoray.models.audio import AudioNet
from emoray.models.config import (AudioNetConfig, FusionNetConfig, PRESETS, VideoNetConfig,
                                  model_config)
from emoray.models.fusion import FusionHead, FusionNet
from emoray.models.video import VideoNet

__all__ = ["AudioNet", "AudioNetConfig", "FusionHead", "FusionNet", "FusionNetConfig", "PRESETS",
           "VideoNet", "VideoNetConfig", "build_branch", "model_config", "speaker_normalised"]


def build_branch(kind: str, cfg, features: FeatureConfig):
    """An untrained audio or video network for inputs shaped as ``features`` describes."""
    if kind == "audio":
        return AudioNet(cfg, features.audio.shape)
    if kind == "video":
        return VideoNet(cfg, features.video.shape)
    raise ValueError(f"unknown branch {kind!r}: expected 'audio' or 'video'")


def speaker_normalised(model) -> bool:
    """Whether ``model`` takes audio standardised per speaker (``AudioNetConfig.speaker_norm``;
    a fusion model when its audio branch does)."""
    audio = model.audio if isinstance(model, FusionNet) else model
    return isinstance(audio, AudioNet) and audio.cfg.speaker_norm
