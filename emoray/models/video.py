"""Video branch: a 3D CNN over grayscale face clips."""

from __future__ import annotations

import torch
from torch import nn

from emoray.models.augment import random_hflip
from emoray.models.config import VideoNetConfig
from emoray.models.layers import mlp


class VideoNet(nn.Module):
    """``forward(video [B, N, H, W] uint8) -> logits [B, 8]`` (pixels scaled by 1/255 inside);
    ``embed`` gives the last hidden layer (the fusion input)."""

    inputs = ("video",)

    def __init__(self, cfg: VideoNetConfig, shape: tuple[int, int, int], n_classes: int = 8):
        super().__init__()
        self.cfg = cfg
        layers, c_in, size = [], 1, list(shape)
        size[0] -= 1 if cfg.motion else 0
        shrink = 0 if cfg.padding == "same" else cfg.kernel - 1
        for i, c in enumerate(cfg.channels):
            layers += [nn.Conv3d(c_in, c, cfg.kernel, padding=cfg.padding)]
            layers += [nn.BatchNorm3d(c)] if cfg.batchnorm else []
            layers += [nn.ReLU()]
            size = [s - shrink for s in size]
            if (i + 1) % cfg.pool_every == 0:
                layers += [nn.MaxPool3d(2)]
                size = [s // 2 for s in size]
            c_in = c
            if min(size) < 1:
                raise ValueError(f"video input {tuple(shape)} is too small for "
                                 f"{len(cfg.channels)} {cfg.padding} conv layers")
        self.conv = nn.Sequential(*layers)
        width = c_in * size[0] * size[1] * size[2] if cfg.readout == "flatten" else c_in
        self.hidden = mlp(width, cfg.hidden, cfg.dropout)
        self.out = nn.Linear(cfg.hidden[-1], n_classes)

    @property
    def embed_dim(self) -> int:
        return self.cfg.hidden[-1]

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        x = video.float() / 255.0
        if self.cfg.clip_norm:
            flat = x.flatten(1)
            x = (x - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-5)
        if self.cfg.motion:
            x = x[:, 1:] - x[:, :-1]
        if self.training and self.cfg.hflip:
            x = random_hflip(x)
        h = self.conv(x.unsqueeze(1))  # [B, C, N', H', W']
        h = h.flatten(1) if self.cfg.readout == "flatten" else h.mean((2, 3, 4))
        return self.hidden(h)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(video))
