"""Recording channels simulated on log-mel features (emoray.features.channels) against the
same channels applied to the waveform, and the channel copies training adds."""

import dataclasses

import numpy as np
import torch
import torchaudio.functional as AF

from emoray.features.audio import audio_features
from emoray.features.channels import Channel, apply, random_channel
from emoray.features.config import AudioFeatureConfig
from emoray.features.summary import content_frames
from emoray.train.data import COPY_ACTOR, channel_rows, with_channels
from emoray.train.splits import Split

CFG = dataclasses.replace(AudioFeatureConfig(), trim_silence=False)


def _voice(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A voiced sound: harmonics of a gliding 120-220 Hz pitch, syllable-like amplitude."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    f0 = 120 + 100 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / CFG.sample_rate
    wave = sum(np.sin(h * phase + rng.uniform(0, 6)) / h for h in range(1, 30)
               if h * 220 < CFG.sample_rate / 2)
    return (0.3 * wave * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _content(x):
    return x[: int(2.0 * CFG.sample_rate) // CFG.hop_length]


def test_noise_on_features_matches_noise_on_the_waveform():
    wave = _voice()
    clean = audio_features(wave, CFG)
    rng = np.random.default_rng(1)
    for snr in (10.0, 20.0):
        noise = rng.normal(size=len(wave)) * np.sqrt((wave ** 2).mean() / 10 ** (snr / 10))
        heard = audio_features((wave + noise).astype(np.float32), CFG)
        sim = apply(clean, Channel(snr_db=snr), CFG)
        err = np.abs(_content(sim) - _content(heard)).mean()
        assert err < 0.35 * np.abs(_content(clean) - _content(heard)).mean(), snr
        assert err < 2.5, snr  # dB, per band and frame


def test_band_limit_on_features_matches_a_filtered_waveform():
    wave = torch.from_numpy(_voice())
    clean = audio_features(wave.numpy(), CFG)
    for _ in range(2):  # 4th-order 300-3400 Hz, as a telephone line passes
        wave = AF.lowpass_biquad(AF.highpass_biquad(wave, CFG.sample_rate, 300.0),
                                 CFG.sample_rate, 3400.0)
    heard = audio_features(wave.numpy(), CFG)
    sim = apply(clean, Channel(band=(300.0, 3400.0)), CFG)
    err = np.abs(_content(sim) - _content(heard)).mean()
    assert err < 0.5 * np.abs(_content(clean) - _content(heard)).mean()


def test_gain_shifts_every_band_and_the_padded_tail_stays_at_the_floor():
    clean = audio_features(_voice(), CFG)
    out = apply(clean, Channel(gain_db=-15.0, response=(2.0, -1.0, 0.5)), CFG)
    n = content_frames(clean)
    m = np.linspace(0, 1, CFG.n_mels)
    shift = -15 + 2 * np.cos(np.pi * m) - np.cos(2 * np.pi * m) + 0.5 * np.cos(3 * np.pi * m)
    above = clean[:n] > clean.max() - 60  # clear of the floor before and after
    np.testing.assert_allclose((out[:n] - clean[:n])[above], np.broadcast_to(shift, (n, 64))[above],
                               atol=1e-3)
    np.testing.assert_allclose(out[n:], out.max() - 80.0, atol=1e-4)
    assert out.shape == clean.shape and out.dtype == np.float32


def test_channel_copies_are_new_speakers_of_the_training_actors_only(ray_local):
    rows = [{"trial_id": f"t{a}-{i}", "label": i % 8, "actor": a,
             "audio": audio_features(_voice(1.5, seed=10 * a + i), CFG)}
            for a in (1, 2, 3) for i in range(3)]
    split = Split("fold0", tuple(r["trial_id"] for r in rows if r["actor"] != 3), (),
                  tuple(r["trial_id"] for r in rows if r["actor"] == 3), (3,))
    ds = ray_local.data.from_items(rows)
    out = {r["trial_id"]: r for r in channel_rows(ds, split, 2, CFG, seed=7).take_all()}
    assert set(out) == set(with_channels(split, 2).train) | set(split.test)
    assert {out[f"t1-0~ch{k}"]["actor"] for k in (1, 2)} == {1 + COPY_ACTOR, 1 + 2 * COPY_ACTOR}
    again = {r["trial_id"]: r for r in channel_rows(ds, split, 2, CFG, seed=7).take_all()}
    for trial, r in out.items():
        source = rows[[x["trial_id"] for x in rows].index(trial.split("~")[0])]
        assert r["label"] == source["label"]
        np.testing.assert_array_equal(r["audio"], again[trial]["audio"])  # same seed, same copy
        if "~" not in trial:
            np.testing.assert_array_equal(r["audio"], source["audio"])
        else:
            assert np.abs(r["audio"] - source["audio"]).mean() > 1.0  # a channel was applied
    # one channel per copy of an actor, drawn from the seed, the actor and the copy
    for a, k in ((1, 1), (2, 2)):
        channel = random_channel(np.random.default_rng([7, a, k]))
        for i in range(3):
            np.testing.assert_allclose(out[f"t{a}-{i}~ch{k}"]["audio"],
                                       apply(rows[3 * (a - 1) + i]["audio"], channel, CFG))


def test_random_channels_vary():
    rng = np.random.default_rng(0)
    drawn = [random_channel(rng) for _ in range(200)]
    assert 0.35 < np.mean([c.band is not None for c in drawn]) < 0.65
    assert 0.35 < np.mean([c.snr_db is not None for c in drawn]) < 0.65
    assert np.ptp([c.gain_db for c in drawn]) > 20
