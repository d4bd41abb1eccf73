"""Clip summaries (``emoray.features.summary``) and the summary audio model."""

import numpy as np
import pytest
import torch

from emoray.features.config import AudioFeatureConfig, FeatureConfig
from emoray.features.speakers import clip_sums, normalise_clips, statistics
from emoray.features.summary import (N_STATS, clip_summary, content_frames, series_stats,
                                     summary_size)
from emoray.models import AudioNetConfig, SummaryNet, audio_input, build_branch
from emoray.models.audio import content_mask

RNG = np.random.default_rng(0)


def padded(n: int, frames: int = 50, coeffs: int = 16) -> np.ndarray:
    """A clip of ``n`` varied frames, padded to ``frames`` with one repeated floor frame."""
    x = np.full((frames, coeffs), -80.0, np.float32)
    x[:n] = RNG.normal(-30, 8, (n, coeffs))
    return x


@pytest.mark.parametrize("n", [1, 2, 30, 49, 50])
def test_content_frames_leave_out_the_padded_tail_as_the_models_mask_does(n):
    x = padded(n)
    expected = n if n < 49 else 50  # a tail of one frame is not told from speech
    assert content_frames(x) == expected
    assert content_mask(torch.from_numpy(x)[None]).sum() == expected


@pytest.mark.parametrize("kind,coeffs", [("logmel", 64), ("logmel", 16), ("mfcc", 20)])
def test_summary_size_and_padding(kind, coeffs):
    x = padded(30, coeffs=coeffs)
    s = clip_summary(x, kind)
    assert s.shape == (summary_size(x.shape, kind),) and s.dtype == np.float32
    longer = np.concatenate([x, np.repeat(x[-1:], 50, 0)])  # more padding, same clip
    np.testing.assert_allclose(clip_summary(longer, kind)[:-1], s[:-1], rtol=1e-5)
    assert s[-1] == pytest.approx(30 / 50) and clip_summary(longer, kind)[-1] == pytest.approx(0.3)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 251])
def test_series_statistics_are_the_numpy_ones(n):
    v = RNG.normal(0, 5, (n, 7))
    d = np.diff(v, axis=0) if n > 1 else np.zeros_like(v)
    t = np.arange(n) - (n - 1) / 2
    slope = (t[:, None] * (v - v.mean(0))).mean(0) / (t.std() if n > 1 else 1.0)
    expected = [v.mean(0), v.std(0), *np.percentile(v, [10, 50, 90], axis=0), slope,
                np.abs(d).mean(0), d.std(0)]
    np.testing.assert_allclose(series_stats(v), np.concatenate(expected), rtol=1e-12,
                               atol=1e-12)


def test_summary_stats_are_per_series():
    x = padded(30)
    v = x[:30].astype(np.float64)
    s = clip_summary(x, "mfcc").reshape(-1)
    np.testing.assert_allclose(s[:N_STATS * 16], series_stats(v), rtol=1e-6)
    np.testing.assert_allclose(s[N_STATS * 16:-1], series_stats(np.diff(v, axis=0)), rtol=1e-6)


def test_louder_clip_moves_levels_but_not_spread_slope_or_change():
    x = padded(40, coeffs=16)
    a, b = clip_summary(x, "logmel"), clip_summary(np.where(x > -80, x + 10, x), "logmel")
    bands = 16
    stat = {name: slice(i * bands, (i + 1) * bands) for i, name in enumerate(
        ["mean", "std", "q10", "q50", "q90", "slope", "abs_change", "change_std"])}
    for name in ("mean", "q10", "q50", "q90"):
        np.testing.assert_allclose(b[stat[name]] - a[stat[name]], 10, atol=1e-3)
    for name in ("std", "slope", "abs_change", "change_std"):
        np.testing.assert_allclose(b[stat[name]], a[stat[name]], atol=1e-3)
    energy = slice(N_STATS * (bands + 2 * 16), N_STATS * (bands + 2 * 16) + 1)  # its mean
    assert b[energy] - a[energy] == pytest.approx(10, abs=1e-3)


def test_summary_model_takes_speaker_normalised_summaries():
    features = FeatureConfig(audio=AudioFeatureConfig(frames=50, n_mels=16))
    cfg = AudioNetConfig(input="summary", speaker_norm=True, hidden=(32, 16), input_dropout=0.2,
                         dropout=0.5)
    net = build_branch("audio", cfg, features)
    assert isinstance(net, SummaryNet) and net.embed_dim == 16
    prepare = audio_input(cfg, features.audio)
    assert prepare.speaker_norm
    assert audio_input(AudioNetConfig(), features.audio).identity  # the CNN takes frames
    assert prepare.blocks is None and prepare.width == summary_size((50, 16), "logmel")
    clips = [padded(n, 50, 16) for n in (10, 20, 30, 40)]
    keys = ["a", "a", "b", "b"]
    summaries = [prepare(x) for x in clips]
    stats = statistics(clip_sums(keys, summaries))  # one row per clip
    np.testing.assert_allclose(stats["a"][0], np.mean(summaries[:2], 0), rtol=1e-4, atol=1e-4)
    x = torch.from_numpy(np.stack(normalise_clips(keys, summaries, stats)))
    net.eval()
    assert net(x).shape == (4, 8) and net.embed(x).shape == (4, 16)
