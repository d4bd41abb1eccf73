"""Recording channels simulated on log-mel features: what another microphone, a telephone
line or a noisy room does to a clip, applied to the features shards hold (no re-decoding).

A ``Channel`` is a recording level, a smooth frequency response (the microphone and room), an
optional band limit (telephone: 300-3400 Hz) and optional additive noise at a signal-to-noise
ratio. ``apply`` works in each mel band's power, as the waveform would have had it: the clean
power times the channel's gain at the band's centre frequency, plus the noise's expected power
in the band; then dB and the 80 dB floor below the clip's loudest frame, as
``emoray.features.audio`` computes them, with the padded tail at that floor (the zeros a
short recording is padded with). Training uses it to hear each training actor again through
channels drawn at random (``emoray.train.data``, ``audio.channel_copies``): one channel per
copy of an actor, so the copy is a speaker of its own with statistics of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torchaudio.functional as AF

from emoray.features.config import AudioFeatureConfig
from emoray.features.summary import content_frames

TOP_DB = 80.0  # the floor of emoray.features.audio (AmplitudeToDB top_db)


@dataclass(frozen=True)
class Channel:
    gain_db: float = 0.0
    response: tuple[float, ...] = ()  # dB: cosine-series coefficients over the mel bands
    band: tuple[float, float] | None = None  # Hz: the band it passes (4th-order edges)
    snr_db: float | None = None  # additive noise of this level below the clip's speech
    noise_tilt: float = 0.0  # dB per octave of the noise spectrum (0 white, -3 pink)


def random_channel(rng: np.random.Generator) -> Channel:
    """A channel drawn at random: level within +-12 dB, a response of up to about +-6 dB,
    a telephone-like band with chance 1/2, noise at 5-30 dB SNR (white to pink) with chance
    1/2."""
    band = (float(rng.uniform(150, 400)), float(rng.uniform(3000, 5000))) \
        if rng.random() < 0.5 else None
    snr = float(rng.uniform(5, 30)) if rng.random() < 0.5 else None
    return Channel(gain_db=float(rng.uniform(-12, 12)),
                   response=tuple(float(a) for a in rng.normal(0, 2.5, 3)),
                   band=band, snr_db=snr, noise_tilt=float(rng.uniform(-3, 0)))


@lru_cache(maxsize=4)
def band_geometry(cfg: AudioFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(centre frequency in Hz, share of a white noise's power) of each mel band."""
    if cfg.kind != "logmel":
        raise ValueError(f"channel simulation needs log-mel features, not {cfg.kind!r}")
    n_freqs = cfg.n_fft // 2 + 1
    fb = AF.melscale_fbanks(n_freqs, 0.0, cfg.sample_rate / 2, cfg.n_mels,
                            cfg.sample_rate).numpy().astype(np.float64)  # [freqs, mels]
    freqs = np.linspace(0, cfg.sample_rate / 2, n_freqs)
    weight = fb.sum(0)
    centre = (fb * freqs[:, None]).sum(0) / np.maximum(weight, 1e-12)
    return centre, weight / weight.sum()


def response_db(channel: Channel, cfg: AudioFeatureConfig) -> np.ndarray:
    """[n_mels] dB the channel adds to each band's power (level, response, band edges)."""
    centre, _ = band_geometry(cfg)
    m = np.linspace(0, 1, cfg.n_mels)
    h = np.full(cfg.n_mels, channel.gain_db)
    for j, a in enumerate(channel.response, 1):
        h += a * np.cos(np.pi * j * m)
    if channel.band is not None:
        lo, hi = channel.band
        f = np.maximum(centre, 1.0)
        h -= 10 * np.log10(1 + (lo / f) ** 8) + 10 * np.log10(1 + (f / hi) ** 8)
    return h


def apply(x: np.ndarray, channel: Channel, cfg: AudioFeatureConfig) -> np.ndarray:
    """Log-mel features ``x`` [T, F] (dB) as heard through ``channel``: float32 [T, F]."""
    x = np.asarray(x, np.float64)
    n = content_frames(x)
    power = 10 ** (x[:n] / 10) * 10 ** (response_db(channel, cfg) / 10)
    if channel.snr_db is not None:
        centre, share = band_geometry(cfg)
        colour = share * (np.maximum(centre, 50.0) / 1000.0) ** (channel.noise_tilt / 3.0103)
        speech = power.sum(1).mean()
        power = power + speech / 10 ** (channel.snr_db / 10) * colour / colour.sum()
    db = 10 * np.log10(np.maximum(power, 1e-10))
    floor = db.max() - TOP_DB
    out = np.full(x.shape, floor)
    out[:n] = np.maximum(db, floor)
    return out.astype(np.float32)
