"""Training-time augmentation applied inside models (a no-op in eval mode)."""

from __future__ import annotations

import torch


def spec_augment(x: torch.Tensor, time_masks: int, time_width: float, freq_masks: int,
                 freq_width: float) -> torch.Tensor:
    """SpecAugment masks on ``x`` [B, T, F]: zero random time and coefficient bands per clip."""
    if not (time_masks or freq_masks):
        return x
    b, t, f = x.shape
    keep = torch.ones_like(x, dtype=torch.bool)
    for n, size, width, dim in ((time_masks, t, time_width, 1), (freq_masks, f, freq_width, 2)):
        max_w = max(1, int(size * width))
        for _ in range(n):
            w = torch.randint(0, max_w + 1, (b,), device=x.device)
            start = (torch.rand(b, device=x.device) * (size - w + 1)).long()
            pos = torch.arange(size, device=x.device)
            band = (pos[None] >= start[:, None]) & (pos[None] < (start + w)[:, None])  # [B, size]
            keep &= ~(band[:, :, None] if dim == 1 else band[:, None, :])
    return x * keep


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each clip of ``x`` [B, ..., W] left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)
