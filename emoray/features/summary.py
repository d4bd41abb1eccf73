"""Clip summaries: one vector of statistics per audio clip, the input of the ``summary`` audio
model (``AudioNetConfig.input``).

A summary is computed from a clip's feature frames [T, F] as shards and labeling items hold
them, over the frames before the padded tail. Series: the coefficients; for log-mel features
also their cepstrum (the first ``N_CEPSTRA`` DCT coefficients of each frame: MFCCs), the
frame-to-frame change of the cepstrum, and the frame energy; for MFCC features the change of
the coefficients. Per series element, ``N_STATS`` statistics: mean, standard deviation,
10/50/90% quantiles, slope over time, and the mean absolute and standard deviation of the
frame-to-frame change. Last comes the share of the window the clip fills.

Summaries of one speaker's clips are then standardised with that speaker's statistics
(``emoray.features.speakers``, each summary one row): what sets a clip apart from the speaker's
usual range carries the emotion.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torchaudio.functional as AF

N_STATS = 8
N_CEPSTRA = 20


def content_frames(x: np.ndarray) -> int:
    """Frames of ``x`` [T, F] before its padded tail: the trailing run of two or more frames
    identical to the last one (the features of the zeros a short clip is padded with)."""
    same = (x == x[-1]).all(1)[::-1]
    run = len(same) if same.all() else int(np.argmin(same))
    return len(x) - run if run > 1 else len(x)


def series_stats(v: np.ndarray) -> np.ndarray:
    """``v`` [n, d] -> [N_STATS * d]: the statistics of each column over the frames."""
    n = len(v)
    mean, std = v.mean(0), v.std(0)
    q10, q50, q90 = _quantiles(np.sort(v, axis=0), (0.1, 0.5, 0.9))
    t = np.arange(n) - (n - 1) / 2
    slope = (t[:, None] * (v - mean)).mean(0) / (t.std() if n > 1 else 1.0)
    d = _change(v)
    return np.concatenate([mean, std, q10, q50, q90, slope, np.abs(d).mean(0), d.std(0)])


def _quantiles(s: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Quantiles of each column of the sorted ``s``, interpolated as ``np.percentile`` does
    (which costs several times more on short columns)."""
    n, out = len(s), []
    for q in qs:
        pos = q * (n - 1)
        lo = int(np.floor(pos))
        t = pos - lo
        a, b = s[lo], s[min(lo + 1, n - 1)]
        out.append(a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t))
    return out


@lru_cache(maxsize=4)
def _dct(n_mels: int) -> np.ndarray:
    return AF.create_dct(min(N_CEPSTRA, n_mels), n_mels, "ortho").numpy()


def clip_summary(x: np.ndarray, kind: str) -> np.ndarray:
    """Features ``x`` [T, F] of ``kind`` (``logmel`` in dB, or ``mfcc``) -> float32 [size]."""
    x = np.asarray(x, np.float64)
    n = max(1, content_frames(x))
    v = x[:n]
    if kind == "logmel":
        cep = v @ _dct(v.shape[1])
        energy = 10 * np.log10((10 ** (v / 10)).sum(1, keepdims=True) + 1e-10)
        series = [v, cep, _change(cep), energy]
    else:
        series = [v, _change(v)]
    out = np.concatenate(_stats_of(series) + [[n / len(x)]])
    return out.astype(np.float32)


def _stats_of(series: list[np.ndarray]) -> list[np.ndarray]:
    """``series_stats`` of each series; those of one length side by side in one call (the
    same values, a clip's summary in half the time)."""
    out: list = [None] * len(series)
    for n in {len(s) for s in series}:
        idx = [i for i, s in enumerate(series) if len(s) == n]
        stats = series_stats(np.concatenate([series[i] for i in idx], 1)).reshape(N_STATS, -1)
        cuts = np.cumsum([series[i].shape[1] for i in idx])[:-1]
        for i, block in zip(idx, np.split(stats, cuts, axis=1)):
            out[i] = block.ravel()
    return out


def summary_size(shape: tuple[int, int], kind: str) -> int:
    """Length of ``clip_summary`` for features of ``shape`` (frames, coefficients)."""
    f = shape[1]
    width = f + 2 * min(N_CEPSTRA, f) + 1 if kind == "logmel" else 2 * f
    return N_STATS * width + 1


def _change(v: np.ndarray) -> np.ndarray:
    return np.diff(v, axis=0) if len(v) > 1 else np.zeros_like(v)
