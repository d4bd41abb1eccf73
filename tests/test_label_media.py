"""Labeling media: probing by content, windowed streaming decode (equal to the training path,
bounded memory), window plans and routing. Also home of the media writers the other
``test_label_*`` files use."""

import io
import tracemalloc
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from emoray.errors import MediaError
from emoray.features.audio import decode_audio, peak_dbfs
from emoray.features.config import VideoFeatureConfig
from emoray.features.video import video_features
from emoray.label.media import audio_windows, probe, video_windows
from emoray.redact import redact
from emoray.label.windows import plan_windows, route
from emoray.source import fetch
from media import tone, write_audio, write_video


def write_av(path: Path, frames: np.ndarray, samples: np.ndarray, rate: int = 48000,
             fps: int = 30) -> Path:
    """Grayscale frames (n, h, w) as H.264 plus mono ``samples`` as AAC, in one MP4."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.height, v.width = frames.shape[1:]
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=rate, layout="mono")
        for f in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(f, format="gray")))
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024].astype(np.float32),
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            out.mux(a.encode(frame))
        out.mux(v.encode(None))
        out.mux(a.encode(None))
    return path


def write_long_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A mono 16-bit WAV of a wandering tone, written in chunks (never whole in memory)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for start in range(0, int(seconds * rate), rate):
            t = (start + np.arange(rate)) / rate
            chunk = 0.3 * np.sin(2 * np.pi * (300 + 50 * np.sin(t)) * t)
            w.writeframes((chunk * 32767).astype("<i2").tobytes())
    return path


def write_long_video(path: Path, seconds: float, size=(48, 64), fps: int = 30) -> Path:
    """Small grayscale H.264 of moving bars, encoded frame by frame."""
    h, w = size
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.height, s.width, s.pix_fmt = h, w, "yuv420p"
        for i in range(int(seconds * fps)):
            img = ((np.arange(w)[None, :] + 3 * i + np.arange(h)[:, None]) % 256).astype(np.uint8)
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="gray")))
        out.mux(s.encode(None))
    return path


def concat_av(paths: list[Path], out: Path, fps: int = 30) -> Path:
    """Full-AV files (same frame size) back to back, re-encoded as one H.264 + AAC MP4."""
    with av.open(str(out), "w") as dst:
        a_out = dst.add_stream("aac", rate=48000, layout="mono")
        v_out, v_pts, a_pts = None, 0, 0
        for p in paths:
            with av.open(str(p)) as src:
                v = src.streams.video[0]
                if v_out is None:
                    v_out = dst.add_stream("libx264", rate=fps)
                    v_out.width, v_out.height, v_out.pix_fmt = v.width, v.height, "yuv420p"
                for f in src.decode(v):
                    frame = av.VideoFrame.from_ndarray(f.to_ndarray(format="gray"), format="gray")
                    frame.pts, v_pts = v_pts, v_pts + 1
                    dst.mux(v_out.encode(frame))
            with av.open(str(p)) as src:
                resampler = av.AudioResampler(format="fltp", layout="mono", rate=48000)
                frames = [r for f in src.decode(audio=0) for r in resampler.resample(f)]
                for r in frames + resampler.resample(None):
                    r.pts, a_pts = a_pts, a_pts + r.samples
                    dst.mux(a_out.encode(r))
        dst.mux(v_out.encode(None))
        dst.mux(a_out.encode(None))
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("label-media")
    rate = 48000
    write_audio(d / "tone.wav", tone(2.0, rate), rate)
    (d / "tone.bin").write_bytes((d / "tone.wav").read_bytes())
    write_audio(d / "tone.flac", tone(2.0, rate), rate, codec="flac")
    write_audio(d / "tone.ogg", tone(2.0, rate), rate, codec="libopus")
    write_audio(d / "tone.mp3", tone(2.0, rate), rate, codec="libmp3lame")
    write_audio(d / "tone.m4a", tone(2.0, rate), rate, codec="aac")
    frames = np.tile(np.linspace(40, 200, 64, dtype=np.uint8)[None, None], (60, 48, 1))
    write_video(d / "bars.mp4", frames)
    write_av(d / "bars.mkv", frames, tone(2.0, rate))
    (d / "notes.txt").write_text("not media\n" * 100)
    png = av.VideoFrame.from_ndarray(frames[0], format="gray")
    with av.open(str(d / "still.png"), "w") as out:
        s = out.add_stream("png")
        s.width, s.height, s.pix_fmt = 64, 48, "gray"
        out.mux(s.encode(png))
    return d


@pytest.mark.parametrize("name, audio, video", [
    ("tone.wav", True, False), ("tone.bin", True, False), ("tone.flac", True, False),
    ("tone.ogg", True, False), ("tone.mp3", True, False), ("tone.m4a", True, False),
    ("bars.mp4", False, True), ("bars.mkv", True, True),
])
def test_probe_by_content(media, name, audio, video):
    p = probe(io.BytesIO((media / name).read_bytes()))  # no name: content only
    assert (p.has_audio, p.has_video) == (audio, video)
    assert p.duration_s == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("name, reason", [
    ("notes.txt", "not a readable audio or video file"),
    ("still.png", "no audio or video stream (a still image)"),
])
def test_probe_rejects_what_is_not_audio_or_video(media, name, reason):
    with pytest.raises(MediaError) as e:
        probe(io.BytesIO((media / name).read_bytes()))
    assert (e.value.stage, e.value.reason) == ("probe", reason)


def test_fetch_hashes_small_and_streamed_files_alike(media):
    path = str(media / "tone.wav")
    size = (media / "tone.wav").stat().st_size
    whole, streamed = fetch(path, size, 1 << 30), fetch(path, size, 0)
    assert whole.sha256 == streamed.sha256 and whole.data and streamed.data is None
    assert streamed.open().read() == whole.open().read()
    (media / "empty.wav").write_bytes(b"")
    with pytest.raises(MediaError, match="read: file is empty"):
        fetch(str(media / "empty.wav"), 0, 1 << 30)


def test_audio_windows_are_slices_of_the_whole_decode(tmp_path):
    path = write_long_wav(tmp_path / "long.wav", 20.0, rate=22050)
    whole = decode_audio(str(path), 16000)
    starts = plan_windows(20.0, 3.0, 2.5)
    windows = list(audio_windows(str(path), 16000, starts, 3.0))
    assert len(windows) == len(starts) == 8 and starts[-1] == 17.0
    for s, w in zip(starts, windows):
        lo = round(s * 16000)
        np.testing.assert_array_equal(w, whole[lo:lo + 48000])
    gaps = list(audio_windows(str(path), 16000, [1.0, 7.5, 12.0], 2.0))  # hop > window
    for s, w in zip([1.0, 7.5, 12.0], gaps):
        np.testing.assert_array_equal(w, whole[round(s * 16000):round(s * 16000) + 32000])
    past_end = list(audio_windows(str(path), 16000, [19.0, 25.0], 3.0))
    assert len(past_end[0]) == 16000 and past_end[1] is None


def test_a_video_window_equals_the_training_crop(synth_corpus):
    """The centred window of a clip, stream-decoded as a window, gives video_features' crops."""
    cfg = VideoFeatureConfig()
    path = next(synth_corpus.rglob("02-*.mp4"))
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        duration = float(s.duration * s.time_base)
    ((crops, face),) = video_windows(str(path), cfg, [(duration - cfg.window_s) / 2], cfg.window_s)
    expected, expected_face = video_features(str(path), cfg)
    assert face is expected_face is True
    np.testing.assert_array_equal(crops, expected)


