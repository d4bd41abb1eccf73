"""Emotion classifiers: audio 1D CNN (or an MLP over clip summaries), video 3D CNN, and their
fusion.

Every model has ``inputs`` (the shard / batch columns ``forward`` takes, in order),
``forward(*inputs) -> logits [B, 8]`` and ``embed(*inputs)`` (penultimate features).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from emoray.features.config import AudioFeatureConfig, FeatureConfig
from emoray.features.summary import clip_summary, summary_size
from emoray.models.audio import AudioNet, SummaryNet
from emoray.models.config import (AudioNetConfig, FusionNetConfig, PRESETS, VideoNetConfig,
                                  model_config)
from emoray.models.fusion import FusionHead, FusionNet
from emoray.models.video import VideoNet

__all__ = ["AudioNet", "AudioNetConfig", "FusionHead", "FusionNet", "FusionNetConfig", "PRESETS",
           "SummaryNet", "VideoNet", "VideoNetConfig", "audio_config", "audio_input", "build_branch",
           "model_config", "speaker_normalised"]


def build_branch(kind: str, cfg, features: FeatureConfig):
    """An untrained audio or video network for inputs shaped as ``features`` describes."""
    if kind == "audio" and cfg.input == "summary":
        return SummaryNet(cfg, summary_size(features.audio.shape, features.audio.kind))
    if kind == "audio":
        return AudioNet(cfg, features.audio.shape)
    if kind == "video":
        return VideoNet(cfg, features.video.shape)
    raise ValueError(f"unknown branch {kind!r}: expected 'audio' or 'video'")


def audio_config(model) -> AudioNetConfig | None:
    """The config of ``model``'s audio network (a fusion model's audio branch), if it has one."""
    audio = model.audio if isinstance(model, FusionNet) else model
    return audio.cfg if isinstance(audio, (AudioNet, SummaryNet)) else None


def speaker_normalised(model) -> bool:
    """Whether ``model`` takes audio standardised per speaker (``AudioNetConfig.speaker_norm``;
    a fusion model when its audio branch does)."""
    cfg = audio_config(model)
    return cfg is not None and cfg.speaker_norm


def audio_input(cfg: AudioNetConfig | None,
                features: AudioFeatureConfig) -> Callable | None:
    """What turns a clip's features [T, F] into the audio network's input: the clip summary
    for ``input: summary``, else None (the frames themselves). Speaker normalisation applies
    to its output."""
    if cfg is None or cfg.input != "summary":
        return None
    return partial(clip_summary, kind=features.kind)
