"""Synthetic speech-like audio: harmonics of a time-varying f0 shaped by moving formants, a
syllable envelope, breath and consonant noise, a little background noise.

Emotion acts through the speaking rate (``TEMPO``, shared with the video's mouth) and the vocal
cues (``VOCAL_PROFILE``). Neutral and calm have identical audio distributions; every other pair
differs. Actors differ in pitch, timbre, loudness, rate and expressivity; each trial adds jitter.
"""

from __future__ import annotations

import wave
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 48_000
STRONG = 1.6
"""Intensity 2 multiplies each emotion's departure from neutral by this."""

VOWELS = {  # F1, F2, F3 (Hz, adult male), jaw openness 0..1
    "i": (390, 1990, 2550, 0.35), "a": (730, 1090, 2440, 1.0), "o": (570, 840, 2410, 0.75),
    "ai": (660, 1500, 2500, 0.85), "e": (500, 1500, 2500, 0.5),
}
STATEMENTS = {  # per syllable: vowel, onset consonant noise level, stress
    1: (("i", .8, 1.), ("a", 0., .3), ("o", .6, .9), ("i", .6, .3), ("ai", .3, .6), ("e", .3, .2),
        ("o", .3, 1.)),  # Kids are talking by the door
    2: (("o", .3, 1.), ("a", 0., .3), ("i", .8, .9), ("i", .6, .3), ("ai", .3, .6), ("e", .3, .2),
        ("o", .3, 1.)),  # Dogs are sitting by the door
}

TEMPO = {1: 0.0, 2: 0.0, 3: 0.10, 4: -0.18, 5: 0.12, 6: 0.15, 7: -0.15, 8: 0.15}
"""Speaking-rate change per emotion code. The video's mouth follows the syllables, so this is
equal for neutral/calm (ambiguous in audio) and for fearful/surprised (ambiguous in video)."""


@dataclass(frozen=True)
class VocalCues:
    """One trial's vocal expression, as departures from a neutral reading."""

    pitch: float  # f0 level, semitones
    range: float  # extra accent excursion, semitones
    final: float  # extra terminal glide, semitones
    tremor: float  # 6-7 Hz vibrato depth, semitones
    loudness: float  # dB
    brightness: float  # spectral tilt, dB/octave
    breath: float  # aspiration noise, fraction of the voiced level