def test_video_windows_past_the_end_are_empty(tmp_path):
    path = write_long_video(tmp_path / "v.mp4", 4.0)
    out = list(video_windows(str(path), VideoFeatureConfig(), [0.0, 1.0, 6.0], 3.0))
    assert [c is None for c, _ in out] == [False, False, True]
    assert out[0][0].shape == (30, 80, 70) and out[0][1] is False  # no face: centre crop


def peak_traced(fn) -> int:
    """Peak bytes Python and numpy allocate while ``fn()`` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_recording(tmp_path):
    """Streaming windows of a 10x longer recording peak at the same memory (audio and video)."""
    cfg = VideoFeatureConfig()
    peaks = {}
    for minutes in (1, 10):
        wav = write_long_wav(tmp_path / f"{minutes}.wav", 60 * minutes)
        starts = plan_windows(60 * minutes, 3.0, 3.0)
        peaks["audio", minutes] = peak_traced(
            lambda: sum(1 for _ in audio_windows(str(wav), 16000, starts, 3.0)))
    for minutes in (0.5, 5):
        mp4 = write_long_video(tmp_path / f"{minutes}.mp4", 60 * minutes)
        starts = plan_windows(60 * minutes, 3.0, 3.0)
        peaks["video", minutes] = peak_traced(
            lambda: sum(1 for _ in video_windows(str(mp4), cfg, starts, 3.0)))
    assert peaks["audio", 10] < 1.2 * peaks["audio", 1] + (1 << 20), peaks
    assert peaks["video", 5] < 1.2 * peaks["video", 0.5] + (1 << 20), peaks
    assert peaks["audio", 10] < 8 << 20  # a whole decode of 10 min would be 38 MB


def test_window_plan_covers_the_recording_with_full_windows():
    assert plan_windows(2.0, 3.0, 3.0) == [0.0]
    assert plan_windows(9.0, 3.0, 3.0) == [0.0, 3.0, 6.0]
    assert plan_windows(10.0, 3.0, 3.0) == [0.0, 3.0, 6.0, 7.0]
    assert plan_windows(10.0, 3.0, 1.5) == [0.0, 1.5, 3.0, 4.5, 6.0, 7.0]
    hour = plan_windows(3600.0, 3.0, 3.0)
    assert len(hour) == 1200 and hour[-1] == 3597.0


@pytest.mark.parametrize("kind, has_audio, audible, has_video, face, expected", [
    ("fusion", True, True, True, True, "fusion"),
    ("fusion", True, True, True, False, "audio"),  # no face: the audio branch
    ("fusion", True, False, True, True, "video"),  # silent track (RAVDESS video-only)
    ("fusion", True, False, True, False, "video"),  # centre crop, flagged
    ("fusion", False, False, True, True, "video"),
    ("fusion", True, True, False, None, "audio"),
    ("fusion", True, False, False, None, "audio"),  # silence is all there is
    ("audio", True, False, True, None, None),  # an audio model does not label a silent video
    ("audio", True, True, True, None, "audio"),
    ("video", True, True, True, False, "video"),
    ("video", True, True, False, None, None),
])
def test_route(kind, has_audio, audible, has_video, face, expected):
    assert route(kind, has_audio, audible, has_video, face) == expected


def test_silence_level():
    assert peak_dbfs(np.zeros(100, np.float32)) < -200
    assert peak_dbfs(np.full(10, 0.5, np.float32)) == pytest.approx(-6.02, abs=0.01)


def test_redact_removes_secrets(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    msg = ("AWS Error ACCESS_DENIED for very-secret-value-123 at "
           "https://h/b/k?X-Amz-Credential=AKIAXYZ%2F2024&X-Amz-Signature=abcdef0123456789 "
           "Credential=AKIAXYZ/20240101/us-east-1/s3/aws4_request, Signature=0123456789abcdef01")
    out = redact(msg)
    for secret in ("very-secret-value-123", "AKIAXYZ", "abcdef0123456789", "0123456789abcdef01"):
        assert secret not in out
    assert out.startswith("AWS Error ACCESS_DENIED")
