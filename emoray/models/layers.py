"""Small building blocks shared by the models."""

from __future__ import annotations

from torch import nn


def mlp(width: int, hidden: tuple[int, ...], dropout: float) -> nn.Sequential:
    """Dense ReLU layers ``width -> hidden[0] -> ... -> hidden[-1]``, dropout before each."""
    layers = []
    for h in hidden:
        layers += [nn.Dropout(dropout)] if dropout else []
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers)