VOCAL_PROFILE = {
    1: VocalCues(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # neutral
    2: VocalCues(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # calm: = neutral, by design
    3: VocalCues(3.0, 3.0, 1.0, 0.0, 3.0, 1.5, 0.0),  # happy
    4: VocalCues(-2.0, -1.5, -2.0, 0.15, -5.0, -2.5, 0.08),  # sad
    5: VocalCues(2.0, 2.5, -3.0, 0.0, 8.0, 3.0, -0.02),  # angry
    6: VocalCues(5.0, 0.5, 1.0, 0.6, 2.0, 0.0, 0.10),  # fearful
    7: VocalCues(-1.5, 1.5, -4.0, 0.0, 1.0, -1.0, 0.04),  # disgust
    8: VocalCues(4.0, 3.5, 7.0, 0.0, 4.0, 1.5, 0.02),  # surprised
}
_CUE_JITTER = np.array([0.8, 0.8, 1.0, 0.05, 1.5, 0.8, 0.02])  # per-trial sd of each cue

_BASE_RANGE = 2.5  # st, accent excursion of a neutral reading
_BASE_FINAL = -2.0  # st, declarative fall
_DECLINATION = -1.5  # st over the utterance
_LEVEL_DB = -36.0  # voiced RMS of a neutral reading, dBFS (RAVDESS is recorded quietly)
_BACKGROUND_DB = -85.0  # background noise RMS, dBFS
_FORMANT_BW = np.array([80.0, 100.0, 150.0])
_FORMANT_GAIN = np.array([1.0, 0.7, 0.4])
_TOP_HZ = 8000.0  # highest harmonic
_CONTROL = 48  # samples between evaluations of the harmonic amplitudes (1 ms)


@dataclass(frozen=True)
class Voice:
    """An actor's voice."""

    f0: float  # Hz
    formant_scale: float
    tilt: float  # dB/octave
    breath: float
    rate: float  # syllables/s
    gain_db: float
    expressivity: float  # scales every emotion cue


def actor_voice(actor: int, rng: np.random.Generator) -> Voice:
    """Draw actor ``actor``'s voice (odd = male ~110-130 Hz, even = female ~190-230 Hz)."""
    male = actor % 2 == 1
    return Voice(f0=rng.uniform(110, 130) if male else rng.uniform(190, 230),
                 formant_scale=(1.0 if male else 1.16) * rng.uniform(0.95, 1.05),
                 tilt=rng.uniform(-10.5, -7.5), breath=rng.uniform(0.02, 0.06),
                 rate=rng.uniform(3.8, 5.0), gain_db=rng.uniform(-3, 3),
                 expressivity=rng.uniform(0.7, 1.3))


def exaggeration(intensity: int, expressivity: float) -> float:
    """How far a trial departs from neutral: the actor's expressivity (times STRONG at
    intensity 2)."""
    return expressivity * (STRONG if intensity == 2 else 1.0)


def vocal_cues(emotion: int, intensity: int, voice: Voice, rng: np.random.Generator) -> VocalCues:
    """One trial's vocal cues: the emotion's profile, exaggerated, plus per-trial jitter."""
    scale = exaggeration(intensity, voice.expressivity)
    v = scale * np.array(astuple(VOCAL_PROFILE[emotion])) + rng.normal(0, 1, 7) * _CUE_JITTER
    v[3] = max(v[3], 0.0)
    return VocalCues(*(float(x) for x in v))


@dataclass(frozen=True)
class Utterance:
    """When the syllables of one performance happen; its audio and video share it."""

    duration: float  # s, the whole clip
    onsets: tuple[float, ...]  # s
    lengths: tuple[float, ...]  # s
    vowels: tuple[str, ...]
    consonants: tuple[float, ...]
    stress: tuple[float, ...]

    @property
    def start(self) -> float:
        return self.onsets[0]

    @property
    def end(self) -> float:
        return self.onsets[-1] + self.lengths[-1]

    def _windows(self, t: np.ndarray) -> np.ndarray:
        """(syllables, len(t)): each syllable's rise and fall, 0 outside it."""
        on = np.array(self.onsets)[:, None]
        u = np.clip((t[None] - on) / np.array(self.lengths)[:, None], 0.0, 1.0)
        return np.sin(np.pi * u) ** 0.7

    def envelope(self, t: np.ndarray) -> np.ndarray:
        """Loudness envelope 0..1 at times ``t`` (s); stressed syllables are louder."""
        w = self._windows(t) * (0.6 + 0.4 * np.array(self.stress))[:, None]
        return w.max(axis=0)

    def jaw(self, t: np.ndarray) -> np.ndarray:
        """Mouth opening 0..1 at times ``t`` (s), following each syllable's vowel."""
        openness = np.array([VOWELS[v][3] for v in self.vowels])
        return (self._windows(t) * openness[:, None]).max(axis=0)


def plan_utterance(statement: int, emotion: int, intensity: int, voice: Voice,
                   rng: np.random.Generator) -> Utterance:
    """Timing of one trial: ~1 s of silence, 7 syllables at the actor's emotion-modified rate,
    a tail; 3-5 s in all."""
    syllables = STATEMENTS[statement]
    scale = exaggeration(intensity, voice.expressivity)
    rate = voice.rate * (1 + scale * TEMPO[emotion]) * rng.normal(1, 0.05)
    rate = float(np.clip(rate, 2.4, 8.0))
    stress = np.array([s[2] for s in syllables])
    weights = (0.7 + 0.6 * stress) * rng.uniform(0.85, 1.15, len(syllables))
    weights[-1] *= 1.3  # phrase-final lengthening
    lengths = weights / weights.mean() / rate
    lead = rng.uniform(0.85, 1.15)
    onsets = lead + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    duration = float(np.clip(onsets[-1] + lengths[-1] + rng.uniform(0.6, 1.6), 3.0, 5.0))
    return Utterance(duration, tuple(map(float, onsets)), tuple(map(float, lengths)),
                     tuple(s[0] for s in syllables), tuple(s[1] for s in syllables),
                     tuple(map(float, stress)))


def render_speech(voice: Voice, utt: Utterance, cues: VocalCues,
                  rng: np.random.Generator) -> np.ndarray:
    """The trial's mono waveform at SAMPLE_RATE, float32 in [-1, 1]."""
    n = int(round(utt.duration * SAMPLE_RATE))
    a, b = int(utt.start * SAMPLE_RATE), min(n, int(np.ceil(utt.end * SAMPLE_RATE)) + 1)
    t = np.arange(a, b) / SAMPLE_RATE
    env = utt.envelope(t)
    voiced = _harmonics(_pitch(voice, utt, cues, t, rng), _formants(voice, utt, t),
                        voice.tilt + cues.brightness) * env
    level = np.sqrt(np.mean(voiced[env > 0.5] ** 2))
    breath = max(voice.breath + cues.breath, 0.0)
    noise = _hiss(rng, len(t)) * level * (breath * env + 0.5 * _bursts(utt, t))
    speech = (voiced + noise) * (10 ** ((_LEVEL_DB + cues.loudness + voice.gain_db) / 20) / level)
    out = rng.normal(0, 10 ** (_BACKGROUND_DB / 20), n)
    out[a:b] += speech
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _pitch(voice: Voice, utt: Utterance, cues: VocalCues, t: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """f0 (Hz) at times ``t``: level, declination, accents on stressed syllables, a final glide,
    tremor and slow random drift."""
    centres = np.array(utt.onsets) + 0.5 * np.array(utt.lengths)
    widths = 0.35 * np.array(utt.lengths)
    accents = np.array(utt.stress)[:, None] * np.exp(
        -0.5 * ((t[None] - centres[:, None]) / widths[:, None]) ** 2)
    last = np.clip((t - utt.onsets[-1]) / utt.lengths[-1], 0, 1)
    drift = np.interp(t, np.linspace(t[0], t[-1], 12), rng.normal(0, 0.25, 12))
    tremor = cues.tremor * np.sin(2 * np.pi * rng.uniform(5.5, 7.5) * t + rng.uniform(0, 2 * np.pi))
    semitones = (cues.pitch + _DECLINATION * (t - t[0]) / (t[-1] - t[0])
                 + max(_BASE_RANGE + cues.range, 0.2) * accents.sum(axis=0)
                 + (_BASE_FINAL + cues.final) * last * last * (3 - 2 * last) + tremor + drift)
    return voice.f0 * 2 ** (semitones / 12)


def _formants(voice: Voice, utt: Utterance, t: np.ndarray) -> np.ndarray:
    """(3, len(t)) formant frequencies gliding between the syllables' vowel targets."""
    centres = np.array(utt.onsets) + 0.5 * np.array(utt.lengths)
    targets = np.array([VOWELS[v][:3] for v in utt.vowels], dtype=float).T * voice.formant_scale
    return np.stack([np.interp(t, centres, f) for f in targets])


def _harmonics(f0: np.ndarray, formants: np.ndarray, tilt: float) -> np.ndarray:
    """Sum of the harmonics of ``f0``, each weighted by the spectral tilt (dB/octave) and the
    formant resonances at its frequency (evaluated every _CONTROL samples, interpolated)."""
    n = len(f0)
    phase = np.mod(2 * np.pi * np.cumsum(f0) / SAMPLE_RATE, 2 * np.pi).astype(np.float32)
    k = np.arange(1, int(_TOP_HZ // f0.max()) + 1, dtype=np.float32)[:, None]
    ctl = np.minimum(np.arange(0, n + _CONTROL, _CONTROL), n - 1)
    freq = k * f0[ctl].astype(np.float32)[None]
    gain = np.full_like(freq, 0.05)
    for f, bw, g in zip(formants[:, ctl].astype(np.float32), _FORMANT_BW, _FORMANT_GAIN):
        gain += g / (1 + ((freq - f[None]) / np.float32(bw / 2)) ** 2)
    gain *= k ** np.float32(tilt / 6.02)
    w = np.arange(_CONTROL, dtype=np.float32) / _CONTROL
    gain = (gain[:, :-1, None] * (1 - w) + gain[:, 1:, None] * w).reshape(len(k), -1)[:, :n]
    return np.einsum("kn,kn->n", gain, np.sin(k * phase[None]))


def _hiss(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS noise tilted towards high frequencies (breath, fricatives)."""
    x = np.diff(rng.normal(0, 1, n + 1))
    return x / np.sqrt(2)


def _bursts(utt: Utterance, t: np.ndarray) -> np.ndarray:
    """Consonant noise at the syllable onsets."""
    dt = t[None] - np.array(utt.onsets)[:, None]
    shape = np.exp(-np.abs(dt) / 0.02) * (dt < 0.03)
    return (np.array(utt.consonants)[:, None] * shape).max(axis=0)


def write_wav(path: str | Path, x: np.ndarray) -> None:
    """Write mono float samples as 16-bit PCM WAV at SAMPLE_RATE."""
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
