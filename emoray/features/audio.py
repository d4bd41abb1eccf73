"""Audio path: decode any audio (PyAV) -> mono 16 kHz float32 -> fixed-length features (torchaudio)."""

from __future__ import annotations

from functools import lru_cache

import av
import numpy as np
import torch
import torchaudio.transforms as T

from emoray.errors import MediaError, too_long
from emoray.features.config import AudioFeatureConfig
from emoray.features.ffmpeg import ffmpeg_errors, open_media

# Open without long stream probing: it dominates the cost of short files (README of the data).
_FAST_OPEN = {"probesize": "32768", "analyzeduration": "0"}


def decode_audio(src, sample_rate: int, max_s: float | None = None) -> np.ndarray:
    """Decode the first audio stream of ``src`` (path or binary file object), resample to
    ``sample_rate`` and downmix to mono as the mean of the channels (so a stereo file of two
    identical channels equals its mono version). Returns float32 samples.

    Raises ``MediaError("decode", ...)`` for unreadable files or files without audio, and
    ``MediaError("audio", ...)`` for audio longer than ``max_s`` (when given) as soon as its
    header or its decoded samples show it: a long recording is never decoded whole.
    """
    with open_media(src, "decode", _FAST_OPEN) as container, ffmpeg_errors("decode"):
        if not container.streams.audio:
            raise MediaError("decode", "no audio stream")
        declared = container.duration / av.time_base if container.duration else None
        if max_s is not None and declared and declared > max_s:
            raise too_long("audio", f"{declared:.1f} s", max_s)
        limit = np.inf if max_s is None else max_s * sample_rate
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)  # keeps the layout
        chunks, n = [], 0
        for frame in container.decode(container.streams.audio[0]):
            for r in resampler.resample(frame):
                chunks.append(r.to_ndarray())
                n += r.samples
            if n > limit:
                raise too_long("audio", f"more than {max_s:g} s", max_s)
        chunks.extend(r.to_ndarray() for r in resampler.resample(None))
    if not chunks:
        raise MediaError("decode", "audio stream has no samples")
    return np.concatenate(chunks, axis=1).mean(axis=0)


def peak_dbfs(wave: np.ndarray) -> float:
    """Peak level in dB relative to full scale; digital silence gives -240."""
    return 20 * float(np.log10(np.abs(wave).max(initial=0.0) + 1e-12))


def trim_silence(wave: np.ndarray, cfg: AudioFeatureConfig) -> np.ndarray:
    """Drop leading and trailing audio quieter than ``silence_db`` below the loudest 25 ms."""
    win = cfg.sample_rate // 40
    n = len(wave) // win
    if n < 2:
        return wave
    energy = (wave[: n * win].reshape(n, win) ** 2).mean(axis=1)
    db = 10 * np.log10(energy + 1e-12)
    loud = np.flatnonzero(db > db.max() - cfg.silence_db)
    return wave[loud[0] * win: (loud[-1] + 1) * win]


def fix_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """Trim the end, or pad it with zeros, to exactly ``samples``."""
    if len(wave) >= samples:
        return wave[:samples]
    return np.pad(wave, (0, samples - len(wave)))


@lru_cache(maxsize=4)
def _transform(cfg: AudioFeatureConfig) -> torch.nn.Module:
    mel = {"n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "n_mels": cfg.n_mels,
           "center": True}
    if cfg.kind == "mfcc":
        return T.MFCC(sample_rate=cfg.sample_rate, n_mfcc=cfg.n_mfcc, melkwargs=mel)
    return torch.nn.Sequential(T.MelSpectrogram(sample_rate=cfg.sample_rate, **mel),
                               T.AmplitudeToDB(stype="power", top_db=80.0))


def audio_features(wave: np.ndarray, cfg: AudioFeatureConfig) -> np.ndarray:
    """Mono waveform at ``cfg.sample_rate`` -> float32 features of shape ``cfg.shape`` (time, coeffs)."""
    if cfg.trim_silence:
        wave = trim_silence(wave, cfg)
    wave = fix_length(wave, cfg.samples)
    with torch.no_grad():
        feats = _transform(cfg)(torch.from_numpy(np.ascontiguousarray(wave, np.float32)))
    out = feats.T.numpy()
    if out.shape != cfg.shape:  # guards the frames/hop arithmetic of AudioFeatureConfig.samples
        raise MediaError("audio", f"feature shape {out.shape} != expected {cfg.shape}")
    return np.ascontiguousarray(out, dtype=np.float32)


def audio_clip_features(src, cfg: AudioFeatureConfig) -> tuple[np.ndarray, float]:
    """Decode and featurize one file: (features, duration in seconds)."""
    wave = decode_audio(src, cfg.sample_rate)
    return audio_features(wave, cfg), len(wave) / cfg.sample_rate
