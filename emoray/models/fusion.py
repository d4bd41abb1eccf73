"""Fusion: a dense head over the frozen audio and video embeddings."""

from __future__ import annotations

import torch
from torch import nn

from emoray.models.audio import AudioNet
from emoray.models.config import FusionNetConfig
from emoray.models.layers import mlp
from emoray.models.video import VideoNet


class FusionHead(nn.Module):
    """``forward(audio_emb [B, Da], video_emb [B, Dv]) -> logits``; the part fusion trains."""

    inputs = ("audio_emb", "video_emb")

    def __init__(self, cfg: FusionNetConfig, audio_dim: int, video_dim: int, n_classes: int = 8):
        super().__init__()
        self.cfg = cfg
        self.hidden = mlp(audio_dim + video_dim, cfg.hidden, cfg.dropout)
        self.out = nn.Linear(cfg.hidden[-1], n_classes)

    def embed(self, audio_emb: torch.Tensor, video_emb: torch.Tensor) -> torch.Tensor:
        p = self.cfg.modality_dropout
        if self.training and p:
            # Per clip: with probability p zero one of the two embeddings (each equally likely).
            drop = torch.rand(audio_emb.shape[0], device=audio_emb.device) < p
            which = torch.rand(audio_emb.shape[0], device=audio_emb.device) < 0.5
            audio_emb = audio_emb * ~(drop & which)[:, None]
            video_emb = video_emb * ~(drop & ~which)[:, None]
        return self.hidden(torch.cat([audio_emb, video_emb], 1))

    def forward(self, audio_emb: torch.Tensor, video_emb: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(audio_emb, video_emb))


class FusionNet(nn.Module):
    """The deployable fusion model: ``forward(audio, video) -> logits`` on shard tensors.

    The branches are frozen (no gradients, always in eval mode); only ``head`` trains.
    """

    inputs = ("audio", "video")

    def __init__(self, audio: AudioNet, video: VideoNet, head: FusionHead):
        super().__init__()
        self.audio, self.video, self.head = audio, video, head
        for branch in (audio, video):
            branch.requires_grad_(False)

    def train(self, mode: bool = True) -> "FusionNet":
        super().train(mode)
        self.audio.eval()
        self.video.eval()
        return self

    def branch_embeddings(self, audio: torch.Tensor, video: torch.Tensor):
        with torch.no_grad():
            return self.audio.embed(audio), self.video.embed(video)

    def embed(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return self.head.embed(*self.branch_embeddings(audio, video))

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return self.head(*self.branch_embeddings(audio, video))
