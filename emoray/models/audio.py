"""Audio branch: a 1D CNN over per-frame feature vectors (MFCC or log-mel), an MLP over
each clip's summary vector (``emoray.features.summary``), or an ensemble of such networks."""

from __future__ import annotations

import math

import torch
from torch import nn

from emoray.models.augment import spec_augment
from emoray.models.config import AudioNetConfig
from emoray.models.layers import mlp


N_FUNCTIONALS = 7


def content_mask(x: torch.Tensor) -> torch.Tensor:
    """``x`` [B, T, F] -> bool [B, T], False on the padded tail: the trailing run of two or
    more frames identical to the last one (the features of the zeros a short clip is padded
    with); a clip of one repeated frame keeps its first."""
    same = (x == x[:, -1:]).all(2)
    run = same.flip(1).long().cumprod(1).sum(1)  # trailing frames equal to the last one
    length = torch.where(run > 1, x.shape[1] - run, x.shape[1]).clamp(min=1)
    return torch.arange(x.shape[1], device=x.device)[None] < length[:, None]


def utterance_functionals(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` [B, T, F], frames ``mask`` [B, T] -> [B, 7 * F]: per coefficient, over the
    masked frames, the mean, std, 10/50/90% quantiles, and the mean and std of the absolute
    frame-to-frame change."""
    nan = torch.tensor(float("nan"), device=x.device)
    v = torch.where(mask[..., None], x, nan)
    d = (v[:, 1:] - v[:, :-1]).abs()
    q = torch.nanquantile(v, torch.tensor([0.1, 0.5, 0.9], device=x.device), dim=1)
    out = torch.cat([v.nanmean(1), _nanstd(v), *q, d.nanmean(1), _nanstd(d)], 1)
    return torch.nan_to_num(out)  # one-frame clips have no change


def _nanstd(v: torch.Tensor) -> torch.Tensor:
    return (v - v.nanmean(1, keepdim=True)).pow(2).nanmean(1).sqrt()


def normalise(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Standardise each coefficient over the masked frames; masked-out frames become 0."""
    m = mask[..., None].float()
    n = m.sum(1, keepdim=True)
    mean = (x * m).sum(1, keepdim=True) / n
    std = (((x - mean) * m).pow(2).sum(1, keepdim=True) / n).sqrt()
    return (x - mean) / (std + 1e-5) * m


class AudioNet(nn.Module):
    """``forward(audio [B, T, F] float32) -> logits [B, 8]``; ``embed`` gives the last hidden
    layer (the fusion input). With ``speaker_head`` its predictions, once the head is fitted,
    are ``forward(audio, readout_stats)``."""

    inputs = ("audio",)

    def __init__(self, cfg: AudioNetConfig, shape: tuple[int, int], n_classes: int = 8):
        super().__init__()
        self.cfg = cfg
        frames, coeffs = shape
        blocks, c_in, t = [], coeffs, frames
        for c in cfg.channels:
            blocks += [nn.Conv1d(c_in, c, cfg.kernel, padding=cfg.kernel // 2)]
            blocks += [nn.BatchNorm1d(c)] if cfg.batchnorm else []
            blocks += [nn.ReLU(), nn.MaxPool1d(cfg.pool)]
            c_in, t = c, t // cfg.pool
        if t < 1:
            raise ValueError(f"audio input of {frames} frames is too short for "
                             f"{len(cfg.channels)} pooling blocks of size {cfg.pool}")
        self.conv = nn.Sequential(*blocks)
        width = c_in * t if cfg.readout == "flatten" else 2 * c_in
        if cfg.functionals:
            self.stats = nn.Sequential(nn.BatchNorm1d(N_FUNCTIONALS * coeffs),
                                       mlp(N_FUNCTIONALS * coeffs, cfg.functionals, cfg.dropout))
            width += cfg.functionals[-1]
        self.hidden = mlp(width, cfg.hidden, cfg.dropout)
        self.out = nn.Linear(cfg.hidden[-1], n_classes)
        self.readout_dim = width if cfg.speaker_head else 0
        if cfg.speaker_head:  # fitted after training (emoray.train.speaker_head), not by it
            self.speaker_head = nn.Linear(width, n_classes).requires_grad_(False)

    @property
    def embed_dim(self) -> int:
        return self.cfg.hidden[-1]

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.readout(audio))

    def readout(self, audio: torch.Tensor) -> torch.Tensor:
        """What enters the dense layers [B, width]: the pooled (or flattened) conv features,
        joined by the functionals' MLP when there is one."""
        cfg = self.cfg
        x = audio.float()
        mask = content_mask(x) if cfg.skip_padding else torch.ones_like(x[..., 0], dtype=bool)
        raw = x
        if cfg.utterance_norm:
            x = normalise(x, mask)
        if self.training:
            x = spec_augment(x, cfg.time_masks, cfg.time_mask_width, cfg.freq_masks,
                             cfg.freq_mask_width)
        h = self.conv(x.transpose(1, 2))  # [B, C, T']
        if cfg.readout == "flatten":
            h = h.flatten(1)
        else:
            h = torch.cat([h.mean(-1), h.amax(-1) if cfg.readout == "stats" else h.std(-1)], 1)
        if cfg.functionals:
            h = torch.cat([h, self.stats(utterance_functionals(raw, mask))], 1)
        return h

    def forward(self, audio: torch.Tensor, readout_stats: torch.Tensor | None = None,
                readout: torch.Tensor | None = None, clips=None) -> torch.Tensor:
        """Logits; with ``readout_stats`` [B, 2, readout_dim] (each clip's speaker's readout
        mean and std) those of the speaker head, over ``readout`` when it is given (the
        clips' ``readout``, already computed for their statistics). ``clips`` (as
        ``AudioEnsemble`` takes it) does not change one network's answer."""
        if readout_stats is None or not self.readout_dim:
            return self.out(self.embed(audio))
        z = self.readout(audio) if readout is None else readout.to(audio)
        return self.speaker_head(standardise(z, readout_stats))


def standardise(z: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    """``z`` [B, D] standardised with per-row ``stats`` [B, 2, D] (mean, std), as
    ``emoray.features.speakers.normalise`` does."""
    stats = stats.to(z)
    return (z - stats[:, 0]) / (stats[:, 1] + 1e-5)


class SummaryNet(nn.Module):
    """``forward(audio [B, size] float32 clip summaries) -> logits [B, 8]``; ``embed`` gives
    the last hidden layer."""

    inputs = ("audio",)

    def __init__(self, cfg: AudioNetConfig, size: int, n_classes: int = 8):
        super().__init__()
        self.cfg = cfg
        layers, width = [], size
        for i, h in enumerate(cfg.hidden):
            rate = cfg.input_dropout if i == 0 else cfg.dropout
            layers += [nn.Dropout(rate)] if rate else []
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(width, n_classes))

    @property
    def embed_dim(self) -> int:
        return self.cfg.hidden[-1]

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        return self.hidden(audio.float())

    readout_dim = 0  # no speaker head

    def forward(self, audio: torch.Tensor, readout_stats=None, readout=None,
                clips=None) -> torch.Tensor:
        return self.out(self.embed(audio))


class AudioEnsemble(nn.Module):
    """Networks over parts of one input, their probabilities combined.

    ``forward(audio [B, sum of part sizes])``: the members' inputs flattened and joined
    (``emoray.models.AudioInput``); in eval mode it gives the log of the members'
    probabilities' normalised weighted geometric mean [B, 8] (``combine``), in training mode
    each member's logits [B, members, 8], so that each member learns from its own loss
    (``emoray.train.loop.train_epoch``), as if trained alone. ``embed`` joins the members'
    embeddings."""

    inputs = ("audio",)

    def __init__(self, cfg: AudioNetConfig, members: list[nn.Module],
                 shapes: list[tuple[int, ...]]):
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList(members)
        self.shapes = [tuple(s) for s in shapes]

    @property
    def embed_dim(self) -> int:
        return sum(m.embed_dim for m in self.members)

    def parts(self, audio: torch.Tensor) -> list[torch.Tensor]:
        sizes = [math.prod(s) for s in self.shapes]
        return [p.reshape(len(audio), *s)
                for p, s in zip(torch.split(audio, sizes, dim=1), self.shapes)]

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed(x) for m, x in zip(self.members, self.parts(audio))], 1)

    @property
    def readout_dim(self) -> int:
        """Width of the members' speaker-head readouts, joined in member order."""
        return sum(m.readout_dim for m in self.members)

    def readout(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.readout(x) for m, x in zip(self.members, self.parts(audio))
                          if m.readout_dim], 1)

    def forward(self, audio: torch.Tensor, readout_stats: torch.Tensor | None = None,
                readout: torch.Tensor | None = None,
                clips: torch.Tensor | None = None) -> torch.Tensor:
        """``clips`` [B]: how many clips each row's speaker statistics came from (``combine``;
        None: many)."""
        stats = readouts = [None] * len(self.members)
        dims = [m.readout_dim for m in self.members]
        if readout_stats is not None:
            cuts = torch.split(readout_stats, dims, dim=2)
            stats = [c if d else None for c, d in zip(cuts, dims)]
        if readout is not None:
            readouts = [c if d else None for c, d in zip(torch.split(readout, dims, dim=1), dims)]
        logits = torch.stack([m(x, s, z) for m, x, s, z in
                              zip(self.members, self.parts(audio), stats, readouts)], 1)
        if self.training:
            return logits
        return self.combine(logits, clips)

    def combine(self, logits: torch.Tensor, clips: torch.Tensor | None = None) -> torch.Tensor:
        """Members' logits [B, members, 8] -> log-probabilities [B, 8]: the weighted mean of
        their log-probabilities, renormalised (a product of experts: a class any member
        rules out stays out). A member that needs no speaker statistics (``utterance_norm``)
        weighs 1 + k / (n + k) for a speaker of n ``clips`` (k: ``speaker_prior``; k / (n + k)
        is the population's share of the blended statistics the others rest on): nearly 2
        alone, 1 for a speaker of many clips. The others weigh 1."""
        logp = torch.log_softmax(logits.float(), -1)
        w = torch.ones(logp.shape[:2], device=logp.device)
        k = self.cfg.speaker_prior
        if clips is not None and k:
            free = torch.tensor([m.cfg.utterance_norm for m in self.members], device=w.device)
            share = k / (clips.to(w).reshape(-1, 1) + k)
            w = w + free * share
        return torch.log_softmax((w[..., None] * logp).sum(1) / w.sum(1, keepdim=True), -1)
