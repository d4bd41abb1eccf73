"""The speaker head: once an audio CNN is trained, a linear classifier over its readout (the
pooled conv features that enter its dense layers) standardised with the speaker's readout
statistics, fitted on the training clips (``AudioNetConfig.speaker_head``).

Speaker normalisation of the input (``emoray.features.speakers``) leaves the CNN's pooled
features still speaker-dependent; standardising them per speaker as well, as the summary
model's input is, and refitting the last layer on them is what the head adds. A speaker's
readout statistics come from all their clips, never from labels, like their input
statistics. Plain functions: the Ray passes that compute readouts are in
``emoray.train.data``, and labeling's in ``emoray.label.speakers``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emoray.features import speakers

EPOCHS = 100
BATCH_SIZE = 32
LR = 1e-3
WEIGHT_DECAY = 1e-2
DROPOUT = 0.5  # on the standardised readout, while fitting


def head_members(model: nn.Module) -> list[nn.Module]:
    """The networks of ``model`` (itself, or an ensemble's members) with a speaker head, in
    the order their readouts are joined."""
    nets = list(model.members) if hasattr(model, "members") else [model]
    return [m for m in nets if m.readout_dim]


def readout_statistics(keys, readouts, population=None,
                       prior: float = 0.0) -> speakers.Stats:
    """speaker -> (mean, std) of each readout column over the speaker's clips (blended with
    a ``population`` by ``prior``, as ``emoray.features.speakers.statistics`` does)."""
    return speakers.statistics(speakers.clip_sums(keys, readouts), population, prior)


def fit_speaker_heads(model: nn.Module, readouts: np.ndarray, stats: np.ndarray, labels,
                      class_weights: list[float] | None, label_smoothing: float,
                      seed: int) -> None:
    """Fit the speaker head of each network of ``model`` in place, on training clips'
    ``readouts`` [N, D] (``model.readout``: the heads' columns joined), labels, and each
    clip's readout statistics ``stats`` [N, 2, D] (its speaker's, or its subset's)."""
    z = speakers.normalise(readouts, stats[:, 0], stats[:, 1])
    start = 0
    for net in head_members(model):
        part = z[:, start:start + net.readout_dim]
        start += net.readout_dim
        head = fit_linear(part, np.asarray(labels), class_weights, label_smoothing, seed)
        net.speaker_head.load_state_dict(head.state_dict())


def fit_linear(z: np.ndarray, labels: np.ndarray, class_weights: list[float] | None,
               label_smoothing: float, seed: int) -> nn.Linear:
    """A linear classifier of ``z`` [N, D] into 8 classes: AdamW, dropout on the input,
    cross-entropy with the stage's class weights and label smoothing."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Linear(z.shape[1], 8)
    drop = nn.Dropout(DROPOUT)
    loss_fn = nn.CrossEntropyLoss(
        weight=torch.tensor(class_weights, dtype=torch.float32) if class_weights else None,
        label_smoothing=label_smoothing)
    opt = torch.optim.AdamW(head.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    x, y = torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)
    with torch.enable_grad():
        for _ in range(EPOCHS):
            perm = torch.randperm(len(y), generator=gen)
            for k in range(0, len(y), BATCH_SIZE):
                b = perm[k:k + BATCH_SIZE]
                loss = loss_fn(head(drop(x[b])), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return head.eval()
