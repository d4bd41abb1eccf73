"""Emotion classifiers: audio 1D CNN (or an MLP over clip summaries, or an ensemble of both),
video 3D CNN, and their fusion.

Every model has ``inputs`` (the shard / batch columns ``forward`` takes, in order),
``forward(*inputs) -> logits [B, 8]`` (an audio ensemble in training mode: its members' logits,
[B, members, 8]) and ``embed(*inputs)`` (penultimate features).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from emoray.features.config import AudioFeatureConfig, FeatureConfig
from emoray.features.speakers import split_blocks
from emoray.features.summary import clip_summary, summary_size
from emoray.models.audio import AudioEnsemble, AudioNet, SummaryNet
from emoray.models.config import (AudioNetConfig, FusionNetConfig, PRESETS, VideoNetConfig,
                                  model_config)
from emoray.models.fusion import FusionHead, FusionNet
from emoray.models.video import VideoNet

__all__ = ["AudioEnsemble", "AudioInput", "AudioNet", "AudioNetConfig", "FusionHead", "FusionNet",
           "FusionNetConfig", "PRESETS", "SummaryNet", "VideoNet", "VideoNetConfig",
           "audio_branch", "audio_config", "audio_input", "build_branch", "model_config",
           "population"]


def build_branch(kind: str, cfg, features: FeatureConfig):
    """An untrained audio or video network for inputs shaped as ``features`` describes. An
    audio network with a ``speaker_prior`` carries its training population's statistics as
    buffers (``input_population`` [2, input width] and, with speaker heads,
    ``readout_population`` [2, readout width]: mean and std), set once trained."""
    net = _network(kind, cfg, features)
    if kind == "audio" and cfg.speaker_prior:
        net.register_buffer("input_population",
                            torch.zeros(2, audio_input(cfg, features.audio).width))
        if net.readout_dim:
            net.register_buffer("readout_population", torch.zeros(2, net.readout_dim))
    return net


def _network(kind: str, cfg, features: FeatureConfig):
    if kind == "audio" and cfg.members:
        parts = audio_input(cfg, features.audio)
        return AudioEnsemble(cfg, [_network(kind, m, features) for m in cfg.members],
                             [parts.part_shape(p) for p in parts.parts])
    if kind == "audio" and cfg.input == "summary":
        return SummaryNet(cfg, summary_size(features.audio.shape, features.audio.kind))
    if kind == "audio":
        return AudioNet(cfg, features.audio.shape)
    if kind == "video":
        return VideoNet(cfg, features.video.shape)
    raise ValueError(f"unknown branch {kind!r}: expected 'audio' or 'video'")


def audio_branch(model):
    """``model``'s audio network (a fusion model's audio branch), or None."""
    audio = model.audio if isinstance(model, FusionNet) else model
    return audio if isinstance(audio, (AudioNet, SummaryNet, AudioEnsemble)) else None


def population(model, part: str) -> np.ndarray | None:
    """The ``input`` or ``readout`` population statistics [2, width] ``model``'s audio
    network carries (``build_branch``), None when it has none."""
    buf = getattr(audio_branch(model), f"{part}_population", None)
    return None if buf is None else buf.detach().cpu().numpy()


def audio_config(model) -> AudioNetConfig | None:
    """The config of ``model``'s audio network, if it has one."""
    audio = audio_branch(model)
    return None if audio is None else audio.cfg


@dataclass(frozen=True)
class AudioInput:
    """What an audio network takes for a clip's features [T, F] (``shape``) of ``kind``: its
    ``parts`` in order, each ``frames`` (the features) or ``summary`` (``clip_summary``); one
    part as it is, several (an ensemble's members) flattened and joined. With
    ``speaker_norm`` it arrives standardised with its speaker's statistics, computed for each
    part on its own (``blocks``)."""

    parts: tuple[str, ...]
    shape: tuple[int, int]
    kind: str
    speaker_norm: bool

    @property
    def identity(self) -> bool:
        """Whether the network takes the frames as they are."""
        return self.parts == ("frames",)

    def part_shape(self, part: str) -> tuple[int, ...]:
        return self.shape if part == "frames" else (summary_size(self.shape, self.kind),)

    @property
    def blocks(self) -> tuple[tuple[int, int], ...] | None:
        """(rows, width) of each part of a joined input, for ``emoray.features.speakers``
        (a frames part has a row per frame, a summary one row); None for a single part,
        whose rows are its own."""
        if len(self.parts) == 1:
            return None
        return tuple((s[0], s[1]) if len(s) == 2 else (1, s[0])
                     for s in map(self.part_shape, self.parts))

    @property
    def width(self) -> int:
        """Columns of its speaker statistics."""
        blocks = self.blocks
        return sum(w for _, w in blocks) if blocks else self.part_shape(self.parts[0])[-1]

    @functools.cached_property
    def gain_direction(self) -> np.ndarray:
        """[width]: how each column of its speaker statistics moves per dB of recording level
        (log-mel frames: 1 each; a summary's elements: as ``clip_summary`` carries a shift of
        its frames, which it does linearly)."""
        x = np.random.default_rng(0).normal(-40.0, 10.0, self.shape).astype(np.float64)
        diff = (np.asarray(self(x + 1.0), np.float64) - np.asarray(self(x), np.float64))
        return np.concatenate([p.mean(0) for p in split_blocks(diff, self.blocks)])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.identity:
            return x
        parts = [x if p == "frames" else clip_summary(x, self.kind) for p in self.parts]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)


def audio_input(cfg: AudioNetConfig | None, features: AudioFeatureConfig) -> AudioInput | None:
    """The input of the audio network ``cfg`` describes (None: the model has no audio
    network)."""
    if cfg is None:
        return None
    parts = tuple(m.input for m in cfg.members) if cfg.members else (cfg.input,)
    return AudioInput(parts, features.shape, features.kind, cfg.speaker_norm)
