"""Model configs and their presets: ``paper`` (Sultana et al.) and ``default`` (emoray's).

A config holds only architecture; input shapes come from the ``FeatureConfig`` the shards were
written with. Configs are frozen dataclasses of plain values so artifacts can store them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from emoray.config import ConfigError, build


@dataclass(frozen=True)
class AudioNetConfig:
    """1D CNN over time, feature coefficients as input channels (one conv block per entry of
    ``channels``: conv, optional BatchNorm, ReLU, max-pool), then dense layers.

    With ``input: summary`` the network is only the dense layers, over each clip's summary
    vector (``emoray.features.summary``), and the CNN fields are unused.

    With ``members`` the network is an ensemble (``AudioEnsemble``) of those networks, each
    trained on its own loss, that combines their probabilities (``AudioEnsemble.combine``);
    its other fields are unused but ``speaker_norm``, which must be every member's, and
    ``speaker_prior``.

    With ``speaker_head`` (a CNN, alone or as a member) the network, once trained, predicts
    with a linear head over its readout (what enters the dense layers) standardised with its
    speaker's readout statistics, fitted on the training clips after the network
    (``emoray.train.speaker_head``); the dense layers still give ``embed``."""

    input: Literal["frames", "summary"] = "frames"
    channels: tuple[int, ...] = (64, 128, 256)
    kernel: int = 5
    pool: int = 2
    batchnorm: bool = False
    utterance_norm: bool = False  # standardise each coefficient over the clip's frames
    speaker_norm: bool = False  # the input arrives standardised with its speaker's statistics
    #                             (emoray.features.speakers; the training and labeling data
    #                             paths do it, not the model)
    skip_padding: bool = False  # statistics over a clip ignore its padded tail (the run of
    #                             frames identical to the last one), zeroed after normalising
    readout: Literal["flatten", "stats", "meanstd"] = "flatten"  # stats: mean and max over
    #                                                    time; meanstd: mean and std
    hidden: tuple[int, ...] = (256, 64)  # the last one is the embedding size
    dropout: float = 0.0  # before each dense layer
    input_dropout: float = 0.0  # summary input: dropout of the summary (then ``dropout``
    #                             before each later dense layer)
    time_masks: int = 0  # SpecAugment (training only): masks per clip
    time_mask_width: float = 0.1  # largest mask, as a fraction of the frames
    freq_masks: int = 0
    freq_mask_width: float = 0.15  # largest mask, as a fraction of the coefficients
    functionals: tuple[int, ...] = ()  # hidden sizes of an MLP over utterance functionals of
    #     the raw input (per coefficient: mean, std, 10/50/90% quantiles, mean and std of the
    #     frame-to-frame change), its output joined to the CNN's; () leaves it out
    members: tuple[AudioNetConfig, ...] = ()  # an ensemble of these networks
    speaker_head: bool = False  # predict from the readout standardised per speaker
    speaker_prior: float = 0.0  # k: a speaker of n clips has statistics blended with the
    #                             training population's by weight n / (n + k) (0: their own
    #                             alone); the ensemble's applies to every member
    speaker_subsets: bool = False  # training: each clip's statistics from a random subset of
    #                                its speaker's clips (1 to all), as labeling sees them
    speaker_level: bool = False  # blend with the population moved to the speaker's recording
    #                              level, so that level does not decide a lone clip's label

    def validate(self) -> None:
        if self.speaker_head and self.members:
            raise ConfigError("speaker_head: set it on a member, not on the ensemble")
        if self.speaker_head and self.input != "frames":
            raise ConfigError("speaker_head: only a CNN (input: frames) has a readout")
        if self.speaker_head and not self.speaker_norm:
            raise ConfigError("speaker_head: needs speaker_norm (the speakers' statistics of "
                              "the input come first)")
        if any(m.members for m in self.members):
            raise ConfigError("members: a member cannot itself be an ensemble")
        if self.speaker_prior < 0:
            raise ConfigError(f"speaker_prior: must be >= 0, got {self.speaker_prior}")
        if (self.speaker_prior or self.speaker_subsets) and not self.speaker_norm:
            raise ConfigError("speaker_prior, speaker_subsets: need speaker_norm")
        if self.speaker_level and not self.speaker_prior:
            raise ConfigError("speaker_level: needs speaker_prior (a population to blend with)")
        if any(m.speaker_norm != self.speaker_norm for m in self.members):
            raise ConfigError("members: every member's speaker_norm must be the ensemble's "
                              f"({self.speaker_norm})")


@dataclass(frozen=True)
class VideoNetConfig:
    """3D CNN over (frames, height, width) grayscale clips: ``channels`` conv layers with a
    max-pool after every ``pool_every`` of them, then dense layers."""

    channels: tuple[int, ...] = (16, 16, 32, 32)
    kernel: int = 3
    padding: Literal["valid", "same"] = "valid"
    pool_every: int = 2
    batchnorm: bool = False
    clip_norm: bool = False  # standardise each clip (removes lighting and skin tone)
    motion: bool = False  # the input is the clip's frame-to-frame differences (after
    #                       clip_norm): how the face moves, not what it looks like, which a
    #                       few training actors cannot teach
    readout: Literal["flatten", "mean"] = "flatten"  # mean: global average pool
    hidden: tuple[int, ...] = (64,)
    dropout: float = 0.0
    hflip: bool = False  # random horizontal flips (training only)


@dataclass(frozen=True)
class FusionNetConfig:
    """Dense head over the concatenated (frozen) branch embeddings."""

    hidden: tuple[int, ...] = (128,)
    dropout: float = 0.0
    modality_dropout: float = 0.0  # training only: chance to zero one branch's embedding


CONFIG_TYPES = {"audio": AudioNetConfig, "video": VideoNetConfig, "fusion": FusionNetConfig}

PRESETS = {
    "paper": {
        "audio": AudioNetConfig(),
        "video": VideoNetConfig(),
        "fusion": FusionNetConfig(),
    },
    "default": {
        "audio": AudioNetConfig(channels=(64, 128, 128), batchnorm=True, speaker_norm=True,
                                readout="stats", hidden=(64,), dropout=0.3,
                                time_masks=2, freq_masks=2),
        "video": VideoNetConfig(channels=(16, 32, 64, 128), padding="same", pool_every=1,
                                batchnorm=True, clip_norm=True, readout="flatten", dropout=0.3,
                                hflip=True),
        "fusion": FusionNetConfig(dropout=0.3, modality_dropout=0.2),
    },
}


def model_config(kind: str, preset: str, overrides: dict | None = None):
    """The ``preset`` config for ``kind`` (audio, video, fusion) with ``overrides`` applied;
    an audio ensemble's ``members`` are overrides of the same preset too."""
    if kind not in CONFIG_TYPES:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(CONFIG_TYPES)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    overrides = dict(overrides or {})
    if kind == "audio" and isinstance(overrides.get("members"), (list, tuple)):
        members = []
        for i, m in enumerate(overrides["members"]):
            if not isinstance(m, dict):
                raise ConfigError(f"audio.model.members[{i}]: expected a mapping, got {m!r}")
            members.append(to_dict(model_config(kind, preset, m)))
        overrides["members"] = members
    base = to_dict(PRESETS[preset][kind])
    return build(CONFIG_TYPES[kind], {**base, **overrides}, where=f"{kind}.model")


def to_dict(cfg) -> dict:
    """A config as plain lists/dicts/values (JSON- and ``weights_only``-safe)."""
    return _plain(dataclasses.asdict(cfg))


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def from_dict(kind: str, d: dict):
    return build(CONFIG_TYPES[kind], d, where=f"{kind} model config")
