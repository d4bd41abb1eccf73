import io

import numpy as np
import pytest

from emoray.errors import MediaError
from emoray.features.audio import audio_clip_features, audio_features, decode_audio
from emoray.features.config import preset
from conftest import real_data
from media import tone, write_audio, write_video

DEFAULT = preset("default").audio
PAPER = preset("paper").audio


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize("rate, channels, ext, codec", [
    (48000, 2, "wav", "pcm_s16le"), (8000, 1, "wav", "pcm_s16le"),
    (44100, 6, "wav", "pcm_s16le"), (22050, 1, "flac", "flac")])
def test_decode_downmixes_and_resamples_to_16k(tmp_path, rate, channels, ext, codec):
    gains = np.linspace(1.0, 0.2, channels)  # louder first channel: the mean is quieter
    wave = gains[:, None] * tone(1.5, rate, 440.0, amp=0.8)
    path = write_audio(tmp_path / f"a.{ext}", wave, rate, codec)
    out = decode_audio(str(path), 16000)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 1.5 * 16000) < 400
    assert abs(peak_hz(out, 16000) - 440.0) < 2
    assert np.abs(out).max() == pytest.approx(0.8 * gains.mean(), abs=0.02)


@pytest.mark.parametrize("channels", [2, 6])
def test_downmix_is_the_mean_of_the_channels(tmp_path, channels):
    """Each channel holds a tone of its own: the decoded file equals the mono file of their
    mean (not its first channel, nor a weighted mix)."""
    wave = np.stack([tone(2.0, 48000, 200.0 + 150 * c, amp=0.4) for c in range(channels)])
    mixed = decode_audio(str(write_audio(tmp_path / "c.wav", wave, 48000)), 16000)
    mean = decode_audio(str(write_audio(tmp_path / "m.wav", wave.mean(axis=0), 48000)), 16000)
    np.testing.assert_allclose(mixed, mean, atol=2e-3)


def test_silence_is_trimmed_before_fixing_the_length():
    rate = DEFAULT.sample_rate
    speech = np.concatenate([np.zeros(rate), tone(1.0, rate), np.zeros(rate // 2)])
    feats = audio_features(speech, DEFAULT)
    assert feats.shape == DEFAULT.shape == (300, 64)
    loud = feats.max(axis=1) > feats.min() + 20  # frames with the tone in them
    # the tone starts at the first frame and lasts 1 s (100 frames at 10 ms)
    assert loud[:5].all() and 95 <= loud.sum() <= 106


def test_paper_preset_is_180_frames_of_20_mfcc_untrimmed():
    rate = PAPER.sample_rate
    feats = audio_features(np.concatenate([np.zeros(rate), tone(4.0, rate)]), PAPER)
    assert feats.shape == (180, 20) and feats.dtype == np.float32
    energy = feats[:, 0]  # c0 tracks loudness: silent first second, then the tone
    assert energy[:40].max() < energy[60:].min()


def test_features_are_deterministic_and_finite(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(3.0, 48000, 200.0), 48000)
    a, dur = audio_clip_features(str(path), DEFAULT)
    b, _ = audio_clip_features(io.BytesIO(path.read_bytes()), DEFAULT)
    assert np.isfinite(a).all() and np.array_equal(a, b) and abs(dur - 3.0) < 0.03


@pytest.mark.parametrize("data", [b"", b"this is a text file, not audio\n" * 20])
def test_unreadable_audio_is_a_decode_error(data):
    with pytest.raises(MediaError) as e:
        decode_audio(io.BytesIO(data), 16000)
    assert e.value.stage == "decode"


def test_video_without_audio_stream(tmp_path):
    path = write_video(tmp_path / "v.mp4", np.zeros((5, 64, 64), np.uint8))
    with pytest.raises(MediaError, match="no audio stream"):
        decode_audio(str(path), 16000)


def test_real_ravdess_stereo_and_mono_files():
    actor = real_data("ravdess-speech-48k/Actor_01")
    stereo = audio_clip_features(str(actor / "03-01-02-01-01-02-01.wav"), DEFAULT)[0]
    mono = audio_clip_features(str(actor / "03-01-02-01-01-01-01.wav"), DEFAULT)[0]
    # same actor, emotion and sentence: the stereo take's features look like the mono take's
    assert stereo.shape == mono.shape == (300, 64)
    # takes differ in loudness by a few dB; their spectral envelopes and dynamics match
    assert abs(stereo.max() - mono.max()) < 10 and abs(stereo.std() - mono.std()) < 5
    assert np.corrcoef(stereo.mean(axis=0), mono.mean(axis=0))[0, 1] > 0.9
