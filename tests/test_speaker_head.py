"""The speaker head's fit (``emoray.train.speaker_head``) on readouts where the emotion shows
only relative to each speaker's own range."""

import numpy as np
import torch

from emoray.features.config import AudioFeatureConfig, FeatureConfig
from emoray.features.speakers import normalise, stats_rows
from emoray.models import build_branch, model_config
from emoray.train.speaker_head import fit_linear, fit_speaker_heads, readout_statistics

FEATURES = FeatureConfig(audio=AudioFeatureConfig(frames=50, n_mels=16))


def readouts(n_speakers: int, per_class: int, dim: int, seed: int = 0):
    """Clips of speakers whose readouts have their own large offset and scale; each class
    moves a few columns by a small amount, the same for everyone relative to the speaker."""
    rng = np.random.default_rng(seed)
    shift = rng.normal(0, 1, (8, dim)) * (rng.random((8, dim)) < 0.3)
    z, keys, y = [], [], []
    for s in range(n_speakers):
        offset, scale = rng.normal(0, 10, dim), rng.uniform(0.5, 4, dim)
        for c in range(8):
            v = shift[c] + rng.normal(0, 0.3, (per_class, dim))
            z.append(offset + scale * v)
            keys += [f"s{s}"] * per_class
            y += [c] * per_class
    return np.concatenate(z).astype(np.float32), keys, np.array(y)


def test_head_learns_what_standardising_each_speaker_reveals():
    cfg = model_config("audio", "default", {"channels": [8, 8], "hidden": [8],
                                            "speaker_head": True})
    net = build_branch("audio", cfg, FEATURES).eval()
    z, keys, y = readouts(8, 12, net.readout_dim)
    stats = readout_statistics(keys, z)
    train = np.array([k not in ("s6", "s7") for k in keys])
    fit_speaker_heads(net, z[train], stats_rows([k for k, t in zip(keys, train) if t], stats),
                      y[train], None, 0.1, seed=0)
    test_keys = [k for k, t in zip(keys, train) if not t]
    with torch.no_grad():
        rows = stats_rows(test_keys, stats)
        logits = net.speaker_head(torch.from_numpy(normalise(z[~train], rows[:, 0], rows[:, 1])))
    assert (logits.argmax(1).numpy() == y[~train]).mean() > 0.9  # unseen speakers
    plain = fit_linear(z[train], y[train], None, 0.1, seed=0)  # the same fit, not standardised
    with torch.no_grad():
        raw = plain(torch.from_numpy(z[~train])).argmax(1).numpy()
    assert (raw == y[~train]).mean() < 0.5
