"""Audio branch: a 1D CNN over per-frame feature vectors (MFCC or log-mel)."""

from __future__ import annotations

import torch
from torch import nn

from emoray.models.augment import spec_augment
from emoray.models.config import AudioNetConfig
from emoray.models.layers import mlp


class AudioNet(nn.Module):
    """``forward(audio [B, T, F] float32) -> logits [B, 8]``; ``embed`` gives the last hidden
    layer (the fusion input)."""

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
        self.hidden = mlp(width, cfg.hidden, cfg.dropout)
        self.out = nn.Linear(cfg.hidden[-1], n_classes)

    @property
    def embed_dim(self) -> int:
        return self.cfg.hidden[-1]

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x = audio.float()
        if cfg.utterance_norm:
            x = (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-5)
        if self.training:
            x = spec_augment(x, cfg.time_masks, cfg.time_mask_width, cfg.freq_masks,
                             cfg.freq_mask_width)
        h = self.conv(x.transpose(1, 2))  # [B, C, T']
        if cfg.readout == "flatten":
            h = h.flatten(1)
        else:
            h = torch.cat([h.mean(-1), h.amax(-1)], 1)
        return self.hidden(h)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(audio))
